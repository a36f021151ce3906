//! Kafka's `unclean.leader.election.enable`: a partition left with no live replica eligible
//! to lead (none in its ISR or ELR) takes any live replica, losing the committed records
//! that replica lacks. Off by default. The topic's setting decides, then the cluster-wide
//! dynamic default, then this node's own configuration. Runs on every node with the
//! controller role and acts only on the quorum's leader, so turning the setting on revives
//! such partitions within a check interval.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use strata_meta::{CommandOutcome, ElectLeaders, Election, ElectionType, MetaCommand};
use strata_raft::Controller;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often the quorum leader looks for partitions to revive.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Runs unclean elections where the settings allow them, until `shutdown`.
pub fn spawn(
    controller: Arc<Controller>,
    static_default: bool,
    elections: Counter,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        crate::periodic::every(CHECK_INTERVAL, &shutdown, || {
            run_round(&controller, static_default, &elections)
        })
        .await;
    })
}

async fn run_round(controller: &Controller, static_default: bool, elections: &Counter) {
    if controller.leader() != Some(controller.id) {
        return;
    }
    let partitions = controller
        .state
        .read(|s| s.unclean_election_candidates(static_default));
    if partitions.is_empty() {
        return;
    }
    let elect = MetaCommand::ElectLeaders(ElectLeaders {
        election: ElectionType::Unclean,
        partitions: partitions.clone(),
    });
    let written = controller.write(elect).await.map(|c| c.response);
    match written {
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
