//! One segment of a partition log: `<base offset>.log` holding batches back to back, and
//! `<base offset>.index` holding its sparse offset-and-time index.
//!
//! Index entries are fixed-width (16 bytes, little-endian): the batch's offset relative to the
//! segment base (u32), its file position (u32), and the largest timestamp of every batch
//! *before* it (i64). An entry is appended each time `index.interval.bytes` have been written
//! since the last one, so an offset lookup lands at most one interval before its batch, and a
//! timestamp lookup may start at the last entry whose "before" timestamp is below the target.
//! The entries are kept in memory; the file, written when the segment is sealed, lets a
//! restart skip re-scanning old segments. The active segment has no index file: a restart
//! scans it whole anyway (to cut a torn tail), so writing its index as it grows would buy
//! nothing and cost a descriptor per partition.
//!
//! Crash behaviour: the `.log` is the truth. A sealed segment's index is written only after its
//! log was fsynced ([`crate::seal`]), so a segment without one may have lost bytes to a crash:
//! it is checked batch by batch when opened, as the last segment is, and cut at its first torn
//! batch. An index file whose size is not a whole number of entries, or that points past the
//! log, is rebuilt from the log.
//!
//! Descriptors: only the active segment keeps a file open, its log. A sealed segment is read
//! through the broker's shared, bounded [`SegmentFiles`], so the descriptor count does not
//! grow with the number of segments: one per partition, plus that bounded set.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use crate::batch::{BatchHeader, HEADER_LEN, PREFIX_LEN};
use crate::error::LogError;
use crate::seal::PendingSeal;
use crate::segment_files::SegmentFiles;
use crate::write_behind::WRITE_BEHIND_BYTES;

/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: usize = 16;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
    /// The largest timestamp of every batch before `position` in this segment (-1: none).
    pub max_timestamp_before: i64,
}

impl IndexEntry {
    fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut out = [0u8; INDEX_ENTRY_LEN];
        out[0..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..16].copy_from_slice(&self.max_timestamp_before.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
            max_timestamp_before: i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
        }
    }
}

/// The file name of a segment's log for `base_offset`.
pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// A segment: its files, and what the broker needs to know about them without reading them.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    /// The file appends go to, while this is the active segment; `None` once sealed.
    open: Option<OpenFiles>,
    index: Vec<IndexEntry>,
    /// Bytes of complete batches; reads never go past it.
    size: u64,
    /// One past the last offset stored here (`base_offset` when empty).
    next_offset: i64,
    max_timestamp: i64,
    bytes_since_index: u64,
    /// Where the bytes not yet handed to write-behind start.
    write_behind_from: u64,
    /// Wall-clock time of the first append, for `segment.ms`.
    created_ms: i64,
}

/// The active segment's descriptor.
#[derive(Debug)]
struct OpenFiles {
    log: Arc<File>,
}

impl OpenFiles {
    /// Opens an existing segment's log for reads and appends.
    fn existing(log_path: &Path) -> Result<Self, LogError> {
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(log_path)
            .map_err(|e| io_err(log_path, e))?;
        Ok(Self { log: Arc::new(log) })
    }
}

fn io_err(path: &Path, source: io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        source: Arc::new(source),
    }
}

/// Reads a batch header at `position`, or `None` if fewer than a header's bytes remain.
pub fn read_header_at(file: &File, position: u64, end: u64) -> io::Result<Option<BatchHeader>> {
    if end.saturating_sub(position) < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, position)?;
    Ok(BatchHeader::parse(&buf))
}

/// How much of a file a [`BatchScan`] reads at once.
const BATCH_SCAN_BUFFER: u64 = 64 << 10;

/// Walks batches from a position through a buffer, so that walking a stretch of small
/// batches costs a read per 64 KiB, not one or two per batch (a trickle partition's batches
/// are a hundred bytes; an index entry is up to `index.interval.bytes` before its batch;
/// recovery reads every batch of the active segment).
pub struct BatchScan<'a> {
    file: &'a File,
    buf: Vec<u8>,
    buf_start: u64,
    end: u64,
    /// Where the next header is read.
    pub position: u64,
}

