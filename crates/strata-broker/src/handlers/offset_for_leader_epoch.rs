//! OffsetForLeaderEpoch: where a leader epoch's data ends in a partition this broker leads.
//! Clients ask after a leader change to find out whether their position was truncated away
//! (KIP-320); followers will ask to find where their log diverged (KIP-101, KIP-279).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::RequestContext;
use crate::replica::TopicRef;

const API: &str = "offset_for_leader_epoch";

pub fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let replicas = &ctx.broker.replicas;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    let found = replicas
                        .led_partition(TopicRef::Name(&topic.topic), p.partition)
                        .and_then(|led| {
                            replicas.end_offset_for_epoch(
                                &led,
                                p.current_leader_epoch,
                                p.leader_epoch,
                            )
                        });
                    match found {
                        Ok((epoch, end_offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => {
                            ctx.broker.metrics.count_error(API, e.response_error());
                            answer
                                .with_error_code(e.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
