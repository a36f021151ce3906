//! Eligible Leader Replicas (KIP-966) and `unclean.leader.election.enable` on three
//! `strata server` processes, driven by librdkafka. Each test loses every replica of a
//! partition (and with two of them the metadata quorum), then brings some back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_request;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use strata_e2e::BrokerProcess;

use crate::cluster::{Nodes, bootstrap, running_cluster};
use crate::produce_fetch::{Sent, consume_and_check, produce_records};
use crate::raw::{Client, s};
use crate::replication::{bootstrap_of_any, create_replicated, isr_when};
use crate::{admin, client_runtime, metric};

const ACKS_ALL: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "60000"),
];

/// Partition 0's leader and its two followers, once all three are in sync.
fn roles(nodes: &Nodes, topic: &str) -> (usize, usize, usize) {
    let state = isr_when(&bootstrap(nodes, 0), topic, |s| s[0].1 == [1, 2, 3]);
    assert_eq!(state[0].1, [1, 2, 3], "every replica in sync: {state:?}");
    let leader = state[0].0;
    let mut followers = (1..=3).filter(|&b| b != leader);
    let index = |broker: i32| usize::try_from(broker - 1).expect("a broker id");
    let (a, b) = (followers.next(), followers.next());
    (
        index(leader),
        index(a.expect("two followers")),
        index(b.expect("two followers")),
    )
}

/// Restarts node `i` (which may not find a quorum at once) and waits until it is ready.
fn restart(nodes: &mut Nodes, dirs: &[tempfile::TempDir], quorum: &str, i: usize) {
    let id = (i + 1).to_string();
    nodes[i] = Some(
        BrokerProcess::spawn_member(
            dirs[i].path(),
            &["--node-id", &id, "--controller-quorum", quorum],
        )
        .expect("restart"),
    );
}

/// Kills follower `a`, writes records that only the leader and follower `b` then hold, and
/// kills `b` and the leader: the quorum is lost with them.
fn lose_every_replica(
    nodes: &mut Nodes,
    topic: &str,
    (leader, a, b): (usize, usize, usize),
) -> HashMap<(i32, i64), Sent> {
    nodes[a].take().expect("running").kill9().expect("kill");
    let (lead, held) = (leader as i32 + 1, b as i32 + 1);
    let mut both = vec![lead, held];
    both.sort_unstable();
    let shrunk = isr_when(&bootstrap(nodes, leader), topic, |s| s[0].1 == both);
    assert_eq!(shrunk[0], (lead, both), "the dead follower left the ISR");
    let acknowledged = produce_records(&bootstrap(nodes, leader), topic, 1, 200, ACKS_ALL);
    assert_eq!(acknowledged.len(), 200);
    nodes[b].take().expect("running").kill9().expect("kill");
    nodes[leader]
        .take()
        .expect("running")
        .kill9()
        .expect("kill");
    acknowledged
}

