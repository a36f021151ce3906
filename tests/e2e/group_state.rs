//! Group state that must survive what clients and admins do around it: a static member that
//! restarts without a rebalance, and a topic deleted and re-created under the same name.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::AdminOptions;
use strata_e2e::InProcessBroker;

use crate::hostile::internal_state::{find_coordinator, until_loaded};
use crate::raw::{Client, s};
use crate::{admin, client_runtime, create_topic};

/// JoinGroup v5 for static member `instance` with `member_id` (empty: a new process).
fn join_static(
    client: &mut Client,
    group: &str,
    instance: &str,
    member_id: &str,
) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_group_instance_id(Some(s(instance)))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"m")),
        ]);
    until_loaded(client, &request, 5, |r| r.error_code)
}

fn heartbeat(
    client: &mut Client,
    group: &str,
    instance: &str,
    member_id: &StrBytes,
    generation: i32,
) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(member_id.clone())
        .with_group_instance_id(Some(s(instance)));
    until_loaded(client, &request, 3, |r| r.error_code).error_code
}

#[test]
fn a_static_member_that_restarts_keeps_its_place_across_a_coordinator_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("broker");
    let mut client = Client::connect(&broker.bootstrap);
    find_coordinator(&mut client, "static");
    let first = join_static(&mut client, "static", "i-1", "");
    assert_eq!(first.error_code, 0);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("static")))
        .with_generation_id(first.generation_id)
        .with_member_id(first.member_id.clone())
        .with_group_instance_id(Some(s("i-1")))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(first.member_id.clone())
                .with_assignment(Bytes::from_static(b"a")),
        ]);
    assert_eq!(client.send(&sync, 3).error_code, 0);
    // The member's process restarts: same instance id, no member id; no rebalance.
    let back = join_static(&mut client, "static", "i-1", "");
    assert_eq!(back.error_code, 0);
    assert_eq!(back.generation_id, first.generation_id);
    assert_ne!(back.member_id, first.member_id);

    // The coordinator reloads the group from its log: the new id is the member.
    broker.stop().expect("stop");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("restart");
    let mut client = Client::connect(&broker.bootstrap);
    find_coordinator(&mut client, "static");
    assert_eq!(
        heartbeat(
            &mut client,
            "static",
            "i-1",
            &back.member_id,
            back.generation_id
        ),
        0,
        "the live member is not fenced after a reload"
    );
    assert_eq!(
        heartbeat(
            &mut client,
            "static",
            "i-1",
            &first.member_id,
            first.generation_id
        ),
        ResponseError::FencedInstanceId.code(),
        "the replaced one is"
    );
}

fn committed(client: &mut Client, group: &str, topic: &str) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    let response = until_loaded(client, &request, 5, |r| r.error_code);
    response.topics[0].partitions[0].committed_offset
}

#[test]
fn a_deleted_topics_committed_offsets_go_with_it() {
    let broker = InProcessBroker::start().expect("broker");
    let runtime = client_runtime();
    runtime.block_on(create_topic(&broker.bootstrap, "doomed", 1, &[]));
    let mut client = Client::connect(&broker.bootstrap);
    find_coordinator(&mut client, "reader");
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("reader")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("doomed")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1234),
                ]),
        ]);
    let answer = until_loaded(&mut client, &commit, 5, |r| {
        r.topics[0].partitions[0].error_code
    });
    assert_eq!(answer.topics[0].partitions[0].error_code, 0);
    assert_eq!(committed(&mut client, "reader", "doomed"), 1234);

    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = runtime
        .block_on(admin(&broker.bootstrap).delete_topics(&["doomed"], &options))
        .expect("delete_topics");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&mut client, "reader", "doomed") != -1 {
        assert!(
            Instant::now() < deadline,
            "the deleted topic's offset is still there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Re-created under the same name, the topic has no committed offset for the group.
    runtime.block_on(create_topic(&broker.bootstrap, "doomed", 1, &[]));
    assert_eq!(committed(&mut client, "reader", "doomed"), -1);
}
