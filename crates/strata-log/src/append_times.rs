//! When stretches of a log were appended, coarsely: how long the oldest data after a given
//! offset has waited, for a tiered log that uploads whatever has waited too long.
//!
//! Segment creation times cannot say it once uploads stop rolling segments: one active
//! segment holds data appended over days. Batch timestamps cannot either (a producer sets
//! them). So the log keeps a few marks, each the first offset appended at or after a moment.
//! A mark answers for every offset up to the next mark, with its own (older) time, so an
//! answer is never later than the truth: coarsening can only make an upload come early.
//!
//! Bounded: at most [`MAX_MARKS`]. When they fill, every other mark goes and marks are spaced
//! twice as far apart, so the resolution stays a fraction of the span the marks cover,
//! however long uploads stall. Marks below what is safely uploaded are forgotten.

use std::collections::VecDeque;

/// The most marks a log keeps (16 bytes each).
pub const MAX_MARKS: usize = 32;
/// How far apart marks are at first.
const BASE_SPACING_MS: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    offset: i64,
    ms: i64,
}

#[derive(Debug)]
pub struct AppendTimes {
    marks: VecDeque<Mark>,
    spacing_ms: i64,
}

impl Default for AppendTimes {
    fn default() -> Self {
        Self {
            marks: VecDeque::new(),
            spacing_ms: BASE_SPACING_MS,
        }
    }
}

impl AppendTimes {
    /// Notes that `offset` was appended at `now_ms` (offsets only grow between truncations).
    pub fn record(&mut self, offset: i64, now_ms: i64) {
        if let Some(last) = self.marks.back()
            && (now_ms < last.ms.saturating_add(self.spacing_ms) || offset <= last.offset)
        {
            return;
        }
        if self.marks.len() == MAX_MARKS {
            // Each kept mark now also answers for its dropped neighbour, with the older time.
            self.marks = self.marks.iter().copied().step_by(2).collect();
            self.spacing_ms = self.spacing_ms.saturating_mul(2);
        }
        self.marks.push_back(Mark { offset, ms: now_ms });
    }

    /// When `offset` was appended, or earlier; `None` when no mark covers it (data appended
    /// before this process opened the log).
    pub fn appended_by(&self, offset: i64) -> Option<i64> {
        let after = self.marks.partition_point(|m| m.offset <= offset);
        after.checked_sub(1).map(|i| self.marks[i].ms)
    }

    /// Forgets the marks that answer only for offsets below `offset`.
    pub fn forget_below(&mut self, offset: i64) {
        while self.marks.get(1).is_some_and(|next| next.offset <= offset) {
            self.marks.pop_front();
        }
        if self.marks.len() <= 1 {
            self.spacing_ms = BASE_SPACING_MS;
        }
    }

    /// Forgets the marks of offsets at or past `offset` (a truncated tail).
    pub fn forget_from(&mut self, offset: i64) {
        while self.marks.back().is_some_and(|m| m.offset >= offset) {
            self.marks.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_mark_answers_for_the_offsets_up_to_the_next() {
        let mut times = AppendTimes::default();
        times.record(10, 1_000);
        times.record(11, 1_050); // too close to the last mark
        times.record(20, 2_000);
        assert_eq!(times.appended_by(9), None);
        assert_eq!(times.appended_by(15), Some(1_000));
        assert_eq!(times.appended_by(25), Some(2_000));
        times.forget_below(19);
        assert_eq!(
            times.appended_by(15),
            Some(1_000),
            "its mark still answers for 19"
        );
        times.forget_below(20);
        assert_eq!(times.appended_by(15), None);
        times.forget_from(20);
        assert_eq!(times.appended_by(25), None);
    }

    proptest! {
        /// However appends, forgetting and truncation interleave, an answer is never later
        /// than the true append time, and the marks stay bounded.
        #[test]
        fn answers_are_never_later_than_the_truth(
            steps in prop::collection::vec((0u8..10, 1i64..400), 1..400),
        ) {
            let mut times = AppendTimes::default();
            let mut truth: Vec<(i64, i64)> = Vec::new(); // (offset, ms), offsets increasing
            let (mut next, mut now, mut floor) = (0i64, 0i64, 0i64);
            for (op, amount) in steps {
                now += amount;
                match op {
                    0 => {
                        floor = floor.max(next - amount).max(0);
                        times.forget_below(floor);
                    }
                    1 if next > floor => {
                        next = (next - amount).max(floor);
                        times.forget_from(next);
                        truth.retain(|(o, _)| *o < next);
                    }
                    _ => {
                        times.record(next, now);
                        truth.push((next, now));
                        next += amount;
                    }
                }
                prop_assert!(times.marks.len() <= MAX_MARKS);
                for &(offset, ms) in truth.iter().filter(|(o, _)| *o >= floor) {
                    if let Some(answer) = times.appended_by(offset) {
                        prop_assert!(answer <= ms, "offset {offset}: {answer} > {ms}");
                    }
                }
            }
        }
    }
}
