//! Replicated topics on three `strata server` processes, driven by librdkafka: followers copy
//! their leaders, `acks=all` waits for the ISR, and a dead leader's partitions move to a
//! follower holding every acknowledged record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use strata_e2e::BrokerProcess;

use crate::cluster::{Nodes, bootstrap, partition_leaders, running_cluster};
use crate::produce_fetch::{Sent, consume_and_check, produce_records};
use crate::raw::Client;
use crate::{client_runtime, consumer, create_replicated_topic, metric, producer};
use kafka_protocol::messages::ElectLeadersRequest;

/// Creates `name` with `partitions` partitions of three replicas each.
pub(crate) fn create_replicated(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    client_runtime().block_on(create_replicated_topic(
        bootstrap, name, partitions, 3, configs,
    ));
}

/// Each partition's (leader, ISR) as `bootstrap`'s Metadata gives them, once `done` holds
/// for them (or what it last gave when time runs out).
pub(crate) fn isr_when(
    bootstrap: &str,
    topic: &str,
    done: impl Fn(&[(i32, Vec<i32>)]) -> bool,
) -> Vec<(i32, Vec<i32>)> {
    let client = consumer(bootstrap, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state: Vec<(i32, Vec<i32>)> = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                let found = m.topics().first()?;
                Some(
                    found
                        .partitions()
                        .iter()
                        .map(|p| {
                            let mut isr = p.isr().to_vec();
                            isr.sort_unstable();
                            (p.leader(), isr)
                        })
                        .collect(),
                )
            })
            .unwrap_or_default();
        if (!state.is_empty() && done(&state)) || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn all_in_sync(state: &[(i32, Vec<i32>)]) -> bool {
    state
        .iter()
        .all(|(leader, isr)| *leader >= 0 && isr == &[1, 2, 3])
}

const ACKS_ALL: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "60000"),
];

