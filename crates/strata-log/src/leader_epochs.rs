//! The leader-epoch cache (KIP-101): for each leader epoch that wrote to the log, the first
//! offset it wrote. It answers OffsetForLeaderEpoch ("where does epoch N's data end?"), which
//! is how clients (KIP-320) and followers (KIP-279) find a log that diverged from theirs.
//!
//! Persisted as Kafka's `leader-epoch-checkpoint` (text: the version `0`, the entry count,
//! then `epoch start_offset` per line), replaced atomically whenever it changes. An epoch is
//! recorded before the first batch it writes is appended, so after a crash the cache may
//! name an epoch whose batch never made it (dropped at open: it starts past the log end),
//! never miss one that did.

use std::path::{Path, PathBuf};

use crate::durable_file::{read_optional, write_atomic};
use crate::error::LogError;

/// The file's name in the partition directory (Kafka's).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: u32 = 0;

/// Kafka's answer for an epoch it cannot place: no epoch, no offset.
pub const UNDEFINED: (i32, i64) = (-1, -1);

/// One epoch and the first offset it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// A partition's leader epochs, oldest first, epochs and start offsets both increasing.
#[derive(Debug)]
pub struct LeaderEpochs {
    path: PathBuf,
    entries: Vec<EpochStart>,
}

