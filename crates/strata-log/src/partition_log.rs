//! The log of one partition: an ordered set of segments, the last of which is active.
//!
//! Owns: the partition's directory and every file in it.
//! Invariants: segments' offset ranges are increasing and disjoint; `log_start_offset` ≤
//! every stored offset < `log_end_offset`; a reader never sees bytes past a segment's size at
//! the time its read was planned, so it never sees half a batch.
//! Crash: writes go to the OS at once (they survive `kill -9`); `flush`/`sync_handle` make
//! them survive power loss. A rolled segment is sealed (fsynced, its index written) in the
//! background ([`crate::seal`]). On open, the last segment and any segment a crash left
//! unsealed are validated batch by batch; the first torn or corrupt batch is cut, along with
//! every segment after it.
//! Not thread-safe by itself: the broker holds it in a mutex and runs [`ReadPlan::execute`]
//! outside that mutex.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};

use crate::append_times::AppendTimes;
use crate::batch::{self, BatchHeader, HEADER_LEN, PREFIX_LEN, ValidatedBatch};
use crate::error::LogError;
use crate::file_range::FileRange;
use crate::leader_epochs::LeaderEpochs;
use crate::seal::PendingSeal;
use crate::segment::{BatchScan, Segment, read_header_at};
use crate::segment_files::SegmentFiles;

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
    /// Descriptors of sealed segments, shared with the broker's other partitions.
    files: Arc<SegmentFiles>,
    /// Which leader epoch wrote which offsets.
    epochs: LeaderEpochs,
    /// When what this process appended was appended (see [`Self::pending_from`]).
    append_times: AppendTimes,
    /// Rolled segments by base offset whose seal has not been seen to succeed; a failed one
    /// stays, so the failure is reported until a restart.
    sealing: BTreeMap<i64, Arc<PendingSeal>>,
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
    /// happened. Sealed segments are read through `files`.
    pub fn open(dir: &Path, config: LogConfig, files: Arc<SegmentFiles>) -> Result<Self, LogError> {
        crate::durable_file::create_dir_all_durable(dir).map_err(|e| io_err(dir, e))?;
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
            let (segment, cut) = Segment::open(dir, base, config.index_interval_bytes, last, now)?;
            segments.insert(base, segment);
            if cut && !last {
                // A segment rolled but never sealed lost bytes to a crash: the segments after
                // it start at offsets it no longer holds, and the log never has a hole.
                let dropped = &bases[i + 1..];
                warn!(dir = %dir.display(), cut_segment = base, dropped_segments = dropped.len(), "recovery cut an unsealed segment; removing the segments after it");
                for &later in dropped {
                    Segment::delete_unopened(dir, later)?;
                }
                break;
            }
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now)?);
            crate::durable_file::sync_dir(dir).map_err(|e| io_err(dir, e))?;
        }
        let log_start_offset = *segments.keys().next().expect("at least one segment");
        let loaded = LeaderEpochs::load(dir)?;
        let rebuild = loaded.is_none();
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            files,
            epochs: loaded.unwrap_or_else(|| LeaderEpochs::empty(dir)),
            append_times: AppendTimes::default(),
            sealing: BTreeMap::new(),
        };
        if rebuild {
            // A log from before the cache existed: its batches say which epoch wrote them.
            let mut starts = Vec::new();
            log.scan_batch_headers(i64::MIN, |header| {
                starts.push((header.partition_leader_epoch, header.base_offset));
            })?;
            for (epoch, start) in starts {
                log.epochs.assign(epoch, start)?;
            }
        }
        // Epochs recorded for batches the crash cut off, or below the log start, go.
        log.epochs.truncate_from_end(log.log_end_offset())?;
        log.epochs.truncate_from_start(log.log_start_offset)?;
        info!(dir = %dir.display(), segments = log.segments.len(), log_start_offset, log_end_offset = log.log_end_offset(), "partition log opened");
        Ok(log)
    }

    /// Takes new settings (a topic config change). They apply from the next append, roll or
    /// retention pass; open segments keep the index interval they were opened with.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The base offset of the segment appends go to.
    pub fn active_base_offset(&self) -> i64 {
        self.active().base_offset
    }

    /// When the active segment was created (wall clock, ms).
    pub fn active_created_ms(&self) -> i64 {
        self.active().created_ms()
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
        self.write(batch, self.log_end_offset(), leader_epoch, now_ms)
    }

    /// Appends a batch its leader already placed, as a follower does: it must start at the
    /// log end, and it keeps its offsets and leader epoch, so its bytes are stored unchanged.
    pub fn append_replicated(
        &mut self,
        batch: &ValidatedBatch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let header = batch.header();
        let log_end_offset = self.log_end_offset();
        if header.base_offset != log_end_offset {
            return Err(LogError::NotContiguous {
                base_offset: header.base_offset,
                log_end_offset,
            });
        }
        self.write(batch, log_end_offset, header.partition_leader_epoch, now_ms)
    }

    fn write(
        &mut self,
        batch: &ValidatedBatch,
        base_offset: i64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_seals()?;
        let bytes = batch.bytes();
        let header = *batch.header();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        self.maybe_roll(bytes.len() as u64, last_offset, now_ms)?;
        // Before the batch: a crash may leave an epoch that wrote nothing, never a batch
        // whose epoch is unknown.
        self.epochs.assign(leader_epoch, base_offset)?;
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
        let files = self.files.clone();
        self.active_mut()
            .append(&prefix, bytes, &stored, interval, &files)?;
        self.append_times.record(base_offset, now_ms);
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

    /// Starts a new active segment at the log end offset and hands the old one to the
    /// sealing thread. Only the new file is created here: a roll costs no fsync on the
    /// caller's thread. A failure leaves the old segment active.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.check_seals()?;
        let base = self.log_end_offset();
        let segment = Segment::create(&self.dir, base, now_ms)?;
        let old_base = self.active().base_offset;
        if let Some(seal) = self.active_mut().close_for_seal() {
            let seal = Arc::new(seal);
            self.sealing.insert(old_base, seal.clone());
            self.files.seal_later(seal);
        }
        self.segments.insert(base, segment);
        info!(dir = %self.dir.display(), base_offset = base, "segment rolled");
        Ok(())
    }

    /// Forgets the seals that succeeded; reports one that failed (again at every call: an
    /// fsync that failed is never taken back).
    fn check_seals(&mut self) -> Result<(), LogError> {
        let mut failed = None;
        self.sealing.retain(|_, seal| match seal.outcome() {
            Some(Ok(())) => false,
            Some(Err(e)) => {
                failed.get_or_insert_with(|| sync_failed(seal.log_path(), &e));
                true
            }
            None => true,
        });
        failed.map_or(Ok(()), Err)
    }

    /// Stops the seal of a segment that is deleted or reopened for appends.
    fn cancel_seal(&mut self, base_offset: i64) {
        if let Some(seal) = self.sealing.remove(&base_offset) {
            seal.cancel();
        }
    }

    /// Plans a read of whole batches from `fetch_offset`, at most `max_bytes` unless
    /// `at_least_one` and the first batch is larger, and none reaching `end_offset` or past
    /// it (the bound a reader may see: the high watermark). Execute the plan outside any lock.
    pub fn read_plan(
        &self,
        fetch_offset: i64,
        end_offset: i64,
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
            Some(s) if fetch_offset < log_end_offset.min(end_offset) => ReadPlan {
                source: Some((s.file(&self.files)?, s.log_path().to_path_buf())),
                position: s.position_for_offset(fetch_offset),
                end: s.size(),
                segment_end_offset: s.next_offset(),
                fetch_offset,
                end_offset,
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
            let file = segment.file(&self.files)?;
            let start = segment.position_for_timestamp(timestamp);
            let mut scan = BatchScan::new(&file, start, segment.size());
            while let Some(header) = scan.header().map_err(|e| io_err(&self.dir, e))? {
                let len = header.total_len().unwrap_or(0);
                if header.max_timestamp >= timestamp
                    && header.last_offset() >= self.log_start_offset
                {
                    let found = self.find_in_batch(&file, scan.position, len, timestamp)?;
                    if let Some((offset, ts)) = found {
                        return Ok(Some((offset.max(self.log_start_offset), ts)));
                    }
                }
                scan.position += len as u64;
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

    /// Calls `visit` with the header of every stored batch holding `from_offset` or later,
    /// oldest first (used to rebuild idempotent-producer state after a restart, from where
    /// its last snapshot ends).
    pub fn scan_batch_headers(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        for segment in self
            .segments
            .values()
            .filter(|s| s.next_offset() > from_offset)
        {
            let file = segment.file(&self.files)?;
            let start = segment.position_for_offset(from_offset);
            let mut scan = BatchScan::new(&file, start, segment.size());
            while let Some(header) = scan.header().map_err(|e| io_err(&self.dir, e))? {
                if header.last_offset() >= from_offset {
                    visit(&header);
                }
                scan.position += header.total_len().unwrap_or(HEADER_LEN) as u64;
            }
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `epoch` that wrote here and where
    /// its data ends (see [`LeaderEpochs::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The partition's directory.
    /// The epoch of the last batch written, if any was.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finishes the seals of rolled segments and fsyncs the active one: everything appended
    /// is durable and every sealed segment has its index.
    pub fn flush(&self) -> Result<(), LogError> {
        for seal in self.sealing.values() {
            seal.finish(&self.files)
                .map_err(|e| sync_failed(seal.log_path(), &e))?;
        }
        self.active().sync(&self.files)
    }

    /// A handle to make every append so far durable outside the partition's lock: it
    /// finishes the seals still pending, then fsyncs the active segment.
    pub fn sync_handle(&self) -> Result<SyncHandle, LogError> {
        Ok(SyncHandle {
            file: self.active().file(&self.files)?,
            sealing: self.sealing.values().cloned().collect(),
            log_end_offset: self.log_end_offset(),
            files: self.files.clone(),
        })
    }

    /// Deletes old segments by `retention.ms` (a segment goes when its newest record is older)
    /// and `retention.bytes` (oldest segments go while the log is larger), and rolls the
    /// active segment when `segment.ms` has passed. The active segment is never deleted, and
    /// neither is a segment holding an offset at or past `deletable_end` (for a tiered log:
    /// the data not yet committed to the object store; `i64::MAX` for no such bound).
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        deletable_end: i64,
    ) -> Result<RetentionOutcome, LogError> {
        if self
            .active()
            .created_ms()
            .saturating_add(self.config.segment_ms)
            <= now_ms
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
            if oldest.next_offset() > deletable_end || !self.retention_wants(oldest, now_ms) {
                break;
            }
            self.delete_oldest()?;
            info!(dir = %self.dir.display(), log_start_offset = self.log_start_offset, "retention deleted a segment");
            deleted += 1;
        }
        Ok(RetentionOutcome {
            deleted_segments: deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Whether retention deletes `segment` when it is the oldest: its newest record is older
    /// than `retention.ms`, or the log stays at or above `retention.bytes` without it.
    fn retention_wants(&self, segment: &Segment, now_ms: i64) -> bool {
        let expired = self.config.retention_ms.is_some_and(|ms| {
            segment.max_timestamp() >= 0 && now_ms - segment.max_timestamp() > ms
        });
        let oversized = self.config.retention_bytes.is_some_and(|limit| {
            self.size_bytes().saturating_sub(segment.size()) >= limit as u64
                && self.size_bytes() > limit as u64
        });
        expired || oversized
    }

    /// Rolls the active segment when all of it is below `deletable_end` and it is the only
    /// segment retention would still delete: a tiered log, whose data the object store
    /// holds, then keeps its local copy within retention even on a partition too quiet to
    /// fill a segment or age it by `segment.ms` (Kafka, too, rolls an expired active segment
    /// so that retention can take it). The next [`Self::enforce_retention`] deletes it.
    /// Answers whether it rolled.
    pub fn roll_if_retired(&mut self, now_ms: i64, deletable_end: i64) -> Result<bool, LogError> {
        let active = self.active();
        let retired = self.segments.len() == 1
            && !active.is_empty()
            && active.next_offset() <= deletable_end
            && self.retention_wants(active, now_ms);
        if retired {
            self.roll(now_ms)?;
        }
        Ok(retired)
    }

    /// Deletes the segments that end at or before `offset` (every batch in them is below it)
    /// and moves the log start past them; the active segment stays. For a writer that has
    /// rewritten everything it still needs at `offset` or later (the group coordinator's
    /// checkpoint). Answers how many segments went.
    pub fn delete_segments_below(&mut self, offset: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let next_base = *self.segments.keys().nth(1).expect("two or more segments");
            if next_base > offset {
                break;
            }
            self.delete_oldest()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes the oldest (never the active) segment and moves the log start past it. Its
    /// files go first: if that fails, the segment stays in the log, whole, and the log start
    /// stays where it was.
    fn delete_oldest(&mut self) -> Result<(), LogError> {
        let mut bases = self.segments.keys();
        let (Some(&oldest), Some(&next_base)) = (bases.next(), bases.next()) else {
            return Ok(());
        };
        self.cancel_seal(oldest);
        self.segments[&oldest].delete(&self.files)?;
        self.segments.remove(&oldest);
        self.log_start_offset = self.log_start_offset.max(next_base);
        self.epochs.truncate_from_start(self.log_start_offset)
    }

    /// Moves the log start forward to `offset` (at most the log end): DeleteRecords, or a log
    /// start the tiered log moved. Segments wholly below it are deleted; the log start is kept
    /// in memory only, so the caller re-applies it after a restart (the manifest holds it).
    pub fn advance_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        let offset = offset.min(self.log_end_offset());
        // The log start moves first: what is below it is never served again, whether or not
        // its files go now (a failed delete is retried by the next call).
        self.log_start_offset = self.log_start_offset.max(offset);
        self.epochs.truncate_from_start(self.log_start_offset)?;
        self.delete_segments_below(self.log_start_offset)?;
        Ok(())
    }

    /// Removes every batch at or after `offset` (followers will need it to drop a divergent tail).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            let base = self.active().base_offset;
            self.cancel_seal(base);
            self.active().delete(&self.files)?;
            self.segments.pop_last();
        }
        let base = self.active().base_offset;
        self.cancel_seal(base);
        self.active_mut().truncate_to(offset)?;
        self.append_times.forget_from(offset);
        self.epochs.truncate_from_end(offset)
    }

    /// Makes an empty log, or one that ends below `offset`, start at `offset`: for a partition
    /// whose older data is in the object store and whose local copy was lost, so that new
    /// appends continue after the stored offsets instead of reusing them. Answers whether the
    /// log changed.
    ///
    /// The new segment is in place before any old one goes, so a failure part way leaves a
    /// log that still has an active segment, starts at `offset`, and deletes the rest of
    /// its old segments on the next [`Self::advance_log_start`].
    pub fn skip_to(&mut self, offset: i64, now_ms: i64) -> Result<bool, LogError> {
        if self.log_end_offset() >= offset {
            return Ok(false);
        }
        let fresh = Segment::create(&self.dir, offset, now_ms)?;
        let old = self.active_mut().close_for_seal();
        self.segments.insert(offset, fresh);
        // Sealed here, not later: the old segments are about to go, and if that fails they
        // must be whole (and the fresh segment's entry durable) when the log is next opened.
        if let Some(seal) = old {
            seal.finish(&self.files)
                .map_err(|e| sync_failed(seal.log_path(), &e))?;
        }
        self.log_start_offset = offset;
        self.epochs.truncate_from_start(offset)?;
        info!(dir = %self.dir.display(), log_start_offset = offset, "log skipped ahead to the tiered end");
        self.delete_segments_below(offset)?;
        Ok(true)
    }

    /// The data from the batch holding `from_offset` on, up to the end of that batch's
    /// segment (sealed or active), about `max_bytes` (at least one batch), and no batch
    /// reaching `end_offset` (what may leave the broker: the high watermark): what an
    /// uploader packs next. `None` when no whole batch lies in that span.
    pub fn upload_range(
        &self,
        from_offset: i64,
        end_offset: i64,
        max_bytes: u64,
    ) -> Result<Option<UploadRange>, LogError> {
        let from_offset = from_offset.max(self.log_start_offset);
        let Some(segment) = self
            .segments
            .values()
            .find(|s| s.next_offset() > from_offset)
        else {
            return Ok(None);
        };
        let file = segment.file(&self.files)?;
        let io = |e| io_err(&self.dir, e);
        let start = segment.position_for_offset(from_offset);
        let mut scan = BatchScan::new(&file, start, segment.size());
        let mut range: Option<UploadRange> = None;
        while let Some(header) = scan.header().map_err(io)? {
            if header.last_offset() >= end_offset {
                break;
            }
            let len = header.total_len().unwrap_or(HEADER_LEN) as u64;
            if header.last_offset() >= from_offset {
                let range = range.get_or_insert_with(|| UploadRange {
                    bytes: FileRange::new(file.clone(), scan.position, 0),
                    base_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    max_timestamp_ms: -1,
                });
                let so_far = range.bytes.len() as u64;
                if so_far > 0 && so_far + len > max_bytes {
                    break;
                }
                range.bytes = range.bytes.extended(len as usize);
                range.last_offset = header.last_offset();
                range.max_timestamp_ms = range.max_timestamp_ms.max(header.max_timestamp);
            }
            scan.position += len;
        }
        Ok(range)
    }

    /// The bytes stored at `offset` and after it, and when the first of them was appended
    /// (or earlier): how much, and since when, a tiered log has not uploaded. Data appended
    /// before this process opened the log counts from its segment's creation.
    pub fn pending_from(&self, offset: i64) -> (u64, Option<i64>) {
        let mut bytes = 0;
        let mut created = None;
        for segment in self.segments.values().filter(|s| s.next_offset() > offset) {
            let start = if segment.base_offset < offset {
                segment.position_for_offset(offset)
            } else {
                0
            };
            bytes += segment.size().saturating_sub(start);
            created.get_or_insert(segment.created_ms());
        }
        let since = created.map(|created| {
            let first = offset.max(self.log_start_offset);
            self.append_times.appended_by(first).unwrap_or(created)
        });
        (bytes, since)
    }

    /// Lets go of what [`Self::pending_from`] knows of offsets below `offset`: nobody asks
    /// about them again (they are safely uploaded).
    pub fn forget_append_times_below(&mut self, offset: i64) {
        self.append_times.forget_below(offset);
    }

    /// Deletes the whole log directory (topic deletion).
    pub fn delete_all(self) -> Result<(), LogError> {
        for seal in self.sealing.values() {
            seal.cancel();
        }
        self.files.forget_under(&self.dir);
        std::fs::remove_dir_all(&self.dir).map_err(|e| io_err(&self.dir, e))
    }
}

/// A run of whole batches below the high watermark, located by [`PartitionLog::upload_range`].
#[derive(Debug, Clone)]
pub struct UploadRange {
    pub bytes: FileRange,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// The error of a seal whose fsync failed.
fn sync_failed(path: &Path, source: &Arc<std::io::Error>) -> LogError {
    LogError::SyncFailed {
        path: path.to_path_buf(),
        source: source.clone(),
    }
}

/// fsyncs a partition's unsealed segments without holding the partition lock.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    file: Arc<File>,
    /// Rolled segments whose seal had not been seen to succeed when the handle was taken.
    sealing: Vec<Arc<PendingSeal>>,
    log_end_offset: i64,
    files: Arc<SegmentFiles>,
}

impl SyncHandle {
    /// Makes every append made before the handle was taken durable; returns the offset the
    /// log is durable up to (exclusive).
    pub fn sync(&self) -> std::io::Result<i64> {
        for seal in &self.sealing {
            seal.finish(&self.files)
                .map_err(|e| std::io::Error::new(e.kind(), e))?;
        }
        self.files.sync(&self.file)?;
        Ok(self.log_end_offset)
    }
}

/// A planned read: which file, from where, up to where. Holding the file keeps it readable
/// even if retention deletes the segment meanwhile.
#[derive(Debug)]
pub struct ReadPlan {
    source: Option<(Arc<File>, PathBuf)>,
    position: u64,
    /// The segment's size when the read was planned: whole batches end here.
    end: u64,
    /// One past the segment's last offset then.
    segment_end_offset: i64,
    fetch_offset: i64,
    /// No batch reaching this offset is returned.
    end_offset: i64,
    max_bytes: usize,
    at_least_one: bool,
}

impl ReadPlan {
    fn empty() -> Self {
        Self {
            source: None,
            position: 0,
            end: 0,
            segment_end_offset: 0,
            fetch_offset: 0,
            end_offset: 0,
            max_bytes: 0,
            at_least_one: false,
        }
    }

    /// Reads the planned batches into memory (see [`Self::locate`]).
    pub fn execute(&self) -> Result<Bytes, LogError> {
        match (self.locate()?, &self.source) {
            (Some(range), Some((_, path))) => range.read().map_err(|e| io_err(path, e)),
            _ => Ok(Bytes::new()),
        }
    }

    /// Finds the planned batches without reading them: whole batches only, starting with the
    /// one holding the fetch offset, at most `max_bytes` of them (or the first alone, if
    /// `at_least_one`), none reaching the end offset. `None` when that is no batch.
    ///
    /// Only batch headers are read: none at all past the first when the rest of the segment
    /// fits and lies below the end offset (a follower, or a consumer at the tail), else one
    /// per batch up to where the range stops.
    pub fn locate(&self) -> Result<Option<FileRange>, LogError> {
        let Some((file, path)) = &self.source else {
            return Ok(None);
        };
        let err = |e| io_err(path, e);
        // Skip the batches before the one holding the fetch offset.
        let mut start = self.position;
        let first = loop {
            match read_header_at(file, start, self.end).map_err(err)? {
                None => return Ok(None),
                Some(h) if h.last_offset() < self.fetch_offset => {
                    start += h.total_len().unwrap_or(HEADER_LEN) as u64
                }
                Some(h) => break h,
            }
        };
        let first_len = first.total_len().unwrap_or(HEADER_LEN) as u64;
        let mut limit = self.max_bytes as u64;
        if first_len > limit {
            if !self.at_least_one {
                return Ok(None);
            }
            limit = first_len;
        }
        let available = self.end - start;
        let len = if available <= limit && self.segment_end_offset <= self.end_offset {
            available
        } else {
            let mut position = start;
            while let Some(header) = read_header_at(file, position, self.end).map_err(err)? {
                let Some(len) = header.total_len().map(|l| l as u64) else {
                    break;
                };
                if header.last_offset() >= self.end_offset || position + len - start > limit {
                    break;
                }
                position += len;
            }
            position - start
        };
        Ok((len > 0).then(|| FileRange::new(file.clone(), start, len as usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Compression, validate_produce_batch};
    use crate::test_util::{NOW, TestRecord, batch, limits, record, unbounded_log_config};

    fn config() -> LogConfig {
        unbounded_log_config(100)
    }

    fn open_log(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        PartitionLog::open(dir, config, Arc::new(SegmentFiles::new(4)))
    }

    fn validated(records: usize, timestamp: i64) -> ValidatedBatch {
        let records: Vec<TestRecord> = (0..records)
            .map(|i| record(&format!("value-{i}")))
            .collect();
        validate_produce_batch(batch(&records, Compression::None, timestamp), &limits())
            .expect("valid batch")
    }

    fn read_all(log: &PartitionLog, from: i64) -> Vec<BatchHeader> {
        let mut out = Vec::new();
        let mut offset = from;
        while offset < log.log_end_offset() {
            let bytes = log
                .read_plan(offset, i64::MAX, 1 << 20, true)
                .expect("plan")
                .execute()
                .expect("read");
            assert!(!bytes.is_empty(), "a read below the log end returns data");
            let mut at = 0;
            while at < bytes.len() {
                let header = BatchHeader::parse(&bytes[at..]).expect("whole batch");
                assert_eq!(
                    crc32c::crc32c(&bytes[at + 21..at + header.total_len().expect("len")]),
                    header.crc
                );
                at += header.total_len().expect("len");
                offset = header.last_offset() + 1;
                out.push(header);
            }
        }
        out
    }

    #[test]
    fn appended_batches_read_back_with_their_assigned_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for i in 0..10 {
            let info = log.append(&validated(3, NOW + i), 7, NOW).expect("append");
            assert_eq!((info.base_offset, info.last_offset), (i * 3, i * 3 + 2));
        }
        let headers = read_all(&log, 0);
        assert_eq!(headers.len(), 10);
        assert!(
            headers
                .iter()
                .enumerate()
                .all(|(i, h)| h.base_offset == i as i64 * 3 && h.partition_leader_epoch == 7)
        );
    }

    #[test]
    fn a_read_from_the_middle_of_a_batch_starts_with_that_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..20 {
            log.append(&validated(5, NOW), 0, NOW).expect("append");
        }
        let bytes = log
            .read_plan(47, i64::MAX, 1 << 20, true)
            .expect("plan")
            .execute()
            .expect("read");
        assert_eq!(BatchHeader::parse(&bytes).expect("header").base_offset, 45);
    }

    #[test]
    fn leader_epochs_follow_the_log_across_restarts_truncation_and_a_lost_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut log = open_log(dir.path(), config()).expect("open");
            for epoch in [0, 0, 3, 3] {
                log.append(&validated(1, NOW), epoch, NOW).expect("append");
            }
            assert_eq!(log.end_offset_for_epoch(0), (0, 2));
            assert_eq!(log.end_offset_for_epoch(3), (3, 4));
        }
        let reopened = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(reopened.end_offset_for_epoch(0), (0, 2), "persisted");
        drop(reopened);
        std::fs::remove_file(dir.path().join(crate::leader_epochs::CHECKPOINT_FILE))
            .expect("remove");
        let mut rebuilt = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(
            rebuilt.end_offset_for_epoch(0),
            (0, 2),
            "rebuilt from the batches"
        );
        assert_eq!(rebuilt.end_offset_for_epoch(3), (3, 4));
        rebuilt.truncate_to(2).expect("truncate");
        assert_eq!(
            rebuilt.end_offset_for_epoch(3),
            crate::leader_epochs::UNDEFINED,
            "epoch 3's batches are gone"
        );
        assert_eq!(rebuilt.end_offset_for_epoch(0), (0, 2));
    }

    #[test]
    fn a_follower_stores_its_leaders_batches_byte_for_byte_at_their_offsets() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let follower_dir = tempfile::tempdir().expect("tempdir");
        let mut leader = open_log(leader_dir.path(), config()).expect("open");
        let mut follower = open_log(follower_dir.path(), config()).expect("open");
        leader.append(&validated(3, NOW), 4, NOW).expect("append");
        leader.append(&validated(2, NOW), 6, NOW).expect("append");
        let fetched = leader
            .read_plan(0, i64::MAX, 1 << 20, true)
            .expect("plan")
            .execute()
            .expect("read");
        let batches = crate::batch::validate_replicated_batches(&fetched).expect("valid");
        assert_eq!(batches.len(), 2);
        for batch in &batches {
            follower.append_replicated(batch, NOW).expect("append");
        }
        let copied = follower
            .read_plan(0, i64::MAX, 1 << 20, true)
            .expect("plan")
            .execute()
            .expect("read");
        assert_eq!(
            copied, fetched,
            "the follower's log is the leader's, byte for byte"
        );
        assert_eq!(follower.end_offset_for_epoch(4), (4, 3));
        assert_eq!(follower.end_offset_for_epoch(6), (6, 5));

        // A batch that does not continue the log is refused and changes nothing.
        assert!(matches!(
            follower.append_replicated(&batches[1], NOW),
            Err(LogError::NotContiguous {
                base_offset: 3,
                log_end_offset: 5
            })
        ));
        // A cut-off trailing batch is left out; a damaged one is refused.
        let cut = fetched.slice(..fetched.len() - 1);
        assert_eq!(
            crate::batch::validate_replicated_batches(&cut)
                .expect("valid")
                .len(),
            1
        );
        let mut damaged = fetched.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(crate::batch::validate_replicated_batches(&Bytes::from(damaged)).is_err());
    }

    #[test]
    fn a_read_returns_no_batch_that_reaches_its_end_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..4 {
            log.append(&validated(5, NOW), 0, NOW).expect("append");
        }
        let read = |from: i64, end: i64| {
            let bytes = log
                .read_plan(from, end, 1 << 20, true)
                .expect("plan")
                .execute()
                .expect("read");
            let (_, last) = batch::complete_batches(&bytes, i64::MAX);
            last.map(|h| h.last_offset())
        };
        assert_eq!(read(0, 10), Some(9), "the batches below the bound");
        assert_eq!(read(0, 12), Some(9), "a batch the bound cuts is left out");
        assert_eq!(read(10, 10), None, "a read at the bound is empty");
        assert_eq!(
            read(12, 10),
            None,
            "above the bound but within the log: empty"
        );
        assert_eq!(read(0, i64::MAX), Some(19));
    }

    #[test]
    fn max_bytes_below_one_batch_returns_it_only_when_at_least_one_is_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        log.append(&validated(5, NOW), 0, NOW).expect("append");
        log.append(&validated(5, NOW), 0, NOW).expect("append");
        let one = log
            .read_plan(0, i64::MAX, 10, true)
            .expect("plan")
            .execute()
            .expect("read");
        let header = BatchHeader::parse(&one).expect("header");
        assert_eq!(
            one.len(),
            header.total_len().expect("len"),
            "exactly one whole batch"
        );
        assert!(
            log.read_plan(0, i64::MAX, 10, false)
                .expect("plan")
                .execute()
                .expect("read")
                .is_empty()
        );
        assert!(
            log.read_plan(10, i64::MAX, 100, true)
                .expect("plan")
                .execute()
                .expect("read")
                .is_empty(),
            "log end reads nothing"
        );
        assert!(matches!(
            log.read_plan(11, i64::MAX, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn segments_roll_by_size_and_reads_cross_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(
            dir.path(),
            LogConfig {
                segment_bytes: 500,
                ..config()
            },
        )
        .expect("open");
        for _ in 0..50 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        assert!(log.segments.values().all(|s| s.size() <= 500));
        assert!(log.segment_count() >= 10);
        assert_eq!(read_all(&log, 0).len(), 50);
        assert_eq!(read_all(&log, 33).first().expect("batch").base_offset, 32);
    }

    #[test]
    fn recovery_cuts_a_torn_tail_and_keeps_everything_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(
            dir.path(),
            LogConfig {
                segment_bytes: 2000,
                ..config()
            },
        )
        .expect("open");
        for _ in 0..30 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        let end = log.log_end_offset();
        let active = dir.path().join(crate::segment::log_file_name(
            *log.segments.keys().next_back().expect("active"),
        ));
        drop(log);
        // A torn write: the last batch lost its final bytes.
        let len = std::fs::metadata(&active).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .expect("open")
            .set_len(len - 7)
            .expect("truncate");
        let log = open_log(dir.path(), config()).expect("recover");
        assert_eq!(log.log_end_offset(), end - 2, "the torn batch is gone");
        assert_eq!(read_all(&log, 0).len(), 29);

        // Garbage after the last batch is cut too, and appends continue after it.
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&active)
            .expect("open");
        std::io::Write::write_all(&mut file, &[0xab; 100]).expect("garbage");
        let mut log = open_log(dir.path(), config()).expect("recover");
        assert_eq!(log.log_end_offset(), end - 2);
        log.append(&validated(2, NOW), 0, NOW)
            .expect("append after recovery");
        assert_eq!(read_all(&log, 0).len(), 30);
    }

    #[test]
    fn a_corrupt_batch_in_the_tail_is_cut_at_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..5 {
            log.append(&validated(1, NOW), 0, NOW).expect("append");
        }
        drop(log);
        let path = dir.path().join(crate::segment::log_file_name(0));
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let log = open_log(dir.path(), config()).expect("recover");
        assert_eq!(log.log_end_offset(), 4);
    }

    /// Recovery reads the active segment through a 64 KiB buffer: batches that straddle
    /// its refills, or are larger than it, are checked whole, and a corrupt one past a
    /// refill is cut at its start with everything before it kept.
    #[test]
    fn recovery_checks_batches_across_buffer_refills() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        let sizes = [100, 40_000, 30_000, 150_000, 10, 70_000, 5, 90_000, 20];
        let mut positions = Vec::new();
        for size in sizes {
            let batch = batch(&[record(&"v".repeat(size))], Compression::None, NOW);
            let batch = validate_produce_batch(batch, &limits()).expect("valid");
            positions.push(log.size_bytes());
            log.append(&batch, 0, NOW).expect("append");
        }
        drop(log);
        let reopened = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(reopened.log_end_offset(), sizes.len() as i64);
        assert_eq!(read_all(&reopened, 0).len(), sizes.len());
        drop(reopened);

        // Batch 7 starts past 256 KiB: several refills in.
        let path = dir.path().join(crate::segment::log_file_name(0));
        let mut bytes = std::fs::read(&path).expect("read");
        let inside = positions[7] as usize + 30_000;
        bytes[inside] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let recovered = open_log(dir.path(), config()).expect("recover");
        assert_eq!(recovered.log_end_offset(), 7, "batches 0..7 are kept");
        assert_eq!(recovered.size_bytes(), positions[7]);
        assert_eq!(read_all(&recovered, 0).len(), 7);
    }

    #[test]
    fn segments_wholly_below_an_offset_are_deleted_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        log.roll(NOW).expect("roll at 6");
        for _ in 0..2 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        log.roll(NOW).expect("roll at 10");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert_eq!(
            log.delete_segments_below(8).expect("delete"),
            1,
            "only [0, 6) ends by 8"
        );
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(
            log.delete_segments_below(100).expect("delete"),
            1,
            "never the active one"
        );
        assert_eq!(log.log_start_offset(), 10);
        assert_eq!(log.log_end_offset(), 12);
        let reopened = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(reopened.log_start_offset(), 10);
    }

    #[test]
    fn the_log_start_moves_forward_inside_a_segment_and_reads_below_it_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
            log.roll(NOW).expect("roll");
        }
        log.advance_log_start(3).expect("advance");
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.segment_count(), 3, "[0,2) went; [2,4) holds 3");
        assert!(matches!(
            log.read_plan(2, i64::MAX, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        log.advance_log_start(1).expect("never backwards");
        log.advance_log_start(100).expect("capped at the log end");
        assert_eq!(log.log_start_offset(), 6);
    }

    #[test]
    fn retention_keeps_what_is_not_yet_tiered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            retention_bytes: Some(0),
            ..config()
        };
        let mut log = open_log(dir.path(), cfg).expect("open");
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
            log.roll(NOW).expect("roll");
        }
        // Segments [0,2) [2,4) [4,6), active at 6; only offsets below 3 are tiered.
        let outcome = log.enforce_retention(NOW, 3).expect("retention");
        assert_eq!(
            outcome.deleted_segments, 1,
            "[2,4) holds 3, which is not tiered"
        );
        assert_eq!(log.log_start_offset(), 2);
        log.enforce_retention(NOW, 6).expect("retention");
        assert_eq!(log.log_start_offset(), 6, "never the active segment");
    }

    #[test]
    fn upload_ranges_are_whole_batches_of_one_segment_below_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        let one_batch = validated(2, NOW).bytes().len() as u64;
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        log.roll(NOW).expect("roll");
        for _ in 0..2 {
            log.append(&validated(2, NOW), 0, NOW)
                .expect("append to the active segment");
        }
        let range = log
            .upload_range(3, i64::MAX, one_batch + 1)
            .expect("range")
            .expect("data at 3");
        assert_eq!(
            (range.base_offset, range.last_offset),
            (2, 3),
            "the batch holding 3"
        );
        assert_eq!(range.bytes.len() as u64, one_batch);
        let bytes = range.bytes.read().expect("read");
        assert_eq!(BatchHeader::parse(&bytes).map(|h| h.base_offset), Some(2));
        let rest = log
            .upload_range(2, i64::MAX, u64::MAX)
            .expect("range")
            .expect("some");
        assert_eq!(
            (rest.base_offset, rest.last_offset),
            (2, 5),
            "one segment at a time"
        );
        let active = log
            .upload_range(6, 9, u64::MAX)
            .expect("range")
            .expect("the active segment's data");
        assert_eq!(
            (active.base_offset, active.last_offset),
            (6, 7),
            "no batch reaching the end offset"
        );
        assert!(
            log.upload_range(6, 7, u64::MAX).expect("range").is_none(),
            "the only batch reaches the end offset"
        );
        assert!(
            log.upload_range(10, i64::MAX, u64::MAX)
                .expect("range")
                .is_none()
        );
    }

    #[test]
    fn an_upload_range_walks_many_small_batches_past_the_scan_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..2000 {
            log.append(&validated(1, NOW), 0, NOW).expect("append");
        }
        assert!(log.size_bytes() > 2 * 64 * 1024, "more than one buffer");
        let all = log
            .upload_range(0, i64::MAX, u64::MAX)
            .expect("range")
            .expect("data");
        assert_eq!((all.base_offset, all.last_offset), (0, 1999));
        assert_eq!(all.bytes.len() as u64, log.size_bytes());
        let tail = log
            .upload_range(1500, 1990, u64::MAX)
            .expect("range")
            .expect("data");
        assert_eq!((tail.base_offset, tail.last_offset), (1500, 1989));
        let bytes = tail.bytes.read().expect("read");
        assert_eq!(
            BatchHeader::parse(&bytes).map(|h| h.base_offset),
            Some(1500)
        );
    }

    #[test]
    fn pending_data_counts_from_when_it_was_appended_not_from_its_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        let created = log.active_created_ms();
        log.append(&validated(2, NOW), 0, created + 1_000)
            .expect("append");
        log.append(&validated(2, NOW), 0, created + 60_000)
            .expect("append");
        assert_eq!(log.pending_from(0).1, Some(created + 1_000));
        assert_eq!(
            log.pending_from(2).1,
            Some(created + 60_000),
            "the same segment, appended later"
        );
        assert_eq!(log.pending_from(4), (0, None), "nothing pending");
        log.forget_append_times_below(2);
        drop(log);
        let reopened = open_log(dir.path(), config()).expect("reopen");
        let (bytes, since) = reopened.pending_from(2);
        assert!(bytes > 0);
        assert_eq!(
            since,
            Some(reopened.active_created_ms()),
            "data from before the restart counts from its segment"
        );
    }

    #[test]
    fn a_wholly_deletable_active_segment_is_rolled_once_retention_wants_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(
            dir.path(),
            LogConfig {
                retention_bytes: Some(0),
                ..config()
            },
        )
        .expect("open");
        assert!(
            !log.roll_if_retired(NOW, i64::MAX).expect("roll"),
            "an empty segment stays"
        );
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert!(
            !log.roll_if_retired(NOW, 1).expect("roll"),
            "not all of it may go"
        );
        assert!(log.roll_if_retired(NOW, 2).expect("roll"));
        log.enforce_retention(NOW, 2).expect("retention");
        assert_eq!((log.log_start_offset(), log.size_bytes()), (2, 0));
    }

    #[test]
    fn a_log_behind_the_tiered_end_skips_ahead_and_appends_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        assert!(log.skip_to(500, NOW).expect("skip"));
        assert!(!log.skip_to(400, NOW).expect("no-op"), "never backwards");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
        let info = log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert_eq!(info.base_offset, 500);
        drop(log);
        let reopened = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(
            (reopened.log_start_offset(), reopened.log_end_offset()),
            (500, 502)
        );
    }

    #[test]
    fn retention_by_bytes_and_time_advances_the_log_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 1000,
            retention_bytes: Some(3000),
            ..config()
        };
        let mut log = open_log(dir.path(), cfg).expect("open");
        for _ in 0..60 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        let outcome = log.enforce_retention(NOW, i64::MAX).expect("retention");
        assert!(outcome.deleted_segments > 0);
        assert!(log.size_bytes() <= 3000 + 1000);
        assert!(log.log_start_offset() > 0);
        assert!(matches!(
            log.read_plan(0, i64::MAX, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            read_all(&log, log.log_start_offset())
                .first()
                .expect("batch")
                .base_offset,
            log.log_start_offset()
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_bytes: 1000,
            retention_ms: Some(1000),
            ..config()
        };
        let mut log = open_log(dir.path(), cfg).expect("open");
        for i in 0..30 {
            log.append(&validated(2, NOW + i * 100), 0, NOW)
                .expect("append");
        }
        let outcome = log
            .enforce_retention(NOW + 30 * 100 + 500, i64::MAX)
            .expect("retention");
        assert!(outcome.deleted_segments > 0);
        let first = read_all(&log, log.log_start_offset());
        assert!(
            first
                .iter()
                .all(|h| h.max_timestamp >= NOW + 30 * 100 + 500 - 1000 - 1000),
            "only recent segments remain"
        );
        drop(log);
        let reopened = open_log(dir.path(), cfg).expect("reopen");
        assert_eq!(
            reopened.log_start_offset(),
            outcome.log_start_offset,
            "the log start survives a restart"
        );
    }

    #[test]
    fn timestamps_are_found_through_the_index_across_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(
            dir.path(),
            LogConfig {
                segment_bytes: 1500,
                ..config()
            },
        )
        .expect("open");
        for i in 0..40 {
            log.append(&validated(2, NOW + i * 10), 0, NOW)
                .expect("append");
        }
        assert_eq!(
            log.offset_for_timestamp(NOW + 205).expect("lookup"),
            Some((42, NOW + 210))
        );
        assert_eq!(
            log.offset_for_timestamp(NOW - 5).expect("lookup"),
            Some((0, NOW))
        );
        assert_eq!(
            log.offset_for_timestamp(NOW + 10_000).expect("lookup"),
            None
        );
        assert_eq!(log.max_timestamp().expect("max"), Some((78, NOW + 390)));
        drop(log);
        let log = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(
            log.offset_for_timestamp(NOW + 205).expect("lookup"),
            Some((42, NOW + 210)),
            "after reopening"
        );
    }

    #[test]
    fn truncation_removes_the_tail_for_followers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(
            dir.path(),
            LogConfig {
                segment_bytes: 1000,
                ..config()
            },
        )
        .expect("open");
        for _ in 0..30 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
        }
        log.truncate_to(21).expect("truncate");
        assert_eq!(
            log.log_end_offset(),
            20,
            "cut at the batch boundary at or before 21"
        );
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert_eq!(read_all(&log, 0).len(), 11);
    }

    #[test]
    fn only_the_active_segment_holds_descriptors_and_reads_share_a_bounded_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Arc::new(SegmentFiles::new(3));
        let mut log = PartitionLog::open(dir.path(), config(), files.clone()).expect("open");
        for _ in 0..20 {
            log.append(&validated(1, NOW), 0, NOW).expect("append");
            log.roll(NOW).expect("roll");
        }
        log.append(&validated(1, NOW), 0, NOW).expect("append");
        let holding = log
            .segments
            .values()
            .filter(|s| s.holds_descriptors())
            .count();
        assert_eq!(holding, 1, "the active segment alone");
        assert_eq!(
            read_all(&log, 0).len(),
            21,
            "every sealed segment still reads"
        );
        assert!(files.len() <= 3, "at most the capacity stays open");
        drop(log);
        let reopened = PartitionLog::open(dir.path(), config(), files.clone()).expect("reopen");
        let holding = reopened
            .segments
            .values()
            .filter(|s| s.holds_descriptors())
            .count();
        assert_eq!(holding, 1, "after a restart too");
        assert_eq!(reopened.log_end_offset(), 21);
    }

    #[test]
    fn a_roll_that_fails_leaves_no_segment_behind_and_the_log_carries_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        // Something in the way of the next segment's log: creating it fails.
        let blocker = dir.path().join(crate::segment::log_file_name(2));
        std::fs::create_dir(&blocker).expect("mkdir");
        assert!(log.roll(NOW).is_err());
        assert_eq!(log.segment_count(), 1);
        log.append(&validated(2, NOW), 0, NOW)
            .expect("appends go on to the old segment");
        std::fs::remove_dir(&blocker).expect("rmdir");
        log.roll(NOW).expect("roll");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert_eq!(read_all(&log, 0).len(), 3);
        drop(log);
        assert_eq!(
            open_log(dir.path(), config())
                .expect("reopen")
                .log_end_offset(),
            6
        );
    }

    #[test]
    fn a_sealed_segment_whose_index_cannot_be_written_stays_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        // Something in the way of the old segment's index: its seal cannot write it.
        let blocker = dir
            .path()
            .join(crate::segment::log_file_name(0))
            .with_extension("index");
        std::fs::create_dir(&blocker).expect("mkdir");
        log.roll(NOW).expect("a roll writes no index itself");
        log.flush().expect("the log is durable without the index");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        assert_eq!(read_all(&log, 0).len(), 2);
        drop(log);
        std::fs::remove_dir(&blocker).expect("rmdir");
        let reopened = open_log(dir.path(), config()).expect("reopen");
        assert_eq!(reopened.log_end_offset(), 4);
        assert_eq!(read_all(&reopened, 0).len(), 2);
        assert!(blocker.is_file(), "the index is rebuilt at the start");
    }

    #[test]
    fn a_seal_whose_fsync_fails_is_reported_and_never_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Arc::new(SegmentFiles::new(4));
        let mut log = PartitionLog::open(dir.path(), config(), files.clone()).expect("open");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        files.fail_next_syncs(1);
        log.roll(NOW).expect("the roll itself does not fsync");
        let handle = log.sync_handle().expect("handle");
        assert!(
            handle.sync().is_err(),
            "an fsync'd acknowledgement waits for the seal and learns it failed"
        );
        assert!(matches!(
            log.append(&validated(2, NOW), 0, NOW),
            Err(LogError::SyncFailed { .. })
        ));
        assert!(
            matches!(log.roll(NOW), Err(LogError::SyncFailed { .. })),
            "still failed: the disk working again proves nothing"
        );
        assert!(log.flush().is_err());
        drop(log);
        let reopened = PartitionLog::open(dir.path(), config(), files).expect("reopen");
        assert_eq!(reopened.log_end_offset(), 2, "a restart recovers the log");
    }

    /// A crash (power loss) before a rolled segment's seal: its index is missing and its tail
    /// torn. Recovery checks it like the active segment, cuts it, and drops what follows,
    /// so no offset is skipped.
    #[test]
    fn recovery_cuts_an_unsealed_segment_and_drops_the_segments_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
            log.append(&validated(2, NOW), 0, NOW).expect("append");
            log.roll(NOW).expect("roll");
        }
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        log.flush().expect("flush");
        drop(log);
        let middle = dir.path().join(crate::segment::log_file_name(4));
        std::fs::remove_file(middle.with_extension("index")).expect("unsealed");
        let len = std::fs::metadata(&middle).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&middle)
            .expect("open")
            .set_len(len - 5)
            .expect("tear");
        let mut log = open_log(dir.path(), config()).expect("recover");
        assert_eq!(
            log.log_end_offset(),
            6,
            "the torn batch and all after it go"
        );
        assert_eq!(log.segment_count(), 2);
        assert!(!dir.path().join(crate::segment::log_file_name(8)).exists());
        assert!(!dir.path().join(crate::segment::log_file_name(12)).exists());
        log.append(&validated(2, NOW), 0, NOW)
            .expect("the cut segment takes appends");
        assert_eq!(read_all(&log, 0).len(), 4);

        // A segment whose seal never ran but whose bytes survived (kill -9) is kept whole,
        // and gets its index back.
        log.roll(NOW).expect("roll");
        log.append(&validated(2, NOW), 0, NOW).expect("append");
        log.flush().expect("flush");
        drop(log);
        let sealed = dir.path().join(crate::segment::log_file_name(4));
        std::fs::remove_file(sealed.with_extension("index")).expect("unsealed");
        let log = open_log(dir.path(), config()).expect("recover");
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(read_all(&log, 0).len(), 5);
        assert!(sealed.with_extension("index").is_file());
    }

    #[test]
    fn a_segment_whose_files_cannot_be_deleted_stays_whole_in_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open_log(dir.path(), config()).expect("open");
        for _ in 0..3 {
            log.append(&validated(2, NOW), 0, NOW).expect("append");
            log.roll(NOW).expect("roll");
        }
        log.flush()
            .expect("the seals are done: every index is written");
        // The oldest segment's index cannot be removed (a directory stands in its place).
        let index = dir
            .path()
            .join(crate::segment::log_file_name(0))
            .with_extension("index");
        std::fs::remove_file(&index).expect("rm");
        std::fs::create_dir(&index).expect("mkdir");
        std::fs::write(index.join("pin"), b"x").expect("pin");
        assert!(log.delete_segments_below(4).is_err());
        assert_eq!(log.log_start_offset(), 0, "the log start did not move");
        assert_eq!(log.segment_count(), 4);
        // Skipping ahead puts the new segment in place first: the log stays usable.
        assert!(log.skip_to(100, NOW).is_err());
        assert_eq!(log.log_start_offset(), 100);
        assert_eq!(log.log_end_offset(), 100);
        log.append(&validated(2, NOW), 0, NOW)
            .expect("appends continue");
        std::fs::remove_dir_all(&index).expect("unpin");
        log.advance_log_start(100)
            .expect("the retry deletes the rest");
        assert_eq!(log.segment_count(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn random_appends_read_back_from_any_offset(
            sizes in proptest::collection::vec(1usize..6, 1..40),
            segment_bytes in 300u64..3000,
            probe in 0usize..1000,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = open_log(dir.path(), LogConfig { segment_bytes, ..config() }).expect("open");
            let mut starts = Vec::new();
            for n in &sizes {
                starts.push(log.append(&validated(*n, NOW), 0, NOW).expect("append").base_offset);
            }
            let end = log.log_end_offset();
            proptest::prop_assert_eq!(end, sizes.iter().sum::<usize>() as i64);
            let offset = (probe as i64) % end;
            let headers = read_all(&log, offset);
            let expected = starts.iter().filter(|s| {
                let i = starts.iter().position(|x| x == *s).expect("known");
                let last = *s + sizes[i] as i64 - 1;
                last >= offset
            }).count();
            proptest::prop_assert_eq!(headers.len(), expected);
            drop(log);
            let reopened = open_log(dir.path(), config()).expect("reopen");
            proptest::prop_assert_eq!(reopened.log_end_offset(), end);
        }
    }
}
