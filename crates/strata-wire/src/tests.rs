//! The schemas are proved against `kafka-protocol` itself: requests it encodes, with every
//! array non-empty, must pass the walk at every version Kafka and the codec both know, and
//! every truncation of them must fail it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes};
use proptest::prelude::*;

use crate::{BoundsError, check_request, peek_header, request_versions};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn encode<R: Request + Encodable>(request: &R, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(s("test-client")));
    header
        .encode(&mut buf, R::header_version(version))
        .expect("header encodes");
    request.encode(&mut buf, version).expect("request encodes");
    buf.freeze()
}

/// Encodes at every served version, checks, decodes, and checks every truncation fails.
fn prove<R: Request + Encodable + Decodable + Message + Clone>(request: R) {
    prove_versioned(|_| request.clone());
}

/// Like [`prove`], for requests whose fields depend on the version.
fn prove_versioned<R: Request + Encodable + Decodable + Message>(make: impl Fn(i16) -> R) {
    // Every version both Kafka's specs and the codec know.
    let (min, max) = request_versions(R::KEY).expect("a request Kafka defines");
    for version in min.max(R::VERSIONS.min)..=max.min(R::VERSIONS.max) {
        let frame = encode(&make(version), version);
        check_request(&frame).unwrap_or_else(|e| panic!("api {} v{version} rejected: {e}", R::KEY));
        let mut body = frame.clone();
        RequestHeader::decode(&mut body, R::header_version(version)).expect("header decodes");
        R::decode(&mut body, version).expect("body decodes");
        for cut in 0..frame.len() {
            assert!(
                check_request(&frame[..cut]).is_err(),
                "api {} v{version} truncated to {cut} bytes passes",
                R::KEY
            );
        }
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

#[test]
fn produce_requests_of_every_version_pass_and_truncations_fail() {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(1)
        .with_records(Some(Bytes::from_static(b"batch")));
    let data = produce_request::TopicProduceData::default()
        .with_name(topic("t"))
        .with_topic_id(uuid::Uuid::from_u128(7))
        .with_partition_data(vec![partition.clone(), partition.with_records(None)]);
    prove(
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![data]),
    );
}

#[test]
fn fetch_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let mut partition = fetch_request::FetchPartition::default()
            .with_partition(2)
            .with_fetch_offset(5)
            .with_partition_max_bytes(1 << 20);
        if version >= 17 {
            partition = partition.with_replica_directory_id(uuid::Uuid::from_u128(3));
        }
        if version >= 18 {
            partition = partition.with_high_watermark(9);
        }
        let mut fetch_topic = fetch_request::FetchTopic::default()
            .with_partitions(vec![partition.clone(), partition]);
        let mut forgotten = fetch_request::ForgottenTopic::default().with_partitions(vec![1, 2]);
        if version >= 13 {
            fetch_topic = fetch_topic.with_topic_id(uuid::Uuid::from_u128(1));
            forgotten = forgotten.with_topic_id(uuid::Uuid::from_u128(2));
        } else {
            fetch_topic = fetch_topic.with_topic(topic("t"));
            forgotten = forgotten.with_topic(topic("old"));
        }
        let mut request = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_topic]);
        if version >= 7 {
            request = request.with_forgotten_topics_data(vec![forgotten]);
        }
        if version >= 11 {
            request = request.with_rack_id(s("rack"));
        }
        if version >= 12 {
            request = request.with_cluster_id(Some(s("cluster")));
        }
        if version >= 15 {
            request = request.with_replica_state(
                fetch_request::ReplicaState::default()
                    .with_replica_id(BrokerId(3))
                    .with_replica_epoch(4),
            );
        }
        request
    });
}

#[test]
fn list_offsets_requests_of_every_version_pass_and_truncations_fail() {
    let partition = list_offsets_request::ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    let t = list_offsets_request::ListOffsetsTopic::default()
        .with_name(topic("t"))
        .with_partitions(vec![partition]);
    prove(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![t])
            .with_timeout_ms(100),
    );
}

#[test]
fn metadata_requests_of_every_version_pass_and_truncations_fail() {
    let t = metadata_request::MetadataRequestTopic::default().with_name(Some(topic("t")));
    prove(
        MetadataRequest::default()
            .with_topics(Some(vec![t.clone(), t]))
            .with_allow_auto_topic_creation(true),
    );
    prove(MetadataRequest::default().with_topics(None));
}

#[test]
fn api_versions_requests_of_every_version_pass_and_truncations_fail() {
    prove(
        ApiVersionsRequest::default()
            .with_client_software_name(s("strata-test"))
            .with_client_software_version(s("1.0")),
    );
}

