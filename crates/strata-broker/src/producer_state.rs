//! Idempotent-producer bookkeeping for one partition.
//!
//! For each producer id the partition remembers the producer's epoch and the last
//! [`RETAINED_BATCHES`] batches it appended (first/last sequence and where they landed). That is
//! what Kafka keeps too, and it is enough to answer a retried batch with its original offsets:
//! a client never has more than five batches in flight per partition with idempotence on.
//!
//! The rules follow Kafka's `ProducerStateManager`: a stale epoch is fenced; a batch equal to a
//! retained one is a duplicate; otherwise its first sequence must follow the last one (wrapping
//! at `i32::MAX`); a new epoch must start at sequence 0; a producer the partition has never seen
//! (or whose batches retention removed) is accepted at any sequence.
//!
//! A producer silent for `producer.id.expiration.ms` is forgotten, as in Kafka, so the state
//! does not grow with every short-lived producer that ever wrote here.
//!
//! This is pure state: the partition consults it and records appends under its own lock, and
//! rebuilds it after a restart by replaying the batch headers of its log.

use std::collections::{HashMap, VecDeque};

/// How many recent batches per producer are kept for duplicate detection.
pub const RETAINED_BATCHES: usize = 5;

/// The identity and sequence range of an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

impl ProducerBatch {
    /// The producer part of a batch header; `None` for a batch without a producer id.
    pub fn from_header(header: &strata_log::BatchHeader) -> Option<Self> {
        (header.producer_id >= 0).then(|| Self {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header.base_sequence, header.last_offset_delta),
        })
    }
}

/// The sequence of a batch's last record: sequences wrap from `i32::MAX` to 0, never to a
/// negative number (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn last_sequence(first: i32, delta: i32) -> i32 {
    if first > i32::MAX - delta {
        delta - (i32::MAX - first) - 1
    } else {
        first + delta
    }
}

/// Where a batch landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRange {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// It was appended before: answer with the original placement, append nothing.
    Duplicate(AppendedRange),
}

/// Why an idempotent batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id} sent sequence {first_sequence} after {last_sequence}")]
    OutOfOrder {
        producer_id: i64,
        first_sequence: i32,
        last_sequence: i32,
    },
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<(ProducerBatch, AppendedRange)>,
    /// When the producer last appended here (ms), for `producer.id.expiration.ms`.
    last_seen_ms: i64,
}

/// The idempotence state of one partition, keyed by producer id.
#[derive(Debug, Default, Clone)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"STRATAPS";
const SNAPSHOT_VERSION: u32 = 1;

/// Reads fixed-size fields off the front of a snapshot.
struct SnapshotReader<'a>(&'a [u8]);

impl SnapshotReader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

fn follows(last_sequence: i32, next: i32) -> bool {
    next == last_sequence.wrapping_add(1) || (last_sequence == i32::MAX && next == 0)
}

