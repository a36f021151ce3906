//! Consumer groups through librdkafka against a `strata server` process: committed offsets
//! survive SIGKILL, and the group resumes from them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use strata_e2e::BrokerProcess;

use crate::produce_fetch::produce_records;
use crate::{client_runtime, consumer, create_topic};

/// Reads through a subscribed group member until `count` records arrived (or 30 s passed);
/// answers the (partition, offset) of each.
pub(crate) fn consume_group(member: &BaseConsumer, count: usize) -> Vec<(i32, i64)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < count && Instant::now() < deadline {
        if let Some(Ok(message)) = member.poll(Duration::from_millis(100)) {
            seen.push((message.partition(), message.offset()));
        }
    }
    seen
}

pub(crate) fn group_member(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let member = consumer(
        bootstrap,
        &[("group.id", group), ("auto.offset.reset", "earliest")],
    );
    member.subscribe(&[topic]).expect("subscribe");
    member
}

#[test]
fn committed_offsets_survive_a_kill_9_and_the_group_resumes_from_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = BrokerProcess::spawn(dir.path(), &[])?;
    client_runtime().block_on(create_topic(&broker.bootstrap, "resume", 3, &[]));
    produce_records(&broker.bootstrap, "resume", 3, 30, &[]);
    let member = group_member(&broker.bootstrap, "resumers", "resume");
    let first = consume_group(&member, 30);
    assert_eq!(first.len(), 30, "the group reads every record");
    member.commit_consumer_state(CommitMode::Sync)?;
    drop(member);
    broker.kill9()?;

    let broker = BrokerProcess::spawn(dir.path(), &[])?;
    produce_records(&broker.bootstrap, "resume", 3, 15, &[]);
    let member = group_member(&broker.bootstrap, "resumers", "resume");
    let resumed = consume_group(&member, 15);
    assert_eq!(resumed.len(), 15, "the new records: {resumed:?}");
    let mut per_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for (partition, offset) in resumed {
        per_partition.entry(partition).or_default().push(offset);
    }
    for (partition, offsets) in per_partition {
        assert!(
            offsets.iter().all(|o| *o >= 10),
            "partition {partition} resumed at its committed offset 10: {offsets:?}"
        );
    }
    Ok(())
}

