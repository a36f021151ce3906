//! Sealing a rolled segment off the append path: its log's fsync and its index file.
//!
//! Why: a roll used to fsync the old segment, write and fsync its index, rename it and fsync
//! the directory twice, all on the request thread that made the rolling append and under the
//! partition's lock. Under sustained load each fsync waits behind the device's queue: at 100
//! partitions with small segments (40 rolls a second) produce p99 went from about 100 ms to
//! 0.5–1.8 s (docs/benchmarks.md, "Segment rolls"). Now a roll only creates the next segment's
//! file; one thread per [`crate::SegmentFiles`] seals the old one, as Kafka flushes a rolled
//! segment on its scheduler.
//!
//! Order and crash safety: the log is fsynced before its index is written, so an index file
//! means its log reached the disk whole. A segment without one (a crash came before its seal)
//! is checked batch by batch when the log is opened, like the active segment, and cut at the
//! first torn batch, with every later segment removed, so the log never has a hole. The index
//! is written atomically and its directory synced last, which also makes the next segment's
//! directory entry durable.
//!
//! Failure: a failed fsync is kept, never retried: the partition log reports it at its next
//! append, roll, flush or sync ([`crate::PartitionLog`]), and the broker takes the partition
//! offline. An index that cannot be written costs only a rebuild at the next start.
//!
//! Under `--durability fsync` an acknowledgement waits for every seal still pending on its
//! partition ([`crate::SyncHandle`] finishes them), so nothing is acknowledged before the
//! segment holding it is durable.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing::{error, warn};

use crate::segment_files::SegmentFiles;

/// Seals waiting for the thread; beyond this a roll seals in place (back-pressure).
const QUEUE_DEPTH: usize = 1024;

/// A rolled segment whose seal may not have happened yet.
#[derive(Debug)]
pub(crate) struct PendingSeal {
    log: Arc<File>,
    log_path: PathBuf,
    index_path: PathBuf,
    /// The index to write while the seal has not happened. Held for the whole seal, so
    /// [`Self::cancel`] returns only once no seal is running.
    work: Mutex<Option<Vec<u8>>>,
    /// How it ended (sealed or cancelled: `Ok`), set once; read without the lock, so a
    /// check never mistakes someone holding it for a seal in progress.
    outcome: OnceLock<Result<(), Arc<io::Error>>>,
}

