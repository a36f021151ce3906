//! What a partition's leader knows of its followers, and what it decides from that: how far
//! the high watermark may go, and when the ISR should grow or shrink. Kafka's rules, kept
//! pure (events in, answers out) so they can be tested exhaustively: the partition calls it
//! under its lock, and the replica manager carries ISR changes to the quorum.
//!
//! Invariants:
//! - The high watermark is the minimum log end over the leader and every member of the
//!   *maximal* ISR: the committed ISR plus a member being added, minus nothing until a
//!   removal commits. A follower is counted only once it fetched under this leadership, so a
//!   new leader holds the high watermark where it was until its followers report in.
//! - While the committed ISR is smaller than `min(min.insync.replicas, replicas)`, the high
//!   watermark does not move (KIP-966's strict rule): nothing counts as committed unless
//!   enough replicas hold it.
//! - One ISR change is in flight at a time; it is forgotten when the metadata shows a new
//!   partition epoch, or when the quorum refuses it (and then none is proposed for a
//!   while, so a refusal cannot turn into a storm of proposals).
//! - Only a live replica may join, and a follower's progress counts only for the process
//!   that made it: a replica that is fenced or restarted (a new incarnation, perhaps with
//!   a wiped disk) must fetch again before anything is decided from its progress.

use std::collections::BTreeMap;

use uuid::Uuid;

/// How long after a refused ISR change the leader waits before proposing another, unless
/// the metadata moves first.
const REFUSAL_BACKOFF_MS: i64 = 1_000;

/// What the metadata says of a partition's replicas, as a leader acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The replicas that are live (registered, not fenced), with their current incarnation.
    pub live: BTreeMap<i32, Uuid>,
}

/// A follower's progress as the leader saw it in its fetches (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// The process whose progress this is; `None` while the replica is not live.
    incarnation: Option<Uuid>,
    /// Its log end (its fetch offset); `None` until it fetched under this leadership.
    log_end_offset: Option<i64>,
    /// The last time it was known to hold everything the leader had.
    last_caught_up_ms: i64,
    /// When it last fetched, and where the leader's log ended then.
    last_fetch_ms: i64,
    last_fetch_leader_end: i64,
}

/// An ISR change for the quorum: replace the ISR of the partition, which was at
/// `partition_epoch`, with `isr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// A fetch from a broker that is not a replica of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAReplica;

/// The leader's view of one partition it leads.
#[derive(Debug, Clone)]
pub struct LeaderState {
    me: i32,
    assignment: Assignment,
    /// Where this leadership's epoch started writing: a follower must hold that much to join.
    epoch_start_offset: i64,
    followers: BTreeMap<i32, Follower>,
    /// The ISR sent to the quorum and not yet seen applied.
    pending: Option<Vec<i32>>,
    /// When the quorum last refused a change, while the metadata has not moved since.
    refused_at_ms: Option<i64>,
}

impl Follower {
    fn new(incarnation: Option<Uuid>, caught_up_ms: i64) -> Self {
        Self {
            incarnation,
            log_end_offset: None,
            last_caught_up_ms: caught_up_ms,
            last_fetch_ms: 0,
            last_fetch_leader_end: 0,
        }
    }
}

impl LeaderState {
    /// A new leadership, taken when the log ends at `log_end_offset`. Followers in the ISR
    /// count as caught up now, so none is dropped before it had a chance to fetch.
    pub fn new(me: i32, assignment: Assignment, log_end_offset: i64, now_ms: i64) -> Self {
        let mut state = Self {
            me,
            assignment: assignment.clone(),
            epoch_start_offset: log_end_offset,
            followers: BTreeMap::new(),
            pending: None,
            refused_at_ms: None,
        };
        state.update(assignment, now_ms);
        state
    }

