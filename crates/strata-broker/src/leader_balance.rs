//! Kafka's automatic leader rebalance (`auto.leader.rebalance.enable`): leadership that moved
//! off a broker while it was down (or stopping) goes back to it once it is in sync again, so
//! leaders stay spread as placement spread them. Runs on every node with the controller role
//! and acts only on the quorum's leader, every `leader.imbalance.check.interval.seconds`:
//! where a broker leads fewer of its preferred partitions than
//! `leader.imbalance.per.broker.percentage` allows, preferred elections for those of them
//! it could lead now (see [`strata_meta::MetadataState::imbalanced_leaders`]).

use std::sync::Arc;

use strata_meta::{ElectLeaders, ElectionType, MetaCommand};
use strata_raft::Controller;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::ReplicationSettings;

/// Rebalances leadership until `shutdown`, if the settings ask for it.
pub fn spawn(
    controller: Arc<Controller>,
    settings: &ReplicationSettings,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if !settings.auto_leader_rebalance {
        return None;
    }
    let (interval, percent) = (
        settings.leader_imbalance_check_interval,
        settings.leader_imbalance_per_broker_percent,
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if controller.leader() != Some(controller.id) {
                continue;
            }
            let partitions = controller.state.read(|s| s.imbalanced_leaders(percent));
            if partitions.is_empty() {
                continue;
            }
            info!(
                partitions = partitions.len(),
                "moving leadership back to preferred replicas"
            );
            let elect = MetaCommand::ElectLeaders(ElectLeaders {
                election: ElectionType::Preferred,
                partitions,
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                written = controller.write(elect) => {
                    if let Err(e) = written {
                        debug!(error = %e, "leader rebalance not committed");
                    }
                }
            }
        }
    }))
}
