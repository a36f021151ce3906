//! Moving a partition's replicas: Kafka's reassignments (KIP-455).
//!
//! A move adds the target's new replicas to the partition at once, so their brokers start
//! following its leader, which admits each to the ISR once it has caught up (AlterPartition).
//! The move completes as soon as the ISR, leaving out the replicas that go, still has a
//! member and holds every new one: the leaving replicas are then dropped, and leadership
//! moves if its holder was one of them. A new replica copies only the hot tail above the
//! tiered log, so a move lasts as long as that copy, whatever the partition retains.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::command::{PartitionReassignment, ReassignPartitions};
use crate::error::MetaError;
use crate::state::{MetadataState, NO_LEADER, PartitionRecord, Reassignment};

impl MetadataState {
    /// Starts, replaces or cancels each named partition's move, each judged on its own.
    pub(crate) fn reassign_partitions(
        &mut self,
        c: &ReassignPartitions,
    ) -> Vec<Result<(), MetaError>> {
        c.partitions
            .iter()
            .map(|r| self.reassign(r, c.allow_replication_factor_change))
            .collect()
    }

    /// A new move replaces one in progress: it starts from the replicas that one started
    /// from, and from the ISR without the members that one added.
    fn reassign(
        &mut self,
        r: &PartitionReassignment,
        allow_rf_change: bool,
    ) -> Result<(), MetaError> {
        let p = self.known_partition(r.topic_id, r.partition)?;
        let moving = self.reassignment(r.topic_id, r.partition);
        let original = moving.map_or_else(|| p.replicas.clone(), |m| m.original.clone());
        let target = match &r.target {
            None if moving.is_none() => {
                return Err(MetaError::NoReassignmentInProgress {
                    topic_id: r.topic_id,
                    partition: r.partition,
                });
            }
            None => original.clone(),
            Some(target) => {
                self.check_replica_list(target)
                    .map_err(|reason| MetaError::InvalidReplicaAssignment { reason })?;
                if !allow_rf_change && target.len() != original.len() {
                    return Err(MetaError::InvalidReplicationFactor {
                        reason: format!(
                            "the partition has {} replicas, the target {} and the request does not allow a change",
                            original.len(),
                            target.len()
                        ),
                    });
                }
                target.clone()
            }
        };
        let isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|b| original.contains(b))
            .collect();
        // An offline partition (its ISR already empty) may still be moved.
        if isr.is_empty() && !p.isr.is_empty() {
            return Err(MetaError::InvalidReplicaAssignment {
                reason: "undoing the move in progress would leave the ISR empty".into(),
            });
        }
        let moving = Reassignment { original, target };
        let replicas: Vec<i32> = moving
            .target
            .iter()
            .copied()
            .chain(moving.removing())
            .collect();
        let live = self.live_broker_ids();
        self.for_partition_mut(r.topic_id, r.partition, |p| {
            if p.replicas != replicas || p.isr != isr {
                p.replicas = replicas;
                p.isr = isr;
                p.drop_ineligible();
                lead_from_isr(p, &live);
                p.partition_epoch += 1;
            }
        });
        let moves = self.reassignments.entry(r.topic_id).or_default();
        moves.insert(r.partition, moving);
        self.complete_reassignment_if_ready(r.topic_id, r.partition);
        Ok(())
    }

    /// Completes a partition's move once its ISR allows it (see the module's comment).
    pub(crate) fn complete_reassignment_if_ready(&mut self, topic_id: Uuid, partition: i32) {
        let Some(moving) = self.reassignment(topic_id, partition) else {
            return;
        };
        let Ok(p) = self.known_partition(topic_id, partition) else {
            return;
        };
        let removing = moving.removing();
        let isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|b| !removing.contains(b))
            .collect();
        if isr.is_empty() || !moving.adding().iter().all(|b| isr.contains(b)) {
            return;
        }
        let target = moving.target.clone();
        let live = self.live_broker_ids();
        self.for_partition_mut(topic_id, partition, |p| {
            if p.replicas != target || p.isr != isr {
                p.replicas = target;
                p.isr = isr;
                p.drop_ineligible();
                lead_from_isr(p, &live);
                p.partition_epoch += 1;
            }
        });
        if let Some(moves) = self.reassignments.get_mut(&topic_id) {
            moves.remove(&partition);
            if moves.is_empty() {
                self.reassignments.remove(&topic_id);
            }
        }
    }
}

/// Keeps a leader that is still in the ISR; otherwise elects the first replica that is in
/// the ISR and live, or none.
fn lead_from_isr(p: &mut PartitionRecord, live: &BTreeSet<i32>) {
    if p.leader != NO_LEADER && p.isr.contains(&p.leader) {
        return;
    }
    let leader = p
        .replicas
        .iter()
        .copied()
        .find(|b| p.isr.contains(b) && live.contains(b))
        .unwrap_or(NO_LEADER);
    if leader != p.leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
}
