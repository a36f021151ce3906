//! DescribeQuorum (`kafka-metadata-quorum.sh`, AdminClient's `describeMetadataQuorum`): the
//! metadata quorum as its leader sees it. Strata's quorum is raft over its own log, which
//! Kafka clients know as the single partition `__cluster_metadata-0`: a raft term is its
//! leader epoch, a log index + 1 an offset.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use strata_raft::QuorumStatus;

use super::{RequestContext, str_bytes};

const API: &str = "describe_quorum";
const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let names_the_log = matches!(request.topics.as_slice(), [topic]
        if *topic.topic_name == *METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [p] if p.partition_index == 0));
    let error = |error: ResponseError, message: String| {
        ctx.broker.metrics.count_error(API, error);
        DescribeQuorumResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !names_the_log {
        return error(
            ResponseError::UnknownTopicOrPartition,
            format!("the metadata quorum is {METADATA_TOPIC}-0"),
        );
    }
    match ctx.broker.metadata.quorum_status().await {
        Ok(status) => describe(&status, ctx.version(), ctx.broker.replicas.now_ms()),
        Err(e) => error(e.response_error(), e.to_string()),
    }
}

/// Kafka's view of `status`, taken at `now_ms`, with what `version` carries: catch-up times
/// from v1, the voters' endpoints from v2.
fn describe(status: &QuorumStatus, version: i16, now_ms: i64) -> DescribeQuorumResponse {
    let leader_end = status
        .leader
        .and_then(|leader| status.matched.get(&leader).copied());
    let replica = |id: u64| {
        let matched = status.matched.get(&id).copied();
        // Kafka reports the leader, and a follower holding all the leader has, as caught up
        // now; what is not known is -1.
        let caught_up = matched.is_some() && matched == leader_end;
        ReplicaState::default()
            .with_replica_id(BrokerId(i32::try_from(id).unwrap_or(-1)))
            .with_log_end_offset(matched.map_or(-1, offset_after))
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(if caught_up && version >= 1 {
                now_ms
            } else {
                -1
            })
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(
            status
                .leader
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(-1),
        ))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(offset_after(status.last_applied_index))
        .with_current_voters(status.voters.keys().map(|id| replica(*id)).collect())
        .with_observers(status.learners.keys().map(|id| replica(*id)).collect());
    let nodes = status
        .voters
        .iter()
        .filter(|_| version >= 2)
        .filter_map(|(id, address)| {
            let (host, port) = address.rsplit_once(':')?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(i32::try_from(*id).ok()?))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(str_bytes("CONTROLLER".to_string()))
                            .with_host(str_bytes(host.to_string()))
                            .with_port(port.parse().ok()?),
                    ]),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(str_bytes(METADATA_TOPIC.to_string())))
                .with_partitions(vec![partition]),
        ])
        .with_nodes(nodes)
}

/// The offset after raft log index `index`: Kafka's log end of a log holding it.
fn offset_after(index: u64) -> i64 {
    i64::try_from(index).map_or(i64::MAX, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_leader_and_caught_up_voters_are_current_and_the_rest_unknown() {
        let status = QuorumStatus {
            leader: Some(2),
            term: 7,
            last_log_index: 41,
            last_applied_index: 40,
            voters: BTreeMap::from([
                (1, "127.0.0.1:9101".into()),
                (2, "127.0.0.1:9102".into()),
                (3, "127.0.0.1:9103".into()),
            ]),
            learners: BTreeMap::from([(4, "127.0.0.1:9104".into())]),
            matched: BTreeMap::from([(1, 41), (2, 41), (3, 12)]),
        };
        let response = describe(&status, 2, 5_000);
        let partition = &response.topics[0].partitions[0];
        assert_eq!((partition.leader_id.0, partition.leader_epoch), (2, 7));
        assert_eq!(partition.high_watermark, 41);
        let voters: Vec<(i32, i64, i64)> = partition
            .current_voters
            .iter()
            .map(|r| (r.replica_id.0, r.log_end_offset, r.last_caught_up_timestamp))
            .collect();
        assert_eq!(voters, [(1, 42, 5_000), (2, 42, 5_000), (3, 13, -1)]);
        assert_eq!(partition.observers[0].log_end_offset, -1);
        assert_eq!(response.nodes.len(), 3);
        assert_eq!(response.nodes[1].listeners[0].port, 9102);
    }
}
