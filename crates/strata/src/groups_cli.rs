//! `strata groups list|describe|delete|reset-offsets`: consumer groups seen and changed through the
//! Kafka protocol, like Kafka's `kafka-consumer-groups.sh`, against any Kafka-compatible
//! cluster.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, bail};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cli::{GroupsCommand, ResetTarget};
use crate::kafka_client::Cluster;

/// ListOffsets' special timestamps.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

pub fn run(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { bootstrap } => list(&bootstrap),
        GroupsCommand::Describe { bootstrap, group } => describe(&bootstrap, &group),
        GroupsCommand::Delete { bootstrap, group } => delete(&bootstrap, &group),
        GroupsCommand::ResetOffsets {
            bootstrap,
            group,
            topic,
            target,
            execute,
        } => reset_offsets(&bootstrap, &group, &topic, &target, execute),
    }
}

fn string(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn list(bootstrap: &str) -> anyhow::Result<()> {
    let mut cluster = Cluster::discover(bootstrap, Some(&[]))?;
    let mut groups = BTreeMap::new();
    for id in cluster.broker_ids() {
        let response = cluster.broker(id)?.send(&ListGroupsRequest::default(), 4)?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            bail!("broker {id} could not list its groups: {error}");
        }
        for g in response.groups {
            groups.insert(g.group_id.to_string(), g.group_state.to_string());
        }
    }
    println!("{:<40} STATE", "GROUP");
    for (group, state) in groups {
        println!("{group:<40} {state}");
    }
    Ok(())
}

/// A group's state and which member owns each (topic, partition).
struct GroupView {
    state: String,
    owners: HashMap<(String, i32), (String, String, String)>,
}

fn describe_group(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
) -> anyhow::Result<GroupView> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(string(group))]);
    let response = cluster.broker(coordinator)?.send(&request, 5)?;
    let described = response
        .groups
        .first()
        .context("DescribeGroups answered nothing")?;
    if let Some(error) = ResponseError::try_from_code(described.error_code) {
        bail!("describing group '{group}': {error}");
    }
    let mut owners = HashMap::new();
    for member in &described.members {
        // Another client wrote it: bounded before it is decoded.
        let Ok(assignment) = strata_wire::embedded::consumer_assignment(&member.member_assignment)
        else {
            continue;
        };
        for tp in assignment.assigned_partitions {
            for p in tp.partitions {
                owners.insert(
                    (tp.topic.to_string(), p),
                    (
                        member.member_id.to_string(),
                        member.client_host.to_string(),
                        member.client_id.to_string(),
                    ),
                );
            }
        }
    }
    Ok(GroupView {
        state: described.group_state.to_string(),
        owners,
    })
}

/// The group's committed offsets, by (topic, partition).
fn committed(
    cluster: &mut Cluster,
    coordinator: i32,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default().with_groups(vec![
        // No topic list: all of the group's offsets.
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(string(group)))
            .with_topics(None),
    ]);
    let response = cluster.broker(coordinator)?.send(&request, 8)?;
    let fetched = response
        .groups
        .first()
        .context("OffsetFetch answered nothing")?;
    if let Some(error) = ResponseError::try_from_code(fetched.error_code) {
        bail!("fetching the offsets of group '{group}': {error}");
    }
    Ok(fetched
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.committed_offset >= 0)
                .map(|p| ((t.name.to_string(), p.partition_index), p.committed_offset))
        })
        .collect())
}

