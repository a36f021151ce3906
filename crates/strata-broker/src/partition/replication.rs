//! A partition's part in replication: as the leader, answering a follower's fetch (checking
//! its log against the leader's epochs, recording its progress, deciding ISR changes); as a
//! follower, storing the leader's batches as they are, taking the leader's high watermark,
//! and cutting a divergent tail.
//!
//! Crash: a follower's appends are ordinary log appends (recovery cuts a torn tail); its
//! producer state is rebuilt from the log after a truncation exactly as after a restart.

use strata_log::ValidatedBatch;

use super::{Partition, PartitionState, Serving, appended_range, load_producers};
use crate::error::BrokerError;
use crate::leader_state::{IsrChange, NotAReplica};
use crate::producer_state::ProducerBatch;

/// How a leader answers a follower's fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerFetch {
    /// The follower's log diverged from the leader's after `end_offset` of `epoch`
    /// (Kafka's DivergingEpoch): it truncates there and fetches again.
    Diverging { epoch: i32, end_offset: i64 },
    /// Its progress is recorded; read from the fetch offset. `isr_change` is one to take to
    /// the quorum (it is already marked in flight).
    Read { isr_change: Option<IsrChange> },
}

/// A partition's replication health as this broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationStatus {
    Leader {
        isr: usize,
        replicas: usize,
        /// The ISR is below `min.insync.replicas` (capped at the replicas).
        under_min_isr: bool,
        /// Offsets the furthest-behind live follower trails the log end by.
        max_follower_lag: i64,
    },
    /// Offsets this follower's log trails the high watermark its leader last reported.
    Follower {
        lag: i64,
    },
    Inactive,
}

/// Where a follower's log stands, for its next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    pub log_end_offset: i64,
    /// The epoch of its last batch (KIP-595's LastFetchedEpoch), -1 for an empty log.
    pub last_fetched_epoch: i32,
}

impl PartitionState {
    /// Where the log of a fetcher at `fetch_offset`, whose last batch was of
    /// `last_fetched_epoch`, left this one, as Kafka decides it: this log has no such epoch
    /// (the answer names the latest epoch below it), or that epoch ends here before the
    /// fetch offset. `None` when it did not, or the fetcher named no epoch.
    fn divergence(&self, fetch_offset: i64, last_fetched_epoch: i32) -> Option<(i32, i64)> {
        if last_fetched_epoch < 0 {
            return None;
        }
        let (epoch, end_offset) = self.log.end_offset_for_epoch(last_fetched_epoch);
        (epoch != last_fetched_epoch || end_offset < fetch_offset).then_some((epoch, end_offset))
    }

    /// Refuses a follower's step taken for another leadership than the current one (a fetch
    /// answered before a role change must not land after it), or on an offline partition.
    fn check_following(&self, leader_epoch: i32) -> Result<(), BrokerError> {
        self.check_online()?;
        match self.following() {
            Some((_, epoch)) if epoch == leader_epoch => Ok(()),
            _ => Err(BrokerError::NotLeaderOrFollower),
        }
    }

    /// The epoch and leader this broker follows the partition under, if it follows it.
    fn following(&self) -> Option<(i32, i32)> {
        match self.serving {
            Serving::Follower {
                leader,
                leader_epoch,
            } => Some((leader, leader_epoch)),
            Serving::Inactive | Serving::Leader(_) => None,
        }
    }
}

impl Partition {
    /// Where a fetcher's log diverged from this one, if it did (see
    /// [`PartitionState::divergence`]).
    pub fn divergence(&self, fetch_offset: i64, last_fetched_epoch: i32) -> Option<(i32, i64)> {
        // Most consumers name no epoch: their fetches need not take the lock for this.
        if last_fetched_epoch < 0 {
            return None;
        }
        self.lock().divergence(fetch_offset, last_fetched_epoch)
    }

