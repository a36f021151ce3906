//! Several `strata server` processes on loopback forming one metadata quorum.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    DescribeClusterRequest, FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use strata_e2e::{BrokerProcess, unused_port, wait_ready};

use crate::clients;
use crate::groups::{consume_group, group_member};
use crate::produce_fetch::{consume_and_check, produce_records};
use crate::raw::{Client, s};
use crate::{admin, client_runtime, consumer, create_topic, topic_config};

/// The broker ids `bootstrap`'s Metadata lists, once it lists `expected` (or what it last
/// listed when time runs out).
fn brokers_listed_by(bootstrap: &str, expected: &[i32]) -> Vec<i32> {
    let client = consumer(bootstrap, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: Vec<i32> = client
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| m.brokers().iter().map(|b| b.id()).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        if ids == expected || Instant::now() > deadline {
            return ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Data directories for nodes 1–3 and a quorum naming a free controller port for each.
pub(crate) fn three_node_layout() -> anyhow::Result<([tempfile::TempDir; 3], String)> {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let quorum = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", unused_port()))
        .collect::<Vec<_>>()
        .join(",");
    Ok((dirs, quorum))
}

/// Starts node `i + 1` on `dirs[i]` and waits until all are ready. Each logs its startup
/// line before the quorum forms, so they can start one after another.
pub(crate) fn start_cluster(
    dirs: &[tempfile::TempDir],
    quorum: &str,
) -> anyhow::Result<Vec<BrokerProcess>> {
    let nodes = (1..)
        .zip(dirs)
        .map(|(id, dir): (i32, _)| {
            let id = id.to_string();
            BrokerProcess::spawn_member(
                dir.path(),
                &["--node-id", &id, "--controller-quorum", quorum],
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for node in &nodes {
        wait_ready(&node.admin)?;
    }
    Ok(nodes)
}

#[test]
fn three_nodes_form_one_quorum_and_every_node_lists_every_broker() -> anyhow::Result<()> {
    let (dirs, quorum) = three_node_layout()?;
    let mut nodes = start_cluster(&dirs, &quorum)?;
    for node in &nodes {
        assert_eq!(
            brokers_listed_by(&node.bootstrap, &[1, 2, 3]),
            vec![1, 2, 3],
            "Metadata from {} lists every broker",
            node.bootstrap
        );
    }
    // One cluster id everywhere, and producer ids unique across the cluster.
    let mut cluster_ids = Vec::new();
    let mut producer_ids = Vec::new();
    for node in &nodes {
        let mut client = Client::connect(&node.bootstrap);
        let described = client.send(&DescribeClusterRequest::default(), 0);
        assert_eq!(described.brokers.len(), 3);
        cluster_ids.push(described.cluster_id.to_string());
        for _ in 0..2 {
            // An idempotent (not transactional) producer asking for a new id.
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1);
            let answer = client.send(&request, 4);
            assert_eq!(answer.error_code, 0);
            producer_ids.push(answer.producer_id.0);
        }
    }
    cluster_ids.dedup();
    assert_eq!(cluster_ids.len(), 1, "one cluster id: {cluster_ids:?}");
    let distinct: std::collections::BTreeSet<_> = producer_ids.iter().collect();
    assert_eq!(
        distinct.len(),
        producer_ids.len(),
        "unique producer ids: {producer_ids:?}"
    );
    // A whole-cluster restart keeps the quorum: the nodes rejoin from their raft directories
    // and register again at their new Kafka ports.
    for node in &mut nodes {
        node.terminate()?;
    }
    let mut restarted = start_cluster(&dirs, &quorum)?;
    for node in &restarted {
        assert_eq!(
            brokers_listed_by(&node.bootstrap, &[1, 2, 3]),
            vec![1, 2, 3]
        );
    }
    for node in &mut restarted {
        node.terminate()?;
    }
    Ok(())
}

#[test]
fn confluent_kafka_admin_places_a_topic_over_three_nodes() -> anyhow::Result<()> {
    let name = "confluent-kafka cluster";
    let Some(python) = clients::confluent_python(name) else {
        return Ok(());
    };
    let (dirs, quorum) = three_node_layout()?;
    let mut nodes = start_cluster(&dirs, &quorum)?;
    for node in &nodes {
        assert_eq!(brokers_listed_by(&node.bootstrap, &[1, 2, 3]), [1, 2, 3]);
    }
    let bootstraps: Vec<&str> = nodes.iter().map(|n| n.bootstrap.as_str()).collect();
    clients::run_script(
        name,
        &python,
        &["tests/clients/python/cluster_confluent.py"],
        &[("STRATA_BOOTSTRAPS", &bootstraps.join(","))],
    );
    for node in &mut nodes {
        node.terminate()?;
    }
    Ok(())
}

#[test]
fn a_killed_broker_is_fenced_out_of_metadata_and_returns_when_restarted() -> anyhow::Result<()> {
    let (dirs, quorum) = three_node_layout()?;
    let mut nodes = start_cluster(&dirs, &quorum)?;
    assert_eq!(
        brokers_listed_by(&nodes[0].bootstrap, &[1, 2, 3]),
        vec![1, 2, 3]
    );
    // Node 3 dies without a word: its heartbeats stop and the controller leader fences it
    // after the session timeout (9 s).
    nodes.pop().expect("node 3").kill9()?;
    assert_eq!(
        brokers_listed_by(&nodes[0].bootstrap, &[1, 2]),
        vec![1, 2],
        "the dead broker leaves Metadata"
    );
    let mut restarted = BrokerProcess::spawn(
        dirs[2].path(),
        &["--node-id", "3", "--controller-quorum", &quorum],
    )?;
    assert_eq!(
        brokers_listed_by(&nodes[0].bootstrap, &[1, 2, 3]),
        vec![1, 2, 3]
    );
    restarted.terminate()?;
    for node in &mut nodes {
        node.terminate()?;
    }
    Ok(())
}

/// Three nodes started and registered; a node's slot is `None` while a test has it down.
pub(crate) type Nodes = Vec<Option<BrokerProcess>>;

pub(crate) fn running_cluster() -> anyhow::Result<([tempfile::TempDir; 3], String, Nodes)> {
    let (dirs, quorum) = three_node_layout()?;
    let nodes: Nodes = start_cluster(&dirs, &quorum)?
        .into_iter()
        .map(Some)
        .collect();
    assert_eq!(
        brokers_listed_by(&bootstrap(&nodes, 0), &[1, 2, 3]),
        [1, 2, 3]
    );
    Ok((dirs, quorum, nodes))
}

/// Node `i`'s Kafka address.
pub(crate) fn bootstrap(nodes: &[Option<BrokerProcess>], i: usize) -> String {
    nodes[i].as_ref().expect("running").bootstrap.clone()
}

/// Each partition's leader as `bootstrap`'s Metadata gives it, once it lists `partitions`
/// partitions all with a leader (or what it last gave when time runs out).
pub(crate) fn partition_leaders(bootstrap: &str, topic: &str, partitions: usize) -> Vec<i32> {
    let client = consumer(bootstrap, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<i32> = client
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                let found = m.topics().first()?;
                Some(found.partitions().iter().map(|p| p.leader()).collect())
            })
            .unwrap_or_default();
        let complete = leaders.len() == partitions && leaders.iter().all(|l| *l >= 0);
        if complete || Instant::now() > deadline {
            return leaders;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The controller leader as `bootstrap` reports it, once it is one of `candidates`.
fn controller_among(bootstrap: &str, candidates: &[i32]) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let controller = Client::connect(bootstrap)
            .send(&DescribeClusterRequest::default(), 0)
            .controller_id
            .0;
        if candidates.contains(&controller) || Instant::now() > deadline {
            return controller;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_through(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    client_runtime().block_on(create_topic(bootstrap, name, partitions, configs));
}

#[test]
fn topics_are_placed_over_the_cluster_and_outlive_a_controller_crash_and_a_full_restart()
-> anyhow::Result<()> {
    let (dirs, quorum, mut nodes) = running_cluster()?;

    // librdkafka's admin client creates a 6-partition topic through node 1; every node then
    // sees the same leaders, two per broker.
    create_through(
        &bootstrap(&nodes, 0),
        "spread",
        6,
        &[("retention.ms", "3600000")],
    );
    let leaders = partition_leaders(&bootstrap(&nodes, 0), "spread", 6);
    for i in 0..3 {
        assert_eq!(
            partition_leaders(&bootstrap(&nodes, i), "spread", 6),
            leaders
        );
    }
    for broker in 1..=3 {
        let led = leaders.iter().filter(|l| **l == broker).count();
        assert_eq!(led, 2, "broker {broker} leads two partitions: {leaders:?}");
    }

    // A replication factor above the live brokers is refused with a reason; one within
    // them is placed.
    let answers = client_runtime().block_on(async {
        admin(&bootstrap(&nodes, 0))
            .create_topics(
                &[
                    NewTopic::new("too-replicated", 1, TopicReplication::Fixed(4)),
                    NewTopic::new("replicated", 1, TopicReplication::Fixed(2)),
                ],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
    })?;
    assert!(matches!(
        answers.first(),
        Some(Err((_, RDKafkaErrorCode::InvalidReplicationFactor)))
    ));
    assert!(matches!(answers.get(1), Some(Ok(_))), "{answers:?}");

    // Produce through node 2, consume through node 3: the clients find each leader.
    let sent = produce_records(&bootstrap(&nodes, 1), "spread", 6, 60, &[("acks", "all")]);
    consume_and_check(&bootstrap(&nodes, 2), "spread", 6, &sent);

    // A broker that does not lead a partition says so.
    let not_leader = (0..3)
        .find(|i| leaders[0] != i32::try_from(*i).expect("small") + 1)
        .expect("a broker other than the leader");
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(TopicName(s("spread")))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    let answer = Client::connect(&bootstrap(&nodes, not_leader)).send(&request, 7);
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );

    // SIGKILL the controller leader: the survivors elect another and still create topics.
    let controller = controller_among(&bootstrap(&nodes, 0), &[1, 2, 3]);
    let killed = usize::try_from(controller - 1)?;
    nodes[killed].take().expect("running").kill9()?;
    let survivor = (killed + 1) % 3;
    let survivors: Vec<i32> = [1, 2, 3]
        .into_iter()
        .filter(|id| *id != controller)
        .collect();
    let elected = controller_among(&bootstrap(&nodes, survivor), &survivors);
    assert!(survivors.contains(&elected), "a new controller: {elected}");
    create_through(&bootstrap(&nodes, survivor), "after-failover", 2, &[]);

    // The killed node restarts from its raft directory and catches up.
    let id = controller.to_string();
    nodes[killed] = Some(BrokerProcess::spawn(
        dirs[killed].path(),
        &["--node-id", &id, "--controller-quorum", &quorum],
    )?);
    assert_eq!(
        partition_leaders(&bootstrap(&nodes, killed), "after-failover", 2).len(),
        2
    );

    // Stop everything, start everything: topics, configs and records are all there.
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    drop(nodes);
    let mut restarted = start_cluster(&dirs, &quorum)?;
    let first = restarted[0].bootstrap.clone();
    assert_eq!(partition_leaders(&first, "spread", 6), leaders);
    assert_eq!(partition_leaders(&first, "after-failover", 2).len(), 2);
    consume_and_check(&restarted[1].bootstrap, "spread", 6, &sent);
    assert_eq!(
        topic_config(&first, "spread", "retention.ms").as_deref(),
        Some("3600000")
    );
    for node in &mut restarted {
        node.terminate()?;
    }
    Ok(())
}

/// Runs `strata quorum <args>` and parses the status it prints.
fn quorum_command(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let output = std::process::Command::new(strata_e2e::strata_bin()?)
        .arg("quorum")
        .args(args)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "strata quorum {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn member_ids(status: &serde_json::Value, kind: &str) -> Vec<String> {
    status[kind]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn broker_only_and_controller_only_nodes_join_and_voters_are_added_and_removed()
-> anyhow::Result<()> {
    let (dirs, quorum) = three_node_layout()?;
    let mut voters = start_cluster(&dirs, &quorum)?;
    let extra = [tempfile::tempdir()?, tempfile::tempdir()?];
    // Node 4 only serves clients and node 5 only runs a controller: neither is a voter, so
    // both join the quorum as learners. Each is ready once caught up (the controller-only
    // node after a ReadIndex round trip), which `spawn` waits for.
    let mut broker_only = BrokerProcess::spawn(
        extra[0].path(),
        &[
            "--node-id",
            "4",
            "--roles",
            "broker",
            "--rack",
            "zone-b",
            "--controller-quorum",
            &quorum,
        ],
    )?;
    let mut controller_only = BrokerProcess::spawn(
        extra[1].path(),
        &[
            "--node-id",
            "5",
            "--roles",
            "controller",
            "--controller-quorum",
            &quorum,
        ],
    )?;
    assert_eq!(controller_only.bootstrap, "none", "no Kafka listener");
    assert_eq!(
        brokers_listed_by(&broker_only.bootstrap, &[1, 2, 3, 4]),
        [1, 2, 3, 4],
        "the broker-only node registers and serves Metadata from its own replica"
    );

    // A voter applies the registration up to a heartbeat later.
    brokers_listed_by(&voters[0].bootstrap, &[1, 2, 3, 4]);
    let metadata = Client::connect(&voters[0].bootstrap).send(&MetadataRequest::default(), 12);
    let racks: Vec<(i32, Option<String>)> = metadata
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect();
    assert_eq!(
        racks,
        [(1, None), (2, None), (3, None), (4, Some("zone-b".into()))],
        "a broker's rack is registered and listed"
    );

    // Partitions spread over all four brokers; clients bootstrap from the broker-only node.
    create_through(&broker_only.bootstrap, "four-ways", 8, &[]);
    let leaders = partition_leaders(&broker_only.bootstrap, "four-ways", 8);
    for broker in 1..=4 {
        assert_eq!(
            leaders.iter().filter(|l| **l == broker).count(),
            2,
            "{leaders:?}"
        );
    }
    let sent = produce_records(&broker_only.bootstrap, "four-ways", 8, 80, &[]);
    consume_and_check(&voters[0].bootstrap, "four-ways", 8, &sent);

    let first_controller = quorum
        .split(',')
        .next()
        .and_then(|v| v.split_once('@'))
        .map(|(_, address)| address.to_string())
        .expect("a voter address");
    let target = ["--controller", first_controller.as_str()];
    let status = quorum_command(&[&["describe"][..], &target].concat())?;
    assert_eq!(member_ids(&status, "voters"), ["1", "2", "3"]);
    assert_eq!(member_ids(&status, "learners"), ["4", "5"]);

    let status = quorum_command(&[&["add-voter"][..], &target, &["--node-id", "5"]].concat())?;
    assert_eq!(member_ids(&status, "voters"), ["1", "2", "3", "5"]);
    let status = quorum_command(&[&["remove-voter"][..], &target, &["--node-id", "5"]].concat())?;
    assert_eq!(member_ids(&status, "voters"), ["1", "2", "3"]);
    assert_eq!(member_ids(&status, "learners"), ["4", "5"]);
    controller_only.terminate()?;
    let status = quorum_command(&[&["remove-node"][..], &target, &["--node-id", "5"]].concat())?;
    assert_eq!(member_ids(&status, "learners"), ["4"]);

    broker_only.terminate()?;
    for node in &mut voters {
        node.terminate()?;
    }
    Ok(())
}

/// The coordinator FindCoordinator names for `group` through `bootstrap`, with its error.
fn coordinator_of(bootstrap: &str, group: &str) -> (i16, i32) {
    let answer = Client::connect(bootstrap).send(
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)]),
        4,
    );
    let found = &answer.coordinators[0];
    (found.error_code, found.node_id.0)
}

#[test]
fn a_group_keeps_its_offsets_when_its_coordinator_dies_and_after_it_returns() -> anyhow::Result<()>
{
    let (dirs, quorum, mut nodes) = running_cluster()?;
    // Replicated, so the data outlives the node too.
    crate::replication::create_replicated(&bootstrap(&nodes, 0), "grouped", 3, &[]);
    produce_records(&bootstrap(&nodes, 0), "grouped", 3, 30, &[]);
    let member = group_member(&bootstrap(&nodes, 1), "survivors", "grouped");
    assert_eq!(consume_group(&member, 30).len(), 30);
    member.commit_consumer_state(CommitMode::Sync)?;
    drop(member);

    let (error, coordinator) = coordinator_of(&bootstrap(&nodes, 0), "survivors");
    assert_eq!(error, 0);
    let down = usize::try_from(coordinator - 1)?;
    nodes[down].take().expect("running").kill9()?;
    // Its offsets partition has a replica on every node (offsets.topic.replication.factor
    // 3): once the node is fenced, a follower leads it and coordinates the group, replaying
    // the committed offsets it copied.
    let other = (down + 1) % 3;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (error, moved_to) = coordinator_of(&bootstrap(&nodes, other), "survivors");
        if error == 0 && moved_to != coordinator {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group's coordinator did not move off the dead node: {error}, {moved_to}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_records(&bootstrap(&nodes, other), "grouped", 3, 15, &[]);
    let member = group_member(&bootstrap(&nodes, other), "survivors", "grouped");
    let resumed = consume_group(&member, 15);
    assert!(
        resumed.iter().all(|(_, offset)| *offset >= 10),
        "the group resumes at its committed offsets on the new coordinator: {resumed:?}"
    );
    assert_eq!(
        resumed.len(),
        15,
        "the group reads on through its new coordinator"
    );
    // Commit exactly what was consumed, through the new coordinator.
    let mut consumed = rdkafka::TopicPartitionList::new();
    for partition in 0..3 {
        if let Some(last) = resumed
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .max()
        {
            consumed.add_partition_offset(
                "grouped",
                partition,
                rdkafka::Offset::Offset(last + 1),
            )?;
        }
    }
    member.commit(&consumed, CommitMode::Sync)?;
    drop(member);
    let id = coordinator.to_string();
    nodes[down] = Some(BrokerProcess::spawn(
        dirs[down].path(),
        &["--node-id", &id, "--controller-quorum", &quorum],
    )?);
    assert_eq!(
        brokers_listed_by(&bootstrap(&nodes, other), &[1, 2, 3]),
        [1, 2, 3]
    );
    produce_records(&bootstrap(&nodes, other), "grouped", 3, 15, &[]);
    let member = group_member(&bootstrap(&nodes, other), "survivors", "grouped");
    let resumed = consume_group(&member, 15);
    assert_eq!(resumed.len(), 15);
    assert!(
        resumed.iter().all(|(_, offset)| *offset >= 15),
        "the group resumes at the offsets committed while the node was down: {resumed:?}"
    );
    drop(member);
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}
