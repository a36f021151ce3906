//! The rules of metadata version 0, from before eligible leader replicas. A cluster applies
//! them until it moves to version 1 (see [`crate::UpgradeMetadata`]), so that every node
//! replaying the entries written under them reaches the state they gave, whichever snapshot
//! it started from. Per partition, for [`crate::MetadataState::apply`].

use std::collections::BTreeSet;

use crate::state::{NO_LEADER, PartitionRecord};

/// A fenced broker leaves the ISR unless it is its last member (which may lead again when it
/// returns); where it led, the first live ISR member leads.
pub(crate) fn fence(p: &mut PartitionRecord, fenced: i32, live: &BTreeSet<i32>) {
    let shrink = p.isr.contains(&fenced) && p.isr.len() > 1;
    if shrink {
        p.isr.retain(|&b| b != fenced);
    }
    let was_leader = p.leader == fenced;
    if was_leader {
        p.leader = p
            .isr
            .iter()
            .copied()
            .find(|b| live.contains(b))
            .unwrap_or(NO_LEADER);
        p.leader_epoch += 1;
    }
    if shrink || was_leader {
        p.partition_epoch += 1;
    }
}

/// A restarted broker leaves the ISR where another live member remains (which then leads
/// where it led), and stays where it is the last; every epoch it led under moves on.
pub(crate) fn forget_restarted(p: &mut PartitionRecord, broker_id: i32, live: &BTreeSet<i32>) {
    let successor = p.isr.iter().copied().find(|b| live.contains(b));
    let was_leader = p.leader == broker_id;
    let leaves = p.isr.contains(&broker_id) && successor.is_some();
    if leaves {
        p.isr.retain(|&b| b != broker_id);
        if was_leader {
            p.leader = successor.unwrap_or(NO_LEADER);
        }
    }
    if was_leader {
        p.leader_epoch += 1;
    }
    if leaves || was_leader {
        p.partition_epoch += 1;
    }
}

/// A returning broker leads an offline partition whose ISR holds it.
pub(crate) fn elect_returning(p: &mut PartitionRecord, broker_id: i32) {
    if p.leader == NO_LEADER && p.isr.contains(&broker_id) {
        p.leader = broker_id;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
    }
}

/// An unclean election: the first live replica leads, alone in the ISR unless it was in it.
/// Answers the leader; the caller moves the epochs on.
pub(crate) fn elect_unclean(p: &mut PartitionRecord, live: &BTreeSet<i32>) -> Option<i32> {
    let any = p.replicas.iter().copied().find(|b| live.contains(b))?;
    if !p.isr.contains(&any) {
        p.isr = vec![any];
    }
    p.leader = any;
    Some(any)
}
