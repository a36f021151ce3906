//! The log of one partition: an ordered set of segments, the last of which is active.
//!
//! Owns: the partition's directory and every file in it.
//! Invariants: segments' offset ranges are increasing and disjoint; `log_start_offset` ≤
//! every stored offset < `log_end_offset`; a reader never sees bytes past a segment's size at
//! the time its read was planned, so it never sees half a batch.
//! Crash: writes go to the OS at once (they survive `kill -9`); `flush`/`sync_handle` make
//! them survive power loss. On open, the last segment is validated batch by batch and cut at
//! the first torn or corrupt batch.
//! Not thread-safe by itself: the broker holds it in a mutex and runs [`ReadPlan::execute`]
//! outside that mutex.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::info;

use crate::batch::{self, BatchHeader, HEADER_LEN, PREFIX_LEN, ValidatedBatch};
use crate::error::LogError;
use crate::segment::{Segment, read_header_at};

/// Settings of a partition log (Kafka's topic-level names in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `retention.ms`; `None` keeps data forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`; `None` means no size limit.
    pub retention_bytes: Option<i64>,
    /// `index.interval.bytes`
    pub index_interval_bytes: u32,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's time for LogAppendTime topics, else -1 (Kafka's convention).
    pub log_append_time_ms: i64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub log_start_offset: i64,
}

/// The largest timestamp lookups decompress to (a stored batch passed the produce cap).
const LOOKUP_DECOMPRESS_LIMIT: usize = 256 * 1024 * 1024;

/// A partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
}

fn io_err(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        source: Arc::new(source),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it if needed and recovering from a crash if one
    /// happened.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = entry.map_err(|e| io_err(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let now = now_ms();
        let mut segments = BTreeMap::new();
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let segment = Segment::open(dir, base, config.index_interval_bytes, last, now)?;
            segments.insert(base, segment);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now)?);
        }
        let log_start_offset = *segments.keys().next().expect("at least one segment");
        let log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
        };
        info!(dir = %dir.display(), segments = log.segments.len(), log_start_offset, log_end_offset = log.log_end_offset(), "partition log opened");
        Ok(log)
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends a validated batch at the log end, rolling the active segment first if needed.
    pub fn append(
        &mut self,
        batch: &ValidatedBatch,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let bytes = batch.bytes();
        let header = *batch.header();
        let base_offset = self.log_end_offset();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        self.maybe_roll(bytes.len() as u64, last_offset, now_ms)?;
        let mut prefix = [0u8; PREFIX_LEN];
        prefix[0..8].copy_from_slice(&base_offset.to_be_bytes());
        prefix[8..12].copy_from_slice(&bytes[8..12]);
        prefix[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        let stored = BatchHeader {
            base_offset,
            partition_leader_epoch: leader_epoch,
            ..header
        };
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(&prefix, bytes, &stored, interval)?;
        let log_append_time_ms = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            -1
        };
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
        })
    }

    fn maybe_roll(&mut self, incoming: u64, last_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() + incoming > self.config.segment_bytes;
        let old = now_ms.saturating_sub(active.created_ms()) >= self.config.segment_ms;
        let relative_overflow = last_offset - active.base_offset > i64::from(i32::MAX);
        if full || old || relative_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let base = self.log_end_offset();
        self.active().sync()?;
        let segment = Segment::create(&self.dir, base, now_ms)?;
        self.segments.insert(base, segment);
        info!(dir = %self.dir.display(), base_offset = base, "segment rolled");
        Ok(())
    }

    /// Plans a read of whole batches from `fetch_offset`, at most `max_bytes` unless
    /// `at_least_one` and the first batch is larger. Execute the plan outside any lock.
    pub fn read_plan(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<ReadPlan, LogError> {
        let log_end_offset = self.log_end_offset();
        if fetch_offset < self.log_start_offset || fetch_offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        // The segment holding the offset, or (past its end) the first one after it.
        let segment = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| fetch_offset < s.next_offset())
            .or_else(|| {
                self.segments
                    .range(fetch_offset + 1..)
                    .next()
                    .map(|(_, s)| s)
            });
        Ok(match segment {
            Some(s) if fetch_offset < log_end_offset => ReadPlan {
                source: Some((
                    s.file().clone(),
                    self.dir.join(crate::segment::log_file_name(s.base_offset)),
                )),
                position: s.position_for_offset(fetch_offset),
                end: s.size(),
                fetch_offset,
                max_bytes,
                at_least_one,
            },
            _ => ReadPlan::empty(),
        })
    }

    /// The offset and timestamp of the first record whose timestamp is at least `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in self
            .segments
            .values()
            .filter(|s| s.max_timestamp() >= timestamp)
        {
            let file = segment.file();
            let mut position = segment.position_for_timestamp(timestamp);
            while let Some(header) =
                read_header_at(file, position, segment.size()).map_err(|e| io_err(&self.dir, e))?
            {
                let len = header.total_len().unwrap_or(0);
                if header.max_timestamp >= timestamp
                    && header.last_offset() >= self.log_start_offset
                {
                    let found = self.find_in_batch(file, position, len, timestamp)?;
                    if let Some((offset, ts)) = found {
                        return Ok(Some((offset.max(self.log_start_offset), ts)));
                    }
                }
                position += len as u64;
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (the first such).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let Some(max) = self
            .segments
            .values()
            .map(Segment::max_timestamp)
            .max()
            .filter(|t| *t >= 0)
        else {
            return Ok(None);
        };
        self.offset_for_timestamp(max)
    }

    fn find_in_batch(
        &self,
        file: &File,
        position: u64,
        len: usize,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, position)
            .map_err(|e| io_err(&self.dir, e))?;
        batch::first_record_at_or_after(&buf, timestamp, LOOKUP_DECOMPRESS_LIMIT).map_err(|e| {
            LogError::Corrupt {
                path: self.dir.clone(),
                position,
                reason: e.to_string(),
            }
        })
    }

    /// Calls `visit` with the header of every stored batch, oldest first (used to rebuild
    /// idempotent-producer state after a restart).
    pub fn scan_batch_headers(&self, mut visit: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
        for segment in self.segments.values() {
            let mut position = 0;
            while let Some(header) = read_header_at(segment.file(), position, segment.size())
                .map_err(|e| io_err(&self.dir, e))?
            {
                visit(&header);
                position += header.total_len().unwrap_or(HEADER_LEN) as u64;
            }
        }
        Ok(())
    }

    /// fsyncs the active segment.
    pub fn flush(&self) -> Result<(), LogError> {
        self.active().sync()
    }

    /// A handle to fsync the active segment outside the partition's lock.
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            file: self.active().file().clone(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Deletes old segments by `retention.ms` (a segment goes when its newest record is older)
    /// and `retention.bytes` (oldest segments go while the log is larger), and rolls the
    /// active segment when `segment.ms` has passed. The active segment is never deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        if self.active().created_ms() + self.config.segment_ms <= now_ms
            && !self.active().is_empty()
        {
            self.roll(now_ms)?;
        }
        let mut deleted = 0;
        loop {
            if self.segments.len() < 2 {
                break;
            }
            let oldest = self.segments.values().next().expect("two or more segments");
            let expired = self.config.retention_ms.is_some_and(|ms| {
                oldest.max_timestamp() >= 0 && now_ms - oldest.max_timestamp() > ms
            });
            let oversized = self.config.retention_bytes.is_some_and(|limit| {
                self.size_bytes().saturating_sub(oldest.size()) >= limit as u64
                    && self.size_bytes() > limit as u64
            });
            if !(expired || oversized) {
                break;
            }
            let (_, segment) = self.segments.pop_first().expect("two or more segments");
            let next_base = *self.segments.keys().next().expect("one segment remains");
            self.log_start_offset = self.log_start_offset.max(next_base);
            info!(dir = %self.dir.display(), base_offset = segment.base_offset, log_start_offset = self.log_start_offset, "retention deleted a segment");
            segment.delete()?;
            deleted += 1;
        }
        Ok(RetentionOutcome {
            deleted_segments: deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Removes every batch at or after `offset` (followers will need it to drop a divergent tail).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            let (_, segment) = self.segments.pop_last().expect("more than one segment");
            segment.delete()?;
        }
        self.active_mut().truncate_to(offset)
    }

    /// Deletes the whole log directory (topic deletion).
    pub fn delete_all(self) -> Result<(), LogError> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| io_err(&self.dir, e))
    }
}