    /// The leader's side of a follower's fetch from `fetch_offset`, whose last batch was of
    /// `last_fetched_epoch`: finds where its log diverged, or records its progress, moves
    /// the high watermark, and decides whether the ISR should change (members not caught up
    /// within `lag_max_ms` leave; caught-up replicas join).
    pub fn follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Result<FollowerFetch, BrokerError> {
        let mut state = self.lock();
        state.check_online()?;
        let log_end_offset = state.log.log_end_offset();
        if let Some((epoch, end_offset)) = state.divergence(fetch_offset, last_fetched_epoch) {
            return Ok(FollowerFetch::Diverging { epoch, end_offset });
        }
        let log_start_offset = state.log.log_start_offset();
        if fetch_offset > log_end_offset || fetch_offset < log_start_offset {
            return Err(BrokerError::from(strata_log::LogError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start_offset,
                log_end_offset,
            }));
        }
        let Serving::Leader(leader) = &mut state.serving else {
            return Err(BrokerError::NotLeaderOrFollower);
        };
        leader
            .record_fetch(replica, fetch_offset, log_end_offset, now_ms)
            .map_err(|NotAReplica| BrokerError::NotLeaderOrFollower)?;
        let moved = state.advance_high_watermark();
        let isr_change = Self::decide_isr_change(&mut state, now_ms, lag_max_ms);
        let high_watermark = state.high_watermark;
        drop(state);
        if moved {
            self.high_watermark.send_replace(high_watermark);
        }
        Ok(FollowerFetch::Read { isr_change })
    }

    /// The ISR change this leader should propose now, if any (the periodic shrink check).
    pub fn check_isr(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        Self::decide_isr_change(&mut self.lock(), now_ms, lag_max_ms)
    }

    fn decide_isr_change(
        state: &mut PartitionState,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<IsrChange> {
        let (high_watermark, log_end_offset) = (state.high_watermark, state.log.log_end_offset());
        let Serving::Leader(leader) = &mut state.serving else {
            return None;
        };
        let change = leader.isr_change(high_watermark, log_end_offset, now_ms, lag_max_ms)?;
        leader.proposed(&change);
        Some(change)
    }

    /// The quorum refused `change` (this leader's view was outdated): forget it, so the next
    /// check decides again.
    pub fn isr_change_refused(&self, change: &IsrChange, now_ms: i64) {
        if let Serving::Leader(leader) = &mut self.lock().serving
            && leader.leader_epoch() == change.leader_epoch
        {
            leader.refused(now_ms);
        }
    }

    /// How this partition's replication stands.
    pub fn replication_status(&self) -> ReplicationStatus {
        let state = self.lock();
        let log_end_offset = state.log.log_end_offset();
        match &state.serving {
            Serving::Leader(leader) => ReplicationStatus::Leader {
                isr: leader.assignment().isr.len(),
                replicas: leader.assignment().replicas.len(),
                under_min_isr: !leader.has_min_isr(state.min_isr),
                max_follower_lag: leader.max_follower_lag(log_end_offset),
            },
            Serving::Follower { .. } => ReplicationStatus::Follower {
                lag: (state.leader_high_watermark - log_end_offset).max(0),
            },
            Serving::Inactive => ReplicationStatus::Inactive,
        }
    }

    /// The leader this broker follows the partition from, and its epoch, if it follows it.
    pub fn followed_leader(&self) -> Option<(i32, i32)> {
        self.lock().following()
    }

    /// The leader answered OFFSET_OUT_OF_RANGE to this follower's fetch. If the leader's
    /// log starts past this one's end (retention deleted what it would fetch next, or it is
    /// in the object store), this log restarts there, empty; if it ends past the leader's
    /// high watermark with no epoch to tell where it diverged, it is cut back to it.
    pub fn follower_out_of_range(
        &self,
        leader_epoch: i32,
        leader_log_start: i64,
        leader_high_watermark: i64,
    ) -> Result<(), BrokerError> {
        let mut state = self.lock();
        state.check_following(leader_epoch)?;
        let log_end_offset = state.log.log_end_offset();
        if log_end_offset < leader_log_start {
            let tiered_end = state.remote.tiered.map_or(i64::MIN, |t| t.end);
            let restart_at = leader_log_start.max(tiered_end);
            let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            let skipped = state.log.skip_to(restart_at, now_ms);
            state.note_sync_failure(skipped)?;
            // What was skipped is not here to replay; the producers it held are forgotten,
            // as Kafka's follower forgets them when it restarts its log at the leader's start.
            state.producers = load_producers(&state.log)?;
            state.local_end = restart_at;
            state.high_watermark = restart_at;
            tracing::warn!(topic = %self.topic, partition = self.index, restart_at, "the follower's log restarts where the leader's starts");
        } else if leader_high_watermark >= 0 && log_end_offset > leader_high_watermark {
            drop(state);
            return self.truncate_as_follower(leader_epoch, leader_high_watermark);
        } else {
            return Err(BrokerError::from(strata_log::LogError::OffsetOutOfRange {
                requested: log_end_offset,
                log_start_offset: leader_log_start,
                log_end_offset: leader_high_watermark,
            }));
        }
        let (log_end_offset, high_watermark) = (state.log.log_end_offset(), state.high_watermark);
        drop(state);
        self.log_end.send_replace(log_end_offset);
        self.high_watermark.send_replace(high_watermark);
        Ok(())
    }

    /// Where this follower's log stands, if it follows the partition under `leader_epoch`.
    pub fn follower_position(&self, leader_epoch: i32) -> Result<FollowerPosition, BrokerError> {
        let state = self.lock();
        state.check_following(leader_epoch)?;
        Ok(FollowerPosition {
            log_end_offset: state.log.log_end_offset(),
            last_fetched_epoch: state.log.latest_epoch().unwrap_or(-1),
        })
    }

    /// Stores batches fetched from the leader of `leader_epoch` at their own offsets and
    /// takes the leader's high watermark (bounded by what this copy holds). Refused if this
    /// broker no longer follows that leadership: a fetch answered before a role change must
    /// not land after it.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        batches: &[ValidatedBatch],
        leader_high_watermark: i64,
        now_ms: i64,
        commits_on_append: bool,
    ) -> Result<(), BrokerError> {
        let mut state = self.lock();
        state.check_following(leader_epoch)?;
        for batch in batches {
            let active_before = state.log.active_base_offset();
            let appended = state.log.append_replicated(batch, now_ms);
            state.note_sync_failure(appended)?;
            state.snapshot_producers_if_rolled(active_before);
            if let Some(producer) = ProducerBatch::from_header(batch.header()) {
                state
                    .producers
                    .record(producer, appended_range(batch.header()), now_ms);
            }
        }
        let log_end_offset = state.log.log_end_offset();
        if commits_on_append {
            state.local_end = log_end_offset;
        }
        state.leader_high_watermark = leader_high_watermark;
        let high_watermark = leader_high_watermark.min(log_end_offset);
        let moved = high_watermark != state.high_watermark;
        state.high_watermark = high_watermark;
        drop(state);
        self.log_end.send_replace(log_end_offset);
        if moved {
            self.high_watermark.send_replace(high_watermark);
        }
        Ok(())
    }

    /// Cuts this follower's log back to `offset` (its tail diverged from the leader's), with
    /// the producer state of what is cut.
    pub fn truncate_as_follower(&self, leader_epoch: i32, offset: i64) -> Result<(), BrokerError> {
        let mut state = self.lock();
        state.check_following(leader_epoch)?;
        if offset >= state.log.log_end_offset() {
            return Ok(());
        }
        let truncated = state.log.truncate_to(offset);
        state.note_sync_failure(truncated)?;
        state.producers = load_producers(&state.log)?;
        let log_end_offset = state.log.log_end_offset();
        state.local_end = state.local_end.min(log_end_offset);
        state.high_watermark = state.high_watermark.min(log_end_offset);
        tracing::warn!(topic = %self.topic, partition = self.index, log_end_offset, "truncated a divergent tail");
        let high_watermark = state.high_watermark;
        drop(state);
        self.log_end.send_replace(log_end_offset);
        self.high_watermark.send_replace(high_watermark);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_log::test_util::{batch, limits, record};
    use strata_log::{Compression, validate_produce_batch, validate_replicated_batches};

    use super::*;
    use crate::config::TopicConfig;
    use crate::leader_state::Assignment;
    use crate::partition::{ReadBound, Role, test_files};

    fn replica(dir: &std::path::Path, node_id: i32) -> Partition {
        Partition::open(
            "t".into(),
            0,
            dir,
            &TopicConfig::builtin(),
            test_files(),
            node_id,
        )
        .expect("open")
    }

    fn live_both() -> std::collections::BTreeMap<i32, uuid::Uuid> {
        [(1, uuid::Uuid::from_u128(1)), (2, uuid::Uuid::from_u128(2))].into()
    }

    fn lead(partition: &Partition, leader_epoch: i32, isr: &[i32]) {
        partition.set_role(
            &Role::Leader(Assignment {
                replicas: vec![1, 2],
                isr: isr.to_vec(),
                leader_epoch,
                partition_epoch: 0,
                live: live_both(),
            }),
            0,
        );
    }

    fn follow(partition: &Partition, leader_epoch: i32) {
        partition.set_role(
            &Role::Follower {
                leader: 1,
                leader_epoch,
            },
            0,
        );
    }

    fn produce(partition: &Partition, value: &str) {
        let records = batch(&[record(value)], Compression::None, 0);
        let batch = validate_produce_batch(records, &limits()).expect("valid");
        let outcome = partition.append(&batch, 0, false).expect("append");
        partition.commit_local(outcome.range.last_offset + 1);
    }

    /// One fetch round: the follower asks from where its log stands, the leader answers.
    fn replicate(leader: &Partition, follower: &Partition, leader_epoch: i32) -> FollowerFetch {
        let at = follower.follower_position(leader_epoch).expect("follows");
        let answer = leader
            .follower_fetch(2, at.log_end_offset, at.last_fetched_epoch, 0, 30_000)
            .expect("fetch");
        match &answer {
            FollowerFetch::Diverging { end_offset, .. } => follower
                .truncate_as_follower(leader_epoch, *end_offset)
                .expect("truncate"),
            FollowerFetch::Read { .. } => {
                let records = leader
                    .read(at.log_end_offset, ReadBound::LogEnd, 1 << 20, true)
                    .expect("read");
                let batches = validate_replicated_batches(&records).expect("valid");
                let high_watermark = leader.offsets().high_watermark;
                follower
                    .append_as_follower(leader_epoch, &batches, high_watermark, 0, true)
                    .expect("append");
            }
        }
        answer
    }

    #[test]
    fn the_leader_commits_what_its_isr_follower_copied_and_the_follower_learns_it() {
        let (a, b) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let (leader, follower) = (replica(a.path(), 1), replica(b.path(), 2));
        lead(&leader, 1, &[1, 2]);
        follow(&follower, 1);
        produce(&leader, "a");
        produce(&leader, "b");
        assert_eq!(
            leader.offsets().high_watermark,
            0,
            "the follower has nothing yet"
        );
        assert!(matches!(
            replicate(&leader, &follower, 1),
            FollowerFetch::Read { isr_change: None }
        ));
        assert_eq!(follower.offsets().log_end_offset, 2);
        assert_eq!(
            leader.offsets().high_watermark,
            0,
            "its fetch from 0 proves nothing"
        );
        assert_eq!(
            leader.replication_status(),
            ReplicationStatus::Leader {
                isr: 2,
                replicas: 2,
                under_min_isr: false,
                max_follower_lag: 2
            }
        );
        replicate(&leader, &follower, 1);
        assert_eq!(
            follower.replication_status(),
            ReplicationStatus::Follower { lag: 0 }
        );
        assert_eq!(
            leader.offsets().high_watermark,
            2,
            "its fetch from 2 proves it has both"
        );
        assert_eq!(follower.offsets().high_watermark, 2);
        assert_eq!(
            follower
                .read(0, ReadBound::HighWatermark, 1 << 20, true)
                .expect("read"),
            leader
                .read(0, ReadBound::HighWatermark, 1 << 20, true)
                .expect("read"),
            "the copy is byte for byte"
        );
        // A stale fetch answer cannot land once the follower moved to a newer epoch.
        follow(&follower, 2);
        assert!(matches!(
            follower.append_as_follower(1, &[], 2, 0, true),
            Err(BrokerError::NotLeaderOrFollower)
        ));
    }

    #[test]
    fn a_follower_with_a_divergent_tail_is_cut_back_to_where_the_leaders_epoch_ended() {
        let (a, b) = (
            tempfile::tempdir().expect("t"),
            tempfile::tempdir().expect("t"),
        );
        let (old_leader, new_leader) = (replica(a.path(), 2), replica(b.path(), 1));
        // Both hold offsets 0..2 of epoch 1; then broker 2 led epoch 2 alone for a while and
        // wrote offsets 2..5 that nobody copied.
        lead(&new_leader, 1, &[1]);
        produce(&new_leader, "a");
        produce(&new_leader, "b");
        follow(&old_leader, 1);
        replicate(&new_leader, &old_leader, 1);
        old_leader.set_role(
            &Role::Leader(Assignment {
                replicas: vec![1, 2],
                isr: vec![2],
                leader_epoch: 2,
                partition_epoch: 1,
                live: live_both(),
            }),
            0,
        );
        for value in ["x", "y", "z"] {
            produce(&old_leader, value);
        }
        // Broker 1 leads epoch 3 and writes its own offset 2.
        follow(&new_leader, 1);
        lead(&new_leader, 3, &[1, 2]);
        produce(&new_leader, "c");
        follow(&old_leader, 3);
        assert_eq!(
            replicate(&new_leader, &old_leader, 3),
            FollowerFetch::Diverging {
                epoch: 1,
                end_offset: 2
            }
        );
        assert_eq!(
            old_leader.offsets().log_end_offset,
            2,
            "epoch 2's tail is cut"
        );
        replicate(&new_leader, &old_leader, 3);
        replicate(&new_leader, &old_leader, 3);
        assert_eq!(old_leader.offsets().log_end_offset, 3);
        assert_eq!(
            old_leader
                .read(0, ReadBound::LogEnd, 1 << 20, true)
                .expect("read"),
            new_leader
                .read(0, ReadBound::LogEnd, 1 << 20, true)
                .expect("read"),
        );
        assert_eq!(old_leader.end_offset_for_epoch(3).expect("epochs"), (3, 3));
        assert_eq!(old_leader.end_offset_for_epoch(2).expect("epochs"), (1, 2));
    }

    #[test]
    fn a_fetch_from_a_broker_that_is_not_a_replica_is_refused() {
        let a = tempfile::tempdir().expect("t");
        let leader = Arc::new(replica(a.path(), 1));
        lead(&leader, 1, &[1]);
        assert!(matches!(
            leader.follower_fetch(7, 0, -1, 0, 30_000),
            Err(BrokerError::NotLeaderOrFollower)
        ));
        assert!(matches!(
            leader.follower_fetch(2, 5, -1, 0, 30_000),
            Err(BrokerError::Log(_))
        ));
    }
}
