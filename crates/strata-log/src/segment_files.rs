//! Descriptors of sealed segments, opened on demand and bounded.
//!
//! A sealed segment is immutable and its index lives in memory, so it needs a descriptor only
//! while something reads it (a catch-up fetch, the uploader, a timestamp lookup). Keeping one
//! open per sealed segment until retention deletes it grows the descriptor count with the
//! number of segments (weeks of retention times every partition); instead, every partition
//! log of a broker shares one [`SegmentFiles`], which keeps at most `capacity` of them open
//! and closes the least recently used. A reader holds its descriptor (`Arc<File>`) for as long
//! as it reads, so eviction or deletion never cuts a read short.
//!
//! Every fsync of a segment goes through here too, so tests (built with `test-util`) can make
//! the disk fail one, and so does every write-behind (see [`crate::write_behind`]) and every
//! seal of a rolled segment (see [`crate::seal`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::seal::{PendingSeal, Sealer};
use crate::write_behind::WriteBehind;

/// The shared, bounded set of open sealed-segment descriptors.
#[derive(Debug)]
pub struct SegmentFiles {
    capacity: usize,
    open: Mutex<Lru>,
    /// fsyncs still to fail (tests only arm it).
    failing_syncs: std::sync::atomic::AtomicU32,
    write_behind: WriteBehind,
    sealer: Sealer,
}

#[derive(Debug, Default)]
struct Lru {
    next_use: u64,
    by_path: HashMap<PathBuf, (Arc<File>, u64)>,
    by_use: BTreeMap<u64, PathBuf>,
}

impl Lru {
    fn touch(&mut self, path: &Path) -> Option<Arc<File>> {
        let use_now = self.next_use;
        let (file, last_use) = self.by_path.get_mut(path)?;
        let file = file.clone();
        self.by_use.remove(last_use);
        *last_use = use_now;
        self.by_use.insert(use_now, path.to_path_buf());
        self.next_use += 1;
        Some(file)
    }

    fn remove(&mut self, path: &Path) {
        if let Some((_, last_use)) = self.by_path.remove(path) {
            self.by_use.remove(&last_use);
        }
    }
}

impl SegmentFiles {
    /// Keeps at most `capacity` descriptors open (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            open: Mutex::new(Lru::default()),
            failing_syncs: std::sync::atomic::AtomicU32::new(0),
            write_behind: WriteBehind::default(),
            sealer: Sealer::default(),
        }
    }

    /// `fdatasync` of a segment file.
    pub(crate) fn sync(&self, file: &File) -> io::Result<()> {
        let failing = self
            .failing_syncs
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if failing {
            return Err(io::Error::other("injected fsync failure"));
        }
        file.sync_data()
    }

    /// Starts writing `len` bytes of an active segment's `file` from `start` to disk, without
    /// waiting. False when that could not be queued now: keep the range for later.
    pub(crate) fn write_behind(&self, file: &Arc<File>, start: u64, len: u64) -> bool {
        self.write_behind.submit(file, start, len)
    }

    /// Seals a rolled segment on the sealing thread (in place if its queue is full).
    pub(crate) fn seal_later(self: &Arc<Self>, seal: Arc<PendingSeal>) {
        self.sealer.submit(seal, self.clone());
    }

    /// Rolled segments waiting for the sealing thread.
    pub fn seals_queued(&self) -> usize {
        self.sealer.queued()
    }

    /// Makes the next `count` fsyncs of segment files fail, as a failing disk would.
    #[cfg(any(test, feature = "test-util"))]
    pub fn fail_next_syncs(&self, count: u32) {
        self.failing_syncs
            .store(count, std::sync::atomic::Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.open
            .lock()
            .expect("no code panics while holding the descriptor cache lock")
    }

    /// A read-only descriptor of the file at `path`, opened if it is not open already.
    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        if let Some(file) = self.lock().touch(path) {
            return Ok(file);
        }
        // Opened outside the lock: other partitions' reads do not wait for this syscall.
        let opened = Arc::new(File::open(path)?);
        let mut lru = self.lock();
        if let Some(file) = lru.touch(path) {
            return Ok(file);
        }
        while lru.by_path.len() >= self.capacity {
            let Some((_, oldest)) = lru.by_use.pop_first() else {
                break;
            };
            lru.by_path.remove(&oldest);
        }
        let use_now = lru.next_use;
        lru.next_use += 1;
        lru.by_use.insert(use_now, path.to_path_buf());
        lru.by_path
            .insert(path.to_path_buf(), (opened.clone(), use_now));
        Ok(opened)
    }

    /// Closes the descriptor of a file that is being deleted, so its space is freed once the
    /// reads holding it finish.
    pub fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    /// Closes the descriptors of every file under `dir` (a partition or topic being deleted).
    pub fn forget_under(&self, dir: &Path) {
        let mut lru = self.lock();
        let doomed: Vec<PathBuf> = lru
            .by_path
            .keys()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for path in doomed {
            lru.remove(&path);
        }
    }

    /// How many descriptors are open now.
    pub fn len(&self) -> usize {
        self.lock().by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_capacity_descriptors_stay_open_and_the_least_recently_used_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("{i}.log"));
                std::fs::write(&path, [i as u8]).expect("write");
                path
            })
            .collect();
        let files = SegmentFiles::new(2);
        let first = files.get(&paths[0]).expect("open");
        files.get(&paths[1]).expect("open");
        files.get(&paths[0]).expect("cached");
        files.get(&paths[2]).expect("open, evicting 1");
        assert_eq!(files.len(), 2);
        assert!(
            files.lock().by_path.contains_key(&paths[0]),
            "recently used stays"
        );
        assert!(
            !files.lock().by_path.contains_key(&paths[1]),
            "least recently used goes"
        );
        // A descriptor handed out before its eviction still reads.
        files.get(&paths[3]).expect("open");
        files.get(&paths[1]).expect("reopen");
        let mut byte = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&*first, &mut byte, 0).expect("read");
        assert_eq!(byte, [0]);
        files.forget_under(dir.path());
        assert!(files.is_empty());
        assert!(files.get(&dir.path().join("missing.log")).is_err());
    }
}
