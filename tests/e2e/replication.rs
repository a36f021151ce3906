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
use crate::{client_runtime, consumer, create_replicated_topic, producer};

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
fn isr_when(
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
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

/// The bootstrap address of some running node.
fn bootstrap_of_any(nodes: &Nodes) -> String {
    let running = nodes.iter().position(Option::is_some).expect("a node runs");
    bootstrap(nodes, running)
}

/// Produces with `acks=1` to partition 0 of `topic`, a record every 20 ms, until `stop`;
/// answers what was acknowledged, by offset.
fn produce_until(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<i64, String>> {
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
                if let Ok(delivery) = producer.send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&value),
                ) {
                    pending.push((delivery, value));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut acknowledged = BTreeMap::new();
            for (delivery, value) in pending {
                if let Ok(Ok(delivered)) = delivery.await {
                    let earlier = acknowledged.insert(delivered.offset, value);
                    assert!(
                        earlier.is_none(),
                        "two acknowledgements of offset {}",
                        delivered.offset
                    );
                }
            }
            acknowledged
        })
    })
}

/// Everything partition 0 of `topic` holds below its high watermark, by offset.
fn read_partition(bootstrap: &str, topic: &str) -> BTreeMap<i64, String> {
    let consumer = consumer(bootstrap, &[]);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut read = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.len() < usize::try_from(high).expect("offsets") && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
            read.insert(message.offset(), value);
        }
    }
    read
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
    hung_node.signal("STOP")?;
    std::thread::sleep(Duration::from_secs(15));
    hung_node.signal("CONT")?;
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Release);
    let acknowledged = producing.join().expect("producer thread");
    assert!(
        acknowledged.len() > 100,
        "{} acknowledged",
        acknowledged.len()
    );

    // The hung broker rejoins as a follower, its unacknowledgeable tail cut.
    let state = isr_when(&bootstrap(&nodes, other), topic, all_in_sync);
    assert!(all_in_sync(&state), "{state:?}");
    assert_ne!(state[0].0, leader, "leadership moved off the hung broker");
    let stored = read_partition(&bootstrap(&nodes, other), topic);
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(offset, value)| stored.get(offset) != Some(value))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records are not at their offsets: {:?}",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}
