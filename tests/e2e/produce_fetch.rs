//! Produce and fetch through librdkafka: ordering, offsets, compression, acks, idempotence,
//! ListOffsets, long-poll and size limits.

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use strata_e2e::InProcessBroker;

use crate::{admin, client_runtime, consumer, create_topic, producer};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sent {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) header: Vec<u8>,
    pub(crate) timestamp: i64,
}

/// Produces `count` records round-robin over `partitions`; returns what landed where.
pub(crate) fn produce_records(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    settings: &[(&str, &str)],
) -> HashMap<(i32, i64), Sent> {
    produce_numbered(&producer(bootstrap, settings), topic, partitions, 0..count)
}

/// Produces the records numbered `numbers` through `producer`, record `i` to partition
/// `i % partitions` with contents made from `i`; returns what landed where.
pub(crate) fn produce_numbered(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    numbers: Range<usize>,
) -> HashMap<(i32, i64), Sent> {
    let base_ts = 1_700_000_000_000i64;
    client_runtime().block_on(async {
        let mut pending = Vec::with_capacity(numbers.len());
        for i in numbers {
            let sent = Sent {
                key: format!("key-{i}").into_bytes(),
                value: format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes(),
                header: format!("h{i}").into_bytes(),
                timestamp: base_ts + i as i64,
            };
            let partition = (i % partitions as usize) as i32;
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key(&sent.key)
                .payload(&sent.value)
                .timestamp(sent.timestamp)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "trace",
                    value: Some(&sent.header),
                }));
            let delivery = producer.send_result(record).expect("queue has room");
            pending.push((delivery, sent));
        }
        let mut landed = HashMap::new();
        for (delivery, sent) in pending {
            let delivery = delivery
                .await
                .expect("delivery reported")
                .expect("record acknowledged");
            // acks=0 reports no offsets (librdkafka gives an invalid one): nothing to place.
            if delivery.offset >= 0 {
                let earlier = landed.insert((delivery.partition, delivery.offset), sent);
                assert!(earlier.is_none(), "two records at one offset");
            }
        }
        landed
    })
}

/// Reads every partition from the beginning until `expected` records arrived; checks each
/// record against what was acknowledged at its offset and that offsets are dense and ordered.
pub(crate) fn consume_and_check(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: &HashMap<(i32, i64), Sent>,
) {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {} records consumed",
            expected.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume without error");
        let partition = message.partition();
        let offset = message.offset();
        let next = next_offset.entry(partition).or_insert(0);
        assert_eq!(
            offset, *next,
            "partition {partition} offsets are dense and in order"
        );
        *next += 1;
        let sent = expected
            .get(&(partition, offset))
            .expect("record was acknowledged at this offset");
        assert_eq!(message.key(), Some(&sent.key[..]));
        assert_eq!(message.payload(), Some(&sent.value[..]));
        assert_eq!(message.timestamp().to_millis(), Some(sent.timestamp));
        let headers = message.headers().expect("headers");
        assert_eq!(headers.count(), 1);
        let header = headers.get(0);
        assert_eq!(header.key, "trace");
        assert_eq!(header.value, Some(&sent.header[..]));
        seen += 1;
    }
}

#[test]
fn records_come_back_byte_for_byte_at_their_acknowledged_offsets_for_every_compression() {
    let broker = InProcessBroker::start().expect("broker");
    for compression in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rdkafka-{compression}");
        client_runtime().block_on(create_topic(&broker.bootstrap, &topic, 8, &[]));
        let settings = [("compression.type", compression), ("linger.ms", "5")];
        let landed = produce_records(&broker.bootstrap, &topic, 8, 4000, &settings);
        consume_and_check(&broker.bootstrap, &topic, 8, &landed);
    }
}

#[test]
fn every_acks_setting_delivers() {
    let broker = InProcessBroker::start().expect("broker");
    for acks in ["0", "1", "all"] {
        let topic = format!("acks-{acks}");
        client_runtime().block_on(create_topic(&broker.bootstrap, &topic, 2, &[]));
        let landed = produce_records(&broker.bootstrap, &topic, 2, 500, &[("acks", acks)]);
        if acks == "0" {
            // No acknowledgement means no offsets reported: count what arrived instead, once
            // the last unanswered request has been appended.
            let consumer = consumer(&broker.bootstrap, &[]);
            let arrived = || {
                (0..2)
                    .map(|p| {
                        let (low, high) = consumer
                            .fetch_watermarks(&topic, p, Duration::from_secs(10))
                            .expect("watermarks");
                        high - low
                    })
                    .sum::<i64>()
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut count = arrived();
            while count < 500 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                count = arrived();
            }
            assert_eq!(count, 500);
        } else {
            consume_and_check(&broker.bootstrap, &topic, 2, &landed);
        }
    }
}