#[test]
fn a_groups_lag_is_exported_per_partition() -> anyhow::Result<()> {
    use rdkafka::{Offset, TopicPartitionList};
    let broker = strata_e2e::InProcessBroker::start()?;
    client_runtime().block_on(create_topic(&broker.bootstrap, "lagged", 1, &[]));
    produce_records(&broker.bootstrap, "lagged", 1, 10, &[]);
    // A simple consumer commits offset 4 without joining the group.
    let member = consumer(&broker.bootstrap, &[("group.id", "laggards")]);
    let mut commit = TopicPartitionList::new();
    commit.add_partition_offset("lagged", 0, Offset::Offset(4))?;
    member.commit(&commit, CommitMode::Sync)?;
    let wanted = [
        r#"strata_group_committed_offset{group="laggards",topic="lagged",partition="0"} 4"#,
        r#"strata_group_log_end_offset{group="laggards",topic="lagged",partition="0"} 10"#,
        r#"strata_group_lag{group="laggards",topic="lagged",partition="0"} 6"#,
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) =
            strata_e2e::http_get(&broker.admin.to_string(), "/metrics").expect("metrics");
        if wanted.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(Instant::now() < deadline, "lag metrics missing: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.stop()
}

/// Runs `strata groups <args>`; answers (success, stdout, stderr).
fn groups_command(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = std::process::Command::new(strata_e2e::strata_bin()?)
        .arg("groups")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn the_groups_cli_lists_describes_resets_and_deletes() -> anyhow::Result<()> {
    use rdkafka::{Offset, TopicPartitionList};
    let broker = strata_e2e::InProcessBroker::start()?;
    let bootstrap = broker.bootstrap.as_str();
    client_runtime().block_on(create_topic(bootstrap, "tracked", 2, &[]));
    produce_records(bootstrap, "tracked", 2, 20, &[]);
    let committer = consumer(bootstrap, &[("group.id", "cli-group")]);
    let mut commit = TopicPartitionList::new();
    commit.add_partition_offset("tracked", 0, Offset::Offset(4))?;
    commit.add_partition_offset("tracked", 1, Offset::Offset(7))?;
    committer.commit(&commit, CommitMode::Sync)?;

    let (ok, listed, _) = groups_command(&["list", "--bootstrap", bootstrap])?;
    assert!(
        ok && listed.contains("cli-group") && listed.contains("Empty"),
        "{listed}"
    );
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG of each partition of "tracked".
    let rows = || -> anyhow::Result<Vec<String>> {
        let (ok, described, err) =
            groups_command(&["describe", "--bootstrap", bootstrap, "cli-group"])?;
        anyhow::ensure!(ok, "{err}");
        Ok(described
            .lines()
            .filter(|l| l.starts_with("tracked "))
            .map(|l| l.split_whitespace().take(5).collect::<Vec<_>>().join(" "))
            .collect())
    };
    assert_eq!(rows()?, ["tracked 0 4 10 6", "tracked 1 7 10 3"]);

    let reset = [
        "reset-offsets",
        "--bootstrap",
        bootstrap,
        "cli-group",
        "--topic",
        "tracked",
    ];
    let (ok, dry, _) = groups_command(&[&reset[..], &["--to-offset", "2"]].concat())?;
    assert!(ok && dry.contains("dry run"), "{dry}");
    let (_, unchanged, _) = groups_command(&["describe", "--bootstrap", bootstrap, "cli-group"])?;
    assert!(
        unchanged.contains("tracked                                0               4"),
        "a dry run changes nothing: {unchanged}"
    );
    let (ok, _, err) = groups_command(&[&reset[..], &["--to-latest", "--execute"]].concat())?;
    assert!(ok, "{err}");
    let (_, after, _) = groups_command(&["describe", "--bootstrap", bootstrap, "cli-group"])?;
    for line in after.lines().filter(|l| l.starts_with("tracked")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &fields[2..5],
            ["10", "10", "0"],
            "reset to the end: {after}"
        );
    }

    // Not while the group has members.
    let member = group_member(bootstrap, "cli-group", "tracked");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        member.poll(Duration::from_millis(100));
        let (ok, _, err) = groups_command(&[&reset[..], &["--to-earliest", "--execute"]].concat())?;
        if !ok {
            assert!(err.contains("no active members"), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a reset with an active member was never refused"
        );
    }
    drop(member);
    drop(committer);
    // Once the member's session is over, the empty group can be deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, err) = groups_command(&["delete", "--bootstrap", bootstrap, "cli-group"])?;
        if ok {
            assert!(out.contains("deleted"), "{out}");
            break;
        }
        assert!(
            err.to_lowercase().contains("empty"),
            "refused as not empty: {err}"
        );
        assert!(
            Instant::now() < deadline,
            "the group was never deletable: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, listed, _) = groups_command(&["list", "--bootstrap", bootstrap])?;
    assert!(!listed.contains("cli-group"), "{listed}");
    broker.stop()
}

#[test]
fn the_offsets_partition_is_checkpointed_and_keeps_only_what_is_live() -> anyhow::Result<()> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, TopicName};
    use rdkafka::{Offset, TopicPartitionList};
    let dir = tempfile::tempdir()?;
    let settings = |c: &mut strata_broker::BrokerConfig| {
        c.groups.checkpoint_after_records = 20;
        c.groups.offsets_topic_partitions = 1;
    };
    let broker = strata_e2e::InProcessBroker::start_in(dir.path(), settings)?;
    client_runtime().block_on(create_topic(&broker.bootstrap, "churn", 1, &[]));
    let committer = consumer(&broker.bootstrap, &[("group.id", "churner")]);
    for offset in 1..=200 {
        let mut commit = TopicPartitionList::new();
        commit.add_partition_offset("churn", 0, Offset::Offset(offset))?;
        committer.commit(&commit, CommitMode::Sync)?;
    }
    // The only offsets partition holds 200 commits of one key; a checkpoint (every 5 s)
    // rewrites the live key and drops the rest.
    let earliest = || {
        let request = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(crate::raw::s("__consumer_offsets")))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-2),
                ]),
        ]);
        crate::raw::Client::connect(&broker.bootstrap)
            .send(&request, 7)
            .topics[0]
            .partitions[0]
            .offset
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while earliest() < 150 {
        assert!(
            Instant::now() < deadline,
            "the offsets partition was never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(committer);
    broker.stop()?;
    let broker = strata_e2e::InProcessBroker::start_in(dir.path(), settings)?;
    let reader = consumer(&broker.bootstrap, &[("group.id", "churner")]);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("churn", 0);
    let committed = reader.committed_offsets(wanted, Duration::from_secs(10))?;
    assert_eq!(
        committed.find_partition("churn", 0).map(|p| p.offset()),
        Some(Offset::Offset(200)),
        "the last commit survives the checkpoint and a restart"
    );
    drop(reader);
    broker.stop()
}
