//! ListOffsets: earliest, latest, by timestamp (time index) and max timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::fetch::check_leader_epoch;
use super::{RequestContext, TopicRef, led_partition};
use crate::error::BrokerError;
use crate::partition::Partition;

const API: &str = "list_offsets";

/// Kafka's special timestamps (ListOffsetsRequest.timestamp).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405: the first offset still on local disk; everything is local for now.
const EARLIEST_LOCAL: i64 = -4;
/// KIP-1005: the last offset in remote storage; nothing is tiered yet.
const LATEST_TIERED: i64 = -5;

pub fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let found =
                        led_partition(ctx.broker, TopicRef::Name(&t.name), p.partition_index)
                            .and_then(|led| {
                                check_leader_epoch(p.current_leader_epoch, led.leader_epoch)?;
                                let (offset, timestamp) = lookup(&led.partition, p.timestamp)?;
                                Ok((offset, timestamp, led.leader_epoch))
                            });
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match found {
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
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (offset, timestamp) answer for one partition; Kafka answers "no such record" with
/// offset -1 and timestamp -1.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), BrokerError> {
    let offsets = partition.offsets();
    Ok(match timestamp {
        LATEST => (offsets.high_watermark, -1),
        EARLIEST | EARLIEST_LOCAL => (offsets.log_start_offset, -1),
        LATEST_TIERED => (-1, -1),
        MAX_TIMESTAMP => partition.max_timestamp()?.unwrap_or((-1, -1)),
        ts => partition.offset_for_timestamp(ts)?.unwrap_or((-1, -1)),
    })
}