impl PendingSeal {
    pub(crate) fn new(log: Arc<File>, log_path: &Path, index_path: &Path, index: Vec<u8>) -> Self {
        Self {
            log,
            log_path: log_path.to_path_buf(),
            index_path: index_path.to_path_buf(),
            work: Mutex::new(Some(index)),
            outcome: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        // A panic mid-seal leaves the work in place, so it is sealed again.
        self.work
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Seals the segment now unless that happened already, waiting for a seal in progress;
    /// answers how it went.
    pub(crate) fn finish(&self, files: &SegmentFiles) -> Result<(), Arc<io::Error>> {
        let mut work = self.lock();
        if let Some(index) = work.as_deref() {
            let sealed = self.seal(files, index).map_err(|e| {
                error!(segment = %self.log_path.display(), error = %e, "sealing a segment failed: its fsync is not retried");
                Arc::new(e)
            });
            // Set only here and in `cancel`, both under the lock with the work still there.
            let _ = self.outcome.set(sealed);
            *work = None;
        }
        self.outcome.get().cloned().unwrap_or(Ok(()))
    }

    /// How the seal went, if it is over; `None` while it waits or runs.
    pub(crate) fn outcome(&self) -> Option<Result<(), Arc<io::Error>>> {
        self.outcome.get().cloned()
    }

    /// Drops a seal not yet begun (waiting for one that runs): the segment is being deleted
    /// or reopened for appends, and an index written now would describe a log that changed.
    pub(crate) fn cancel(&self) {
        let mut work = self.lock();
        if work.take().is_some() {
            let _ = self.outcome.set(Ok(()));
        }
    }

    fn seal(&self, files: &SegmentFiles, index: &[u8]) -> io::Result<()> {
        files.sync(&self.log)?;
        match crate::durable_file::write_atomic(&self.index_path, index) {
            Ok(()) => Ok(()),
            Err(e) => {
                warn!(index = %self.index_path.display(), error = %e, "could not write a sealed segment's index; the next start rebuilds it");
                let dir = self.log_path.parent().unwrap_or(Path::new("."));
                crate::durable_file::sync_dir(dir)
            }
        }
    }
}

/// The sealing thread of one set of segment files, started by the first roll.
#[derive(Debug, Default)]
pub(crate) struct Sealer {
    queue: OnceLock<SyncSender<Job>>,
    /// Seals handed to the thread and not yet finished by it.
    queued: Arc<AtomicUsize>,
}

struct Job {
    seal: Arc<PendingSeal>,
    /// The fsyncs go through the descriptor set (tests make them fail there). The thread
    /// holds it only while a job waits, so it never keeps the set alive by itself.
    files: Arc<SegmentFiles>,
}

impl Sealer {
    /// Seals `seal` on the thread, or right here when its queue is full.
    pub(crate) fn submit(&self, seal: Arc<PendingSeal>, files: Arc<SegmentFiles>) {
        let queue = self.queue.get_or_init(|| spawn_thread(self.queued.clone()));
        self.queued.fetch_add(1, Ordering::Relaxed);
        match queue.try_send(Job { seal, files }) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                // The outcome is kept in the seal, where the log finds it.
                let _ = job.seal.finish(&job.files);
            }
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

fn spawn_thread(queued: Arc<AtomicUsize>) -> SyncSender<Job> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_DEPTH);
    let started = std::thread::Builder::new()
        .name("strata-sealer".into())
        .spawn(move || run(&receiver, &queued));
    if let Err(e) = started {
        // The receiver went with the closure: every submit then seals in place.
        warn!(error = %e, "could not start the segment sealing thread; rolls seal in place");
    }
    sender
}

fn run(jobs: &Receiver<Job>, queued: &AtomicUsize) {
    for job in jobs {
        // The outcome is kept in the seal, where the log finds it.
        let _ = job.seal.finish(&job.files);
        queued.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(dir: &Path) -> (PendingSeal, PathBuf) {
        let log_path = dir.join("00000000000000000000.log");
        let index_path = log_path.with_extension("index");
        std::fs::write(&log_path, b"batches").expect("log");
        let log = Arc::new(File::open(&log_path).expect("open"));
        let seal = PendingSeal::new(log, &log_path, &index_path, vec![1; 16]);
        (seal, index_path)
    }

    #[test]
    fn a_seal_runs_once_and_its_outcome_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = SegmentFiles::new(4);
        let (seal, index) = pending(dir.path());
        assert!(seal.outcome().is_none(), "not begun");
        seal.finish(&files).expect("sealed");
        assert_eq!(std::fs::read(&index).expect("index"), vec![1; 16]);
        files.fail_next_syncs(1);
        seal.finish(&files).expect("done already: no second fsync");
        assert!(matches!(seal.outcome(), Some(Ok(()))));
    }

    #[test]
    fn a_failed_fsync_writes_no_index_and_stays_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = SegmentFiles::new(4);
        let (seal, index) = pending(dir.path());
        files.fail_next_syncs(1);
        assert!(seal.finish(&files).is_err());
        assert!(
            !index.exists(),
            "an index would vouch for a log not known durable"
        );
        assert!(seal.finish(&files).is_err(), "never retried");
        assert!(matches!(seal.outcome(), Some(Err(_))));
    }

    #[test]
    fn a_cancelled_seal_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = SegmentFiles::new(4);
        let (seal, index) = pending(dir.path());
        seal.cancel();
        seal.finish(&files).expect("nothing to do");
        assert!(!index.exists());
    }

    #[test]
    fn seals_handed_to_the_thread_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Arc::new(SegmentFiles::new(4));
        let (seal, index) = pending(dir.path());
        let seal = Arc::new(seal);
        files.seal_later(seal.clone());
        seal.finish(&files).expect("waits for or runs the seal");
        assert!(index.is_file());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while files.seals_queued() > 0 {
            assert!(std::time::Instant::now() < deadline, "the queue drains");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
