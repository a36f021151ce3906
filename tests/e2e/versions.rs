//! Every advertised version of every API, sent raw (encoded by `kafka-protocol` as a client
//! would) and answered with a response that decodes at that version. Older clients
//! (kafka-python, kcat's librdkafka 2.0) negotiate old versions, and a field the broker sets
//! that an old version lacks would otherwise close their connections.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use strata_e2e::InProcessBroker;

use crate::raw::{Client, s};

/// A one-record v2 batch, built by hand so the test does not share the broker's code.
fn one_record_batch() -> Bytes {
    let mut record = BytesMut::new();
    record.put_u8(0); // attributes
    record.put_u8(0); // timestamp delta 0 (zigzag varint)
    record.put_u8(0); // offset delta 0
    record.put_u8(2); // key length 1
    record.put_u8(b'k');
    record.put_u8(2); // value length 1
    record.put_u8(b'v');
    record.put_u8(0); // no headers
    let mut batch = BytesMut::new();
    batch.put_i64(0); // base offset
    let length_at = batch.len();
    batch.put_i32(0); // batch length, patched below
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    let crc_at = batch.len();
    batch.put_u32(0); // crc, patched below
    batch.put_i16(0); // attributes
    batch.put_i32(0); // last offset delta
    batch.put_i64(1_700_000_000_000); // base timestamp
    batch.put_i64(1_700_000_000_000); // max timestamp
    batch.put_i64(-1); // producer id
    batch.put_i16(-1); // producer epoch
    batch.put_i32(-1); // base sequence
    batch.put_i32(1); // records
    batch.put_u8((record.len() as u8) << 1); // record length (zigzag varint)
    batch.extend_from_slice(&record);
    let length = (batch.len() - 12) as i32;
    batch[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&batch[crc_at + 4..]);
    batch[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

#[test]
fn every_advertised_version_of_every_api_is_answered_and_decodes() {
    // No initial rebalance delay: every JoinGroup version joins a fresh group.
    let broker = InProcessBroker::start_with(|c| {
        c.groups.limits.initial_rebalance_delay = std::time::Duration::ZERO;
    })
    .expect("broker");
    let mut client = Client::connect(&broker.bootstrap);
    let advertised = client.send(
        &ApiVersionsRequest::default()
            .with_client_software_name(s("t"))
            .with_client_software_version(s("1")),
        3,
    );
    let range = |key: ApiKey| {
        let v = advertised
            .api_keys
            .iter()
            .find(|v| v.api_key == key as i16)
            .expect("advertised");
        v.min_version..=v.max_version
    };
    let covered = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::SyncGroup,
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DeleteRecords,
        ApiKey::InitProducerId,
        ApiKey::OffsetForLeaderEpoch,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::DescribeLogDirs,
        ApiKey::CreatePartitions,
        ApiKey::DeleteGroups,
        ApiKey::ElectLeaders,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::AlterPartitionReassignments,
        ApiKey::ListPartitionReassignments,
        ApiKey::OffsetDelete,
        ApiKey::DescribeQuorum,
        ApiKey::DescribeCluster,
    ];
    let advertised_keys: Vec<i16> = advertised.api_keys.iter().map(|v| v.api_key).collect();
    assert_eq!(
        advertised_keys,
        covered.map(|k| k as i16),
        "every advertised API is exercised below"
    );
    for version in range(ApiKey::ApiVersions) {
        let response = client.send(&ApiVersionsRequest::default(), version);
        assert_eq!(response.error_code, 0, "ApiVersions v{version}");
    }
    for version in range(ApiKey::DescribeCluster) {
        let response = client.send(
            &DescribeClusterRequest::default().with_endpoint_type(1),
            version,
        );
        assert_eq!(response.error_code, 0, "DescribeCluster v{version}");
        assert_eq!(response.brokers.len(), 1);
    }
    for version in range(ApiKey::InitProducerId) {
        let response = client.send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(1000),
            version,
        );
        assert_eq!(response.error_code, 0, "InitProducerId v{version}");
        assert!(response.producer_id.0 >= 0);
    }
    for version in range(ApiKey::CreateTopics) {
        let name = format!("v{version}-topic");
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(&name)))
            .with_num_partitions(2)
            .with_replication_factor(1);
        let response = client.send(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(5000),
            version,
        );
        assert_eq!(
            response.topics[0].error_code, 0,
            "CreateTopics v{version}: {:?}",
            response.topics[0].error_message
        );
    }
    let metadata = client.send(&MetadataRequest::default().with_topics(None), 12);
    let topic_id = |name: &str| {
        metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .expect("listed")
            .topic_id
    };
    let (topic, id) = ("v7-topic", topic_id("v7-topic"));
    for version in range(ApiKey::ElectLeaders) {
        // The single node already leads everything: nothing to elect, said per partition.
        let response = client.send(
            &ElectLeadersRequest::default()
                .with_election_type(0)
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(TopicName(s(topic)))
                        .with_partitions(vec![0, 1]),
                ]))
                .with_timeout_ms(5000),
            version,
        );
        assert_eq!(response.error_code, 0, "ElectLeaders v{version}");
        let results = &response.replica_election_results[0].partition_result;
        assert!(
            results.len() == 2
                && results
                    .iter()
                    .all(|r| r.error_code == ResponseError::ElectionNotNeeded.code()),
            "ElectLeaders v{version}: {results:?}"
        );
    }
    for version in range(ApiKey::DescribeLogDirs) {
        let response = client.send(
            &DescribeLogDirsRequest::default().with_topics(None),
            version,
        );
        let dir = &response.results[0];
        assert_eq!(dir.error_code, 0, "DescribeLogDirs v{version}");
        let hosted = dir.topics.iter().find(|t| *t.name == *topic);
        assert_eq!(
            hosted.map(|t| t.partitions.len()),
            Some(2),
            "DescribeLogDirs v{version}"
        );
    }
    for version in range(ApiKey::AlterPartitionReassignments) {
        // Nothing is moving, so a cancel is refused, per partition.
        let cancel = alter_partition_reassignments_request::ReassignableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(None),
            ]);
        let response = client.send(
            &AlterPartitionReassignmentsRequest::default().with_topics(vec![cancel]),
            version,
        );
        assert_eq!(
            response.error_code, 0,
            "AlterPartitionReassignments v{version}"
        );
        assert_eq!(
            response.responses[0].partitions[0].error_code,
            ResponseError::NoReassignmentInProgress.code(),
            "AlterPartitionReassignments v{version}"
        );
    }
    for version in range(ApiKey::ListPartitionReassignments) {
        let response = client.send(&ListPartitionReassignmentsRequest::default(), version);
        assert_eq!(
            response.error_code, 0,
            "ListPartitionReassignments v{version}"
        );
        assert!(response.topics.is_empty());
    }
    for version in range(ApiKey::DescribeQuorum) {
        let log = describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(s("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]);
        let response = client.send(
            &DescribeQuorumRequest::default().with_topics(vec![log]),
            version,
        );
        assert_eq!(response.error_code, 0, "DescribeQuorum v{version}");
        let quorum = &response.topics[0].partitions[0];
        assert_eq!(quorum.current_voters.len(), 1, "DescribeQuorum v{version}");
        assert_eq!(quorum.leader_id, quorum.current_voters[0].replica_id);
    }
    for version in range(ApiKey::Metadata) {
        let request = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
        ]));
        let response = client.send(&request, version);
        assert_eq!(response.topics[0].error_code, 0, "Metadata v{version}");
        assert_eq!(response.topics[0].partitions.len(), 2);
    }
    for version in range(ApiKey::Produce) {
        let partition = produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(one_record_batch()));
        let mut data =
            produce_request::TopicProduceData::default().with_partition_data(vec![partition]);
        data = if version >= 13 {
            data.with_topic_id(id)
        } else {
            data.with_name(TopicName(s(topic)))
        };
        let response = client.send(
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![data]),
            version,
        );
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{version}: {:?}", p.error_message);
    }
    let produced = i64::from(*range(ApiKey::Produce).end() - *range(ApiKey::Produce).start() + 1);
    for version in range(ApiKey::OffsetForLeaderEpoch) {
        let partition = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(-1)
            .with_leader_epoch(0);
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(vec![partition]),
            ]);
        let response = client.send(&request, version);
        let p = &response.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, 0, produced),
            "OffsetForLeaderEpoch v{version}: epoch 0 wrote everything so far"
        );
    }
    for version in range(ApiKey::Fetch) {
        let partition = fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20);
        let mut fetch_topic = fetch_request::FetchTopic::default().with_partitions(vec![partition]);
        fetch_topic = if version >= 13 {
            fetch_topic.with_topic_id(id)
        } else {
            fetch_topic.with_topic(TopicName(s(topic)))
        };
        let request = FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_max_wait_ms(0)
            .with_topics(vec![fetch_topic]);
        let response = client.send(&request, version);
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{version}");
        assert_eq!(p.high_watermark, produced);
        assert!(
            p.records.as_ref().is_some_and(|r| !r.is_empty()),
            "Fetch v{version} returns records"
        );
    }
    for version in range(ApiKey::ListOffsets) {
        let partition = list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1);
        let t = list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![partition]);
        let response = client.send(
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![t]),
            version,
        );
        let p = &response.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.offset),
            (0, produced),
            "ListOffsets v{version}"
        );
    }
    for version in range(ApiKey::DescribeConfigs) {
        let resource = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s("retention.ms")]));
        let response = client.send(
            &DescribeConfigsRequest::default()
                .with_resources(vec![resource])
                .with_include_synonyms(true),
            version,
        );
        let result = &response.results[0];
        assert_eq!(result.error_code, 0, "DescribeConfigs v{version}");
        assert_eq!(result.configs.len(), 1);
        assert_eq!(
            result.configs[0].value.as_ref().map(|v| v.as_str()),
            Some("604800000")
        );
    }
    for version in range(ApiKey::AlterConfigs) {
        let config = alter_configs_request::AlterableConfig::default()
            .with_name(s("retention.ms"))
            .with_value(Some(s(&format!("{}", 1000 + i64::from(version)))));
        let resource = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![config]);
        let response = client.send(
            &AlterConfigsRequest::default().with_resources(vec![resource]),
            version,
        );
        assert_eq!(
            response.responses[0].error_code, 0,
            "AlterConfigs v{version}"
        );
    }
    for version in range(ApiKey::IncrementalAlterConfigs) {
        let config = incremental_alter_configs_request::AlterableConfig::default()
            .with_name(s("segment.ms"))
            .with_config_operation(0)
            .with_value(Some(s("3600000")));
        let resource = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![config]);
        let response = client.send(
            &IncrementalAlterConfigsRequest::default().with_resources(vec![resource]),
            version,
        );
        assert_eq!(
            response.responses[0].error_code, 0,
            "IncrementalAlterConfigs v{version}"
        );
    }
    for version in range(ApiKey::DeleteRecords) {
        let partition = delete_records_request::DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(-1);
        let delete = delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![partition]);
        let response = client.send(
            &DeleteRecordsRequest::default()
                .with_topics(vec![delete])
                .with_timeout_ms(5000),
            version,
        );
        let answered = &response.topics[0].partitions[0];
        assert_eq!(answered.error_code, 0, "DeleteRecords v{version}");
        assert!(answered.low_watermark >= 0, "DeleteRecords v{version}");
    }
    for version in range(ApiKey::CreatePartitions) {
        let grow = create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_count(3 + i32::from(version));
        let response = client.send(
            &CreatePartitionsRequest::default()
                .with_topics(vec![grow])
                .with_timeout_ms(5000),
            version,
        );
        assert_eq!(
            response.results[0].error_code, 0,
            "CreatePartitions v{version}"
        );
    }
    crate::group_versions::exercise(&mut client, &range, topic);
    for version in range(ApiKey::DeleteTopics) {
        let name = TopicName(s(&format!("v{}-topic", version + 1)));
        let request = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name)),
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name])
        };
        let response = client.send(&request.with_timeout_ms(5000), version);
        assert_eq!(
            response.responses[0].error_code, 0,
            "DeleteTopics v{version}"
        );
    }
}

fn produce_request(topic: &str, acks: i16) -> ProduceRequest {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(one_record_batch()));
    let data = produce_request::TopicProduceData::default()
        .with_name(TopicName(s(topic)))
        .with_partition_data(vec![partition]);
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![data])
}

#[test]
fn a_failed_acks_0_produce_closes_the_connection_and_a_good_one_does_not() {
    let broker = InProcessBroker::start().expect("broker");
    let mut client = Client::connect(&broker.bootstrap);
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s("zero")))
        .with_num_partitions(1)
        .with_replication_factor(1);
    client.send(&CreateTopicsRequest::default().with_topics(vec![topic]), 7);
    client.send_only(&produce_request("zero", 0), 9);
    // Still open: the next request is answered.
    let response = client.send(&produce_request("zero", 1), 9);
    assert_eq!(
        response.responses[0].partition_responses[0].base_offset, 1,
        "the acks=0 record was stored first"
    );
    client.send_only(&produce_request("no-such-topic", 0), 9);
    assert!(
        client.closed(),
        "a failed acks=0 produce closes the connection"
    );
}
