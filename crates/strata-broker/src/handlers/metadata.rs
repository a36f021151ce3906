//! Metadata: brokers, topics and partition leadership from this node's replica of the
//! cluster metadata, with auto topic creation through the quorum.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strata_meta::{MetaError, MetadataState, NO_LEADER, TopicRecord};
use tracing::warn;
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::topic_admin::NewTopic;

/// Kafka's "operations not requested" sentinel for authorized-operations fields.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let topics = match request.topics {
        None => broker
            .metadata
            .read(|state| state.topics().map(|t| describe(state, t, broker)).collect()),
        Some(requested) => {
            // Versions before 4 have no flag: they always asked for auto creation.
            let auto_create = broker.config.auto_create_topics
                && (ctx.version() < 4 || request.allow_auto_topic_creation);
            let mut out = Vec::with_capacity(requested.len());
            for topic in requested {
                out.push(match topic.name {
                    Some(name) => by_name(ctx, name, auto_create).await,
                    None => by_id(ctx, topic.topic_id),
                });
            }
            out
        }
    };
    // A broker cut off from the quorum (its lease ran out) leaves itself out, as the quorum
    // is about to fence it: clients then ask the other brokers, which know the new leaders.
    // Listing itself kept librdkafka asking it, and only it, until the cut healed.
    let cut_off = !broker.replicas.holds_lease();
    let brokers = broker
        .metadata
        .live_brokers()
        .into_iter()
        .filter(|b| !(cut_off && b.id == broker.config.node_id))
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(broker.metadata.cluster_id().map(str_bytes))
        .with_controller_id(BrokerId(broker.metadata.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

async fn by_name(
    ctx: &RequestContext<'_>,
    name: TopicName,
    auto_create: bool,
) -> MetadataResponseTopic {
    let broker = ctx.broker;
    let lookup = || {
        broker.metadata.read(|state| {
            state
                .topic_by_name(&name)
                .map(|t| describe(state, t, broker))
        })
    };
    if let Some(found) = lookup() {
        return found;
    }
    if !auto_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    let created = if name.as_str() == crate::groups::OFFSETS_TOPIC {
        // Created with its own settings, as the coordinator would.
        broker
            .groups
            .ensure_partition_for("")
            .await
            .map(drop)
            .map_err(|e| BrokerError::InvalidRequest {
                reason: e.to_string(),
            })
    } else {
        let new = NewTopic {
            name: name.to_string(),
            ..NewTopic::default()
        };
        broker.admin.create_topic(new, false).await.map(drop)
    };
    match created {
        // Also when another request created it first.
        Ok(_) | Err(BrokerError::Metadata(MetaError::TopicAlreadyExists { .. })) => lookup()
            .unwrap_or_else(|| {
                error_topic(Some(name), Uuid::nil(), ResponseError::LeaderNotAvailable)
            }),
        Err(e) => {
            if !matches!(e, BrokerError::Metadata(MetaError::InvalidTopicName { .. })) {
                warn!(topic = %name.0, error = %e, "auto topic creation failed");
            }
            error_topic(Some(name), Uuid::nil(), e.response_error())
        }
    }
}

fn by_id(ctx: &RequestContext<'_>, id: Uuid) -> MetadataResponseTopic {
    ctx.broker
        .metadata
        .read(|state| state.topic(id).map(|t| describe(state, t, ctx.broker)))
        .unwrap_or_else(|| error_topic(None, id, ResponseError::UnknownTopicId))
}

fn error_topic(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// A topic as the metadata holds it. A partition without a leader answers
/// LEADER_NOT_AVAILABLE; replicas on fenced brokers are listed as offline, and so is this
/// broker's replica of a partition whose log failed here (which, if it leads, leaves the
/// partition without a serving leader). A broker whose lease ran out (cut off from the
/// quorum) answers as the quorum will see it, fenced: it leads nothing and its replicas are
/// offline, since its view may be stale.
fn describe(state: &MetadataState, topic: &TopicRecord, broker: &Broker) -> MetadataResponseTopic {
    let me = broker.config.node_id;
    let cut_off = !broker.replicas.holds_lease();
    let mut live = state.live_broker_ids();
    if cut_off {
        live.remove(&me);
    }
    let ids = |brokers: &[i32]| brokers.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .zip(0..)
        .map(|(p, index)| {
            let failed_here =
                p.replicas.contains(&me) && broker.topics.is_offline(topic.topic_id, index);
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|b| !live.contains(b) || (*b == me && failed_here))
                .collect();
            let unserved = p.leader == me && (failed_here || cut_off);
            let (error, leader) = if p.leader == NO_LEADER || unserved {
                (ResponseError::LeaderNotAvailable.code(), NO_LEADER)
            } else {
                (0, p.leader)
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(strata_meta::names::is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