#[test]
fn fsync_durability_acknowledges_through_group_commit() {
    let broker =
        InProcessBroker::start_with(|c| c.durability = strata_broker::config::Durability::Fsync)
            .expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "durable", 4, &[]));
    let landed = produce_records(
        &broker.bootstrap,
        "durable",
        4,
        2000,
        &[("acks", "all"), ("linger.ms", "0")],
    );
    consume_and_check(&broker.bootstrap, "durable", 4, &landed);
}

#[test]
fn an_idempotent_producer_leaves_no_duplicates() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "idempotent", 3, &[]));
    let settings = [
        ("enable.idempotence", "true"),
        ("max.in.flight.requests.per.connection", "5"),
        ("linger.ms", "1"),
    ];
    let landed = produce_records(&broker.bootstrap, "idempotent", 3, 3000, &settings);
    assert_eq!(landed.len(), 3000);
    consume_and_check(&broker.bootstrap, "idempotent", 3, &landed);
    let consumer = consumer(&broker.bootstrap, &[]);
    let total: i64 = (0..3)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks("idempotent", p, Duration::from_secs(5))
                .expect("watermarks");
            high - low
        })
        .sum();
    assert_eq!(total, 3000, "the log holds exactly the records sent");
}

#[test]
fn list_offsets_finds_records_by_timestamp() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "by-time", 1, &[]));
    let landed = produce_records(
        &broker.bootstrap,
        "by-time",
        1,
        1000,
        &[("linger.ms", "0"), ("batch.num.messages", "10")],
    );
    let consumer = consumer(&broker.bootstrap, &[]);
    let (offset, sent) = landed
        .iter()
        .map(|((_, o), s)| (*o, s))
        .find(|(o, _)| *o == 500)
        .expect("offset 500");
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("by-time", 0, Offset::Offset(sent.timestamp))
        .expect("query");
    let answer = consumer
        .offsets_for_times(query, Duration::from_secs(5))
        .expect("offsets_for_times");
    let found = answer
        .find_partition("by-time", 0)
        .expect("partition answered");
    assert_eq!(found.offset(), Offset::Offset(offset));
    let mut later = TopicPartitionList::new();
    later
        .add_partition_offset("by-time", 0, Offset::Offset(sent.timestamp + 1_000_000))
        .expect("query");
    let answer = consumer
        .offsets_for_times(later, Duration::from_secs(5))
        .expect("offsets_for_times");
    assert_eq!(
        answer
            .find_partition("by-time", 0)
            .expect("answered")
            .offset(),
        Offset::End
    );
}

#[test]
fn an_assigned_consumer_sees_a_new_record_within_the_long_poll() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "tail", 1, &[]));
    let consumer = consumer(&broker.bootstrap, &[("fetch.wait.max.ms", "30000")]);
    let mut assignment = TopicPartitionList::new();
    // The topic is empty: offset 0 is its end, without a ListOffsets that could race the
    // produce below.
    assignment
        .add_partition_offset("tail", 0, Offset::Offset(0))
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    // Let the consumer reach the end and park a long-poll fetch.
    for _ in 0..5 {
        assert!(consumer.poll(Duration::from_millis(200)).is_none());
    }
    let sent_at = Instant::now();
    let producer = producer(&broker.bootstrap, &[("linger.ms", "0")]);
    client_runtime()
        .block_on(async {
            producer
                .send(
                    FutureRecord::to("tail")
                        .partition(0)
                        .key("k")
                        .payload("fresh"),
                    Duration::from_secs(5),
                )
                .await
        })
        .expect("produced");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            Instant::now() < deadline,
            "record not seen within the long-poll wait"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            assert_eq!(message.expect("message").payload(), Some(&b"fresh"[..]));
            break;
        }
    }
    // Woken by the append, not by the 30 s max wait.
    assert!(sent_at.elapsed() < Duration::from_secs(15));
}