#[test]
fn an_rf3_topic_keeps_every_acknowledged_record_through_leader_crashes_and_rejoins()
-> anyhow::Result<()> {
    let (dirs, quorum, mut nodes): (_, _, Nodes) = running_cluster()?;
    let topic = "replicated";
    let entry = bootstrap(&nodes, 0);
    create_replicated(&entry, topic, 3, &[("min.insync.replicas", "2")]);
    assert!(all_in_sync(&isr_when(&entry, topic, all_in_sync)));
    let mut acknowledged: HashMap<(i32, i64), Sent> =
        produce_records(&entry, topic, 3, 300, ACKS_ALL);
    assert_eq!(acknowledged.len(), 300);

    // Twice: the leader of partition 0 dies without a word; its partitions move to a
    // follower, producers carry on, and it rejoins the ISR once restarted.
    for round in 0..2 {
        let leaders = partition_leaders(&bootstrap_of_any(&nodes), topic, 3);
        let victim = usize::try_from(leaders[0] - 1).expect("a broker id");
        nodes[victim].take().expect("running").kill9()?;
        let survivor = bootstrap_of_any(&nodes);
        let moved = isr_when(&survivor, topic, |state| {
            state
                .iter()
                .all(|(leader, isr)| *leader >= 0 && *leader != leaders[0] && isr.len() == 2)
        });
        assert!(
            moved
                .iter()
                .all(|(leader, isr)| *leader != leaders[0] && !isr.contains(&leaders[0])),
            "round {round}: the dead broker leads nothing and left every ISR: {moved:?}"
        );
        let more = produce_records(&survivor, topic, 3, 300, ACKS_ALL);
        let before = acknowledged.len();
        for ((partition, offset), sent) in more {
            let earlier = acknowledged.insert((partition, offset), sent);
            assert!(
                earlier.is_none(),
                "round {round}: offset {offset} of {partition} reused"
            );
        }
        assert_eq!(acknowledged.len(), before + 300);
        consume_and_check(&survivor, topic, 3, &acknowledged);

        let id = (victim + 1).to_string();
        nodes[victim] = Some(BrokerProcess::spawn(
            dirs[victim].path(),
            &["--node-id", &id, "--controller-quorum", &quorum],
        )?);
        let rejoined = isr_when(&survivor, topic, all_in_sync);
        assert!(
            all_in_sync(&rejoined),
            "round {round}: the restarted broker caught up and rejoined every ISR: {rejoined:?}"
        );
    }
    consume_and_check(&bootstrap_of_any(&nodes), topic, 3, &acknowledged);
    // Followers fetch in sessions (KIP-227), across the crashes and restarts above; librdkafka
    // fetches without one, so these are the followers'.
    let incremental: f64 = nodes
        .iter()
        .flatten()
        .map(|node| {
            metric(
                &node.admin,
                "strata_fetch_session_incremental_fetches_total",
            )
        })
        .sum();
    assert!(incremental > 0.0, "followers fetched incrementally");
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

/// The Java client's checks on three nodes: its topics with three replicas and min ISR 2,
/// its default producer idempotent with acks=all, its consumer groups coordinated by
/// replicated offsets partitions.
#[test]
fn the_java_client_passes_its_checks_on_three_nodes_with_three_replicas() -> anyhow::Result<()> {
    let root = crate::clients::repo_root();
    if !crate::clients::toolchain_ready("kafka-clients", || {
        root.join("tests/clients/java/target/classes").exists()
    }) {
        return Ok(());
    }
    let (_dirs, _quorum, mut nodes): (_, _, Nodes) = running_cluster()?;
    let bootstrap = (0..3)
        .map(|i| bootstrap(&nodes, i))
        .collect::<Vec<_>>()
        .join(",");
    crate::clients::run_script(
        "kafka-clients on three nodes",
        "bash",
        &["tests/clients/java/run.sh"],
        &[("STRATA_BOOTSTRAP", &bootstrap), ("STRATA_BROKERS", "3")],
    );
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

/// Each partition's (leader, first replica) as `bootstrap`'s Metadata gives them.
fn leaders_and_preferred(bootstrap: &str, topic: &str) -> Vec<(i32, i32)> {
    let metadata = consumer(bootstrap, &[])
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| (p.leader(), p.replicas().first().copied().unwrap_or(-1)))
        .collect()
}

/// The bootstrap address of some running node.
pub(crate) fn bootstrap_of_any(nodes: &Nodes) -> String {
    let running = nodes.iter().position(Option::is_some).expect("a node runs");
    bootstrap(nodes, running)
}

/// One acknowledged record: when it was handed to the producer, where it landed, what it was.
struct Ack {
    sent_at: Instant,
    offset: i64,
    value: String,
}

/// Produces with `acks=1` to partition 0 of `topic`, a record every 20 ms, until `stop`;
/// answers what was acknowledged.
fn produce_until(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Ack>> {
    std::thread::spawn(move || {
        let producer = producer(
            &bootstrap,
            &[
                ("acks", "1"),
                ("enable.idempotence", "false"),
                ("message.timeout.ms", "60000"),
                ("linger.ms", "0"),
            ],
        );
        client_runtime().block_on(async {
            let mut pending = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                let value = format!("record-{i}");
                let sent_at = Instant::now();
                if let Ok(delivery) = producer.send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&value),
                ) {
                    pending.push((delivery, sent_at, value));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut acknowledged = Vec::new();
            for (delivery, sent_at, value) in pending {
                if let Ok(Ok(delivered)) = delivery.await {
                    acknowledged.push(Ack {
                        sent_at,
                        offset: delivered.offset,
                        value,
                    });
                }
            }
            acknowledged
        })
    })
}

/// Records by (partition, offset).
type Stored = HashMap<(i32, i64), String>;

/// Everything `topic`'s partitions hold below their high watermarks, by (partition, offset).
fn read_topic(bootstrap: &str, topic: &str, partitions: i32) -> Stored {
    let consumer = consumer(bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for partition in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        expected += usize::try_from(high).expect("offsets");
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
            read.insert((message.partition(), message.offset()), value);
        }
    }
    assert_eq!(
        read.len(),
        expected,
        "every offset below the high watermarks was read"
    );
    read
}

/// The history check: every acknowledged record is stored at its offset, offsets are dense
/// from each partition's start, and (with idempotence) no value is stored twice.
fn check_history(acknowledged: &Stored, stored: &Stored, idempotent: bool) {
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(at, value)| stored.get(at) != Some(value))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records are not at their offsets, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (partition, offset) in stored.keys() {
        per_partition.entry(*partition).or_default().push(*offset);
    }
    for (partition, mut offsets) in per_partition {
        offsets.sort_unstable();
        let dense = offsets.iter().zip(offsets[0]..).all(|(o, want)| *o == want);
        assert!(dense, "partition {partition}'s offsets have a gap");
    }
    if idempotent {
        let mut seen = std::collections::HashSet::new();
        let duplicated: Vec<_> = stored.values().filter(|v| !seen.insert(*v)).collect();
        assert!(duplicated.is_empty(), "stored twice: {duplicated:?}");
    }
}

