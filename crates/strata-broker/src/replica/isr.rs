//! Carrying a leader's ISR changes to the metadata quorum. The partition decides (see
//! [`crate::leader_state`]) and marks the change in flight; this sends it as an
//! AlterPartition command and, if the quorum refuses it, lets the partition decide again.
//! The change takes effect when the reconciler hands the partition the metadata it produced.

use std::sync::Arc;

use futures::future::BoxFuture;
use strata_meta::{AlterPartition, MetaCommand};
use tracing::{info, warn};

use super::ReplicaManager;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::leader_state::IsrChange;
use crate::partition::{Partition, ReplicationStatus};

/// Where ISR changes are decided: the metadata quorum, or a stand-in in tests.
pub trait IsrWriter: Send + Sync {
    fn alter_partition(
        &self,
        change: AlterPartition,
    ) -> BoxFuture<'static, Result<(), BrokerError>>;
}

impl IsrWriter for MetadataView {
    fn alter_partition(
        &self,
        change: AlterPartition,
    ) -> BoxFuture<'static, Result<(), BrokerError>> {
        let view = self.clone();
        Box::pin(async move {
            view.propose(MetaCommand::AlterPartition(change))
                .await
                .map(|_| ())
        })
    }
}

impl ReplicaManager {
    /// Sends `change` of `partition` to the quorum in the background.
    pub(super) fn propose_isr_change(
        &self,
        topic_id: uuid::Uuid,
        partition: Arc<Partition>,
        change: IsrChange,
    ) {
        let command = AlterPartition {
            topic_id,
            partition: partition.index,
            leader_id: self.node_id,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            isr: change.isr.clone(),
        };
        let writer = self.isr_writer.clone();
        let metrics = self.metrics.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            match writer.alter_partition(command).await {
                Ok(()) => {
                    metrics.replication.isr_changes.inc();
                    info!(topic = %partition.topic, partition = partition.index, isr = ?change.isr, "ISR changed");
                }
                Err(e) => {
                    metrics.replication.isr_changes_refused.inc();
                    warn!(topic = %partition.topic, partition = partition.index, isr = ?change.isr, error = %e, "the quorum refused an ISR change; deciding again");
                    partition.isr_change_refused(&change, clock.now_ms());
                }
            }
        });
    }

    /// Sets the replication gauges from every hosted partition.
    pub fn report_replication(&self) {
        let (mut led, mut under_replicated, mut under_min_isr, mut followed) = (0, 0, 0, 0);
        let (mut follower_lag, mut own_lag) = (0, 0);
        for topic in self.topics.all() {
            for partition in topic.partitions.values() {
                match partition.replication_status() {
                    ReplicationStatus::Leader {
                        isr,
                        replicas,
                        under_min_isr: below,
                        max_follower_lag,
                    } => {
                        led += 1;
                        under_replicated += i64::from(isr < replicas);
                        under_min_isr += i64::from(below);
                        follower_lag = follower_lag.max(max_follower_lag);
                    }
                    ReplicationStatus::Follower { lag } => {
                        followed += 1;
                        own_lag = own_lag.max(lag);
                    }
                    ReplicationStatus::Inactive => {}
                }
            }
        }
        let metrics = &self.metrics.replication;
        metrics.led_partitions.set(led);
        metrics.under_replicated_partitions.set(under_replicated);
        metrics.under_min_isr_partitions.set(under_min_isr);
        metrics.followed_partitions.set(followed);
        metrics.max_follower_lag_records.set(follower_lag);
        metrics.max_lag_behind_leader_records.set(own_lag);
    }

    /// Kafka's periodic ISR check: every partition led here drops the members that are not
    /// caught up within `replica.lag.time.max.ms`.
    pub fn check_isrs(&self) {
        let now_ms = self.clock.now_ms();
        for topic in self.topics.all() {
            for partition in topic.partitions.values() {
                if let Some(change) = partition.check_isr(now_ms, self.lag_time_max_ms) {
                    self.propose_isr_change(topic.id, partition.clone(), change);
                }
            }
        }
    }
}