#[test]
fn create_topics_requests_of_every_version_pass_and_truncations_fail() {
    let assignment = create_topics_request::CreatableReplicaAssignment::default()
        .with_broker_ids(vec![BrokerId(1)]);
    let config = create_topics_request::CreatableTopicConfig::default()
        .with_name(s("retention.ms"))
        .with_value(Some(s("1")));
    let t = create_topics_request::CreatableTopic::default()
        .with_name(topic("t"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![assignment])
        .with_configs(vec![config.clone(), config.with_value(None)]);
    prove(
        CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(100),
    );
}

#[test]
fn delete_topics_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let request = DeleteTopicsRequest::default().with_timeout_ms(100);
        if version >= 6 {
            let by_name =
                delete_topics_request::DeleteTopicState::default().with_name(Some(topic("t")));
            let by_id = delete_topics_request::DeleteTopicState::default()
                .with_topic_id(uuid::Uuid::from_u128(5));
            request.with_topics(vec![by_name, by_id])
        } else {
            request.with_topic_names(vec![topic("a"), topic("b")])
        }
    });
}

#[test]
fn init_producer_id_requests_of_every_version_pass_and_truncations_fail() {
    prove(
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx"))))
            .with_transaction_timeout_ms(100),
    );
}

#[test]
fn describe_cluster_requests_of_every_version_pass_and_truncations_fail() {
    prove(DescribeClusterRequest::default().with_endpoint_type(1));
}

fn describe_configs_sample(version: i16) -> DescribeConfigsRequest {
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("t"))
        .with_configuration_keys(Some(vec![s("retention.ms")]));
    DescribeConfigsRequest::default()
        .with_resources(vec![
            resource.clone(),
            resource.with_configuration_keys(None),
        ])
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3)
}

fn alter_configs_sample() -> AlterConfigsRequest {
    let config = alter_configs_request::AlterableConfig::default()
        .with_name(s("retention.ms"))
        .with_value(Some(s("1000")));
    let resource = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("t"))
        .with_configs(vec![config.clone(), config.with_value(None)]);
    AlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(true)
}

fn create_partitions_sample() -> CreatePartitionsRequest {
    let assignment = create_partitions_request::CreatePartitionsAssignment::default()
        .with_broker_ids(vec![BrokerId(1)]);
    let topic_with = create_partitions_request::CreatePartitionsTopic::default()
        .with_name(topic("t"))
        .with_count(3)
        .with_assignments(Some(vec![assignment]));
    CreatePartitionsRequest::default()
        .with_topics(vec![topic_with.clone(), topic_with.with_assignments(None)])
        .with_timeout_ms(1000)
}

fn delete_records_sample() -> DeleteRecordsRequest {
    let partition = delete_records_request::DeleteRecordsPartition::default()
        .with_partition_index(1)
        .with_offset(42);
    let topic_with = delete_records_request::DeleteRecordsTopic::default()
        .with_name(topic("t"))
        .with_partitions(vec![partition.clone(), partition.with_offset(-1)]);
    DeleteRecordsRequest::default()
        .with_topics(vec![topic_with])
        .with_timeout_ms(1000)
}

fn incremental_alter_configs_sample() -> IncrementalAlterConfigsRequest {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(s("retention.ms"))
        .with_config_operation(0)
        .with_value(Some(s("1000")));
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s(""))
        .with_configs(vec![config.clone(), config.with_value(None)]);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

#[test]
fn describe_configs_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(describe_configs_sample);
}

#[test]
fn alter_configs_requests_of_every_version_pass_and_truncations_fail() {
    prove(alter_configs_sample());
}

#[test]
fn create_partitions_requests_of_every_version_pass_and_truncations_fail() {
    prove(create_partitions_sample());
}

#[test]
fn delete_records_requests_of_every_version_pass_and_truncations_fail() {
    prove(delete_records_sample());
}

#[test]
fn incremental_alter_configs_requests_of_every_version_pass_and_truncations_fail() {
    prove(incremental_alter_configs_sample());
}

#[test]
fn offset_commit_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(1)
            .with_committed_offset(42)
            .with_committed_metadata(Some(s("m")));
        let topic = offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![
                partition.clone(),
                partition.with_committed_metadata(None),
            ]);
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(3)
            .with_member_id(s("m-1"))
            .with_group_instance_id((version >= 7).then(|| s("i")))
            .with_topics(vec![topic])
    });
}

