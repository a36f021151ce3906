//! Kafka's own admin tools (the `kafka-tools` jar `scripts/install-test-deps.sh` fetches for the
//! Java runner) against three `strata server` processes: `kafka-reassign-partitions` moves
//! partitions holding acknowledged records, `kafka-log-dirs` shows where they ended up,
//! `kafka-metadata-quorum` and `kafka-leader-election` answer, and a move that cannot finish
//! is listed and cancelled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use rdkafka::consumer::Consumer;

use crate::clients::{repo_root, toolchain_ready};
use crate::cluster::{Nodes, bootstrap, running_cluster};
use crate::produce_fetch::{Sent, consume_and_check, produce_records};
use crate::raw::{Client, s};
use crate::{client_runtime, consumer, create_replicated_topic};

const ACKS_ALL: &[(&str, &str)] = &[("acks", "all"), ("enable.idempotence", "true")];

/// Runs Kafka tool `class` with `args` against `bootstrap`: (succeeded, stdout).
fn kafka_tool(class: &str, bootstrap: &str, args: &[&str]) -> (bool, String) {
    let classpath = repo_root().join("tests/clients/java/target/dependency/*");
    let output = Command::new("java")
        .arg("-cp")
        .arg(classpath)
        .arg(class)
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The tools print errors to stdout and exit 1; keep both for the failure message.
    let failed = !output.status.success() || stdout.contains("Error:") || stderr.contains("Error:");
    if failed {
        eprintln!("{class} {args:?}:\n{stdout}\n{stderr}");
    }
    (!failed, stdout)
}

const REASSIGN: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";

/// Each partition's replicas as Metadata lists them.
fn replicas_of(bootstrap: &str, topic: &str) -> Vec<Vec<i32>> {
    consumer(bootstrap, &[])
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata")
        .topics()[0]
        .partitions()
        .iter()
        .map(|p| p.replicas().to_vec())
        .collect()
}

