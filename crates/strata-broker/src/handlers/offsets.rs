//! OffsetCommit, OffsetFetch and OffsetDelete: a group's committed offsets, kept by its
//! coordinator and written to `__consumer_offsets` before a commit is acknowledged.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{Instrument, info_span};

use super::{RequestContext, str_bytes};
use crate::groups::group::{CommittedOffset, GroupState};
use crate::groups::persist_offsets;

/// A partition's answer: (topic, partition, error).
type PartitionOutcome = (String, i32, Option<ResponseError>);

pub async fn commit(
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let span = info_span!("offset_commit", group = %request.group_id.0);
    let outcomes = commit_offsets(ctx, &request).instrument(span).await;
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, error) in outcomes {
        if let Some(e) = error {
            ctx.broker.metrics.count_error("offset_commit", e);
        }
        let answer = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(error.map_or(0, |e| e.code()));
        match topics.last_mut() {
            Some(last) if last.name.as_str() == topic => last.partitions.push(answer),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(vec![answer]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

async fn commit_offsets(
    ctx: &RequestContext<'_>,
    request: &OffsetCommitRequest,
) -> Vec<PartitionOutcome> {
    let broker = ctx.broker;
    let wanted: Vec<(String, i32, i64, i32, String)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect();
    let all_failed = |error: ResponseError| {
        wanted
            .iter()
            .map(|(topic, partition, ..)| (topic.clone(), *partition, Some(error)))
            .collect::<Vec<_>>()
    };
    // Only a commit outside any generation (a simple consumer, an admin tool) starts a group;
    // a member's commit names a group that must exist.
    let simple = request.generation_id_or_member_epoch < 0;
    let coordinated = match broker.groups.group(broker, &request.group_id, simple) {
        Ok(Some(c)) => c,
        Ok(None) => return all_failed(ResponseError::UnknownMemberId),
        Err(e) => return all_failed(e),
    };
    let mut group = coordinated.group.lock().await;
    let instance_id = request.group_instance_id.as_ref().map(StrBytes::as_str);
    if let Err(e) = group.check_commit(
        &request.member_id,
        instance_id,
        request.generation_id_or_member_epoch,
    ) {
        return all_failed(e);
    }
    let now_ms = broker.clock.now_ms();
    let max_metadata = broker.config.groups.offset_metadata_max_bytes;
    let mut outcomes = Vec::with_capacity(wanted.len());
    let mut accepted = Vec::new();
    for (topic, partition, offset, leader_epoch, metadata) in wanted {
        let exists = broker.metadata.read(|state| {
            state
                .topic_by_name(&topic)
                .is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()))
        });
        let error = if !exists {
            Some(ResponseError::UnknownTopicOrPartition)
        } else if metadata.len() > max_metadata {
            Some(ResponseError::OffsetMetadataTooLarge)
        } else {
            accepted.push((
                (topic.clone(), partition),
                Some(CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                }),
            ));
            None
        };
        outcomes.push((topic, partition, error));
    }
    if accepted.is_empty() {
        return outcomes;
    }
    let group_id = group.group_id.clone();
    let written = persist_offsets(broker, &coordinated.partition, &group_id, &accepted).await;
    match written {
        Ok(()) => {
            for (key, offset) in accepted {
                if let Some(offset) = offset {
                    group.offsets.insert(key, offset);
                }
            }
        }
        Err(e) => {
            for outcome in outcomes.iter_mut().filter(|o| o.2.is_none()) {
                outcome.2 = Some(e);
            }
        }
    }
    outcomes
}

/// One topic's partitions with their committed offsets, if any.
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One group's offsets as OffsetFetch asks for them.
struct FetchedGroup {
    error: Option<ResponseError>,
    topics: Vec<TopicOffsets>,
}

pub async fn fetch(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version() >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in &request.groups {
            let wanted = g.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let fetched = fetch_group(ctx, &g.group_id, wanted).await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(fetched.error.map_or(0, |e| e.code()))
                    .with_topics(
                        fetched
                            .topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(index, offset)| {
                                                let (o, e, m) = committed(offset);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(index)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(Some(m))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let fetched = fetch_group(ctx, &request.group_id, wanted).await;
    let version = ctx.version();
    // v1 has no group-level error: the partitions carry it.
    let partition_error = if version < 2 {
        fetched.error.map_or(0, |e| e.code())
    } else {
        0
    };
    let topics = fetched
        .topics
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, offset)| {
                            let (o, e, m) = committed(offset);
                            let partition = OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(o)
                                .with_metadata(Some(m))
                                .with_error_code(partition_error);
                            if version >= 5 {
                                partition.with_committed_leader_epoch(e)
                            } else {
                                partition
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.with_error_code(fetched.error.map_or(0, |e| e.code()))
    } else {
        response
    }
}

/// Kafka's answer for a partition: the committed offset, or -1 with empty metadata.
fn committed(offset: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, str_bytes(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

async fn fetch_group(
    ctx: &RequestContext<'_>,
    group_id: &GroupId,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> FetchedGroup {
    let broker = ctx.broker;
    let failed = |error: ResponseError| {
        broker.metrics.count_error("offset_fetch", error);
        FetchedGroup {
            error: Some(error),
            topics: Vec::new(),
        }
    };
    let coordinated = match broker.groups.group(broker, group_id, false) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let offsets: HashMap<(String, i32), CommittedOffset> = match &coordinated {
        Some(c) => c.group.lock().await.offsets.clone(),
        None => HashMap::new(),
    };
    let topics = match wanted {
        Some(wanted) => wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| (p, offsets.get(&(topic.clone(), p)).cloned()))
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<
                String,
                Vec<(i32, Option<CommittedOffset>)>,
            > = std::collections::BTreeMap::new();
            for ((topic, partition), offset) in offsets {
                by_topic
                    .entry(topic)
                    .or_default()
                    .push((partition, Some(offset)));
            }
            for partitions in by_topic.values_mut() {
                partitions.sort_by_key(|(p, _)| *p);
            }
            by_topic.into_iter().collect()
        }
    };
    FetchedGroup {
        error: None,
        topics,
    }
}

pub async fn delete(
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let broker = ctx.broker;
    let coordinated = match broker.groups.group(broker, &request.group_id, false) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return OffsetDeleteResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code());
        }
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut group = coordinated.group.lock().await;
    if group.state == GroupState::Dead {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    }
    let subscribed = if group.state == GroupState::Empty {
        Some(std::collections::HashSet::new())
    } else {
        group.subscribed_topics()
    };
    let mut deleted = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.to_string();
        let in_use = subscribed.as_ref().is_none_or(|s| s.contains(&name));
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let answer = OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index);
                if in_use {
                    answer.with_error_code(ResponseError::GroupSubscribedToTopic.code())
                } else {
                    deleted.push(((name.clone(), p.partition_index), None));
                    answer
                }
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    if !deleted.is_empty() {
        let group_id = group.group_id.clone();
        if let Err(e) = persist_offsets(broker, &coordinated.partition, &group_id, &deleted).await {
            return OffsetDeleteResponse::default().with_error_code(e.code());
        }
        for (key, _) in &deleted {
            group.offsets.remove(key);
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
