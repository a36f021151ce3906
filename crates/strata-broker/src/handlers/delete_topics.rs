//! DeleteTopics: by name (all versions) or by topic id (v6+), through the metadata quorum.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::{RequestContext, str_bytes};
use crate::error::BrokerError;
use crate::groups::OFFSETS_TOPIC;

const API: &str = "delete_topics";

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6+ in `topics`, by name or by id.
    let wanted: Vec<(Option<TopicName>, Uuid)> = if ctx.version() >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let found = ctx.broker.metadata.read(|state| {
            let topic = match &name {
                Some(name) => state.topic_by_name(name),
                None => state.topic(id),
            };
            topic.map(|t| (TopicName(str_bytes(t.name.clone())), t.topic_id))
        });
        let outcome = match found {
            None if name.is_none() => Err(BrokerError::UnknownTopicId),
            None => Err(BrokerError::UnknownTopicOrPartition),
            // Kafka refuses too: the groups' state lives there.
            Some((name, _)) if name.as_str() == OFFSETS_TOPIC => Err(BrokerError::InvalidRequest {
                reason: format!("deletion of the internal topic {OFFSETS_TOPIC} is prohibited"),
            }),
            Some((name, id)) => ctx.broker.admin.delete_topic(id).await.map(|()| (name, id)),
        };
        results.push(match outcome {
            Ok((name, id)) => DeletableTopicResult::default()
                .with_name(Some(name))
                .with_topic_id(id),
            Err(e) => {
                ctx.broker.metrics.count_error(API, e.response_error());
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.to_string())))
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(results)
}