impl ProducerStates {
    /// Decides whether `batch` may be appended.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, SequenceError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: batch.producer_id,
                epoch: batch.producer_epoch,
                current: entry.epoch,
            });
        }
        if batch.producer_epoch > entry.epoch {
            return if batch.first_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id: batch.producer_id,
                    first_sequence: batch.first_sequence,
                    last_sequence: -1,
                })
            };
        }
        if let Some((_, range)) = entry.batches.iter().find(|(b, _)| b == batch) {
            return Ok(SequenceCheck::Duplicate(*range));
        }
        let last_sequence = entry.batches.back().map_or(-1, |(b, _)| b.last_sequence);
        if follows(last_sequence, batch.first_sequence) {
            Ok(SequenceCheck::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id: batch.producer_id,
                first_sequence: batch.first_sequence,
                last_sequence,
            })
        }
    }

    /// Records a batch appended at `seen_ms` (also used when replaying the log after a
    /// restart, with the time of the replay).
    pub fn record(&mut self, batch: ProducerBatch, range: AppendedRange, seen_ms: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: VecDeque::with_capacity(RETAINED_BATCHES),
                last_seen_ms: seen_ms,
            });
        entry.last_seen_ms = entry.last_seen_ms.max(seen_ms);
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back((batch, range));
    }

    /// Forgets producers that have not appended for `expiration_ms`; answers how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_seen_ms) < expiration_ms);
        before - self.producers.len()
    }

    /// The state as a snapshot taken at `offset` (the log end it covers), in the layout of
    /// `docs/formats/producer-snapshot.md`.
    pub fn to_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.producers.len() * 200);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        let count = u32::try_from(self.producers.len()).expect("fewer than 2^32 producers");
        out.extend_from_slice(&count.to_le_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&entry.epoch.to_le_bytes());
            out.extend_from_slice(&entry.last_seen_ms.to_le_bytes());
            out.push(u8::try_from(entry.batches.len()).expect("at most RETAINED_BATCHES"));
            for (batch, range) in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_le_bytes());
                out.extend_from_slice(&batch.last_sequence.to_le_bytes());
                out.extend_from_slice(&range.base_offset.to_le_bytes());
                out.extend_from_slice(&range.last_offset.to_le_bytes());
                out.extend_from_slice(&range.log_append_time_ms.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a snapshot written by [`Self::to_snapshot`]: the offset it covers and the state.
    /// `None` for anything damaged, truncated or of another version (the caller rebuilds
    /// the state from the log instead).
    pub fn from_snapshot(bytes: &[u8]) -> Option<(i64, Self)> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
            return None;
        }
        let mut r = SnapshotReader(body);
        if r.take::<8>()? != *SNAPSHOT_MAGIC || u32::from_le_bytes(r.take()?) != SNAPSHOT_VERSION {
            return None;
        }
        let offset = i64::from_le_bytes(r.take()?);
        let count = u32::from_le_bytes(r.take()?);
        let mut states = Self::default();
        for _ in 0..count {
            let producer_id = i64::from_le_bytes(r.take()?);
            let epoch = i16::from_le_bytes(r.take()?);
            let last_seen_ms = i64::from_le_bytes(r.take()?);
            let [batches] = r.take::<1>()?;
            if usize::from(batches) > RETAINED_BATCHES {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(RETAINED_BATCHES),
                last_seen_ms,
            };
            for _ in 0..batches {
                let batch = ProducerBatch {
                    producer_id,
                    producer_epoch: epoch,
                    first_sequence: i32::from_le_bytes(r.take()?),
                    last_sequence: i32::from_le_bytes(r.take()?),
                };
                let range = AppendedRange {
                    base_offset: i64::from_le_bytes(r.take()?),
                    last_offset: i64::from_le_bytes(r.take()?),
                    log_append_time_ms: i64::from_le_bytes(r.take()?),
                };
                entry.batches.push_back((batch, range));
            }
            states.producers.insert(producer_id, entry);
        }
        r.0.is_empty().then_some((offset, states))
    }

    /// The number of producers with retained state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            producer_epoch: epoch,
            first_sequence: first,
            last_sequence: last,
        }
    }

    fn range(base: i64, last: i64) -> AppendedRange {
        AppendedRange {
            base_offset: base,
            last_offset: last,
            log_append_time_ms: -1,
        }
    }

    #[test]
    fn in_sequence_batches_are_appended_and_retries_are_duplicates() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&batch(0, 0, 4)), Ok(SequenceCheck::Append));
        states.record(batch(0, 0, 4), range(10, 14), 0);
        assert_eq!(states.check(&batch(0, 5, 9)), Ok(SequenceCheck::Append));
        states.record(batch(0, 5, 9), range(15, 19), 0);
        assert_eq!(
            states.check(&batch(0, 0, 4)),
            Ok(SequenceCheck::Duplicate(range(10, 14)))
        );
        assert_eq!(
            states.check(&batch(0, 5, 9)),
            Ok(SequenceCheck::Duplicate(range(15, 19)))
        );
    }

    #[test]
    fn a_gap_in_sequence_is_out_of_order() {
        let mut states = ProducerStates::default();
        states.record(batch(0, 0, 4), range(0, 4), 0);
        assert!(matches!(
            states.check(&batch(0, 6, 6)),
            Err(SequenceError::OutOfOrder {
                last_sequence: 4,
                ..
            })
        ));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
        let mut states = ProducerStates::default();
        states.record(batch(3, 0, 0), range(0, 0), 0);
        assert!(matches!(
            states.check(&batch(2, 1, 1)),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert!(matches!(
            states.check(&batch(4, 5, 5)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(states.check(&batch(4, 0, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn an_unknown_producer_is_accepted_at_any_sequence() {
        let states = ProducerStates::default();
        assert_eq!(states.check(&batch(0, 42, 50)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(batch(0, i32::MAX - 1, i32::MAX), range(0, 1), 0);
        assert_eq!(states.check(&batch(0, 0, 3)), Ok(SequenceCheck::Append));
        // A batch spanning the wrap ends at a small sequence, not a negative one.
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(5, 4), 9);
        let mut states = ProducerStates::default();
        let spanning = batch(0, i32::MAX - 1, last_sequence(i32::MAX - 1, 3));
        states.record(spanning, range(0, 3), 0);
        assert_eq!(states.check(&batch(0, 2, 2)), Ok(SequenceCheck::Append));
        assert_eq!(
            states.check(&spanning),
            Ok(SequenceCheck::Duplicate(range(0, 3)))
        );
    }

    #[test]
    fn a_snapshot_reads_back_and_damage_is_refused() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(batch(2, i, i), range(i64::from(i), i64::from(i)), 99);
        }
        let mut other = batch(0, 0, 9);
        other.producer_id = -5 + 13;
        states.record(other, range(100, 109), 7);
        let bytes = states.to_snapshot(110);
        let (offset, read) = ProducerStates::from_snapshot(&bytes).expect("reads");
        assert_eq!(offset, 110);
        assert_eq!(read.len(), 2);
        assert_eq!(
            read.check(&batch(2, 6, 6)),
            Ok(SequenceCheck::Duplicate(range(6, 6)))
        );
        assert_eq!(read.check(&batch(2, 7, 7)), Ok(SequenceCheck::Append));
        assert_eq!(
            read.check(&other),
            Ok(SequenceCheck::Duplicate(range(100, 109)))
        );
        for cut in 0..bytes.len() {
            assert!(
                ProducerStates::from_snapshot(&bytes[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(ProducerStates::from_snapshot(&flipped).is_none());
    }

    #[test]
    fn producers_silent_past_the_expiration_are_forgotten() {
        let mut states = ProducerStates::default();
        states.record(batch(0, 0, 0), range(0, 0), 1_000);
        let mut other = batch(0, 0, 0);
        other.producer_id = 8;
        states.record(other, range(1, 1), 5_000);
        assert_eq!(states.expire(10_999, 10_000), 0);
        assert_eq!(states.expire(11_000, 10_000), 1, "silent since 1000");
        assert_eq!(states.len(), 1);
        assert_eq!(
            states.check(&batch(0, 42, 42)),
            Ok(SequenceCheck::Append),
            "an expired producer is unknown again"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(batch(0, i, i), range(i64::from(i), i64::from(i)), 0);
        }
        assert!(matches!(
            states.check(&batch(0, 0, 0)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(
            states.check(&batch(0, 2, 2)),
            Ok(SequenceCheck::Duplicate(range(2, 2)))
        );
    }
}
