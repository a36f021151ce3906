//! Write-behind: the disk writes of appended data start once a segment has gathered
//! [`WRITE_BEHIND_BYTES`] of it, instead of when the kernel's dirty-page thresholds are hit.
//!
//! Why: left to the kernel, dirty pages pile up to the background threshold (10% of memory,
//! gigabytes), then the flusher writes them all at once, and appends stall behind that for
//! 100–300 ms while the request threads that make them wait (measured in docs/benchmarks.md,
//! "Sustained load"). Starting the writes early keeps a few megabytes per partition dirty at
//! most; written-back pages stay in the page cache, so the hot tail is still read from memory.
//! RocksDB's `bytes_per_sync` does the same for its files.
//!
//! Behind the writes, it also drops from the page cache what lies more than [`KEEP_CACHED`]
//! behind a segment's end (clean pages only; the kernel skips dirty ones). Readers at the tail
//! (consumers, followers, the uploader within its lag) still find their data in memory;
//! readers further back read the disk. Why: an unbounded page cache grows into memory the
//! machine has not touched yet, and on a virtual machine whose unused memory went back to the
//! host each such page costs a fault on the host the first time: the copy into the page cache
//! became 15% of all CPU once about 5 GB had been written and produce p99 went from 5 ms to
//! 300 ms (docs/benchmarks.md, "Sustained load"). Memory the broker already uses is reused
//! instead, and the page cache of other segments is left to whoever needs it.
//!
//! One thread per [`crate::SegmentFiles`] issues `sync_file_range(SYNC_FILE_RANGE_WRITE)`,
//! which can block while the device queue is full, so never on a request thread. Its queue is
//! bounded: when it is full, a segment keeps its range and hands over a longer one after its
//! next append, so an append never waits for write-behind.
//!
//! This is not durability: nothing waits for these writes, and the fsync policy
//! (`--durability`) is what it was. Only `SYNC_FILE_RANGE_WRITE` is used because the waiting
//! flags check and clear the file's writeback error, which would hide a failed write from the
//! next fsync.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use tracing::warn;

/// Bytes of a segment written since its last write-behind that start the next one.
pub const WRITE_BEHIND_BYTES: u64 = 1 << 20;

/// Bytes at the end of an active segment that write-behind leaves in the page cache.
pub const KEEP_CACHED: u64 = 64 << 20;

/// Ranges waiting for the thread; beyond this, segments keep theirs for later.
const QUEUE_DEPTH: usize = 256;

/// Bytes `start..start + len` of `file`, to be written to disk now.
struct Range {
    file: Arc<File>,
    start: u64,
    len: u64,
}

/// The write-behind thread of one set of segment files, started by the first range.
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    queue: OnceLock<SyncSender<Range>>,
}

impl WriteBehind {
    /// Asks for `len` bytes of `file` from `start` to be written to disk soon. False when the
    /// queue is full (or the thread could not start): the caller keeps the range.
    pub(crate) fn submit(&self, file: &Arc<File>, start: u64, len: u64) -> bool {
        let range = Range {
            file: file.clone(),
            start,
            len,
        };
        match self.queue.get_or_init(spawn_thread).try_send(range) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Starts the thread; it ends when the last sender is dropped (the segment files are).
fn spawn_thread() -> SyncSender<Range> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
    let started = std::thread::Builder::new()
        .name("strata-write-behind".into())
        .spawn(move || run(receiver));
    if let Err(e) = started {
        // The queue's receiver is gone with the closure, so every submit answers false and
        // the kernel writes the data back on its own schedule, as it would without this.
        warn!(error = %e, "could not start the write-behind thread");
    }
    sender
}

fn run(ranges: Receiver<Range>) {
    let mut warned = false;
    for range in ranges {
        // Written back long ago (ranges come a megabyte at a time): whatever of it is still
        // dirty the kernel keeps.
        let stale = range
            .start
            .checked_sub(KEEP_CACHED)
            .map(|start| (start, range.len));
        let dropped = stale.map_or(Ok(()), |(start, len)| drop_cached(&range.file, start, len));
        if let Err(e) = start_writeback(&range.file, range.start, range.len).and(dropped)
            && !warned
        {
            // The fsync policy still reports a failing disk; this only costs the pacing.
            warn!(error = %e, "write-behind failed; the kernel writes back and caches on its own");
            warned = true;
        }
    }
}

/// `posix_fadvise(fd, start, len, POSIX_FADV_DONTNEED)`: drops the range's clean pages from
/// the page cache (dirty ones stay until written); reads of them then go to the disk.
#[allow(unsafe_code)]
fn drop_cached(file: &File, start: u64, len: u64) -> std::io::Result<()> {
    let (start, len) = file_range(start, len)?;
    // SAFETY: a plain syscall on a descriptor `file` keeps open for the duration of the call;
    // it reads no memory of ours.
    let result =
        unsafe { libc::posix_fadvise(file.as_raw_fd(), start, len, libc::POSIX_FADV_DONTNEED) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(result))
    }
}

fn file_range(start: u64, len: u64) -> std::io::Result<(i64, i64)> {
    match (i64::try_from(start), i64::try_from(len)) {
        (Ok(start), Ok(len)) => Ok((start, len)),
        _ => Err(std::io::Error::other(
            "range beyond what a file offset holds",
        )),
    }
}

/// `sync_file_range(fd, start, len, SYNC_FILE_RANGE_WRITE)`: starts writing the dirty pages
/// of the range without waiting for them.
#[allow(unsafe_code)]
fn start_writeback(file: &File, start: u64, len: u64) -> std::io::Result<()> {
    let (start, len) = file_range(start, len)?;
    // SAFETY: a plain syscall on a descriptor `file` keeps open for the duration of the call;
    // it reads no memory of ours.
    let result =
        unsafe { libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn submitted_ranges_are_written_back_and_the_data_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let mut file = File::create(&path).expect("create");
        let data = vec![7u8; 3 << 20];
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        let write_behind = WriteBehind::default();
        assert!(write_behind.submit(&file, 0, 1 << 20));
        assert!(write_behind.submit(&file, 1 << 20, 2 << 20));
        drop(write_behind);
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    #[test]
    fn a_range_past_the_end_of_the_file_is_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::create(dir.path().join("segment")).expect("create");
        assert!(start_writeback(&file, 1 << 30, 1 << 20).is_ok());
        assert!(start_writeback(&file, u64::MAX, 1).is_err());
    }

    #[test]
    fn dropping_cached_pages_keeps_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let mut file = File::create(&path).expect("create");
        let data: Vec<u8> = (0..(2u32 << 20)).map(|i| i as u8).collect();
        file.write_all(&data).expect("write");
        file.sync_data().expect("sync");
        drop_cached(&file, 0, 2 << 20).expect("fadvise");
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }
}
