//! CreateTopics: validated like Kafka, including `validate_only`, and committed through the
//! metadata quorum (see [`crate::topic_admin`]).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use strata_meta::MetaError;
use tracing::warn;

use super::{RequestContext, str_bytes};
use crate::config_view::ConfigLayers;
use crate::error::BrokerError;
use crate::groups::OFFSETS_TOPIC;
use crate::topic_admin::NewTopic;

const API: &str = "create_topics";

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut seen = HashSet::new();
    for topic in request.topics {
        let name = topic.name.clone();
        // Kafka refuses a request naming one topic twice, for each mention.
        if !seen.insert(name.clone()) {
            let e = BrokerError::Metadata(MetaError::InvalidTopicName {
                name: name.to_string(),
                reason: "named more than once in the request".into(),
            });
            results.push(error_result(ctx, topic.name, &e));
            continue;
        }
        let result = match create(ctx, topic, request.validate_only).await {
            Ok(result) => result,
            Err(e) => error_result(ctx, name, &e),
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn error_result(
    ctx: &RequestContext<'_>,
    name: TopicName,
    e: &BrokerError,
) -> CreatableTopicResult {
    ctx.broker.metrics.count_error(API, e.response_error());
    CreatableTopicResult::default()
        .with_name(name)
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(e.to_string())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

async fn create(
    ctx: &RequestContext<'_>,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, BrokerError> {
    let broker = ctx.broker;
    if topic.name.as_str() == OFFSETS_TOPIC {
        return Err(BrokerError::InvalidRequest {
            reason: format!("creation of the internal topic {OFFSETS_TOPIC} is prohibited"),
        });
    }
    let assignments = (!topic.assignments.is_empty()).then(|| {
        topic
            .assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect()
    });
    if topic
        .assignments
        .iter()
        .zip(0..)
        .any(|(a, i)| a.partition_index != i)
    {
        return Err(MetaError::InvalidReplicaAssignment {
            reason: "partitions must be numbered 0, 1, 2, ...".into(),
        }
        .into());
    }
    let mut overrides = BTreeMap::new();
    for config in &topic.configs {
        // A null value means "use the default" in Kafka.
        if let Some(value) = &config.value {
            overrides.insert(config.name.to_string(), value.to_string());
        }
    }
    let new = NewTopic {
        name: topic.name.to_string(),
        num_partitions: (topic.num_partitions != -1).then_some(topic.num_partitions),
        replication_factor: (topic.replication_factor != -1).then_some(topic.replication_factor),
        assignments,
        overrides,
    };
    let created = broker
        .admin
        .create_topic(new, validate_only)
        .await
        .inspect_err(|e| {
            if matches!(e, BrokerError::ControlPlane(_)) {
                warn!(topic = %topic.name.0, error = %e, "topic creation failed");
            }
        })?;
    let configs = broker
        .metadata
        .read(|state| {
            let layers = ConfigLayers {
                state,
                broker_id: broker.config.node_id,
                static_defaults: &broker.config.topic_defaults,
            };
            layers.describe_topic(&created.overrides)
        })
        .into_iter()
        .map(|c| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(c.name))
                .with_value(Some(str_bytes(c.value)))
                .with_config_source(c.source as i8)
        })
        .collect();
    Ok(CreatableTopicResult::default()
        .with_name(topic.name)
        .with_topic_id(created.id)
        .with_num_partitions(created.partitions)
        .with_replication_factor(created.replication_factor)
        .with_configs(Some(configs)))
}
