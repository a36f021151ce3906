//! Whether this process found the partition logs exactly as the previous process on this
//! data directory left them. The quorum keeps a restarted replica eligible to lead only if
//! it did (see `strata_meta`'s eligibility rules): a replica that may have lost acknowledged
//! records must not become the one copy others truncate to.
//!
//! `log/last-run.json` names the incarnation that last wrote the logs, the kernel boot it
//! ran in, whether it ran with `--durability fsync`, and whether it stopped cleanly. Its logs
//! are intact when any of these holds:
//! - it stopped cleanly: it flushed every partition before it wrote so;
//! - it ran under `fsync`: it acknowledged and reported nothing unsynced;
//! - the machine has not rebooted since (the same boot id): all it wrote is still in the
//!   page cache, which is why `--durability os` survives `kill -9`.
//!
//! A missing or unreadable record (a new data directory, or wiped logs: the record lives
//! with them) is not intact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_log::durable_file::{read_optional, write_atomic};
use tracing::info;
use uuid::Uuid;

use crate::error::BrokerError;

const FILE_NAME: &str = "last-run.json";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LastRun {
    incarnation: Uuid,
    /// The kernel's boot id while it ran, where the platform has one.
    boot_id: Option<String>,
    fsync: bool,
    stopped_cleanly: bool,
}

impl LastRun {
    fn left_logs_intact(&self, boot_id: Option<&str>) -> bool {
        self.stopped_cleanly
            || self.fsync
            || self
                .boot_id
                .as_deref()
                .is_some_and(|then| Some(then) == boot_id)
    }
}

/// This process's record in the log directory.
#[derive(Debug)]
pub struct RunRecord {
    path: PathBuf,
    run: LastRun,
}

impl RunRecord {
    /// Reads what the previous process left in `log_dir`, then records `incarnation` as
    /// running there. Answers the record and the previous incarnation if it left the logs
    /// intact.
    pub fn begin(
        log_dir: &Path,
        incarnation: Uuid,
        fsync: bool,
    ) -> Result<(Self, Option<Uuid>), BrokerError> {
        let path = log_dir.join(FILE_NAME);
        let boot_id = std::fs::read_to_string(BOOT_ID)
            .ok()
            .map(|id| id.trim().to_string());
        let previous = read_optional(&path)
            .map_err(|e| BrokerError::storage(&path, e))?
            .and_then(|bytes| serde_json::from_slice::<LastRun>(&bytes).ok());
        let intact = previous
            .as_ref()
            .filter(|run| run.left_logs_intact(boot_id.as_deref()))
            .map(|run| run.incarnation);
        info!(
            previous = ?previous.as_ref().map(|run| run.incarnation),
            intact = intact.is_some(),
            "checked how the previous process left the partition logs"
        );
        let record = Self {
            path,
            run: LastRun {
                incarnation,
                boot_id,
                fsync,
                stopped_cleanly: false,
            },
        };
        record.write()?;
        Ok((record, intact))
    }

    /// Records that this process stopped cleanly: only once every partition is flushed.
    pub fn stopped_cleanly(mut self) -> Result<(), BrokerError> {
        self.run.stopped_cleanly = true;
        self.write()
    }

    fn write(&self) -> Result<(), BrokerError> {
        let bytes = serde_json::to_vec_pretty(&self.run).expect("plain struct serializes");
        write_atomic(&self.path, &bytes).map_err(|e| BrokerError::storage(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intact_after(previous: Option<LastRun>, boot_id: Option<&str>) -> bool {
        previous.is_some_and(|run| run.left_logs_intact(boot_id))
    }

    #[test]
    fn logs_are_intact_after_a_clean_stop_under_fsync_or_within_one_boot() {
        let run = |boot: Option<&str>, fsync, stopped_cleanly| LastRun {
            incarnation: Uuid::from_u128(1),
            boot_id: boot.map(str::to_string),
            fsync,
            stopped_cleanly,
        };
        assert!(intact_after(Some(run(Some("a"), false, true)), Some("b")));
        assert!(intact_after(Some(run(Some("a"), true, false)), Some("b")));
        assert!(intact_after(Some(run(Some("a"), false, false)), Some("a")));
        assert!(!intact_after(Some(run(Some("a"), false, false)), Some("b")));
        assert!(!intact_after(Some(run(None, false, false)), None));
        assert!(!intact_after(None, Some("a")));
    }

    #[test]
    fn a_process_finds_what_the_previous_one_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Uuid::from_u128(1);
        let (record, intact) = RunRecord::begin(dir.path(), first, false).expect("begin");
        assert_eq!(intact, None, "a new directory has no previous process");
        drop(record);
        // Killed: on this machine's same boot its writes are still in the page cache.
        let (record, intact) =
            RunRecord::begin(dir.path(), Uuid::from_u128(2), false).expect("begin");
        let same_boot = std::fs::read_to_string(BOOT_ID).is_ok();
        assert_eq!(intact, same_boot.then_some(first));
        record.stopped_cleanly().expect("stop");
        let (_, intact) = RunRecord::begin(dir.path(), Uuid::from_u128(3), false).expect("begin");
        assert_eq!(intact, Some(Uuid::from_u128(2)), "a clean stop is intact");
        // Wiped logs take the record with them.
        std::fs::remove_file(dir.path().join(FILE_NAME)).expect("wipe");
        let (_, intact) = RunRecord::begin(dir.path(), Uuid::from_u128(4), false).expect("begin");
        assert_eq!(intact, None);
    }
}