/// ListOffsets at each partition's leader: the offset for `timestamp` per (topic, partition).
fn offsets_at(
    cluster: &mut Cluster,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<HashMap<(String, i32), i64>> {
    let mut by_leader: BTreeMap<i32, Vec<&(String, i32)>> = BTreeMap::new();
    for tp in partitions {
        let leader = *cluster
            .leaders
            .get(tp)
            .with_context(|| format!("{}-{} is not in the metadata", tp.0, tp.1))?;
        by_leader.entry(leader).or_default().push(tp);
    }
    let mut found = HashMap::new();
    for (leader, tps) in by_leader {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (topic, partition) in tps {
            topics.entry(topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(*partition)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(string(topic)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = cluster.broker(leader)?.send(&request, 7)?;
        for topic in response.topics {
            for p in topic.partitions {
                if let Some(error) = ResponseError::try_from_code(p.error_code) {
                    bail!(
                        "listing offsets of {}-{}: {error}",
                        topic.name.0,
                        p.partition_index
                    );
                }
                found.insert((topic.name.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(found)
}

fn describe(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut cluster = Cluster::discover(bootstrap, None)?;
    let coordinator = cluster.coordinator(group)?;
    let view = describe_group(&mut cluster, coordinator, group)?;
    let committed = committed(&mut cluster, coordinator, group)?;
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(view.owners.keys().cloned());
    partitions.sort();
    partitions.dedup();
    let ends = offsets_at(&mut cluster, &partitions, LATEST)?;
    println!(
        "group {group} ({}), coordinator broker {coordinator}",
        view.state
    );
    println!(
        "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<16} CLIENT-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).copied().unwrap_or(-1);
        let lag = current.map_or_else(|| "-".to_string(), |c| (end - c).max(0).to_string());
        let (member, host, client) = view
            .owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<16} {}",
            tp.0,
            tp.1,
            current.map_or_else(|| "-".to_string(), |c| c.to_string()),
            end,
            lag,
            member,
            host,
            client
        );
    }
    Ok(())
}

fn delete(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let mut cluster = Cluster::discover(bootstrap, Some(&[]))?;
    let coordinator = cluster.coordinator(group)?;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(string(group))]);
    let response = cluster.broker(coordinator)?.send(&request, 2)?;
    let result = response
        .results
        .first()
        .context("DeleteGroups answered nothing")?;
    if let Some(error) = ResponseError::try_from_code(result.error_code) {
        bail!("deleting group '{group}': {error}");
    }
    println!("group '{group}' deleted");
    Ok(())
}

fn reset_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    target: &ResetTarget,
    execute: bool,
) -> anyhow::Result<()> {
    let mut cluster = Cluster::discover(bootstrap, Some(&[topic.to_string()]))?;
    let coordinator = cluster.coordinator(group)?;
    let view = describe_group(&mut cluster, coordinator, group)?;
    // Kafka's rule: offsets of a group with active members are theirs to commit.
    if !matches!(view.state.as_str(), "Empty" | "Dead") {
        bail!(
            "group '{group}' is {}: offsets can only be reset while it has no active members",
            view.state
        );
    }
    let mut partitions: Vec<(String, i32)> = cluster
        .leaders
        .keys()
        .filter(|(t, _)| t == topic)
        .cloned()
        .collect();
    partitions.sort();
    let earliest = offsets_at(&mut cluster, &partitions, EARLIEST)?;
    let latest = offsets_at(&mut cluster, &partitions, LATEST)?;
    let chosen: BTreeMap<(String, i32), i64> = match target {
        ResetTarget {
            to_earliest: true, ..
        } => earliest.into_iter().collect(),
        ResetTarget {
            to_latest: true, ..
        } => latest.into_iter().collect(),
        ResetTarget {
            to_offset: Some(offset),
            ..
        } => partitions
            .iter()
            .map(|tp| {
                let low = earliest.get(tp).copied().unwrap_or(0);
                let high = latest.get(tp).copied().unwrap_or(0);
                (tp.clone(), (*offset).clamp(low, high))
            })
            .collect(),
        ResetTarget {
            to_timestamp: Some(ts),
            ..
        } => {
            let at = offsets_at(&mut cluster, &partitions, *ts)?;
            // No record at or after the time: the end of the partition.
            at.into_iter()
                .map(|(tp, o)| {
                    let end = latest.get(&tp).copied().unwrap_or(0);
                    (tp, if o < 0 { end } else { o })
                })
                .collect()
        }
        _ => bail!("say where to: --to-earliest, --to-latest, --to-offset N or --to-timestamp MS"),
    };
    println!("{:<30} {:>9} {:>12}", "TOPIC", "PARTITION", "NEW-OFFSET");
    for ((t, p), o) in &chosen {
        println!("{t:<30} {p:>9} {o:>12}");
    }
    if !execute {
        println!("(dry run: add --execute to commit these offsets)");
        return Ok(());
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(string(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(string(topic)))
                .with_partitions(
                    chosen
                        .iter()
                        .map(|((_, p), o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                        })
                        .collect(),
                ),
        ]);
    let response = cluster.broker(coordinator)?.send(&request, 8)?;
    for topic in response.topics {
        for p in topic.partitions {
            if let Some(error) = ResponseError::try_from_code(p.error_code) {
                bail!("committing {}-{}: {error}", topic.name.0, p.partition_index);
            }
        }
    }
    println!("offsets of group '{group}' reset");
    Ok(())
}