/// fsyncs a segment file without holding the partition lock.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    file: Arc<File>,
    log_end_offset: i64,
}

impl SyncHandle {
    /// Makes every append made before the handle was taken durable; returns the offset the
    /// log is durable up to (exclusive).
    pub fn sync(&self) -> std::io::Result<i64> {
        self.file.sync_data()?;
        Ok(self.log_end_offset)
    }
}

/// A planned read: which file, from where, up to where. Holding the file keeps it readable
/// even if retention deletes the segment meanwhile.
#[derive(Debug)]
pub struct ReadPlan {
    source: Option<(Arc<File>, PathBuf)>,
    position: u64,
    end: u64,
    fetch_offset: i64,
    max_bytes: usize,
    at_least_one: bool,
}

impl ReadPlan {
    fn empty() -> Self {
        Self {
            source: None,
            position: 0,
            end: 0,
            fetch_offset: 0,
            max_bytes: 0,
            at_least_one: false,
        }
    }

    /// Reads the planned batches: whole batches only, starting with the one holding the fetch
    /// offset.
    pub fn execute(&self) -> Result<Bytes, LogError> {
        let Some((file, path)) = &self.source else {
            return Ok(Bytes::new());
        };
        let err = |e| io_err(path, e);
        // Skip the batches before the one holding the fetch offset.
        let mut start = self.position;
        let first = loop {
            match read_header_at(file, start, self.end).map_err(err)? {
                None => return Ok(Bytes::new()),
                Some(h) if h.last_offset() < self.fetch_offset => {
                    start += h.total_len().unwrap_or(HEADER_LEN) as u64
                }
                Some(h) => break h,
            }
        };
        let first_len = first.total_len().unwrap_or(HEADER_LEN);
        let available = (self.end - start) as usize;
        let mut want = self.max_bytes.min(available);
        if want < first_len {
            if !self.at_least_one {
                return Ok(Bytes::new());
            }
            want = first_len.min(available);
        }
        let mut buf = BytesMut::zeroed(want);
        file.read_exact_at(&mut buf, start).map_err(err)?;
        // Keep only complete batches.
        let mut complete = 0;
        while let Some(header) = BatchHeader::parse(&buf[complete..]) {
            match header.total_len() {
                Some(len) if complete + len <= buf.len() => complete += len,
                _ => break,
            }
        }
        buf.truncate(complete);
        Ok(buf.freeze())
    }
}
