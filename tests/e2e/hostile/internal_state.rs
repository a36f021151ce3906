//! State a client must not be able to break: blobs inside group requests that the broker
//! decodes, and the internal topics that hold other clients' groups.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata_e2e::InProcessBroker;

use super::still_serves;
use crate::raw::{Client, s};
use crate::{client_runtime, create_topic, producer};

/// A consumer-protocol blob (version 0) whose first array claims 2^31-1 elements: decoded
/// without bounds, it asks for tens of GiB.
const HOSTILE_BLOB: &[u8] = &[0, 0, 0x7f, 0xff, 0xff, 0xff];

/// Asks for `group`'s coordinator until one answers (the first ask creates the offsets topic).
pub(crate) fn find_coordinator(client: &mut Client, group: &str) {
    let request = FindCoordinatorRequest::default().with_key(s(group));
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.send(&request, 3).error_code != 0 {
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `request` until the coordinator has loaded (or `deadline` passes), answering the
/// response whose error `error` reads.
pub(crate) fn until_loaded<R: kafka_protocol::protocol::Request>(
    client: &mut Client,
    request: &R,
    version: i16,
    error: impl Fn(&R::Response) -> i16,
) -> R::Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.send(request, version);
        let loading = matches!(
            ResponseError::try_from_code(error(&response)),
            Some(ResponseError::CoordinatorLoadInProgress | ResponseError::NotCoordinator)
        );
        if !loading || Instant::now() >= deadline {
            return response;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Joins `group` alone with `metadata` as its subscription and syncs `assignment` as the
/// leader; the group is then Stable with both blobs stored.
fn join_with(client: &mut Client, group: &str, metadata: &[u8], assignment: &[u8]) {
    find_coordinator(client, group);
    let mut member_id = StrBytes::default();
    let joined = loop {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(member_id.clone())
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::copy_from_slice(metadata)),
            ]);
        let response = until_loaded(client, &request, 5, |r| r.error_code);
        match ResponseError::try_from_code(response.error_code) {
            None => break response,
            Some(ResponseError::MemberIdRequired) => member_id = response.member_id,
            other => panic!("JoinGroup: {other:?}"),
        }
    };
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(joined.member_id)
                .with_assignment(Bytes::copy_from_slice(assignment)),
        ]);
    assert_eq!(client.send(&sync, 5).error_code, 0, "SyncGroup");
}

fn offset_delete(client: &mut Client, group: &str, topic: &str) -> OffsetDeleteResponse {
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
    until_loaded(client, &request, 0, |r| r.error_code)
}

#[test]
fn hostile_member_metadata_is_bounded_before_it_is_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "alive", 1, &[]));
    let mut client = Client::connect(&broker.bootstrap);
    join_with(&mut client, "hostile", HOSTILE_BLOB, HOSTILE_BLOB);

    // OffsetDelete reads every member's subscription; one that does not decode counts as
    // subscribed to everything, so nothing is deleted.
    let answer = offset_delete(&mut client, "hostile", "alive");
    assert_eq!(answer.error_code, 0);
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code()
    );
    let described = client.send(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("hostile"))]),
        5,
    );
    assert_eq!(
        described.groups[0].members[0].member_assignment.as_ref(),
        HOSTILE_BLOB
    );
    still_serves(&producer(&broker.bootstrap, &[]), "alive");

    // The group is durable, so the same blob comes back after a restart.
    broker.stop().expect("stop");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("restart");
    let mut client = Client::connect(&broker.bootstrap);
    let answer = offset_delete(&mut client, "hostile", "alive");
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code(),
        "after a restart"
    );
    still_serves(&producer(&broker.bootstrap, &[]), "alive");
}

/// One batch of `records` (key, value) as a client would produce it.
fn batch(records: &[(&[u8], Option<&[u8]>)]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .zip(0i64..)
        .map(|((key, value), offset)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1 + i32::try_from(offset).expect("small"),
            timestamp: 0,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encodes");
    buf.freeze()
}

fn committed(client: &mut Client, group: &str) -> i64 {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("alive")))
                .with_partition_indexes(vec![0]),
        ]));
    let response = until_loaded(client, &request, 5, |r| r.error_code);
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions[0].committed_offset
}

