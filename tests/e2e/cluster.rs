//! Several `strata server` processes on loopback forming one metadata quorum.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{DescribeClusterRequest, InitProducerIdRequest};
use rdkafka::consumer::Consumer;
use strata_e2e::BrokerProcess;

use crate::consumer;
use crate::raw::Client;

/// A loopback port that was free a moment ago (the quorum's addresses must be known before
/// any node starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The broker ids `bootstrap`'s Metadata lists, once it lists `expected` (or what it last
/// listed when time runs out).
fn brokers_listed_by(bootstrap: &str, expected: &[i32]) -> Vec<i32> {
    let client = consumer(bootstrap, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
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
fn three_node_layout() -> anyhow::Result<([tempfile::TempDir; 3], String)> {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let quorum = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    Ok((dirs, quorum))
}

/// Starts node `i + 1` on `dirs[i]`. Each logs its startup line before the quorum forms, so
/// they can start one after another.
fn start_cluster(dirs: &[tempfile::TempDir], quorum: &str) -> anyhow::Result<Vec<BrokerProcess>> {
    (1..)
        .zip(dirs)
        .map(|(id, dir): (i32, _)| {
            let id = id.to_string();
            BrokerProcess::spawn(
                dir.path(),
                &["--node-id", &id, "--controller-quorum", quorum],
            )
        })
        .collect()
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