impl<'a> BatchScan<'a> {
    /// Batches of `file` from `position`, never reading at or past `end`.
    pub fn new(file: &'a File, position: u64, end: u64) -> Self {
        Self {
            file,
            buf: Vec::new(),
            buf_start: position,
            end,
            position,
        }
    }

    /// The header at [`Self::position`], or `None` if fewer than a header's bytes remain.
    pub fn header(&mut self) -> io::Result<Option<BatchHeader>> {
        Ok(match self.bytes(HEADER_LEN)? {
            Some(bytes) => BatchHeader::parse(bytes),
            None => None,
        })
    }

    /// The `len` bytes at [`Self::position`] (a whole batch, once its header gave its
    /// length), or `None` if fewer remain before the end.
    pub fn bytes(&mut self, len: usize) -> io::Result<Option<&[u8]>> {
        let wanted_end = self.position + len as u64;
        if wanted_end > self.end {
            return Ok(None);
        }
        let buffered =
            self.buf_start <= self.position && wanted_end <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let read = BATCH_SCAN_BUFFER
                .max(len as u64)
                .min(self.end - self.position);
            self.buf.resize(read as usize, 0);
            self.file.read_exact_at(&mut self.buf, self.position)?;
            self.buf_start = self.position;
        }
        let at = (self.position - self.buf_start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }
}