#[test]
fn a_replica_that_left_the_isr_below_min_isr_leads_once_the_last_member_is_gone()
-> anyhow::Result<()> {
    let (dirs, quorum, mut nodes) = running_cluster()?;
    let topic = "eligible";
    create_replicated(
        &bootstrap(&nodes, 0),
        topic,
        1,
        &[("min.insync.replicas", "2")],
    );
    // Once every broker runs this build the cluster keeps eligible leader replicas, and
    // then the quorum and every leader must agree on min ISR: a broker's own is refused.
    let admin_0 = nodes[0].as_ref().expect("running").admin.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let current = f64::from(strata_meta::METADATA_VERSION);
    while metric(&admin_0, "strata_quorum_metadata_version") < current && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&admin_0, "strata_quorum_metadata_version"), current);
    // (Through the protocol: rust-rdkafka's alter_configs drops per-resource errors.)
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(s("min.insync.replicas"))
        .with_config_operation(0)
        .with_value(Some(s("1")));
    let own = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s("1"))
        .with_configs(vec![config]);
    let refused = Client::connect(&bootstrap(&nodes, 0)).send(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![own]),
        1,
    );
    assert_eq!(
        refused.responses[0].error_code,
        ResponseError::InvalidConfig.code(),
        "a per-broker min.insync.replicas is refused: {refused:?}"
    );
    let (leader, a, b) = roles(&nodes, topic);
    let acknowledged = lose_every_replica(&mut nodes, topic, (leader, a, b));

    // Follower b comes back with its log intact, and follower a with the quorum's majority.
    // The last ISR member stays dead: b, which left the ISR when it fell below min ISR,
    // holds every acknowledged record and leads.
    restart(&mut nodes, &dirs, &quorum, b);
    restart(&mut nodes, &dirs, &quorum, a);
    let held = b as i32 + 1;
    let led = isr_when(&bootstrap(&nodes, b), topic, |s| s[0].0 == held);
    assert_eq!(led[0].0, held, "the eligible replica leads: {led:?}");
    // Once a has caught up the ISR is back at min ISR, and everything commits.
    let mut both = vec![held, a as i32 + 1];
    both.sort_unstable();
    let in_sync = isr_when(&bootstrap(&nodes, b), topic, |s| s[0].1 == both);
    assert_eq!(in_sync[0], (held, both));
    consume_and_check(&bootstrap(&nodes, b), topic, 1, &acknowledged);

    restart(&mut nodes, &dirs, &quorum, leader);
    let rejoined = isr_when(&bootstrap(&nodes, b), topic, |s| s[0].1 == [1, 2, 3]);
    assert_eq!(rejoined[0].1, [1, 2, 3], "the old leader rejoins");
    consume_and_check(&bootstrap_of_any(&nodes), topic, 1, &acknowledged);
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}

#[test]
fn an_unclean_election_revives_a_partition_only_once_the_setting_allows_it() -> anyhow::Result<()> {
    let (dirs, quorum, mut nodes) = running_cluster()?;
    let topic = "unclean";
    create_replicated(
        &bootstrap(&nodes, 0),
        topic,
        1,
        &[("min.insync.replicas", "2")],
    );
    let (leader, a, b) = roles(&nodes, topic);
    lose_every_replica(&mut nodes, topic, (leader, a, b));

    // b loses its disk, so only the dead leader is eligible; a never was.
    std::fs::remove_dir_all(dirs[b].path().join("log"))?;
    restart(&mut nodes, &dirs, &quorum, b);
    restart(&mut nodes, &dirs, &quorum, a);
    let offline = isr_when(&bootstrap(&nodes, b), topic, |s| s[0].0 < 0);
    assert!(
        offline[0].0 < 0 && offline[0].1.is_empty(),
        "no eligible replica is live: the partition is offline with an empty ISR: {offline:?}"
    );
    // Still offline a while later: no live replica may lead without the setting.
    std::thread::sleep(Duration::from_secs(3));
    let still = isr_when(&bootstrap(&nodes, b), topic, |_| true);
    assert!(still[0].0 < 0, "offline without the setting: {still:?}");

    let allow = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("min.insync.replicas", "2")
        .set("unclean.leader.election.enable", "true");
    client_runtime()
        .block_on(admin(&bootstrap(&nodes, a)).alter_configs([&allow], &AdminOptions::new()))
        .expect("alter_configs")
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    let revived = isr_when(&bootstrap(&nodes, a), topic, |s| s[0].0 >= 0);
    let new_leader = revived[0].0;
    assert!(
        new_leader == a as i32 + 1 || new_leader == b as i32 + 1,
        "a live replica leads: {revived:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let elections = || -> f64 {
        nodes
            .iter()
            .flatten()
            .map(|n| metric(&n.admin, "strata_replication_unclean_elections_total"))
            .sum()
    };
    while elections() < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(elections(), 1.0, "the quorum leader counted the election");
    for node in nodes.iter_mut().flatten() {
        node.terminate()?;
    }
    Ok(())
}