#[test]
fn clients_cannot_write_to_or_delete_from_internal_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "alive", 1, &[]));
    let mut client = Client::connect(&broker.bootstrap);
    find_coordinator(&mut client, "victim");
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("victim")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("alive")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    let answer = until_loaded(&mut client, &commit, 5, |r| {
        r.topics[0].partitions[0].error_code
    });
    assert_eq!(answer.topics[0].partitions[0].error_code, 0, "committed");

    // Kafka's key for the victim's offset of alive-0 (version 1), with a value that would
    // set it to 7, and one that does not decode at all; sent to every offsets partition.
    let mut key = vec![0, 1];
    for part in ["victim", "alive"] {
        key.extend_from_slice(&u16::try_from(part.len()).expect("short").to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key.extend_from_slice(&0i32.to_be_bytes());
    let mut rewrite = vec![0, 3];
    rewrite.extend_from_slice(&7i64.to_be_bytes());
    rewrite.extend_from_slice(&(-1i32).to_be_bytes());
    rewrite.extend_from_slice(&0i16.to_be_bytes());
    rewrite.extend_from_slice(&0i64.to_be_bytes());
    let records = batch(&[(&key, Some(&rewrite)), (&key, Some(b"\xff"))]);
    let partitions = (0..50)
        .map(|index| {
            produce_request::PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(records.clone()))
        })
        .collect();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("__consumer_offsets")))
                .with_partition_data(partitions),
        ]);
    let answer = client.send(&produce, 9);
    for partition in &answer.responses[0].partition_responses {
        assert_eq!(
            partition.error_code,
            ResponseError::InvalidTopicException.code(),
            "produce to __consumer_offsets-{}",
            partition.index
        );
    }
    let delete = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(s("__consumer_offsets")))
                .with_partitions(
                    (0..50)
                        .map(|index| {
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(index)
                                .with_offset(-1)
                        })
                        .collect(),
                ),
        ]);
    let answer = client.send(&delete, 2);
    for partition in &answer.topics[0].partitions {
        assert_eq!(
            partition.error_code,
            ResponseError::InvalidTopicException.code(),
            "delete records of __consumer_offsets-{}",
            partition.partition_index
        );
    }
    assert_eq!(committed(&mut client, "victim"), 42);

    // Nothing reached the log: a restart replays the same offset.
    broker.stop().expect("stop");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("restart");
    let mut client = Client::connect(&broker.bootstrap);
    assert_eq!(committed(&mut client, "victim"), 42, "after a restart");
}

#[test]
fn init_producer_id_never_bumps_another_producers_epoch() {
    let broker = InProcessBroker::start().expect("broker");
    let mut client = Client::connect(&broker.bootstrap);
    let init = |client: &mut Client, id: i64, epoch: i16| {
        client.send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            4,
        )
    };
    let victim = init(&mut client, -1, -1);
    assert_eq!(victim.error_code, 0);
    // Naming the victim's id and epoch, as KIP-360's bump would, gets a fresh id instead:
    // without a transactional id, nothing may fence another producer.
    let other = init(&mut client, victim.producer_id.0, victim.producer_epoch);
    assert_eq!(other.error_code, 0);
    assert_ne!(other.producer_id, victim.producer_id);
    assert_eq!(other.producer_epoch, 0);
    let half = init(&mut client, victim.producer_id.0, -1);
    assert_eq!(half.error_code, ResponseError::InvalidRequest.code());
}

#[test]
fn a_batch_claiming_a_far_future_max_timestamp_cannot_stop_time_retention() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "timed", 1, &[]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut bytes = BytesMut::from(&batch(&[(b"k", Some(b"v"))])[..]);
    // Records stamped now; the header's max timestamp claims the end of time.
    bytes[27..35].copy_from_slice(&now.to_be_bytes());
    bytes[35..43].copy_from_slice(&i64::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut client = Client::connect(&broker.bootstrap);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("timed")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes.freeze())),
                ]),
        ]);
    let answer = client.send(&produce, 9);
    assert_eq!(answer.responses[0].partition_responses[0].error_code, 0);
    // ListOffsets by max timestamp (-3) sees the records' own time, not the claim.
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s("timed")))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-3),
                ]),
        ]);
    let listed = client.send(&list, 7);
    let partition = &listed.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.offset, 0);
    assert_eq!(
        partition.timestamp, now,
        "the stored maximum is the records' own"
    );
}