    pub fn leader_epoch(&self) -> i32 {
        self.assignment.leader_epoch
    }

    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Takes a newer view of the same leadership (an ISR change applied, replicas added).
    /// A pending change is settled once the partition epoch moved.
    /// A follower that is no longer live, or is live as another process, starts over.
    pub fn update(&mut self, assignment: Assignment, now_ms: i64) {
        if assignment.partition_epoch != self.assignment.partition_epoch {
            self.pending = None;
            self.refused_at_ms = None;
        }
        for &id in &assignment.replicas {
            if id == self.me {
                continue;
            }
            let incarnation = assignment.live.get(&id).copied();
            let caught_up_ms = if assignment.isr.contains(&id) {
                now_ms
            } else {
                0
            };
            let follower = self
                .followers
                .entry(id)
                .or_insert_with(|| Follower::new(incarnation, caught_up_ms));
            if follower.incarnation != incarnation {
                *follower = Follower::new(incarnation, caught_up_ms);
            }
        }
        self.followers
            .retain(|id, _| assignment.replicas.contains(id));
        self.assignment = assignment;
    }

    /// Records a follower's fetch from `fetch_offset` (its log end) at `now_ms`, when the
    /// leader's log ends at `leader_end`, and moves its caught-up time by Kafka's rule: it is
    /// caught up if it holds everything now, or everything the leader had at its last fetch.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> Result<(), NotAReplica> {
        let follower = self.followers.get_mut(&replica).ok_or(NotAReplica)?;
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= follower.last_fetch_leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end_offset = Some(fetch_offset);
        follower.last_fetch_ms = now_ms;
        follower.last_fetch_leader_end = leader_end;
        Ok(())
    }

    /// The committed ISR plus a member being added.
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let adding = self.pending.iter().flatten();
        self.assignment
            .isr
            .iter()
            .chain(adding.filter(|id| !self.assignment.isr.contains(id)))
            .copied()
    }

    /// How far the furthest-behind live replica's known log end trails `leader_end`
    /// (a replica that has not fetched under this leadership counts from 0).
    pub fn max_follower_lag(&self, leader_end: i64) -> i64 {
        self.followers
            .values()
            .filter(|f| f.incarnation.is_some())
            .map(|f| leader_end - f.log_end_offset.unwrap_or(0))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Whether the committed ISR holds at least `min(min_isr, replicas)` members: below it,
    /// `acks=all` appends are refused and nothing commits.
    pub fn has_min_isr(&self, min_isr: usize) -> bool {
        self.assignment.isr.len() >= min_isr.min(self.assignment.replicas.len())
    }

    /// How far the high watermark may go when the leader's own copy is committed up to
    /// `leader_end`: the minimum over the maximal ISR, or `None` when it may not move.
    pub fn high_watermark(&self, leader_end: i64, min_isr: usize) -> Option<i64> {
        if !self.has_min_isr(min_isr) {
            return None;
        }
        let mut high_watermark = leader_end;
        for id in self.maximal_isr() {
            if id == self.me {
                continue;
            }
            high_watermark = high_watermark.min(self.followers.get(&id)?.log_end_offset?);
        }
        Some(high_watermark)
    }

    /// The ISR to propose, if it should change and nothing is in flight: caught-up
    /// followers join (their log end reaches the high watermark and this epoch's start);
    /// members not caught up within `lag_max_ms` leave.
    pub fn isr_change(
        &self,
        high_watermark: i64,
        leader_end: i64,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<IsrChange> {
        let resting = self
            .refused_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < REFUSAL_BACKOFF_MS);
        if self.pending.is_some() || resting {
            return None;
        }
        let caught_up = |id: &i32| {
            self.followers.get(id).is_some_and(|f| {
                f.log_end_offset == Some(leader_end)
                    || now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms
            })
        };
        let may_join = |f: &Follower| {
            f.incarnation.is_some()
                && f.log_end_offset
                    .is_some_and(|end| end >= high_watermark && end >= self.epoch_start_offset)
        };
        let mut isr: Vec<i32> = self
            .assignment
            .isr
            .iter()
            .copied()
            .filter(|id| *id == self.me || caught_up(id))
            .collect();
        for (id, follower) in &self.followers {
            if !isr.contains(id) && !self.assignment.isr.contains(id) && may_join(follower) {
                isr.push(*id);
            }
        }
        if !isr.contains(&self.me) {
            isr.insert(0, self.me);
        }
        (isr != self.assignment.isr).then_some(IsrChange {
            leader_epoch: self.assignment.leader_epoch,
            partition_epoch: self.assignment.partition_epoch,
            isr,
        })
    }

    /// Notes that `change` went to the quorum: until it is applied or refused, no other is
    /// proposed, and a member it adds already counts for the high watermark.
    pub fn proposed(&mut self, change: &IsrChange) {
        self.pending = Some(change.isr.clone());
    }

    /// The quorum refused the pending change (the metadata moved on): a check after the
    /// metadata moves, or a while after `now_ms`, decides again.
    pub fn refused(&mut self, now_ms: i64) {
        self.pending = None;
        self.refused_at_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 10_000;

    fn live(ids: &[i32]) -> BTreeMap<i32, Uuid> {
        ids.iter()
            .map(|&id| (id, Uuid::from_u128(u128::try_from(id).expect("positive"))))
            .collect()
    }

    fn assignment(isr: &[i32], partition_epoch: i32) -> Assignment {
        Assignment {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader_epoch: 5,
            partition_epoch,
            live: live(&[1, 2, 3]),
        }
    }

    fn leader(isr: &[i32], log_end: i64) -> LeaderState {
        LeaderState::new(1, assignment(isr, 9), log_end, 1_000)
    }

    #[test]
    fn the_high_watermark_is_the_least_log_end_over_the_isr_once_every_member_fetched() {
        let mut state = leader(&[1, 2, 3], 100);
        assert_eq!(
            state.high_watermark(120, 1),
            None,
            "no follower fetched yet"
        );
        state.record_fetch(2, 110, 120, 1_100).expect("replica");
        assert_eq!(state.high_watermark(120, 1), None, "3 has not fetched");
        state.record_fetch(3, 105, 120, 1_100).expect("replica");
        assert_eq!(state.high_watermark(120, 1), Some(105));
        state.record_fetch(3, 120, 120, 1_200).expect("replica");
        assert_eq!(
            state.high_watermark(115, 1),
            Some(110),
            "the leader's own end counts"
        );
        assert_eq!(state.record_fetch(4, 0, 120, 1_200), Err(NotAReplica));
    }

    #[test]
    fn nothing_commits_while_the_isr_is_below_min_insync_replicas() {
        let mut state = leader(&[1], 100);
        assert_eq!(
            state.high_watermark(120, 1),
            Some(120),
            "a lone leader commits alone"
        );
        assert_eq!(
            state.high_watermark(120, 2),
            None,
            "min ISR 2 needs a second member"
        );
        assert!(!state.has_min_isr(2));
        // A single-replica partition cannot have more, so min ISR is capped at its size.
        let single = LeaderState::new(
            1,
            Assignment {
                replicas: vec![1],
                isr: vec![1],
                leader_epoch: 0,
                partition_epoch: 0,
                live: live(&[1]),
            },
            0,
            0,
        );
        assert_eq!(single.high_watermark(7, 2), Some(7));
        state.record_fetch(2, 120, 120, 1_100).expect("replica");
        let change = state.isr_change(100, 120, 1_100, LAG).expect("2 joins");
        assert_eq!(change.isr, vec![1, 2]);
        state.proposed(&change);
        assert_eq!(
            state.high_watermark(120, 2),
            None,
            "a joining member counts for the minimum only once committed"
        );
    }

    #[test]
    fn a_follower_joins_once_it_holds_the_high_watermark_and_the_epoch_start() {
        let mut state = leader(&[1, 2], 100);
        state.record_fetch(2, 130, 130, 1_100).expect("replica");
        state.record_fetch(3, 90, 130, 1_100).expect("replica");
        assert_eq!(state.high_watermark(130, 1), Some(130));
        assert_eq!(state.isr_change(130, 130, 1_100, LAG), None, "3 is behind");
        state.record_fetch(3, 130, 130, 1_200).expect("replica");
        let change = state.isr_change(130, 130, 1_200, LAG).expect("3 joins");
        assert_eq!(
            change,
            IsrChange {
                leader_epoch: 5,
                partition_epoch: 9,
                isr: vec![1, 2, 3]
            }
        );
        state.proposed(&change);
        assert_eq!(
            state.isr_change(130, 130, 1_200, LAG),
            None,
            "one change in flight"
        );
        // A joining member holds the high watermark back as soon as it is proposed.
        state.record_fetch(2, 140, 140, 1_300).expect("replica");
        assert_eq!(state.high_watermark(140, 1), Some(130));
        // The applied change settles it.
        state.update(assignment(&[1, 2, 3], 10), 1_300);
        assert_eq!(state.isr_change(130, 140, 1_300, LAG), None);
    }

    #[test]
    fn a_follower_that_is_not_caught_up_within_the_lag_leaves_but_counts_until_it_has_left() {
        let mut state = leader(&[1, 2, 3], 100);
        state.record_fetch(2, 100, 100, 1_000).expect("replica");
        state.record_fetch(3, 100, 100, 1_000).expect("replica");
        // The leader takes appends; 2 keeps up, 3 stops fetching.
        for t in (2_000..=12_000).step_by(1_000) {
            let end = 100 + t / 100;
            state.record_fetch(2, end, end, t).expect("replica");
        }
        assert_eq!(
            state.isr_change(100, 220, 11_000, LAG),
            None,
            "3 is within the lag"
        );
        let change = state.isr_change(100, 220, 11_001, LAG).expect("3 leaves");
        assert_eq!(change.isr, vec![1, 2]);
        state.proposed(&change);
        assert_eq!(
            state.high_watermark(220, 1),
            Some(100),
            "until the removal commits, 3 still holds the high watermark"
        );
        state.update(assignment(&[1, 2], 10), 11_001);
        assert_eq!(state.high_watermark(220, 1), Some(220));
    }

    #[test]
    fn a_follower_fetching_what_the_leader_had_at_its_last_fetch_stays_caught_up() {
        let mut state = leader(&[1, 2], 0);
        // Each fetch reaches where the leader ended at the previous one, never the end itself.
        let mut leader_end = 10;
        state
            .record_fetch(2, 0, leader_end, 1_000)
            .expect("replica");
        for t in (2_000..60_000).step_by(1_000) {
            let fetch_offset = leader_end;
            leader_end += 10;
            state
                .record_fetch(2, fetch_offset, leader_end, t)
                .expect("replica");
        }
        assert_eq!(state.isr_change(0, leader_end, 60_000, LAG), None);
    }

    #[test]
    fn a_refused_change_is_decided_again_after_a_pause_or_a_metadata_change() {
        let mut state = leader(&[1, 2], 0);
        state.record_fetch(3, 0, 0, 1_000).expect("replica");
        let change = state.isr_change(0, 0, 1_000, LAG).expect("3 joins");
        state.proposed(&change);
        state.refused(1_000);
        assert_eq!(
            state.isr_change(0, 0, 1_500, LAG),
            None,
            "no storm of proposals"
        );
        assert_eq!(state.isr_change(0, 0, 2_000, LAG), Some(change.clone()));
        state.proposed(&change);
        state.refused(2_000);
        state.update(assignment(&[1, 2], 10), 2_001);
        assert!(
            state.isr_change(0, 0, 2_001, LAG).is_some(),
            "the metadata moved"
        );
    }

    #[test]
    fn a_fenced_or_restarted_follower_must_fetch_again_before_it_may_join() {
        let mut state = leader(&[1, 2], 100);
        state.record_fetch(3, 100, 100, 1_000).expect("replica");
        // Fenced: its progress is forgotten and it may not join.
        let mut fenced = assignment(&[1, 2], 9);
        fenced.live = live(&[1, 2]);
        state.update(fenced, 1_100);
        assert_eq!(state.isr_change(100, 100, 1_100, LAG), None);
        // Back as a new process (its disk may be empty): its old progress does not count.
        let mut restarted = assignment(&[1, 2], 9);
        restarted.live.insert(3, Uuid::from_u128(99));
        state.update(restarted, 1_200);
        assert_eq!(state.isr_change(100, 100, 1_200, LAG), None);
        state.record_fetch(3, 100, 100, 1_300).expect("replica");
        assert_eq!(
            state.isr_change(100, 100, 1_300, LAG).map(|c| c.isr),
            Some(vec![1, 2, 3])
        );
    }
}
