//! Produce: validate each partition's batch, append it, and acknowledge per `acks` and the
//! configured durability.
//!
//! All partitions of a request are appended first and made durable together afterwards, so
//! one group-commit round can cover the whole request.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_log::{BatchLimits, ValidatedBatch, validate_produce_batch};
use tracing::{Instrument, debug, info_span};

use super::{LedPartition, RequestContext, RequestError, TopicRef, led_partition};
use crate::config::TimestampType;
use crate::error::BrokerError;
use crate::partition::{AppendOutcome, Partition};
use crate::topics::Topic;

const API: &str = "produce";

/// One partition's part of the response, and the partition to sync if it was appended.
struct PartitionResult {
    response: PartitionProduceResponse,
    appended: Option<Arc<Partition>>,
}

/// One topic's part of the response, as the request named it.
struct TopicResult {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionResult>,
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Result<Option<ProduceResponse>, RequestError> {
    let acks = request.acks;
    let request_error = if !matches!(acks, -1..=1) {
        Some(BrokerError::InvalidRequiredAcks { acks })
    } else if request.transactional_id.is_some() {
        Some(BrokerError::TransactionsUnsupported)
    } else {
        None
    };
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
            let result = match &request_error {
                Some(e) => error_result(ctx, data.index, e),
                None => {
                    let records = data.records.unwrap_or_default();
                    produce_partition(ctx, topic, data.index, records).await
                }
            };
            partitions.push(result);
        }
        topics.push(TopicResult {
            name: topic_data.name,
            topic_id: topic_data.topic_id,
            partitions,
        });
    }
    if acks == 0 {
        let failed = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.response.error_code != 0);
        return match failed {
            Some(p) => Err(RequestError::FailedWithoutAcks {
                error: crate::metrics::error_name(p.response.error_code),
            }),
            None => Ok(None),
        };
    }
    make_durable(ctx, &mut topics).await;
    let responses = topics
        .into_iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(t.partitions.into_iter().map(|p| p.response).collect())
        })
        .collect();
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}

/// Waits for every appended partition's group commit; a failed sync turns that partition's
/// success into an error, so nothing is acknowledged that is not durable.
async fn make_durable(ctx: &RequestContext<'_>, topics: &mut [TopicResult]) {
    let waits = topics
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
        .filter_map(|result| {
            let partition = result.appended.take()?;
            Some(async move {
                if let Err(e) = ctx.broker.make_durable(&partition).await {
                    ctx.broker.metrics.count_error(API, e.response_error());
                    result.response.error_code = e.code();
                    result.response.error_message = Some(StrBytes::from_string(e.to_string()));
                    result.response.base_offset = -1;
                }
            })
        });
    futures::future::join_all(waits).await;
}

fn error_result(ctx: &RequestContext<'_>, index: i32, error: &BrokerError) -> PartitionResult {
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
    PartitionResult {
        response,
        appended: None,
    }
}

async fn produce_partition(
    ctx: &RequestContext<'_>,
    topic: TopicRef<'_>,
    index: i32,
    records: Bytes,
) -> PartitionResult {
    let LedPartition {
        topic, partition, ..
    } = match led_partition(ctx.broker, topic, index) {
        Ok(led) => led,
        Err(e) => return error_result(ctx, index, &e),
    };
    if strata_meta::names::is_internal_topic(&topic.name) {
        let refused = BrokerError::InternalTopic {
            topic: topic.name.to_string(),
        };
        return error_result(ctx, index, &refused);
    }
    let span = info_span!("produce_partition", topic = %topic.name, partition = index, bytes = records.len());
    match append(ctx, &topic, &partition, records)
        .instrument(span)
        .await
    {
        Ok(outcome) => {
            let metrics = &ctx.broker.metrics;
            if outcome.duplicate {
                metrics.produce_duplicates.inc();
                debug!(
                    base_offset = outcome.range.base_offset,
                    "duplicate batch answered with its original offsets"
                );
            }
            let response = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(outcome.range.base_offset)
                .with_log_append_time_ms(outcome.range.log_append_time_ms)
                .with_log_start_offset(outcome.log_start_offset);
            PartitionResult {
                response,
                appended: Some(partition.clone()),
            }
        }
        Err(e) => error_result(ctx, index, &e),
    }
}

async fn append(
    ctx: &RequestContext<'_>,
    topic: &Topic,
    partition: &Arc<Partition>,
    records: Bytes,
) -> Result<AppendOutcome, BrokerError> {
    let broker = ctx.broker;
    let now_ms = broker.clock.now_ms();
    let config = &topic.config;
    let limits = BatchLimits {
        max_message_bytes: config.max_message_bytes(),
        max_decompressed_bytes: broker.config.max_decompressed_batch_bytes,
        now_ms,
        timestamp_before_max_ms: config.timestamp_before_max_ms(),
        timestamp_after_max_ms: config.timestamp_after_max_ms(),
        log_append_time: config.timestamp_type() == TimestampType::LogAppendTime,
    };
    let bytes = records.len();
    // Compressed batches are decompressed to be validated: keep that off the runtime threads.
    let batch: ValidatedBatch = if strata_log::needs_decompression(&records) {
        tokio::task::spawn_blocking(move || validate_produce_batch(records, &limits))
            .await
            .map_err(|e| BrokerError::from(std::io::Error::other(e.to_string())))??
    } else {
        validate_produce_batch(records, &limits)?
    };
    if batch.header().is_transactional() {
        return Err(BrokerError::TransactionsUnsupported);
    }
    if config.tiered() {
        broker.check_tiering_backlog()?;
    }
    let outcome = partition.append(&batch, now_ms)?;
    if !outcome.duplicate {
        broker.metrics.produce_bytes.inc_by(bytes as u64);
        broker
            .metrics
            .produce_records
            .inc_by(u64::try_from(batch.header().records_count).unwrap_or(0));
    }
    Ok(outcome)
}
