//! Metadata: brokers, topics and partition leaders, with auto topic creation.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::error::BrokerError;
use crate::partition::LEADER_EPOCH;
use crate::topics::{NewTopic, Topic};

/// Kafka's "operations not requested" sentinel for authorized-operations fields.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let node_id = BrokerId(broker.config.node_id);
    let topics = match request.topics {
        None => broker
            .topics
            .all()
            .iter()
            .map(|t| describe(t, node_id))
            .collect(),
        Some(requested) => {
            // Versions before 4 have no flag: they always asked for auto creation.
            let auto_create = broker.config.auto_create_topics
                && (ctx.version() < 4 || request.allow_auto_topic_creation);
            let mut out = Vec::with_capacity(requested.len());
            for topic in requested {
                out.push(match topic.name {
                    Some(name) => by_name(ctx, name, auto_create, node_id).await,
                    None => by_id(ctx, topic.topic_id, node_id),
                });
            }
            out
        }
    };
    let brokers = broker
        .metadata
        .live_brokers()
        .into_iter()
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
    node_id: BrokerId,
) -> MetadataResponseTopic {
    let broker = ctx.broker;
    if let Some(topic) = broker.topics.get(&name) {
        return describe(&topic, node_id);
    }
    if !auto_create {
        return error_topic(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        );
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: broker.config.num_partitions,
        overrides: BTreeMap::new(),
    };
    match broker.create_topic(new).await {
        Ok(topic) => describe(&topic, node_id),
        // Another request created it first.
        Err(BrokerError::TopicAlreadyExists { .. }) => match broker.topics.get(&name) {
            Some(topic) => describe(&topic, node_id),
            None => error_topic(Some(name), Uuid::nil(), ResponseError::LeaderNotAvailable),
        },
        Err(e) => {
            if !matches!(e, BrokerError::InvalidTopic { .. }) {
                warn!(topic = %name.0, error = %e, "auto topic creation failed");
            }
            error_topic(Some(name), Uuid::nil(), e.response_error())
        }
    }
}

fn by_id(ctx: &RequestContext<'_>, id: Uuid, node_id: BrokerId) -> MetadataResponseTopic {
    match ctx.broker.topics.get_by_id(id) {
        Some(topic) => describe(&topic, node_id),
        None => error_topic(None, id, ResponseError::UnknownTopicId),
    }
}

fn error_topic(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn describe(topic: &Arc<Topic>, node_id: BrokerId) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node_id)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node_id])
                .with_isr_nodes(vec![node_id])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
