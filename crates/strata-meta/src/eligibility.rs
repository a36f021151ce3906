//! Who may lead a partition: the ISR, and Kafka's Eligible Leader Replicas (KIP-966).
//!
//! A replica that leaves an ISR which is then smaller than `min.insync.replicas` still holds
//! every committed record: the leader stops the high watermark while the ISR is that small
//! (the strict rule of the broker's `leader_state`), so nothing commits after it left. It
//! joins the partition's ELR and may lead when no ISR member is live. It stays eligible while
//! it is down, and loses that only by coming back with a log that may have lost data (a
//! restart that was not clean), or once the ISR is back at min ISR, from when on the ISR
//! alone holds everything committed. The last ISR member leaves like any other, so an
//! offline partition has an empty ISR and its last members in the ELR.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::state::{MetadataState, NO_LEADER, PartitionRecord};

/// The setting that decides when the ELR fills.
pub(crate) const MIN_ISR: &str = "min.insync.replicas";
/// The setting that lets a partition with no eligible replica take any live one.
const UNCLEAN: &str = "unclean.leader.election.enable";

/// A topic's `min.insync.replicas`: its override, else the cluster-wide dynamic default, else
/// the proposer's `fallback`.
pub(crate) fn min_isr(
    topic: &BTreeMap<String, String>,
    cluster: &BTreeMap<String, String>,
    fallback: u32,
) -> u32 {
    topic
        .get(MIN_ISR)
        .or_else(|| cluster.get(MIN_ISR))
        .and_then(|value| value.parse().ok())
        .unwrap_or(fallback)
}

impl PartitionRecord {
    /// The ISR size below which the ELR fills: `min_isr`, capped at the replicas (as the
    /// leader caps it), and at least one.
    fn elr_threshold(&self, min_isr: u32) -> usize {
        usize::try_from(min_isr)
            .unwrap_or(usize::MAX)
            .min(self.replicas.len())
            .max(1)
    }

    /// Takes `broker` out of the ISR. It joins the ELR if the ISR is then below min ISR and
    /// it still holds what it held (`intact`); at or above min ISR the ELR empties.
    pub(crate) fn leave_isr(&mut self, broker: i32, min_isr: u32, intact: bool) {
        if !self.isr.contains(&broker) {
            return;
        }
        self.isr.retain(|&b| b != broker);
        if self.isr.len() >= self.elr_threshold(min_isr) {
            self.elr.clear();
        } else if intact && !self.elr.contains(&broker) {
            self.elr.push(broker);
        }
    }

    /// Replaces the ISR: members leaving join the ELR as in [`Self::leave_isr`] (the leader
    /// removes only live replicas, which hold what they fetched), members joining leave it,
    /// and it empties once the ISR is back at min ISR.
    pub(crate) fn replace_isr(&mut self, isr: Vec<i32>, min_isr: u32) {
        let leaving: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|b| !isr.contains(b))
            .collect();
        self.isr = isr;
        let threshold = self.elr_threshold(min_isr);
        if self.isr.len() < threshold {
            for broker in leaving {
                if !self.elr.contains(&broker) {
                    self.elr.push(broker);
                }
            }
        } else {
            self.elr.clear();
        }
        self.drop_ineligible();
    }

    /// `broker` came back without everything it held: it leaves the ISR and the ELR.
    pub(crate) fn forget_eligible(&mut self, broker: i32) {
        self.isr.retain(|&b| b != broker);
        self.elr.retain(|&b| b != broker);
    }

    /// Keeps the ELR disjoint from the ISR and within the replicas.
    pub(crate) fn drop_ineligible(&mut self) {
        let (isr, replicas) = (&self.isr, &self.replicas);
        self.elr
            .retain(|b| !isr.contains(b) && replicas.contains(b));
    }

    /// A live leader, if the partition has none: the first live ISR member, else the first
    /// live ELR member, which is then the whole ISR (the others stay eligible). Answers
    /// whether it elected one; the caller moves the epochs on.
    pub(crate) fn elect_eligible(&mut self, live: &BTreeSet<i32>) -> bool {
        if self.leader != NO_LEADER {
            return false;
        }
        if let Some(&leader) = self.isr.iter().find(|b| live.contains(b)) {
            self.leader = leader;
            return true;
        }
        let Some(&leader) = self.elr.iter().find(|b| live.contains(b)) else {
            return false;
        };
        self.leader = leader;
        self.isr = vec![leader];
        self.drop_ineligible();
        true
    }
}

impl MetadataState {
    /// The offline partitions an unclean election would revive: no live ISR or ELR member,
    /// but a live replica, in a topic whose `unclean.leader.election.enable` is true (its
    /// override, else the cluster-wide dynamic default, else `fallback`).
    pub fn unclean_election_candidates(&self, fallback: bool) -> Vec<(Uuid, i32)> {
        let live = self.live_broker_ids();
        let cluster = self.cluster_configs.get(UNCLEAN);
        self.topics
            .values()
            .filter(|topic| {
                topic
                    .configs
                    .get(UNCLEAN)
                    .or(cluster)
                    .map_or(fallback, |value| value == "true")
            })
            .flat_map(|topic| {
                let live = &live;
                topic
                    .partitions
                    .iter()
                    .zip(0..)
                    .filter(move |(p, _)| {
                        p.leader == NO_LEADER
                            && !p.isr.iter().chain(&p.elr).any(|b| live.contains(b))
                            && p.replicas.iter().any(|b| live.contains(b))
                    })
                    .map(|(_, index)| (topic.topic_id, index))
            })
            .collect()
    }
}
