//! One process per data directory: Kafka's `.lock`.
//!
//! Two processes on one directory would both append at the same offsets and the next
//! recovery would keep whichever bytes landed last. An exclusive advisory lock (`flock`) on
//! `<data-dir>/.lock`, taken before anything in the directory is read or written and held
//! for the life of the process, refuses the second one. The kernel releases it when the
//! process dies, however it dies, so a stale lock never needs cleaning up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::BrokerError;

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates `data_dir` if needed and locks it, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, BrokerError> {
        strata_log::durable_file::create_dir_all_durable(data_dir)
            .map_err(|e| BrokerError::storage(data_dir, e))?;
        let path = data_dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| BrokerError::storage(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(BrokerError::Setup(format!(
                "another strata process is using the data directory {} (it holds {}); stop it or give this one another --data-dir",
                data_dir.display(),
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(BrokerError::storage(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).expect("first");
        let second = DataDirLock::acquire(&data).expect_err("second");
        assert!(
            second.to_string().contains("another strata process"),
            "{second}"
        );
        drop(first);
        DataDirLock::acquire(&data).expect("free again");
    }
}
