//! What a request handler reaches: the node's configuration and identity, and a handle to
//! each subsystem. Only the request context holds it; subsystems are built (in
//! [`crate::node`]) from the dependencies they name and never reach back into it.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::control_plane::MetadataView;
use crate::fetch_sessions::FetchSessions;
use crate::groups::GroupCoordinator;
use crate::metrics::Metrics;
use crate::node_meta::NodeMeta;
use crate::producer_ids::ProducerIds;
use crate::replica::ReplicaManager;
use crate::tiering::TieringContext;
use crate::topic_admin::TopicAdmin;
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
    pub groups: Arc<GroupCoordinator>,
    /// Topic changes through the quorum.
    pub admin: TopicAdmin,
    /// The one path for appends and reads.
    pub replicas: Arc<ReplicaManager>,
    /// The object store, its read cache and the uploader's state.
    pub tier: TieringContext,
    /// Fetch sessions (KIP-227) of the clients and followers fetching here.
    pub fetch_sessions: FetchSessions,
}