#[test]
fn kafka_reassign_partitions_moves_replicas_holding_acknowledged_records() -> anyhow::Result<()> {
    let Some(()) = toolchain_ready("kafka-tools", || {
        repo_root()
            .join("tests/clients/java/target/dependency")
            .read_dir()
            .is_ok_and(|mut d| {
                d.any(|f| {
                    f.is_ok_and(|f| f.file_name().to_string_lossy().starts_with("kafka-tools-"))
                })
            })
    })
    .then_some(()) else {
        return Ok(());
    };
    let (_dirs, _quorum, mut nodes): (_, _, Nodes) = running_cluster()?;
    let entry = bootstrap(&nodes, 0);
    let topic = "moving";
    client_runtime().block_on(create_replicated_topic(&entry, topic, 2, 2, &[]));
    let mut acknowledged: HashMap<(i32, i64), Sent> =
        produce_records(&entry, topic, 2, 300, ACKS_ALL);

    // Each partition trades its first replica (its leader) for the broker it lacks, which
    // becomes the preferred leader.
    let before = replicas_of(&entry, topic);
    let targets: Vec<Vec<i32>> = before
        .iter()
        .map(|replicas| {
            let missing = (1..=3).find(|b| !replicas.contains(b)).expect("RF 2 of 3");
            vec![missing, replicas[1]]
        })
        .collect();
    let plan = serde_json::json!({
        "version": 1,
        "partitions": targets.iter().enumerate().map(|(p, replicas)| serde_json::json!({
            "topic": topic, "partition": p, "replicas": replicas,
        })).collect::<Vec<_>>(),
    });
    let plan_file = tempfile::NamedTempFile::new()?;
    std::fs::write(plan_file.path(), plan.to_string())?;
    let plan_path = plan_file.path().to_string_lossy().into_owned();
    let (started, out) = kafka_tool(
        REASSIGN,
        &entry,
        &["--reassignment-json-file", &plan_path, "--execute"],
    );
    assert!(
        started && out.contains("Successfully started partition reassignments"),
        "{out}"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (verified, out) = kafka_tool(
            REASSIGN,
            &entry,
            &["--reassignment-json-file", &plan_path, "--verify"],
        );
        if verified && out.matches("is completed").count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the moves never completed: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(replicas_of(&entry, topic), targets);

    // Every broker's log directory holds exactly the partitions now placed on it.
    let (described, out) = kafka_tool(
        "org.apache.kafka.tools.LogDirsCommand",
        &entry,
        &["--describe", "--topic-list", topic],
    );
    assert!(described, "{out}");
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("log dirs as JSON");
    let dirs: serde_json::Value = serde_json::from_str(json)?;
    let mut hosted: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for broker in dirs["brokers"].as_array().expect("brokers") {
        let id = broker["broker"].as_i64().expect("broker id");
        for dir in broker["logDirs"].as_array().expect("log dirs") {
            for p in dir["partitions"].as_array().expect("partitions") {
                hosted
                    .entry(id)
                    .or_default()
                    .insert(p["partition"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    for broker in 1..=3 {
        let expected: BTreeSet<String> = targets
            .iter()
            .enumerate()
            .filter(|(_, r)| r.contains(&broker))
            .map(|(p, _)| format!("{topic}-{p}"))
            .collect();
        assert_eq!(
            hosted.get(&i64::from(broker)).cloned().unwrap_or_default(),
            expected,
            "broker {broker}"
        );
    }

    // The moved partitions keep every record and take new ones.
    let more = produce_records(&entry, topic, 2, 300, ACKS_ALL);
    for (at, sent) in more {
        assert!(
            acknowledged.insert(at, sent).is_none(),
            "offset {at:?} reused"
        );
    }
    consume_and_check(&entry, topic, 2, &acknowledged);

    let (described, out) = kafka_tool(
        "org.apache.kafka.tools.MetadataQuorumCommand",
        &entry,
        &["describe", "--status"],
    );
    assert!(described && out.contains("CurrentVoters:"), "{out}");
    let leader: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("LeaderId:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a LeaderId line");
    assert!((1..=3).contains(&leader), "{out}");
    let (elected, out) = kafka_tool(
        "org.apache.kafka.tools.LeaderElectionCommand",
        &entry,
        &["--election-type", "PREFERRED", "--all-topic-partitions"],
    );
    assert!(elected, "{out}");

    // A move to a broker that is down cannot finish: it is listed until cancelled, and the
    // cancel puts the replicas back.
    let current = replicas_of(&entry, topic)[0].clone();
    let missing = (1..=3).find(|b| !current.contains(b)).expect("RF 2 of 3");
    let down = usize::try_from(missing - 1).expect("a node index");
    nodes[down].take().expect("running").terminate()?;
    let entry = bootstrap(&nodes, (down + 1) % 3);
    let target = vec![current[0], missing];
    let mut client = Client::connect(&entry);
    let alter = |replicas: Option<Vec<i32>>| {
        AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                ]),
        ])
    };
    let answer = client.send(&alter(Some(target.clone())), 0);
    assert_eq!(
        answer.responses[0].partitions[0].error_code, 0,
        "{answer:?}"
    );
    let list = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
        ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0, 1]),
    ]));
    let listed = client.send(&list, 0);
    let moving = &listed.topics[0].partitions;
    assert_eq!(moving.len(), 1, "only partition 0 is moving: {listed:?}");
    let ids = |ids: &[BrokerId]| ids.iter().map(|b| b.0).collect::<Vec<i32>>();
    assert_eq!(ids(&moving[0].adding_replicas), [missing]);
    assert_eq!(ids(&moving[0].removing_replicas), [current[1]]);
    assert_eq!(ids(&moving[0].replicas), [current[0], missing, current[1]]);
    let answer = client.send(&alter(None), 0);
    assert_eq!(
        answer.responses[0].partitions[0].error_code, 0,
        "{answer:?}"
    );
    assert_eq!(replicas_of(&entry, topic)[0], current);
    assert!(client.send(&list, 0).topics.is_empty());
    let answer = client.send(&alter(None), 0);
    assert_eq!(
        answer.responses[0].partitions[0].error_code,
        kafka_protocol::error::ResponseError::NoReassignmentInProgress.code()
    );

    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}
