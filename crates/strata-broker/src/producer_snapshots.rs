//! Idempotent-producer state on disk: `<partition dir>/<offset, 20 digits>.producers` holds
//! the state as of that offset, written at every segment roll, so a restart replays only the
//! batches after the newest snapshot instead of the whole log (Kafka's `.snapshot` files;
//! layout in `docs/formats/producer-snapshot.md`).
//!
//! Crash: a snapshot is written to a temporary file and renamed into place, without an
//! fsync. One that a crash damaged or left empty fails its checksum and the next older one
//! (or, with none, the whole log) is used instead: a snapshot only ever saves work. One
//! beyond the log's end (the log was cut back by recovery) is deleted.

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::producer_state::ProducerStates;

const SUFFIX: &str = "producers";
/// Snapshots kept per partition: the newest, and one to fall back to.
const KEEP: usize = 2;

fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SUFFIX}"))
}

/// The snapshots in `dir`, oldest first.
fn list(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let offset = name.to_str()?.strip_suffix(".producers")?.parse().ok()?;
            Some((offset, e.path()))
        })
        .collect();
    found.sort_unstable_by_key(|(offset, _)| *offset);
    found
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(file = %path.display(), error = %e, "could not remove a producer snapshot");
    }
}

/// Writes the state as of `offset` and keeps only the newest snapshots. A failure is
/// logged, never fatal: the log itself holds everything a snapshot saves reading.
pub fn write(dir: &Path, offset: i64, states: &ProducerStates) {
    let target = path(dir, offset);
    let tmp = target.with_extension("producers.tmp");
    let written = std::fs::write(&tmp, states.to_snapshot(offset))
        .and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        warn!(file = %target.display(), error = %e, "could not write a producer snapshot");
        remove(&tmp);
        return;
    }
    let snapshots = list(dir);
    for (_, old) in snapshots.iter().rev().skip(KEEP) {
        remove(old);
    }
}

/// The newest readable snapshot at or below `log_end`, as (offset, state); snapshots past
/// `log_end` are deleted.
pub fn load_latest(dir: &Path, log_end: i64) -> Option<(i64, ProducerStates)> {
    for (offset, file) in list(dir).into_iter().rev() {
        if offset > log_end {
            remove(&file);
            continue;
        }
        match std::fs::read(&file)
            .ok()
            .and_then(|bytes| ProducerStates::from_snapshot(&bytes))
        {
            Some((covered, states)) if covered == offset => return Some((offset, states)),
            _ => warn!(file = %file.display(), "skipping a damaged producer snapshot"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer_state::{AppendedRange, ProducerBatch};

    fn states(last_sequence: i32) -> ProducerStates {
        let mut states = ProducerStates::default();
        let batch = ProducerBatch {
            producer_id: 1,
            producer_epoch: 0,
            first_sequence: 0,
            last_sequence,
        };
        let range = AppendedRange {
            base_offset: 0,
            last_offset: i64::from(last_sequence),
            log_append_time_ms: -1,
        };
        states.record(batch, range, 0);
        states
    }

    #[test]
    fn the_newest_snapshot_within_the_log_is_loaded_and_old_ones_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        for offset in [10, 20, 30] {
            write(
                dir.path(),
                offset,
                &states(i32::try_from(offset).expect("small")),
            );
        }
        assert_eq!(list(dir.path()).len(), KEEP, "only the newest are kept");
        assert_eq!(load_latest(dir.path(), 100).map(|(o, _)| o), Some(30));
        // Recovery cut the log back to 25: the snapshot at 30 describes data that is gone.
        assert_eq!(load_latest(dir.path(), 25).map(|(o, _)| o), Some(20));
        assert!(!path(dir.path(), 30).exists());
        // A damaged newest snapshot falls back to the one before it.
        write(dir.path(), 40, &states(40));
        std::fs::write(path(dir.path(), 40), b"torn").expect("damage");
        assert_eq!(load_latest(dir.path(), 100).map(|(o, _)| o), Some(20));
        assert_eq!(
            load_latest(tempfile::tempdir().expect("t").path(), 100).map(|(o, _)| o),
            None
        );
    }
}
