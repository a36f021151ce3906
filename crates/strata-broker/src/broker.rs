//! What a request handler reaches: the node's configuration and identity, and a handle to
//! each subsystem. Only the request context holds it; subsystems are built (in
//! [`crate::node`]) from the dependencies they name and never reach back into it.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::control_plane::MetadataView;
use crate::error::BrokerError;
use crate::group_commit::GroupCommit;
use crate::groups::GroupCoordinator;
use crate::metrics::Metrics;
use crate::node_meta::NodeMeta;
use crate::partition::Partition;
use crate::producer_ids::ProducerIds;
use crate::tiering::TieringContext;
use crate::topics::TopicRegistry;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub node: NodeMeta,
    pub topics: Arc<TopicRegistry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Where clients are told to connect.
    pub advertised: (String, u16),
    /// This node's replica of the cluster metadata.
    pub metadata: MetadataView,
    pub producer_ids: ProducerIds,
    /// The consumer groups this broker coordinates.
    pub groups: GroupCoordinator,
    /// Fsyncs for `--durability fsync`; `None` otherwise.
    pub(crate) group_commit: Option<GroupCommit>,
    /// The object store, its read cache and the uploader's state.
    pub tier: TieringContext,
}

impl Broker {
    /// Refuses an append to a tiered partition while the data waiting for the object store
    /// exceeds the local budget (as the uploader last measured it).
    pub fn check_tiering_backlog(&self) -> Result<(), BrokerError> {
        let budget = self.config.tiering.local_budget_bytes;
        let pending = self.tier.backlog.bytes();
        if budget > 0 && pending >= budget {
            return Err(BrokerError::TieringBacklog { pending, budget });
        }
        Ok(())
    }

    /// Waits until `partition`'s appends are durable per the configured durability.
    pub async fn make_durable(&self, partition: &Arc<Partition>) -> Result<(), BrokerError> {
        match &self.group_commit {
            Some(group_commit) => group_commit.sync(partition.clone()).await,
            None => Ok(()),
        }
    }
}
