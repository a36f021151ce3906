//! AlterPartitionReassignments and ListPartitionReassignments (`kafka-reassign-partitions.sh`,
//! Cruise Control, AdminClient's `alterPartitionReassignments`): moving partitions to other
//! brokers through the metadata quorum, and seeing the moves in progress.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use strata_meta::{MetadataState, PartitionReassignment};

use super::{RequestContext, str_bytes};
use crate::error::BrokerError;

const ALTER: &str = "alter_partition_reassignments";

pub async fn alter(
    ctx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // (topic, partition, the move if the topic is known) in request order.
    let wanted: Vec<(TopicName, i32, Option<PartitionReassignment>)> =
        ctx.broker.metadata.read(|state| {
            request
                .topics
                .iter()
                .flat_map(|topic| {
                    let id = state.topic_by_name(&topic.name).map(|t| t.topic_id);
                    topic.partitions.iter().map(move |p| {
                        let target = p
                            .replicas
                            .as_ref()
                            .map(|replicas| replicas.iter().map(|b| b.0).collect());
                        let reassignment = id.map(|topic_id| PartitionReassignment {
                            topic_id,
                            partition: p.partition_index,
                            target,
                        });
                        (topic.name.clone(), p.partition_index, reassignment)
                    })
                })
                .collect()
        });
    let known: Vec<PartitionReassignment> =
        wanted.iter().filter_map(|(_, _, r)| r.clone()).collect();
    let outcomes = ctx
        .broker
        .admin
        .reassign_partitions(known, request.allow_replication_factor_change)
        .await;
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change);
    let mut outcomes = match outcomes {
        Ok(outcomes) => outcomes.into_iter(),
        Err(e) => {
            ctx.broker.metrics.count_error(ALTER, e.response_error());
            return response
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.to_string())));
        }
    };
    let mut results: BTreeMap<TopicName, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (name, partition, reassignment) in wanted {
        let error = match reassignment {
            Some(_) => outcomes.next().unwrap_or(Ok(())).err().map(|e| {
                let e = BrokerError::Metadata(e);
                (e.response_error(), e.to_string())
            }),
            None => Some((
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{}' does not exist", &*name),
            )),
        };
        if let Some((code, _)) = &error {
            ctx.broker.metrics.count_error(ALTER, *code);
        }
        results.entry(name).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(error.as_ref().map_or(0, |(code, _)| code.code()))
                .with_error_message(error.map(|(_, message)| str_bytes(message))),
        );
    }
    response.with_responses(
        results
            .into_iter()
            .map(|(name, partitions)| {
                ReassignableTopicResponse::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub fn list(
    ctx: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let topics = ctx
        .broker
        .metadata
        .read(|state| moves_in_progress(state, request.topics.as_deref()));
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// The moves in progress, of the named partitions or of all; partitions without one, and
/// unknown topics, are left out as Kafka leaves them out.
fn moves_in_progress(
    state: &MetadataState,
    named: Option<&[ListPartitionReassignmentsTopics]>,
) -> Vec<OngoingTopicReassignment> {
    let mut topics: BTreeMap<TopicName, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (topic_id, index, moving) in state.reassignments() {
        let Some(topic) = state.topic(topic_id) else {
            continue;
        };
        let asked = named.is_none_or(|named| {
            named
                .iter()
                .any(|t| *t.name == *topic.name && t.partition_indexes.contains(&index))
        });
        let Some(partition) = topic.partitions.get(index as usize).filter(|_| asked) else {
            continue;
        };
        let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
        topics
            .entry(TopicName(str_bytes(topic.name.clone())))
            .or_default()
            .push(
                OngoingPartitionReassignment::default()
                    .with_partition_index(index)
                    .with_replicas(ids(&partition.replicas))
                    .with_adding_replicas(ids(&moving.adding()))
                    .with_removing_replicas(ids(&moving.removing())),
            );
    }
    topics
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect()
}
