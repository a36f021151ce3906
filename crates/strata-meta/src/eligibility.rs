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
//!
//! The quorum and every leader must agree on each topic's min ISR, so from metadata version
//! [`crate::ELIGIBLE_LEADERS`] on it is set per topic or cluster-wide only (a broker's own
//! value is refused, and the cluster-wide one always exists), and changing it clears the
//! ELRs it governs: they were chosen under the old value. These are Kafka's rules too.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::state::{MetadataState, NO_LEADER, PartitionRecord};

/// The setting that decides when the ELR fills.
pub(crate) const MIN_ISR: &str = "min.insync.replicas";
/// The setting that lets a partition with no eligible replica take any live one.
const UNCLEAN: &str = "unclean.leader.election.enable";

/// A topic's `min.insync.replicas`: its override, else the cluster-wide setting (else
/// Kafka's default, 1, before the cluster had one).
pub(crate) fn min_isr(topic: &BTreeMap<String, String>, cluster: &BTreeMap<String, String>) -> u32 {
    topic
        .get(MIN_ISR)
        .or_else(|| cluster.get(MIN_ISR))
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

/// A broker fenced: it leaves the ISR, even as its last member, staying eligible (in the
/// ELR) if the ISR is left below min ISR; where it led, an eligible live replica leads.
pub(crate) fn fence(p: &mut PartitionRecord, fenced: i32, min_isr: u32, live: &BTreeSet<i32>) {
    let in_isr = p.isr.contains(&fenced);
    p.leave_isr(fenced, min_isr);
    let was_leader = p.leader == fenced;
    if was_leader {
        p.leader = NO_LEADER;
        p.elect_eligible(live);
        p.leader_epoch += 1;
    }
    if in_isr || was_leader {
        p.partition_epoch += 1;
    }
}

/// A broker came back as a new process (`live` are the others). The old one may still be
/// finishing writes under its leader epochs: every epoch it led under moves on, so those
/// writes are refused.
///
/// With an `intact` log it holds all it held: it leaves the ISR if another live member
/// remains (staying eligible if that leaves the ISR below min ISR) and rejoins once it has
/// fetched again; as the last live member it stays and leads.
///
/// Without, it may have lost what was not on stable storage, so it leaves the ISR and the
/// ELR if another replica is eligible. If none is it stays: nobody is known to hold more,
/// and an offline partition would not bring back what was lost.
pub(crate) fn forget_restarted(
    p: &mut PartitionRecord,
    broker_id: i32,
    intact: bool,
    min_isr: u32,
    live: &BTreeSet<i32>,
) {
    let (isr, elr) = (p.isr.len(), p.elr.len());
    if intact {
        if p.isr.iter().any(|b| live.contains(b)) {
            p.leave_isr(broker_id, min_isr);
        }
    } else if p.isr.iter().chain(&p.elr).any(|&b| b != broker_id) {
        p.forget_eligible(broker_id);
    }
    let was_leader = p.leader == broker_id;
    if was_leader {
        if !p.isr.contains(&broker_id) {
            p.leader = NO_LEADER;
            p.elect_eligible(live);
        }
        p.leader_epoch += 1;
    }
    if was_leader || (isr, elr) != (p.isr.len(), p.elr.len()) {
        p.partition_epoch += 1;
    }
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

    /// Takes `broker`, which holds what it held, out of the ISR. It joins the ELR if the ISR
    /// is then below min ISR; at or above min ISR the ELR empties.
    fn leave_isr(&mut self, broker: i32, min_isr: u32) {
        if self.isr.contains(&broker) {
            let isr = self.isr.iter().copied().filter(|&b| b != broker).collect();
            self.replace_isr(isr, min_isr);
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

    /// Empties the ELR (its members were chosen under a min ISR that changed).
    pub(crate) fn clear_elr(&mut self) {
        if !self.elr.is_empty() {
            self.elr.clear();
            self.partition_epoch += 1;
        }
    }

    /// `broker` came back without everything it held: it leaves the ISR and the ELR.
    fn forget_eligible(&mut self, broker: i32) {
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