impl Segment {
    /// Creates a new, empty segment, open for appends. A failure removes what it created, so
    /// a roll that failed (out of descriptors, a full disk) leaves no empty segment behind.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let log_path = dir.join(log_file_name(base_offset));
        let index_path = log_path.with_extension("index");
        let open = match Self::create_log(&log_path) {
            Ok(open) => open,
            Err(e) => {
                if let Err(cleanup) = std::fs::remove_file(&log_path)
                    && cleanup.kind() != io::ErrorKind::NotFound
                {
                    warn!(file = %log_path.display(), error = %cleanup, "could not remove a segment file whose creation failed");
                }
                return Err(e);
            }
        };
        Ok(Self::empty(base_offset, log_path, index_path, open, now_ms))
    }

    /// Creates the log file. Its directory entry is not synced here: the seal of the segment
    /// it follows does that ([`crate::seal`]), and an fsync'd append waits for that seal.
    fn create_log(log_path: &Path) -> Result<OpenFiles, LogError> {
        let log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(log_path)
            .map_err(|e| io_err(log_path, e))?;
        Ok(OpenFiles { log: Arc::new(log) })
    }

    /// Opens an existing segment; answers it and whether recovery cut its log short. The last
    /// segment, and one without a well-formed index (rolled, but a crash came before its seal
    /// made it durable), is read batch by batch with every CRC checked and truncated at the
    /// first torn or corrupt batch. A segment that is the last or was cut stays open for
    /// appends and loses any index file (it is written again when the segment is sealed); the
    /// caller removes the segments after a cut one. Any other segment trusts its persisted
    /// index, walks only the batches after its last entry, and closes its log.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        last: bool,
        now_ms: i64,
    ) -> Result<(Self, bool), LogError> {
        let mut segment = Self::create_handles(dir, base_offset, now_ms)?;
        let log_len = segment
            .log()?
            .metadata()
            .map_err(|e| io_err(&segment.log_path, e))?
            .len();
        let persisted = if last {
            None
        } else {
            segment.load_index(log_len)
        };
        let rebuilt = persisted.is_none();
        let cut = match persisted {
            Some(index) => {
                let start = index.last().map_or(0, |e| u64::from(e.position));
                segment.max_timestamp = index.last().map_or(-1, |e| e.max_timestamp_before);
                segment.index = index;
                segment.scan_from(start, log_len, index_interval_bytes, false, false)?
            }
            None => segment.scan_from(0, log_len, index_interval_bytes, true, true)?,
        };
        if last || cut {
            segment.remove_index_file()?;
        } else {
            if rebuilt {
                // The log first, as a seal does: an index file means a durable log.
                let log = segment.log()?;
                log.sync_data().map_err(|e| io_err(&segment.log_path, e))?;
                segment.rewrite_index()?;
            }
            segment.open = None;
        }
        Ok((segment, cut))
    }

    /// Closes the log for appends and answers what is left to seal it: its fsync and its
    /// index file ([`crate::seal`]). `None` if it was sealed already.
    pub(crate) fn close_for_seal(&mut self) -> Option<PendingSeal> {
        let open = self.open.take()?;
        let index = self.index.iter().flat_map(|e| e.encode()).collect();
        Some(PendingSeal::new(
            open.log,
            &self.log_path,
            &self.index_path,
            index,
        ))
    }

    /// Reopens a sealed segment's log for appends: it is the active segment again after the
    /// segments past it were truncated away. Its index file goes: it is about to be wrong.
    fn unseal(&mut self) -> Result<(), LogError> {
        if self.open.is_none() {
            self.remove_index_file()?;
            self.open = Some(OpenFiles::existing(&self.log_path)?);
        }
        Ok(())
    }

    /// Removes the index file of a segment that is (or becomes) active.
    fn remove_index_file(&self) -> Result<(), LogError> {
        match std::fs::remove_file(&self.index_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.index_path, e)),
            _ => Ok(()),
        }
    }

    /// The open files of the active segment.
    fn open_files(&mut self) -> Result<&mut OpenFiles, LogError> {
        let path = &self.log_path;
        self.open
            .as_mut()
            .ok_or_else(|| io_err(path, io::Error::other("a sealed segment takes no appends")))
    }

    /// The active segment's log descriptor (recovery and appends).
    fn log(&self) -> Result<&Arc<File>, LogError> {
        self.open.as_ref().map(|o| &o.log).ok_or_else(|| {
            io_err(
                &self.log_path,
                io::Error::other("a sealed segment's log is read through SegmentFiles"),
            )
        })
    }

    fn create_handles(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let log_path = dir.join(log_file_name(base_offset));
        let index_path = log_path.with_extension("index");
        let open = OpenFiles::existing(&log_path)?;
        Ok(Self::empty(base_offset, log_path, index_path, open, now_ms))
    }

    /// A segment of no batches yet (creation, or before an existing one is scanned).
    fn empty(
        base_offset: i64,
        log_path: PathBuf,
        index_path: PathBuf,
        open: OpenFiles,
        now_ms: i64,
    ) -> Self {
        Self {
            base_offset,
            log_path,
            index_path,
            open: Some(open),
            index: Vec::new(),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index: 0,
            write_behind_from: 0,
            created_ms: now_ms,
        }
    }

    /// The persisted index if it is well-formed and consistent with a log of `log_len` bytes.
    fn load_index(&self, log_len: u64) -> Option<Vec<IndexEntry>> {
        let bytes = std::fs::read(&self.index_path).ok()?;
        if bytes.len() % INDEX_ENTRY_LEN != 0 {
            return None;
        }
        let entries: Vec<IndexEntry> = bytes
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect();
        let ordered = entries
            .windows(2)
            .all(|w| w[0].position < w[1].position && w[0].relative_offset <= w[1].relative_offset);
        let inside = entries
            .last()
            .is_none_or(|e| u64::from(e.position) < log_len);
        (ordered && inside).then_some(entries)
    }

    /// Walks batches from `start` to `end`, updating offsets, timestamps and (when
    /// `rebuild_index`) the in-memory index, and truncates the log at the first batch that is
    /// torn, out of order or (with `validate`) fails its CRC. Answers whether it truncated.
    fn scan_from(
        &mut self,
        start: u64,
        end: u64,
        index_interval_bytes: u32,
        validate: bool,
        rebuild_index: bool,
    ) -> Result<bool, LogError> {
        let log = self.log()?.clone();
        let mut scan = BatchScan::new(&log, start, end);
        let mut position = start;
        let mut expected_next = None::<i64>;
        let mut cut = None;
        while position < end {
            scan.position = position;
            let header = match scan.header().map_err(|e| io_err(&self.log_path, e))? {
                Some(h) => h,
                None => {
                    cut = Some((position, "a partial batch header"));
                    break;
                }
            };
            let len = match header.total_len() {
                Some(len)
                    if len >= HEADER_LEN && header.magic == 2 && position + len as u64 <= end =>
                {
                    len
                }
                _ => {
                    cut = Some((
                        position,
                        "a batch whose length runs past the end or is invalid",
                    ));
                    break;
                }
            };
            if expected_next.is_some_and(|next| header.base_offset < next)
                || header.base_offset < self.base_offset
            {
                cut = Some((position, "a batch whose offsets go backwards"));
                break;
            }
            if validate {
                let body = scan
                    .bytes(len)
                    .map_err(|e| io_err(&self.log_path, e))?
                    .expect("the batch ends within the log");
                if crc32c::crc32c(&body[21..]) != header.crc {
                    cut = Some((position, "a batch whose CRC does not match"));
                    break;
                }
            }
            if rebuild_index {
                self.maybe_index(&header, position as u32, index_interval_bytes);
            }
            self.bytes_since_index += len as u64;
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            self.next_offset = header.last_offset() + 1;
            expected_next = Some(self.next_offset);
            position += len as u64;
        }
        self.size = position;
        self.write_behind_from = position;
        if let Some((at, what)) = cut {
            warn!(segment = %self.log_path.display(), position = at, dropped_bytes = end - at, "truncating {what} left by a crash");
            log.set_len(at).map_err(|e| io_err(&self.log_path, e))?;
            log.sync_all().map_err(|e| io_err(&self.log_path, e))?;
        }
        Ok(cut.is_some())
    }

    /// Writes a sealed segment's rebuilt index (not durably: a torn one is rebuilt again).
    fn rewrite_index(&self) -> Result<(), LogError> {
        let bytes: Vec<u8> = self.index.iter().flat_map(|e| e.encode()).collect();
        std::fs::write(&self.index_path, bytes).map_err(|e| io_err(&self.index_path, e))
    }

    /// Adds an index entry for the batch about to be stored at `position` if an interval has
    /// passed (the first batch of a segment always gets one).
    fn maybe_index(&mut self, header: &BatchHeader, position: u32, interval: u32) {
        if !self.index.is_empty() && self.bytes_since_index < u64::from(interval) {
            return;
        }
        let entry = IndexEntry {
            relative_offset: (header.base_offset - self.base_offset) as u32,
            position,
            max_timestamp_before: self.max_timestamp,
        };
        self.index.push(entry);
        self.bytes_since_index = 0;
    }

    /// Appends a batch whose first 16 bytes are replaced by `prefix`. The payload is written
    /// from the caller's buffer; nothing is copied. Every [`WRITE_BEHIND_BYTES`] the written
    /// bytes go to `files`' write-behind, so they reach the disk without a pile-up.
    pub fn append(
        &mut self,
        prefix: &[u8; PREFIX_LEN],
        batch: &[u8],
        header: &BatchHeader,
        interval: u32,
        files: &SegmentFiles,
    ) -> Result<(), LogError> {
        let position = u32::try_from(self.size).map_err(|_| LogError::SegmentFull {
            base_offset: self.base_offset,
        })?;
        self.maybe_index(header, position, interval);
        let log = self.open_files()?.log.clone();
        let rest = &batch[PREFIX_LEN..];
        let mut slices = [io::IoSlice::new(prefix), io::IoSlice::new(rest)];
        if let Err(e) = write_all_vectored(&log, &mut slices) {
            // A write cut short (a full disk) must not leave half a batch for the next append
            // to land behind: cut the file back to the last whole batch.
            if let Err(cut) = log.set_len(self.size) {
                warn!(segment = %self.log_path.display(), error = %cut, "could not remove a partial write");
            }
            return Err(io_err(&self.log_path, e));
        }
        self.size += batch.len() as u64;
        self.bytes_since_index += batch.len() as u64;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.next_offset = header.last_offset() + 1;
        let pending = self.size - self.write_behind_from;
        if pending >= WRITE_BEHIND_BYTES
            && files.write_behind(&log, self.write_behind_from, pending)
        {
            self.write_behind_from = self.size;
        }
        Ok(())
    }

    /// The file position to start scanning from for `offset`.
    pub fn position_for_offset(&self, offset: i64) -> u64 {
        let relative = offset
            .saturating_sub(self.base_offset)
            .clamp(0, i64::from(u32::MAX)) as u32;
        let i = self
            .index
            .partition_point(|e| e.relative_offset <= relative);
        i.checked_sub(1)
            .map_or(0, |i| u64::from(self.index[i].position))
    }

    /// The file position to start scanning from for the first record at or after `timestamp`.
    pub fn position_for_timestamp(&self, timestamp: i64) -> u64 {
        // Entries' "before" timestamps never decrease: take the last one still below target.
        let i = self
            .index
            .partition_point(|e| e.max_timestamp_before < timestamp);
        i.checked_sub(1)
            .map_or(0, |i| u64::from(self.index[i].position))
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// Whether this segment holds descriptors of its own (only the active one does).
    pub fn holds_descriptors(&self) -> bool {
        self.open.is_some()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A descriptor to read the log with: the active segment's own, or a sealed segment's
    /// from `files`.
    pub fn file(&self, files: &SegmentFiles) -> Result<Arc<File>, LogError> {
        match &self.open {
            Some(open) => Ok(open.log.clone()),
            None => files
                .get(&self.log_path)
                .map_err(|e| io_err(&self.log_path, e)),
        }
    }

    /// fsyncs the log of the active segment (a sealed one is synced by its seal).
    pub fn sync(&self, files: &SegmentFiles) -> Result<(), LogError> {
        let Some(open) = &self.open else {
            return Ok(());
        };
        let failed = |path: &Path, e: io::Error| LogError::SyncFailed {
            path: path.to_path_buf(),
            source: Arc::new(e),
        };
        files.sync(&open.log).map_err(|e| failed(&self.log_path, e))
    }

    /// Cuts the segment before the first batch holding `offset` or anything after it; the
    /// segment is the active one afterwards.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.unseal()?;
        let log = self.log()?.clone();
        let mut scan = BatchScan::new(&log, 0, self.size);
        let mut next_offset = self.base_offset;
        let mut max_timestamp = -1;
        while let Some(header) = scan.header().map_err(|e| io_err(&self.log_path, e))? {
            if header.last_offset() >= offset {
                break;
            }
            scan.position += header.total_len().unwrap_or(HEADER_LEN) as u64;
            next_offset = header.last_offset() + 1;
            max_timestamp = max_timestamp.max(header.max_timestamp);
        }
        let position = scan.position;
        log.set_len(position)
            .map_err(|e| io_err(&self.log_path, e))?;
        self.index.retain(|e| u64::from(e.position) < position);
        self.size = position;
        self.write_behind_from = self.write_behind_from.min(position);
        self.next_offset = next_offset;
        self.max_timestamp = max_timestamp;
        Ok(())
    }

    /// Removes the segment's files (closing a cached descriptor of them). The caller drops
    /// the segment only once this succeeded, so a failure leaves it in place and whole.
    /// The index goes first: the log is the truth, and a segment whose index is gone is
    /// whole again once its index is rebuilt at the next start. Files already gone count as
    /// deleted, so a retry finishes what a failed delete began.
    pub fn delete(&self, files: &SegmentFiles) -> Result<(), LogError> {
        files.forget(&self.log_path);
        remove_files(&self.index_path, &self.log_path)
    }

    /// Removes the files of the segment at `base_offset` in `dir` without opening it (one
    /// past a segment that recovery cut short).
    pub(crate) fn delete_unopened(dir: &Path, base_offset: i64) -> Result<(), LogError> {
        let log_path = dir.join(log_file_name(base_offset));
        remove_files(&log_path.with_extension("index"), &log_path)
    }
}

/// Removes a segment's index, then its log (see [`Segment::delete`]).
fn remove_files(index_path: &Path, log_path: &Path) -> Result<(), LogError> {
    for path in [index_path, log_path] {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(path, e)),
            _ => {}
        }
    }
    Ok(())
}

fn write_all_vectored(mut file: &File, slices: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    let mut slices = &mut slices[..];
    io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let written = file.write_vectored(slices)?;
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "segment write returned zero",
            ));
        }
        io::IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}
