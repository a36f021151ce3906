//! CreateTopics: validated like Kafka, including `validate_only`.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::warn;

use super::{RequestContext, str_bytes};
use crate::config::TopicConfig;
use crate::error::BrokerError;
use crate::topics::NewTopic;

const API: &str = "create_topics";

/// DescribeConfigs' config sources, as CreateTopics v5+ reports them.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut seen = std::collections::HashSet::new();
    for topic in request.topics {
        let name = topic.name.clone();
        // Kafka refuses a request naming one topic twice, for each mention.
        if !seen.insert(name.clone()) {
            let e = BrokerError::InvalidTopic {
                name: name.to_string(),
                reason: "named more than once in the request".into(),
            };
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
    name: kafka_protocol::messages::TopicName,
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
    let node_id = broker.config.node_id;
    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(BrokerError::InvalidReplicaAssignment {
                reason: "give either replica assignments or partition count and replication factor"
                    .into(),
            });
        }
        for (i, assignment) in topic.assignments.iter().enumerate() {
            if assignment.partition_index != i32::try_from(i).unwrap_or(-1) {
                return Err(BrokerError::InvalidReplicaAssignment {
                    reason: "partitions must be numbered 0, 1, 2, ...".into(),
                });
            }
            if assignment
                .broker_ids
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>()
                != [node_id]
            {
                return Err(BrokerError::InvalidReplicaAssignment {
                    reason: format!(
                        "this single-node cluster can only place replicas on broker {node_id}"
                    ),
                });
            }
        }
        i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
    } else {
        match topic.replication_factor {
            -1 | 1 => {}
            rf if rf < 1 => {
                return Err(BrokerError::InvalidReplicationFactor {
                    reason: format!("replication factor must be at least 1, got {rf}"),
                });
            }
            rf => {
                return Err(BrokerError::InvalidReplicationFactor {
                    reason: format!(
                        "replication factor {rf} is larger than the 1 available broker"
                    ),
                });
            }
        }
        if topic.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            topic.num_partitions
        }
    };
    let mut overrides = BTreeMap::new();
    for config in &topic.configs {
        // A null value means "use the default" in Kafka.
        if let Some(value) = &config.value {
            overrides.insert(config.name.to_string(), value.to_string());
        }
    }
    let new = NewTopic {
        name: topic.name.to_string(),
        partitions,
        overrides,
    };
    let (id, overrides) = if validate_only {
        (uuid::Uuid::nil(), broker.topics.check_new(&new)?)
    } else {
        let created = broker.create_topic(new).await.inspect_err(|e| {
            if matches!(e, BrokerError::Storage { .. } | BrokerError::Log(_)) {
                warn!(topic = %topic.name.0, error = %e, "topic creation failed");
            }
        })?;
        (created.id, created.overrides.clone())
    };
    let resolved = TopicConfig::resolve(broker.topics.broker_defaults(), &overrides);
    let configs = resolved
        .iter()
        .map(|(name, value)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(if overrides.contains_key(name) {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
        })
        .collect();
    Ok(CreatableTopicResult::default()
        .with_name(topic.name)
        .with_topic_id(id)
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(Some(configs)))
}
