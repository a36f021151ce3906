//! Every advertised version of the consumer-group APIs, sent raw: a group joined, synced,
//! heartbeated, committed, fetched, described, listed, left and deleted at each version.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use crate::raw::{Client, s};

/// A member of the current generation.
struct Joined {
    member_id: StrBytes,
    generation: i32,
}

use kafka_protocol::protocol::StrBytes;

/// Joins `group` alone at `version`: the KIP-394 round trip from v4, retried while the
/// coordinator loads; then syncs as leader at `sync_version` with a recognisable assignment.
fn join_and_sync(client: &mut Client, group: &str, version: i16, sync_version: i16) -> Joined {
    let mut member_id = StrBytes::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let joined = loop {
        let protocol = join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"));
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
            .with_member_id(member_id.clone())
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![protocol]);
        let response = client.send(&request, version);
        let error = ResponseError::try_from_code(response.error_code);
        match error {
            None => break response,
            Some(ResponseError::MemberIdRequired) => member_id = response.member_id,
            Some(ResponseError::CoordinatorLoadInProgress | ResponseError::NotCoordinator)
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("JoinGroup v{version}: {other:?}"),
        }
    };
    assert_eq!(
        joined.leader, joined.member_id,
        "JoinGroup v{version}: alone, it leads"
    );
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata.as_ref(), b"subscription");
    let assignment = sync_group_request::SyncGroupRequestAssignment::default()
        .with_member_id(joined.member_id.clone())
        .with_assignment(Bytes::from(format!("assignment-v{version}")));
    let mut sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![assignment]);
    if sync_version >= 5 {
        sync = sync
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    let synced = client.send(&sync, sync_version);
    assert_eq!(synced.error_code, 0, "SyncGroup v{sync_version}");
    assert_eq!(
        synced.assignment,
        Bytes::from(format!("assignment-v{version}"))
    );
    Joined {
        member_id: joined.member_id,
        generation: joined.generation_id,
    }
}

fn leave(client: &mut Client, group: &str, member: &Joined, version: i16) {
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(group)));
    let request = if version >= 3 {
        request.with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(member.member_id.clone()),
        ])
    } else {
        request.with_member_id(member.member_id.clone())
    };
    let response = client.send(&request, version);
    assert_eq!(response.error_code, 0, "LeaveGroup v{version}");
    if version >= 3 {
        assert_eq!(response.members[0].error_code, 0);
    }
}

/// Exercises every version in `range(key)` of every group API against topic `topic`.
pub fn exercise(client: &mut Client, range: &dyn Fn(ApiKey) -> RangeInclusive<i16>, topic: &str) {
    for version in range(ApiKey::FindCoordinator) {
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("versions")])
        } else {
            FindCoordinatorRequest::default().with_key(s("versions"))
        };
        let response = client.send(&request, version);
        let (error, node) = if version >= 4 {
            (
                response.coordinators[0].error_code,
                response.coordinators[0].node_id.0,
            )
        } else {
            (response.error_code, response.node_id.0)
        };
        assert_eq!((error, node), (0, 1), "FindCoordinator v{version}");
    }
    let joins = range(ApiKey::JoinGroup);
    let syncs = range(ApiKey::SyncGroup);
    let leaves = range(ApiKey::LeaveGroup);
    for version in joins.clone() {
        let group = format!("join-v{version}");
        let sync_version = version.clamp(*syncs.start(), *syncs.end());
        let member = join_and_sync(client, &group, version, sync_version);
        leave(
            client,
            &group,
            &member,
            version.clamp(*leaves.start(), *leaves.end()),
        );
    }
    for version in syncs.clone() {
        let group = format!("sync-v{version}");
        let member = join_and_sync(client, &group, *joins.end(), version);
        leave(client, &group, &member, *leaves.end());
    }

    let group = "versions";
    let member = join_and_sync(client, group, *joins.end(), *syncs.end());
    for version in range(ApiKey::Heartbeat) {
        let response = client.send(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id(member.generation)
                .with_member_id(member.member_id.clone()),
            version,
        );
        assert_eq!(response.error_code, 0, "Heartbeat v{version}");
    }
    for version in range(ApiKey::OffsetCommit) {
        let partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(i64::from(version))
            .with_committed_metadata(Some(s("m")));
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(member.generation)
            .with_member_id(member.member_id.clone())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![partition]),
            ]);
        let response = client.send(&request, version);
        assert_eq!(
            response.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{version}"
        );
    }
    let committed = i64::from(*range(ApiKey::OffsetCommit).end());
    for version in range(ApiKey::OffsetFetch) {
        let offset = if version >= 8 {
            let group = offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_indexes(vec![0]),
                ]));
            let response = client.send(
                &OffsetFetchRequest::default().with_groups(vec![group]),
                version,
            );
            assert_eq!(response.groups[0].error_code, 0, "OffsetFetch v{version}");
            response.groups[0].topics[0].partitions[0].committed_offset
        } else {
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_indexes(vec![0]),
                ]));
            let response = client.send(&request, version);
            assert_eq!(response.error_code, 0, "OffsetFetch v{version}");
            response.topics[0].partitions[0].committed_offset
        };
        assert_eq!(offset, committed, "OffsetFetch v{version}");
    }
    for version in range(ApiKey::DescribeGroups) {
        let response = client.send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            version,
        );
        let described = &response.groups[0];
        assert_eq!(described.error_code, 0, "DescribeGroups v{version}");
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.members.len(), 1);
    }
    for version in range(ApiKey::ListGroups) {
        let response = client.send(&ListGroupsRequest::default(), version);
        assert_eq!(response.error_code, 0, "ListGroups v{version}");
        assert!(response.groups.iter().any(|g| g.group_id.as_str() == group));
    }
    leave(client, group, &member, *leaves.end());
    for version in range(ApiKey::OffsetDelete) {
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ]);
        let response = client.send(&request, version);
        assert_eq!(response.error_code, 0, "OffsetDelete v{version}");
        assert_eq!(response.topics[0].partitions[0].error_code, 0);
    }
    for version in range(ApiKey::DeleteGroups) {
        let name = if version == 0 {
            group.to_string()
        } else {
            format!("join-v{version}")
        };
        let response = client.send(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&name))]),
            version,
        );
        assert_eq!(
            response.results[0].error_code, 0,
            "DeleteGroups v{version} of {name}"
        );
    }
}
