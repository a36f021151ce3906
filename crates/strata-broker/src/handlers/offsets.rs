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
use crate::coordinator::Write;
use crate::groups::group::{CommittedOffset, GroupState};
use crate::groups::{GroupShard, offset_record, write_error};

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
    let wanted: Vec<Wanted> = request
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
    let simple = request.generation_id_or_member_epoch < 0;
    let max_metadata = broker.config.groups.offset_metadata_max_bytes;
    // What the metadata says of each partition, looked up before the shard's turn.
    let exists: Vec<bool> = wanted
        .iter()
        .map(|(topic, partition, ..)| {
            broker.metadata.read(|state| {
                state.topic_by_name(topic).is_some_and(|t| {
                    usize::try_from(*partition).is_ok_and(|p| p < t.partitions.len())
                })
            })
        })
        .collect();
    let id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = request.generation_id_or_member_epoch;
    let fallback = wanted.clone();
    let written = broker
        .groups
        .write(&request.group_id, move |shard: &mut GroupShard, now| {
            let group = if simple {
                Some(shard.get_or_create(&id))
            } else {
                shard.get_mut(&id)
            };
            let Some(group) = group else {
                return Write::answer(all_failed(&wanted, ResponseError::UnknownMemberId));
            };
            if let Err(e) = group.check_commit(&member_id, instance_id.as_deref(), generation) {
                return Write::answer(all_failed(&wanted, e));
            }
            let mut outcomes = Vec::with_capacity(wanted.len());
            let mut accepted = Vec::new();
            for ((topic, partition, offset, leader_epoch, metadata), exists) in
                wanted.into_iter().zip(exists)
            {
                let error = if !exists {
                    Some(ResponseError::UnknownTopicOrPartition)
                } else if metadata.len() > max_metadata {
                    Some(ResponseError::OffsetMetadataTooLarge)
                } else {
                    let committed = CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms: now.ms,
                    };
                    accepted.push(((topic.clone(), partition), committed));
                    None
                };
                outcomes.push((topic, partition, error));
            }
            if accepted.is_empty() {
                return Write::answer(outcomes);
            }
            let records = accepted
                .iter()
                .map(|((topic, partition), o)| offset_record(&id, topic, *partition, Some(o)))
                .collect();
            let failed = outcomes.clone();
            // Offsets are installed only once committed: a failed write changed nothing.
            Write::revert(
                records,
                move |shard: &mut GroupShard| {
                    let group = shard.get_or_create(&id);
                    for (key, offset) in accepted {
                        group.offsets.insert(key, offset);
                    }
                    outcomes
                },
                move |_, e| {
                    let error = write_error(e);
                    failed
                        .into_iter()
                        .map(|(t, p, o)| (t, p, o.or(Some(error))))
                        .collect()
                },
            )
        })
        .await;
    written.unwrap_or_else(|e| all_failed(&fallback, e))
}

/// Every wanted partition answered `error`.
fn all_failed(wanted: &[Wanted], error: ResponseError) -> Vec<PartitionOutcome> {
    wanted
        .iter()
        .map(|(topic, partition, ..)| (topic.clone(), *partition, Some(error)))
        .collect()
}

/// One partition of an OffsetCommit: topic, partition, offset, leader epoch, metadata.
type Wanted = (String, i32, i64, i32, String);

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
    let id = group_id.to_string();
    let read = broker
        .groups
        .write(group_id, move |shard: &mut GroupShard, _| {
            Write::answer(
                shard
                    .get(&id)
                    .map(|g| g.offsets.clone())
                    .unwrap_or_default(),
            )
        })
        .await;
    let offsets: HashMap<(String, i32), CommittedOffset> = match read {
        Ok(offsets) => offsets,
        Err(e) => return failed(e),
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
    let id = request.group_id.to_string();
    let wanted: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.to_string(), partitions)
        })
        .collect();
    let outcome = ctx
        .broker
        .groups
        .write(&request.group_id, move |shard: &mut GroupShard, _| {
            delete_offsets(shard, &id, wanted)
        })
        .await
        .and_then(|deleted| deleted);
    let in_use = match outcome {
        Ok(in_use) => in_use,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let topics = request
        .topics
        .into_iter()
        .zip(in_use)
        .map(|(topic, in_use)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index);
                    if in_use {
                        answer.with_error_code(ResponseError::GroupSubscribedToTopic.code())
                    } else {
                        answer
                    }
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// OffsetDelete in the group's shard: answers, per requested topic, whether the group still
/// consumes it (its offsets stay then); the others' offsets are deleted once written.
fn delete_offsets(
    shard: &mut GroupShard,
    group_id: &str,
    wanted: Vec<(String, Vec<i32>)>,
) -> Write<GroupShard, Result<Vec<bool>, ResponseError>> {
    let Some(group) = shard.get(group_id).filter(|g| g.state != GroupState::Dead) else {
        return Write::answer(Err(ResponseError::GroupIdNotFound));
    };
    let subscribed = if group.state == GroupState::Empty {
        Some(std::collections::HashSet::new())
    } else {
        group.subscribed_topics()
    };
    let in_use: Vec<bool> = wanted
        .iter()
        .map(|(name, _)| subscribed.as_ref().is_none_or(|s| s.contains(name)))
        .collect();
    let deleted: Vec<(String, i32)> = wanted
        .into_iter()
        .zip(&in_use)
        .filter(|(_, in_use)| !**in_use)
        .flat_map(|((name, partitions), _)| partitions.into_iter().map(move |p| (name.clone(), p)))
        .collect();
    if deleted.is_empty() {
        return Write::answer(Ok(in_use));
    }
    let records = deleted
        .iter()
        .map(|(topic, partition)| offset_record(group_id, topic, *partition, None))
        .collect();
    let id = group_id.to_string();
    Write::revert(
        records,
        move |shard: &mut GroupShard| {
            if let Some(group) = shard.get_mut(&id) {
                for key in &deleted {
                    group.offsets.remove(key);
                }
            }
            Ok(in_use)
        },
        |_, e| Err(write_error(e)),
    )
}
