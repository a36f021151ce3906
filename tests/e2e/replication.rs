//! Replicated topics on three `strata server` processes, driven by librdkafka: followers copy
//! their leaders, `acks=all` waits for the ISR, and a dead leader's partitions move to a
//! follower holding every acknowledged record.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use strata_e2e::BrokerProcess;

use crate::cluster::{Nodes, bootstrap, partition_leaders, running_cluster};
use crate::produce_fetch::{Sent, consume_and_check, produce_records};
use crate::{admin, client_runtime, consumer};

/// Creates `name` with `partitions` partitions of three replicas each.
fn create_replicated(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    client_runtime().block_on(async {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin(bootstrap)
            .create_topics(&[topic], &options)
            .await
            .expect("create_topics request")
        {
            result.expect("topic created");
        }
    });
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