impl LeaderEpochs {
    /// Loads the cache of the log in `dir`; `None` when it has no checkpoint (a log written
    /// before the cache existed, or a new one): the caller rebuilds it from the batches.
    pub fn load(dir: &Path) -> Result<Option<Self>, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let corrupt = |reason: &str| LogError::Corrupt {
            path: path.clone(),
            position: 0,
            reason: format!("leader epoch checkpoint: {reason}"),
        };
        let Some(bytes) = read_optional(&path).map_err(|e| io_err(&path, e))? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| corrupt("not text"))?;
        let mut lines = text.lines();
        if lines.next().and_then(|l| l.trim().parse::<u32>().ok()) != Some(VERSION) {
            return Err(corrupt("unknown version"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| corrupt("no entry count"))?;
        let mut entries = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(corrupt("an entry is not `epoch start_offset`"));
            };
            let entry = EpochStart {
                epoch: epoch
                    .parse()
                    .map_err(|_| corrupt("an epoch is not a number"))?,
                start_offset: start
                    .parse()
                    .map_err(|_| corrupt("an offset is not a number"))?,
            };
            let increasing = entries.last().is_none_or(|last: &EpochStart| {
                entry.epoch > last.epoch && entry.start_offset >= last.start_offset
            });
            if !increasing {
                return Err(corrupt("entries are not in increasing order"));
            }
            entries.push(entry);
        }
        if entries.len() != count {
            return Err(corrupt("the entry count does not match"));
        }
        Ok(Some(Self { path, entries }))
    }

    /// An empty cache for the log in `dir`, written at its first change.
    pub fn empty(dir: &Path) -> Self {
        Self {
            path: dir.join(CHECKPOINT_FILE),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    /// The latest epoch that wrote, if any did.
    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` writes from `start_offset` on, if it is newer than every epoch
    /// recorded (a batch of an older epoch changes nothing: Kafka ignores it too).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 || self.latest().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        // An epoch that wrote nothing (its start is where the new one starts) is dropped.
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochStart {
            epoch,
            start_offset,
        });
        self.persist()
    }

    /// Forgets the epochs that start at or after `end_offset` (the log was cut there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() == before {
            return Ok(());
        }
        self.persist()
    }

    /// The log now starts at `start_offset`: epochs wholly below it go, and the one that
    /// holds it starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let holding = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset);
        let Some(holding) = holding else {
            return Ok(());
        };
        if holding == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..holding);
        self.entries[0].start_offset = start_offset;
        self.persist()
    }

    /// Kafka's `endOffsetFor`: for `epoch`, the largest recorded epoch not above it and where
    /// that epoch's data ends (the next epoch's start, or `log_end_offset` for the latest).
    /// An epoch below the first answers the first's start; one above the latest, or -1,
    /// [`UNDEFINED`].
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let Some(latest) = self.entries.last() else {
            return UNDEFINED;
        };
        if epoch < 0 || epoch > latest.epoch {
            return UNDEFINED;
        }
        if epoch == latest.epoch {
            return (epoch, log_end_offset);
        }
        match self.entries.iter().rposition(|e| e.epoch <= epoch) {
            None => (epoch, self.entries[0].start_offset),
            Some(at) => (self.entries[at].epoch, self.entries[at + 1].start_offset),
        }
    }

    fn persist(&self) -> Result<(), LogError> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomic(&self.path, text.as_bytes()).map_err(|e| io_err(&self.path, e))
    }
}

fn io_err(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        source: std::sync::Arc::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, entries: &[(i32, i64)]) -> LeaderEpochs {
        let mut epochs = LeaderEpochs::empty(dir);
        for &(epoch, start) in entries {
            epochs.assign(epoch, start).expect("assign");
        }
        epochs
    }

    #[test]
    fn end_offsets_answer_as_kafka_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let epochs = cache(dir.path(), &[(2, 10), (4, 25), (7, 40)]);
        let log_end = 55;
        assert_eq!(
            epochs.end_offset_for(7, log_end),
            (7, 55),
            "the latest: the log end"
        );
        assert_eq!(
            epochs.end_offset_for(4, log_end),
            (4, 40),
            "the next epoch's start"
        );
        assert_eq!(
            epochs.end_offset_for(5, log_end),
            (4, 40),
            "an epoch that never wrote: the largest below it"
        );
        assert_eq!(
            epochs.end_offset_for(1, log_end),
            (1, 10),
            "below the first: the first's start"
        );
        assert_eq!(epochs.end_offset_for(8, log_end), UNDEFINED);
        assert_eq!(epochs.end_offset_for(-1, log_end), UNDEFINED);
        assert_eq!(
            LeaderEpochs::empty(dir.path()).end_offset_for(0, 0),
            UNDEFINED
        );
    }

    #[test]
    fn the_checkpoint_survives_a_reload_in_kafkas_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        cache(dir.path(), &[(0, 0), (3, 17)]);
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).expect("file");
        assert_eq!(text, "0\n2\n0 0\n3 17\n");
        let loaded = LeaderEpochs::load(dir.path())
            .expect("loads")
            .expect("present");
        assert_eq!(loaded.end_offset_for(0, 30), (0, 17));
        assert!(
            LeaderEpochs::load(tempfile::tempdir().expect("tempdir").path())
                .expect("loads")
                .is_none()
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().expect("tempdir");
        for damaged in ["1\n0\n", "0\n2\n0 0\n", "0\n2\n3 17\n0 0\n", "0\n1\nx 0\n"] {
            std::fs::write(dir.path().join(CHECKPOINT_FILE), damaged).expect("write");
            assert!(
                matches!(
                    LeaderEpochs::load(dir.path()),
                    Err(LogError::Corrupt { .. })
                ),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn truncation_keeps_only_what_the_log_still_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut epochs = cache(dir.path(), &[(1, 0), (2, 10), (3, 20)]);
        epochs.truncate_from_end(15).expect("truncate");
        assert_eq!(epochs.latest(), Some(2));
        epochs.truncate_from_start(12).expect("truncate");
        assert_eq!(
            epochs.entries(),
            [EpochStart {
                epoch: 2,
                start_offset: 12
            }]
        );
        let reloaded = LeaderEpochs::load(dir.path())
            .expect("loads")
            .expect("present");
        assert_eq!(reloaded.entries(), epochs.entries());
    }

    #[test]
    fn an_older_epoch_or_one_that_wrote_nothing_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut epochs = cache(dir.path(), &[(1, 0), (2, 10)]);
        epochs.assign(1, 12).expect("assign");
        assert_eq!(
            epochs.latest(),
            Some(2),
            "an older epoch's batch changes nothing"
        );
        epochs.assign(5, 10).expect("assign");
        assert_eq!(
            epochs.entries().iter().map(|e| e.epoch).collect::<Vec<_>>(),
            [1, 5],
            "epoch 2 wrote nothing before epoch 5 started"
        );
    }
}
