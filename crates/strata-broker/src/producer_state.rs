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
}

/// The idempotence state of one partition, keyed by producer id.
#[derive(Debug, Default, Clone)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
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

    /// Records an appended batch (also used when replaying the log after a restart).
    pub fn record(&mut self, batch: ProducerBatch, range: AppendedRange) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: VecDeque::with_capacity(RETAINED_BATCHES),
            });
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back((batch, range));
    }

    /// The number of producers with retained state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state here.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
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
        states.record(batch(0, 0, 4), range(10, 14));
        assert_eq!(states.check(&batch(0, 5, 9)), Ok(SequenceCheck::Append));
        states.record(batch(0, 5, 9), range(15, 19));
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
        states.record(batch(0, 0, 4), range(0, 4));
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
        states.record(batch(3, 0, 0), range(0, 0));
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
        states.record(batch(0, i32::MAX - 1, i32::MAX), range(0, 1));
        assert_eq!(states.check(&batch(0, 0, 3)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(batch(0, i, i), range(i64::from(i), i64::from(i)));
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