#[test]
fn offset_fetch_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let request = OffsetFetchRequest::default().with_require_stable(version >= 7);
        if version >= 8 {
            let topics = offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0, 1]);
            let group = offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id((version >= 9).then(|| s("m")))
                .with_topics(Some(vec![topics]));
            request.with_groups(vec![group.clone(), group.with_topics(None)])
        } else {
            let topics = offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic("t"))
                .with_partition_indexes(vec![0, 1]);
            request
                .with_group_id(GroupId(s("g")))
                .with_topics(Some(vec![topics]))
        }
    });
}

#[test]
fn find_coordinator_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.with_coordinator_keys(vec![s("g1"), s("g2")])
        } else {
            request.with_key(s("g1"))
        }
    });
}

#[test]
fn join_group_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let protocol = join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"));
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if version >= 1 { 30_000 } else { -1 })
            .with_member_id(s(""))
            .with_group_instance_id((version >= 5).then(|| s("i")))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![protocol])
            .with_reason((version >= 8).then(|| s("why")))
    });
}

#[test]
fn heartbeat_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s("m"))
            .with_group_instance_id((version >= 3).then(|| s("i")))
    });
}

#[test]
fn leave_group_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let request = LeaveGroupRequest::default().with_group_id(GroupId(s("g")));
        if version >= 3 {
            let member = leave_group_request::MemberIdentity::default()
                .with_member_id(s("m"))
                .with_group_instance_id(Some(s("i")))
                .with_reason((version >= 5).then(|| s("bye")));
            request.with_members(vec![member])
        } else {
            request.with_member_id(s("m"))
        }
    });
}

#[test]
fn sync_group_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let assignment = sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(s("m"))
            .with_assignment(Bytes::from_static(b"assignment"));
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s("m"))
            .with_group_instance_id((version >= 3).then(|| s("i")))
            .with_protocol_type((version >= 5).then(|| s("consumer")))
            .with_protocol_name((version >= 5).then(|| s("range")))
            .with_assignments(vec![assignment])
    });
}

#[test]
fn describe_groups_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("g1")), GroupId(s("g2"))])
            .with_include_authorized_operations(version >= 3)
    });
}

#[test]
fn list_groups_requests_of_every_version_pass_and_truncations_fail() {
    prove_versioned(|version| {
        let request = ListGroupsRequest::default();
        let request = if version >= 4 {
            request.with_states_filter(vec![s("Stable")])
        } else {
            request
        };
        if version >= 5 {
            request.with_types_filter(vec![s("classic")])
        } else {
            request
        }
    });
}

#[test]
fn delete_groups_requests_of_every_version_pass_and_truncations_fail() {
    prove(
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1")), GroupId(s("g2"))]),
    );
}

#[test]
fn offset_delete_requests_of_every_version_pass_and_truncations_fail() {
    let partition =
        offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(2);
    let topic = offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(topic("t"))
        .with_partitions(vec![partition]);
    prove(
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(vec![topic]),
    );
}

#[test]
fn the_fourteen_byte_request_claiming_two_billion_topics_is_refused() {
    let mut frame = Vec::new();
    frame.extend_from_slice(&3i16.to_be_bytes()); // Metadata
    frame.extend_from_slice(&1i16.to_be_bytes()); // v1
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(frame.len(), 14);
    assert!(matches!(
        check_request(&frame),
        Err(BoundsError::BadLength { .. })
    ));
}

/// The header of a Metadata v12 request (header v2: null client id, no tagged fields).
fn metadata_v12_header() -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&3i16.to_be_bytes());
    frame.extend_from_slice(&12i16.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.push(0);
    frame
}

#[test]
fn a_compact_array_count_beyond_the_bytes_is_refused() {
    // Topics as a compact array claiming 2^28 entries.
    let mut frame = metadata_v12_header();
    frame.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]);
    assert!(check_request(&frame).is_err());
}

#[test]
fn headers_shorter_than_eight_bytes_are_errors_not_panics() {
    for len in 0..8 {
        assert!(peek_header(&[0u8; 8][..len]).is_err());
        assert!(check_request(&[0u8; 8][..len]).is_err());
    }
}

#[test]
fn unserved_apis_and_versions_are_refused() {
    let frame = encode(&ProduceRequest::default(), 3);
    let mut bad = frame.to_vec();
    bad[2..4].copy_from_slice(&99i16.to_be_bytes());
    assert!(matches!(
        check_request(&bad),
        Err(BoundsError::UnsupportedApi { .. })
    ));
    bad[0..2].copy_from_slice(&999i16.to_be_bytes());
    assert!(matches!(
        check_request(&bad),
        Err(BoundsError::UnsupportedApi { .. })
    ));
}

