//! Fetch sessions (KIP-227), sent raw: a full fetch at epoch 0 opens a session, incremental
//! fetches name only what changed and get back only the partitions with something new, and a
//! wrong epoch or a forgotten partition behave as Kafka's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use strata_e2e::InProcessBroker;

use crate::produce_fetch::{produce_numbered, produce_records};
use crate::raw::{Client, s};
use crate::{client_runtime, create_topic, producer};

const TOPIC: &str = "sessions";
/// Names topics, as librdkafka and older Java clients do; the Java runner covers topic ids.
const VERSION: i16 = 12;

fn fetch(session: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
    let partitions: Vec<FetchPartition> = partitions
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let topics = if partitions.is_empty() {
        Vec::new()
    } else {
        vec![
            FetchTopic::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(partitions),
        ]
    };
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// Each partition the response carries: (index, error, high watermark, has records).
fn carried(response: &FetchResponse) -> Vec<(i32, i16, i64, bool)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let records = p.records.as_ref().is_some_and(|r| !r.is_empty());
            (p.partition_index, p.error_code, p.high_watermark, records)
        })
        .collect()
}

#[test]
fn incremental_fetches_carry_only_what_changed() {
    let broker = InProcessBroker::start().expect("broker");
    client_runtime().block_on(create_topic(&broker.bootstrap, TOPIC, 2, &[]));
    produce_records(&broker.bootstrap, TOPIC, 2, 10, &[]);
    let mut client = Client::connect(&broker.bootstrap);

    let opened = client.send(&fetch(0, 0, &[(0, 0), (1, 0)]), VERSION);
    let id = opened.session_id;
    assert!(id > 0, "a full fetch at epoch 0 opens a session");
    assert_eq!(
        carried(&opened),
        [(0, 0, 5, true), (1, 0, 5, true)],
        "the full fetch answers both partitions"
    );

    // The client moves its positions to the ends: nothing new to say.
    let quiet = client.send(&fetch(id, 1, &[(0, 5), (1, 5)]), VERSION);
    assert_eq!((quiet.error_code, quiet.session_id), (0, id));
    assert_eq!(
        carried(&quiet),
        [],
        "no records, no moved offsets: nothing carried"
    );

    let producer = producer(&broker.bootstrap, &[("linger.ms", "0")]);
    // Record 1 goes to partition 1 of the 2.
    produce_numbered(&producer, TOPIC, 2, 1..2);
    let news = client.send(&fetch(id, 2, &[]), VERSION);
    assert_eq!(
        carried(&news),
        [(1, 0, 6, true)],
        "only the partition with a new record, read from the session's position"
    );

    let replayed = client.send(&fetch(id, 2, &[]), VERSION);
    assert_eq!(
        (replayed.error_code, replayed.session_id, carried(&replayed)),
        (ResponseError::InvalidFetchSessionEpoch.code(), 0, vec![]),
        "an epoch already used is refused as a whole"
    );

    // Forget partition 0; a record lands on each partition; only partition 1 is read.
    let mut forget = fetch(id, 3, &[(1, 6)]);
    forget.forgotten_topics_data = vec![
        ForgottenTopic::default()
            .with_topic(TopicName(s(TOPIC)))
            .with_partitions(vec![0]),
    ];
    assert_eq!(carried(&client.send(&forget, VERSION)), []);
    produce_numbered(&producer, TOPIC, 2, 2..4);
    assert_eq!(
        carried(&client.send(&fetch(id, 4, &[]), VERSION)),
        [(1, 0, 7, true)],
        "a forgotten partition is no longer read"
    );

    let closed = client.send(&fetch(id, -1, &[(0, 0)]), VERSION);
    assert_eq!(closed.session_id, 0, "epoch -1 closes the session");
    let gone = client.send(&fetch(id, 5, &[]), VERSION);
    assert_eq!(
        gone.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
}
