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
        let (_, metrics) = crate::run_contract::http_get(&broker.admin.to_string(), "/metrics");
        if wanted.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(Instant::now() < deadline, "lag metrics missing: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.stop()
}