fn sample_frames() -> Vec<Bytes> {
    let t = metadata_request::MetadataRequestTopic::default().with_name(Some(topic("t")));
    let mut frames = Vec::new();
    for version in [1, 9, 12] {
        frames.push(encode(
            &MetadataRequest::default().with_topics(Some(vec![t.clone()])),
            version,
        ));
    }
    let partition = produce_request::PartitionProduceData::default()
        .with_records(Some(Bytes::from_static(b"x")));
    let data = produce_request::TopicProduceData::default()
        .with_name(topic("t"))
        .with_partition_data(vec![partition]);
    for version in [3, 9, 13] {
        frames.push(encode(
            &ProduceRequest::default().with_topic_data(vec![data.clone()]),
            version,
        ));
    }
    for version in [1, 4] {
        frames.push(encode(&describe_configs_sample(version), version));
    }
    for version in [0, 2] {
        frames.push(encode(&alter_configs_sample(), version));
        frames.push(encode(&create_partitions_sample(), version + 1));
    }
    for version in [0, 1] {
        frames.push(encode(&incremental_alter_configs_sample(), version));
    }
    for version in [0, 2] {
        frames.push(encode(&delete_records_sample(), version));
    }
    frames
}

/// Decodes an accepted frame with kafka-protocol; it may fail, it must not abort.
fn decode_accepted(frame: &[u8]) {
    let Ok(start) = peek_header(frame) else {
        return;
    };
    let Ok(api_key) = ApiKey::try_from(start.api_key) else {
        return;
    };
    let mut body = Bytes::copy_from_slice(frame);
    if RequestHeader::decode(&mut body, api_key.request_header_version(start.api_version)).is_err()
    {
        return;
    }
    let v = start.api_version;
    let _ = match api_key {
        ApiKey::Produce => ProduceRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::Fetch => FetchRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::ListOffsets => ListOffsetsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::Metadata => MetadataRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::ApiVersions => ApiVersionsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DeleteTopics => DeleteTopicsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::InitProducerId => InitProducerIdRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DescribeCluster => DescribeClusterRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::OffsetCommit => OffsetCommitRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::OffsetFetch => OffsetFetchRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::FindCoordinator => FindCoordinatorRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::Heartbeat => HeartbeatRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::LeaveGroup => LeaveGroupRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::SyncGroup => SyncGroupRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DescribeGroups => DescribeGroupsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::ListGroups => ListGroupsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DeleteGroups => DeleteGroupsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::OffsetDelete => OffsetDeleteRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::AlterConfigs => AlterConfigsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::CreatePartitions => CreatePartitionsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::DeleteRecords => DeleteRecordsRequest::decode(&mut body, v).map(|_| ()),
        ApiKey::IncrementalAlterConfigs => {
            IncrementalAlterConfigsRequest::decode(&mut body, v).map(|_| ())
        }
        _ => Ok(()),
    };
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if check_request(&bytes).is_ok() {
            decode_accepted(&bytes);
        }
    }

    #[test]
    fn mutated_requests_that_pass_decode_without_aborting(
        which in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let frames = sample_frames();
        let mut frame = frames[which % frames.len()].to_vec();
        for (at, value) in flips {
            let at = at % frame.len();
            frame[at] = value;
        }
        if check_request(&frame).is_ok() {
            decode_accepted(&frame);
        }
    }
}

#[test]
fn a_request_with_more_elements_than_the_budget_is_refused() {
    // Metadata v12 with 2^20 + 1 empty (compact) topic names: 1 byte each on the wire.
    let count = crate::MAX_REQUEST_ELEMENTS + 1;
    let mut frame = metadata_v12_header();
    let mut n = count as u32 + 1;
    while n >= 0x80 {
        frame.push((n as u8) | 0x80);
        n >>= 7;
    }
    frame.push(n as u8);
    // Each topic: a null uuid (16 bytes), an empty compact name, no tagged fields.
    for _ in 0..count {
        frame.extend_from_slice(&[0u8; 16]);
        frame.push(1);
        frame.push(0);
    }
    frame.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(
        check_request(&frame),
        Err(BoundsError::TooManyElements { .. })
    ));
}

/// Seeds the request fuzzer with the sample frames, so it starts from requests that pass:
/// `STRATA_FUZZ_SEEDS=fuzz/corpus/request_decode cargo test -p strata-wire -- --ignored seeds`
#[test]
#[ignore = "writes files; run by hand to seed the fuzzer"]
fn write_fuzz_seeds() {
    let dir = std::env::var("STRATA_FUZZ_SEEDS").expect("STRATA_FUZZ_SEEDS names a directory");
    std::fs::create_dir_all(&dir).expect("seed directory");
    for (i, frame) in sample_frames().iter().enumerate() {
        std::fs::write(format!("{dir}/sample-{i}"), frame).expect("seed written");
    }
}
