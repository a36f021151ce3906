//! ElectLeaders (`kafka-leader-election.sh`, AdminClient's `electLeaders`): preferred or
//! unclean elections for the named partitions (all of them when none are named), through
//! the metadata quorum, answered per partition.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use strata_meta::{Election, ElectionType};
use uuid::Uuid;

use super::{RequestContext, str_bytes};

const API: &str = "elect_leaders";

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let election = match request.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        _ => {
            ctx.broker
                .metrics
                .count_error(API, ResponseError::InvalidRequest);
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let all = request.topic_partitions.is_none();
    // (name, id if known, partition) in request order.
    let wanted: Vec<(TopicName, Option<Uuid>, i32)> = ctx.broker.metadata.read(|state| {
        let named: Vec<(TopicName, Vec<i32>)> = match request.topic_partitions {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.topic, t.partitions))
                .collect(),
            None => state
                .topics()
                .map(|t| {
                    let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                    (TopicName(str_bytes(t.name.clone())), (0..count).collect())
                })
                .collect(),
        };
        named
            .into_iter()
            .flat_map(|(name, partitions)| {
                let id = state.topic_by_name(&name).map(|t| t.topic_id);
                partitions.into_iter().map(move |p| (name.clone(), id, p))
            })
            .collect()
    });
    let known: Vec<(Uuid, i32)> = wanted
        .iter()
        .filter_map(|(_, id, p)| id.map(|id| (id, *p)))
        .collect();
    let outcomes = ctx.broker.admin.elect_leaders(election, known).await;
    let mut outcomes = match outcomes {
        Ok(outcomes) => outcomes.into_iter(),
        Err(e) => {
            ctx.broker.metrics.count_error(API, e.response_error());
            return ElectLeadersResponse::default().with_error_code(e.code());
        }
    };
    let mut results: BTreeMap<TopicName, Vec<PartitionResult>> = BTreeMap::new();
    for (name, id, partition) in wanted {
        let outcome = match id {
            Some(_) => outcomes.next().unwrap_or(Election::UnknownPartition),
            None => Election::UnknownPartition,
        };
        if all && outcome == Election::NotNeeded {
            continue;
        }
        let error = error_of(outcome);
        if let Some(error) = error {
            ctx.broker.metrics.count_error(API, error);
        }
        results.entry(name).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_error_message(error.map(|e| str_bytes(e.to_string()))),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        results
            .into_iter()
            .map(|(topic, partition_result)| {
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_result)
            })
            .collect(),
    )
}

/// Kafka's code for an election's outcome.
fn error_of(outcome: Election) -> Option<ResponseError> {
    match outcome {
        Election::Elected { .. } => None,
        Election::NotNeeded => Some(ResponseError::ElectionNotNeeded),
        Election::PreferredNotAvailable => Some(ResponseError::PreferredLeaderNotAvailable),
        Election::NoEligibleLeader => Some(ResponseError::EligibleLeadersNotAvailable),
        Election::UnknownPartition => Some(ResponseError::UnknownTopicOrPartition),
    }
}
