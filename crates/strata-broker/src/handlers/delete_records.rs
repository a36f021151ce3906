//! DeleteRecords: moves a partition's log start forward, in both tiers.
//!
//! The new log start is committed to the manifest (`AdvanceLogStart`), so it survives a
//! restart and a lost disk; the reconciler then deletes local segments wholly below it, and
//! the sweeper reclaims objects no segment references any more.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use strata_meta::MetaCommand;

use super::RequestContext;
use crate::error::BrokerError;
use crate::replica::{LedPartition, TopicRef};

const API: &str = "delete_records";
/// Kafka's "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let outcome = match ctx
                .broker
                .replicas
                .led_partition(TopicRef::Name(&topic.name), p.partition_index)
            {
                Ok(led) if strata_meta::names::is_internal_topic(&led.topic.name) => {
                    Err(BrokerError::InternalTopic {
                        topic: led.topic.name.to_string(),
                    })
                }
                Ok(led) => delete_below(ctx, &led, p.offset).await,
                Err(e) => Err(e),
            };
            partitions.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(e) => {
                    ctx.broker.metrics.count_error(API, e.response_error());
                    result.with_low_watermark(-1).with_error_code(e.code())
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Makes `offset` the log start (if it is past it); answers the new low watermark.
async fn delete_below(
    ctx: &RequestContext<'_>,
    led: &LedPartition,
    offset: i64,
) -> Result<i64, BrokerError> {
    let offsets = led.partition.offsets();
    let target = if offset == HIGH_WATERMARK {
        offsets.high_watermark
    } else {
        offset
    };
    if target < 0 || target > offsets.high_watermark {
        return Err(BrokerError::from(strata_log::LogError::OffsetOutOfRange {
            requested: offset,
            log_start_offset: offsets.log_start_offset,
            log_end_offset: offsets.high_watermark,
        }));
    }
    if target > offsets.log_start_offset {
        ctx.broker
            .metadata
            .commit(MetaCommand::AdvanceLogStart {
                topic_id: led.topic.id,
                partition: led.partition.index,
                log_start_offset: target,
            })
            .await?;
    }
    Ok(led.partition.offsets().log_start_offset)
}