#[test]
fn topics_are_created_listed_and_deleted_through_the_admin_api() {
    let broker = InProcessBroker::start().expect("broker");
    let runtime = client_runtime();
    runtime.block_on(create_topic(
        &broker.bootstrap,
        "admin-made",
        5,
        &[("retention.ms", "3600000")],
    ));
    let consumer = consumer(&broker.bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(Some("admin-made"), Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 5);

    // Creating it again is TOPIC_ALREADY_EXISTS; a bad config is INVALID_CONFIG.
    let admin = admin(&broker.bootstrap);
    let options = AdminOptions::new();
    let again =
        rdkafka::admin::NewTopic::new("admin-made", 1, rdkafka::admin::TopicReplication::Fixed(1));
    let result = runtime
        .block_on(admin.create_topics(&[again], &options))
        .expect("request");
    assert_eq!(
        result[0].as_ref().expect_err("exists").1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    let bad =
        rdkafka::admin::NewTopic::new("bad-config", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("retention.ms", "soon");
    let result = runtime
        .block_on(admin.create_topics(&[bad], &options))
        .expect("request");
    assert_eq!(
        result[0].as_ref().expect_err("invalid").1,
        RDKafkaErrorCode::InvalidConfig
    );
    // Segment positions are 32-bit: a 5 GiB segment.bytes (Kafka's INT overflows) is refused,
    // not accepted to make every append fail later.
    let huge = rdkafka::admin::NewTopic::new(
        "huge-segments",
        1,
        rdkafka::admin::TopicReplication::Fixed(1),
    )
    .set("segment.bytes", "5368709120");
    let result = runtime
        .block_on(admin.create_topics(&[huge], &options))
        .expect("request");
    assert_eq!(
        result[0].as_ref().expect_err("too large").1,
        RDKafkaErrorCode::InvalidConfig
    );
    let rf3 = rdkafka::admin::NewTopic::new("rf3", 1, rdkafka::admin::TopicReplication::Fixed(3));
    let result = runtime
        .block_on(admin.create_topics(&[rf3], &options))
        .expect("request");
    assert_eq!(
        result[0].as_ref().expect_err("rf").1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );

    let deleted = runtime
        .block_on(admin.delete_topics(&["admin-made"], &options))
        .expect("request");
    deleted[0].as_ref().expect("deleted");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    assert!(metadata.topics().iter().all(|t| t.name() != "admin-made"));
}

#[test]
fn a_record_over_max_message_bytes_is_refused_with_message_too_large() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        "small",
        1,
        &[("max.message.bytes", "10000")],
    ));
    let producer = producer(
        &broker.bootstrap,
        &[
            ("message.max.bytes", "1000000"),
            ("compression.type", "none"),
        ],
    );
    let big = vec![b'x'; 20_000];
    let result = client_runtime().block_on(async {
        producer
            .send(
                FutureRecord::to("small")
                    .partition(0)
                    .key("k")
                    .payload(&big),
                Duration::from_secs(5),
            )
            .await
    });
    match result {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::MessageSizeTooLarge)
        }
        other => panic!("expected MESSAGE_TOO_LARGE, got {other:?}"),
    }
}

#[test]
fn data_survives_an_ordered_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "kept", 2, &[]));
    let landed = produce_records(&broker.bootstrap, "kept", 2, 1000, &[]);
    broker.stop().expect("ordered stop");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("restart");
    consume_and_check(&broker.bootstrap, "kept", 2, &landed);
}

/// Asks OffsetForLeaderEpoch v4 where `epoch`'s data ends in partition 0 of `topic`, as a
/// consumer with `current` as its known epoch; answers (error, epoch, end offset).
fn epoch_end(
    client: &mut crate::raw::Client,
    topic: &str,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{BrokerId, OffsetForLeaderEpochRequest, TopicName};
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(crate::raw::s(topic)))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ]),
        ]);
    let response = client.send(&request, 4);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[test]
fn offset_for_leader_epoch_places_each_epoch_across_a_restart() {
    use kafka_protocol::messages::{MetadataRequest, TopicName, metadata_request};
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, "epochs", 1, &[]));
    let mut landed = produce_records(&broker.bootstrap, "epochs", 1, 10, &[]);
    broker.stop().expect("ordered stop");
    // A new process registering under this node id leads its partitions under a new epoch.
    let broker = InProcessBroker::start_in(dir.path(), |_| {}).expect("restart");
    for ((partition, offset), sent) in produce_records(&broker.bootstrap, "epochs", 1, 5, &[]) {
        landed.insert((partition, offset), sent);
    }
    let mut client = crate::raw::Client::connect(&broker.bootstrap);
    let metadata = client.send(
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(crate::raw::s("epochs")))),
        ])),
        12,
    );
    let current = metadata.topics[0].partitions[0].leader_epoch;
    assert!(current > 0, "the restart moved the epoch on");
    assert_eq!(epoch_end(&mut client, "epochs", -1, 0), (0, 0, 10));
    assert_eq!(
        epoch_end(&mut client, "epochs", current, current),
        (0, current, 15)
    );
    assert_eq!(
        epoch_end(&mut client, "epochs", -1, current + 1),
        (0, -1, -1),
        "an epoch that has not been: undefined"
    );
    let fenced = epoch_end(&mut client, "epochs", current - 1, 0).0;
    assert_eq!(
        fenced, 74,
        "a client behind the leader's epoch is FENCED_LEADER_EPOCH"
    );
    consume_and_check(&broker.bootstrap, "epochs", 1, &landed);
}
