//! What the quorum's leader decides every second from the metadata alone. Runs on every
//! node with the controller role and acts only on the leader.
//!
//! - **Newer metadata rules.** Once every registered broker applies this build's metadata
//!   version (see [`strata_meta::METADATA_VERSION`]), the cluster moves to it: a new cluster
//!   at once, an upgraded one when the last broker has restarted on the new build.
//! - **Unclean elections** (Kafka's `unclean.leader.election.enable`): a partition left with
//!   no live replica eligible to lead (none in its ISR or ELR) takes any live replica,
//!   losing the committed records that replica lacks. Off by default; the topic's setting
//!   decides, then the cluster-wide dynamic default, then this node's own configuration.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use strata_meta::{
    CommandOutcome, ElectLeaders, Election, ElectionType, METADATA_VERSION, MetaCommand,
    UpgradeMetadata,
};
use strata_raft::Controller;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the quorum leader looks.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// This node's static settings the chores fall back on.
#[derive(Debug, Clone, Copy)]
pub struct StaticSettings {
    /// Becomes the cluster's `min.insync.replicas`, if it has none, with eligible leader
    /// replicas.
    pub min_insync_replicas: u32,
    pub unclean_leader_election: bool,
}

/// Runs the chores until `shutdown`.
pub fn spawn(
    controller: Arc<Controller>,
    settings: StaticSettings,
    unclean_elections: Counter,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        crate::periodic::every(CHECK_INTERVAL, &shutdown, || async {
            if controller.leader() != Some(controller.id) {
                return;
            }
            upgrade_metadata(&controller, settings).await;
            elect_unclean(&controller, settings, &unclean_elections).await;
        })
        .await;
    })
}

async fn upgrade_metadata(controller: &Controller, settings: StaticSettings) {
    let due = controller
        .state
        .read(|s| s.metadata_version() < METADATA_VERSION && s.brokers_support(METADATA_VERSION));
    if !due {
        return;
    }
    let upgrade = MetaCommand::UpgradeMetadata(UpgradeMetadata {
        version: METADATA_VERSION,
        min_insync_replicas: settings.min_insync_replicas,
    });
    match controller.write(upgrade).await.map(|c| c.response) {
        Ok(Ok(_)) => info!(
            version = METADATA_VERSION,
            "every broker applies this metadata version: the cluster moved to it"
        ),
        Ok(Err(refused)) => debug!(error = %refused, "metadata upgrade refused"),
        Err(e) => debug!(error = %e, "metadata upgrade not committed"),
    }
}

async fn elect_unclean(controller: &Controller, settings: StaticSettings, elections: &Counter) {
    let partitions = controller
        .state
        .read(|s| s.unclean_election_candidates(settings.unclean_leader_election));
    if partitions.is_empty() {
        return;
    }
    let elect = MetaCommand::ElectLeaders(ElectLeaders {
        election: ElectionType::Unclean,
        partitions: partitions.clone(),
    });
    match controller.write(elect).await.map(|c| c.response) {
        Ok(Ok(CommandOutcome::Elections(outcomes))) => {
            for ((topic_id, partition), outcome) in partitions.iter().zip(outcomes) {
                if let Election::Elected { leader } = outcome {
                    elections.inc();
                    warn!(%topic_id, partition, leader, "unclean leader election: the new leader may lack committed records, which are lost");
                }
            }
        }
        Ok(other) => debug!(outcome = ?other, "unclean elections refused"),
        Err(e) => debug!(error = %e, "unclean elections not committed"),
    }
}