#[test]
fn a_leader_hung_past_its_session_acknowledges_nothing_its_successor_lacks() -> anyhow::Result<()> {
    let (_dirs, _quorum, mut nodes): (_, _, Nodes) = running_cluster()?;
    let topic = "hung";
    create_replicated(&bootstrap(&nodes, 0), topic, 1, &[]);
    assert!(all_in_sync(&isr_when(
        &bootstrap(&nodes, 0),
        topic,
        all_in_sync
    )));
    let leader = partition_leaders(&bootstrap(&nodes, 0), topic, 1)[0];
    let hung = usize::try_from(leader - 1)?;
    let other = (hung + 1) % 3;

    // acks=1 records flow while the leader hangs for longer than its session: requests
    // queued to it are read when it wakes, after a follower has taken over.
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(bootstrap(&nodes, other), topic, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let hung_node = nodes[hung].as_ref().expect("running");
    let hung_at = Instant::now();
    hung_node.signal("STOP")?;
    // Hung past its session: it stays stopped until the others have fenced it and moved its
    // leadership (if it led the quorum too, that takes an election first), and a while more
    // for the producer's requests to queue up at it.
    let moved = isr_when(&bootstrap(&nodes, other), topic, |state| {
        state.iter().all(|(l, _)| *l >= 0 && *l != leader)
    });
    assert!(moved.iter().all(|(l, _)| *l != leader), "{moved:?}");
    std::thread::sleep(Duration::from_secs(3));
    hung_node.signal("CONT")?;
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Release);
    let acknowledged = producing.join().expect("producer thread");
    assert!(
        acknowledged.len() > 100,
        "{} acknowledged",
        acknowledged.len()
    );

    // The hung broker rejoins as a follower, its tail cut where it diverged.
    let state = isr_when(&bootstrap(&nodes, other), topic, all_in_sync);
    assert!(all_in_sync(&state), "{state:?}");
    assert_ne!(state[0].0, leader, "leadership moved off the hung broker");
    let stored = read_topic(&bootstrap(&nodes, other), topic, 1);
    // acks=1 lets the last records a leader acknowledged before it hung go with it (Kafka's
    // contract too); anything sent after it hung was acknowledged by someone else, or by
    // the hung leader after it woke, which its lease forbids.
    let (before, after): (Vec<&Ack>, Vec<&Ack>) =
        acknowledged.iter().partition(|a| a.sent_at < hung_at);
    let lost_before = before
        .iter()
        .filter(|a| stored.get(&(0, a.offset)) != Some(&a.value))
        .count();
    eprintln!("acks=1 records acknowledged just before the hang and lost with it: {lost_before}");
    let after: HashMap<(i32, i64), String> = after
        .iter()
        .map(|a| ((0, a.offset), a.value.clone()))
        .collect();
    check_history(&after, &stored, false);
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

/// Produces idempotently with `acks=all` over `partitions` partitions of `topic`, a record
/// every 5 ms, until `stop`; answers what was acknowledged by (partition, offset), and how
/// many sends failed.
fn produce_idempotently_until(
    bootstrap: String,
    topic: &'static str,
    partitions: i32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Stored, usize)> {
    std::thread::spawn(move || {
        let producer = producer(&bootstrap, ACKS_ALL);
        client_runtime().block_on(async {
            let mut pending = Vec::new();
            let mut i = 0i32;
            while !stop.load(Ordering::Acquire) {
                let value = format!("record-{i}");
                let record = FutureRecord::<(), _>::to(topic)
                    .partition(i % partitions)
                    .payload(&value);
                if let Ok(delivery) = producer.send_result(record) {
                    pending.push((delivery, value));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (mut acknowledged, mut failed) = (HashMap::new(), 0);
            for (delivery, value) in pending {
                match delivery.await {
                    Ok(Ok(d)) => {
                        let earlier = acknowledged.insert((d.partition, d.offset), value);
                        assert!(
                            earlier.is_none(),
                            "two records at {}/{}",
                            d.partition,
                            d.offset
                        );
                    }
                    _ => failed += 1,
                }
            }
            (acknowledged, failed)
        })
    })
}

#[test]
fn a_rolling_restart_under_load_fails_no_send_and_loses_no_record() -> anyhow::Result<()> {
    let (dirs, quorum, mut nodes): (_, _, Nodes) = running_cluster()?;
    let topic = "rolling";
    create_replicated(
        &bootstrap(&nodes, 0),
        topic,
        3,
        &[("min.insync.replicas", "2")],
    );
    assert!(all_in_sync(&isr_when(
        &bootstrap(&nodes, 0),
        topic,
        all_in_sync
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let bootstraps = (0..3)
        .map(|i| bootstrap(&nodes, i))
        .collect::<Vec<_>>()
        .join(",");
    let producing = produce_idempotently_until(bootstraps, topic, 3, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        // SIGTERM: the broker hands its leadership off, then stops.
        let status = nodes[i].as_mut().expect("running").terminate()?;
        assert!(status.success(), "node {} stopped cleanly: {status}", i + 1);
        nodes[i] = None;
        std::thread::sleep(Duration::from_secs(1));
        let id = (i + 1).to_string();
        nodes[i] = Some(BrokerProcess::spawn(
            dirs[i].path(),
            &["--node-id", &id, "--controller-quorum", &quorum],
        )?);
        let rejoined = isr_when(&bootstrap_of_any(&nodes), topic, all_in_sync);
        assert!(
            all_in_sync(&rejoined),
            "node {} rejoined: {rejoined:?}",
            i + 1
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Release);
    let (acknowledged, failed) = producing.join().expect("producer thread");
    assert_eq!(
        failed,
        0,
        "no send failed ({} acknowledged)",
        acknowledged.len()
    );
    let stored = read_topic(&bootstrap_of_any(&nodes), topic, 3);
    check_history(&acknowledged, &stored, true);

    // Leadership moved off each node as it stopped; a preferred election (AdminClient's
    // electLeaders, on every partition) brings it back to each partition's first replica.
    let elected = Client::connect(&bootstrap(&nodes, 0)).send(
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(None)
            .with_timeout_ms(10_000),
        2,
    );
    assert_eq!(elected.error_code, 0);
    let preferred = |state: &[(i32, i32)]| state.iter().all(|(leader, first)| leader == first);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = leaders_and_preferred(&bootstrap(&nodes, 1), topic);
        if preferred(&state) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaders went back to their preferred replicas: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

#[test]
fn a_consumer_that_names_its_rack_reads_from_the_in_sync_replica_on_it() -> anyhow::Result<()> {
    let (dirs, quorum) = crate::cluster::three_node_layout()?;
    let mut nodes: Vec<BrokerProcess> = (1..=3)
        .zip(&dirs)
        .map(|(id, dir): (i32, _)| {
            let (id, rack) = (id.to_string(), format!("zone-{id}"));
            BrokerProcess::spawn_member(
                dir.path(),
                &[
                    "--node-id",
                    &id,
                    "--controller-quorum",
                    &quorum,
                    "--rack",
                    &rack,
                ],
            )
        })
        .collect::<anyhow::Result<_>>()?;
    for node in &nodes {
        strata_e2e::wait_ready(&node.admin)?;
    }
    let topic = "zoned";
    create_replicated(&nodes[0].bootstrap, topic, 1, &[]);
    assert!(all_in_sync(&isr_when(
        &nodes[0].bootstrap,
        topic,
        all_in_sync
    )));
    let sent = produce_records(&nodes[0].bootstrap, topic, 1, 50, ACKS_ALL);
    let leader = partition_leaders(&nodes[0].bootstrap, topic, 1)[0];
    let follower = if leader == 3 { 2 } else { 3 };
    let served_by = |id: i32| {
        metric(
            &nodes[usize::try_from(id - 1).expect("id")].admin,
            "strata_fetch_bytes_total",
        )
    };
    let before = served_by(follower);
    // The follower serves no replica (its peers fetch from the leader): whatever it sends
    // now, it sends to the consumer in its zone.
    let rack = format!("zone-{follower}");
    let consumer = consumer(&nodes[0].bootstrap, &[("client.rack", &rack)]);
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < sent.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            read.push((message.offset(), message.payload().map(<[u8]>::to_vec)));
        }
    }
    assert_eq!(read.len(), sent.len(), "every record read");
    for (offset, value) in &read {
        assert_eq!(value.as_deref(), Some(&sent[&(0, *offset)].value[..]));
    }
    assert!(
        served_by(follower) > before,
        "the follower in the consumer's zone served it"
    );
    for node in &mut nodes {
        node.terminate()?;
    }
    Ok(())
}
