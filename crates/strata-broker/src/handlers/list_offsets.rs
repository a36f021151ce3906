//! ListOffsets: earliest, latest, by timestamp (time index) and max timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use strata_meta::SegmentEntry;

use super::RequestContext;
use crate::error::BrokerError;
use crate::partition::LogOffsets;
use crate::replica::{LedPartition, TopicRef, check_leader_epoch};

const API: &str = "list_offsets";

/// Kafka's special timestamps (ListOffsetsRequest.timestamp).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: the first offset still on local disk.
const EARLIEST_LOCAL: i64 = -4;
/// KIP-1005: the last offset in remote storage.
const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let found = match ctx
                .broker
                .replicas
                .led_partition(TopicRef::Name(&t.name), p.partition_index)
            {
                Ok(led) => match check_leader_epoch(p.current_leader_epoch, led.leader_epoch) {
                    Ok(()) => lookup(ctx, &led, p.timestamp)
                        .await
                        .map(|(offset, timestamp)| (offset, timestamp, led.leader_epoch)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let response =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match found {
                // The leader epoch field exists from v4 on.
                Ok((offset, timestamp, leader_epoch)) if ctx.version() >= 4 => response
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(leader_epoch),
                Ok((offset, timestamp, _)) => {
                    response.with_offset(offset).with_timestamp(timestamp)
                }
                Err(e) => {
                    ctx.broker.metrics.count_error(API, e.response_error());
                    response
                        .with_error_code(e.code())
                        .with_offset(-1)
                        .with_timestamp(-1)
                }
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (offset, timestamp) answer for one partition; Kafka answers "no such record" with
/// offset -1 and timestamp -1.
async fn lookup(
    ctx: &RequestContext<'_>,
    led: &LedPartition,
    timestamp: i64,
) -> Result<(i64, i64), BrokerError> {
    let partition = &led.partition;
    let offsets = partition.offsets();
    let remote = partition.tiered_range();
    Ok(match timestamp {
        LATEST => (offsets.high_watermark, -1),
        EARLIEST => (offsets.log_start_offset, -1),
        EARLIEST_LOCAL => (offsets.local_log_start_offset, -1),
        LATEST_TIERED => (remote.map_or(-1, |r| r.end - 1), -1),
        MAX_TIMESTAMP => {
            let local = partition.max_timestamp()?;
            let tiered_max = tiered_segments(ctx, led, &offsets, i64::MIN)
                .into_iter()
                .max_by_key(|s| s.max_timestamp_ms)
                .filter(|s| local.is_none_or(|(_, ts)| s.max_timestamp_ms > ts));
            match tiered_max {
                Some(segment) => ctx
                    .broker
                    .tier
                    .remote
                    .offset_for_timestamp(&segment, segment.max_timestamp_ms)
                    .await?
                    .or(local),
                None => local,
            }
            .unwrap_or((-1, -1))
        }
        ts => {
            for segment in tiered_segments(ctx, led, &offsets, ts) {
                let found = ctx
                    .broker
                    .tier
                    .remote
                    .offset_for_timestamp(&segment, ts)
                    .await?;
                if let Some((offset, found_ts)) = found {
                    return Ok((offset.max(offsets.log_start_offset), found_ts));
                }
            }
            partition.offset_for_timestamp(ts)?.unwrap_or((-1, -1))
        }
    })
}

/// The committed segments below the local log start (oldest first) holding a record at or
/// after `timestamp`: those only the object store has.
fn tiered_segments(
    ctx: &RequestContext<'_>,
    led: &LedPartition,
    offsets: &LogOffsets,
    timestamp: i64,
) -> Vec<SegmentEntry> {
    ctx.broker
        .tier
        .manifest
        .segments(
            led.topic.id,
            led.partition.index,
            offsets.log_start_offset,
            offsets.local_log_start_offset,
        )
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.max_timestamp_ms >= timestamp)
        .collect()
}
