//! Produce: resolve each partition the request names, hand the batches to the replica
//! manager (which validates, appends and waits for the commit `acks` asks for), and answer.
//!
//! All partitions of a request are appended first and committed together afterwards, so
//! one group-commit round can cover the whole request.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{RequestContext, RequestError};
use crate::error::BrokerError;
use crate::partition::AppendOutcome;
use crate::replica::{ProducedBatch, RequiredAcks, TopicRef};

const API: &str = "produce";

/// One topic's part of the response, as the request named it.
struct TopicResult {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionProduceResponse>,
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Result<Option<ProduceResponse>, RequestError> {
    let acks = RequiredAcks::from_wire(request.acks);
    let request_error = match &acks {
        Err(e) => Some(e.clone()),
        Ok(_) if request.transactional_id.is_some() => Some(BrokerError::TransactionsUnsupported),
        Ok(_) => None,
    };
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    // Where each appended batch's answer goes: (topic, partition slot).
    let mut slots = Vec::new();
    let mut batches = Vec::new();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        // Produce v13 names topics by id; earlier versions by name.
        let topic = if ctx.version() >= 13 {
            TopicRef::Id(topic_data.topic_id)
        } else {
            TopicRef::Name(&topic_data.name)
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let batch = match &request_error {
                Some(e) => Err(e.clone()),
                None => resolve(ctx, topic, data.index, data.records.unwrap_or_default()),
            };
            match batch {
                Ok(batch) => {
                    slots.push((topics.len(), partitions.len()));
                    batches.push(batch);
                    partitions.push(PartitionProduceResponse::default().with_index(data.index));
                }
                Err(e) => partitions.push(error_response(ctx, data.index, &e)),
            }
        }
        topics.push(TopicResult {
            name: topic_data.name,
            topic_id: topic_data.topic_id,
            partitions,
        });
    }
    let acks = acks.unwrap_or(RequiredAcks::All);
    let outcomes = ctx.broker.replicas.append(batches, acks, timeout).await;
    for ((topic, slot), outcome) in slots.into_iter().zip(outcomes) {
        let response = &mut topics[topic].partitions[slot];
        *response = match outcome {
            Ok(outcome) => success_response(response.index, &outcome),
            Err(e) => error_response(ctx, response.index, &e),
        };
    }
    if acks == RequiredAcks::None {
        let failed = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.error_code != 0);
        return match failed {
            Some(p) => Err(RequestError::FailedWithoutAcks {
                error: crate::metrics::error_name(p.error_code),
            }),
            None => Ok(None),
        };
    }
    let responses = topics
        .into_iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(t.partitions)
        })
        .collect();
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}

/// The partition a batch goes to, if this broker leads it and clients may write to it.
fn resolve(
    ctx: &RequestContext<'_>,
    topic: TopicRef<'_>,
    index: i32,
    records: Bytes,
) -> Result<ProducedBatch, BrokerError> {
    let led = ctx.broker.replicas.led_partition(topic, index)?;
    if strata_meta::names::is_internal_topic(&led.topic.name) {
        return Err(BrokerError::InternalTopic {
            topic: led.topic.name.to_string(),
        });
    }
    Ok(ProducedBatch { led, records })
}

fn success_response(index: i32, outcome: &AppendOutcome) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(outcome.range.base_offset)
        .with_log_append_time_ms(outcome.range.log_append_time_ms)
        .with_log_start_offset(outcome.log_start_offset)
}

fn error_response(
    ctx: &RequestContext<'_>,
    index: i32,
    error: &BrokerError,
) -> PartitionProduceResponse {
    ctx.broker.metrics.count_error(API, error.response_error());
    let mut response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    if ctx.version() >= 8 {
        response = response.with_error_message(Some(StrBytes::from_string(error.to_string())));
    }
    response
}
