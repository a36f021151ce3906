//! Where new partitions go: rack-aware round robin over the live brokers, as Kafka places
//! them when no assignment is given.
//!
//! The live brokers are ordered so that racks alternate (the first broker of each rack, then
//! the second of each, ...); partition `p`'s replicas are the `replication_factor` brokers
//! starting at position `start + p` of that order. Consecutive positions are on different
//! racks whenever racks hold similar numbers of brokers, so a partition's replicas spread over
//! racks, and its leaders (first replicas) spread over brokers. `start` is the proposer's
//! choice (Kafka picks it at random) so that placement stays out of the state machine.

use std::collections::BTreeMap;

use crate::error::MetaError;
use crate::state::MetadataState;

impl MetadataState {
    /// Replica lists for `count` new partitions with `replication_factor` replicas each.
    pub fn place_partitions(
        &self,
        count: usize,
        replication_factor: usize,
        start: usize,
    ) -> Result<Vec<Vec<i32>>, MetaError> {
        let order = rack_alternating_order(self);
        if replication_factor == 0 {
            return Err(MetaError::InvalidReplicationFactor {
                reason: "the replication factor must be at least 1".into(),
            });
        }
        if replication_factor > order.len() {
            return Err(MetaError::InvalidReplicationFactor {
                reason: format!(
                    "replication factor {replication_factor} is larger than the {} live brokers",
                    order.len()
                ),
            });
        }
        Ok((0..count)
            .map(|p| {
                (0..replication_factor)
                    .map(|r| order[(start + p + r) % order.len()])
                    .collect()
            })
            .collect())
    }
}

impl MetadataState {
    /// Kafka's automatic leader rebalance: for every live broker whose share of the
    /// partitions it should lead (those listing it first) but does not exceeds
    /// `imbalance_percent`, those of them it could lead now (it is in their ISR).
    pub fn imbalanced_leaders(&self, imbalance_percent: u32) -> Vec<(uuid::Uuid, i32)> {
        let live = self.live_broker_ids();
        let mut preferred: BTreeMap<i32, (usize, Vec<(uuid::Uuid, i32)>)> = BTreeMap::new();
        for topic in self.topics() {
            for (p, index) in topic.partitions.iter().zip(0..) {
                let Some(&first) = p.replicas.first() else {
                    continue;
                };
                let entry = preferred.entry(first).or_default();
                entry.0 += 1;
                if p.leader != first && p.isr.contains(&first) {
                    entry.1.push((topic.topic_id, index));
                }
            }
        }
        preferred
            .into_iter()
            .filter(|(broker, (total, movable))| {
                live.contains(broker) && movable.len() * 100 > *total * imbalance_percent as usize
            })
            .flat_map(|(_, (_, movable))| movable)
            .collect()
    }
}

/// Live broker ids with racks alternating; brokers without a rack form one rack of their own.
fn rack_alternating_order(state: &MetadataState) -> Vec<i32> {
    let mut racks: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for broker in state.live_brokers() {
        racks
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker.broker_id);
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}
