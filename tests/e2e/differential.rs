//! The same requests to Apache Kafka 4.4 (single node, KRaft, from `bench/peers.sh install`)
//! and to Strata: a partition written under three leader epochs (a restart between rounds
//! moves the epoch on), then OffsetForLeaderEpoch for every epoch, past the latest, and with
//! stale and future current epochs, and Fetch with a `LastFetchedEpoch` that diverges. The
//! answers must agree, with each broker's epochs named by the round that wrote under them
//! (Kafka moves the epoch by two per restart, Strata by one).
//!
//! This is what a follower truncates by (KIP-101, KIP-279, KIP-320): where an epoch ends on
//! the leader, and where a fetcher's log diverged from it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, MetadataRequest, OffsetForLeaderEpochRequest, TopicName,
};
use strata_e2e::BrokerProcess;

use crate::clients::{repo_root, toolchain_ready};
use crate::produce_fetch::produce_records;
use crate::raw::{Client, s};
use crate::{client_runtime, create_replicated_topic};

const TOPIC: &str = "epochs";
/// Records written in each round; a restart comes between rounds.
const ROUNDS: [usize; 3] = [3, 2, 4];

/// A broker the test can restart, keeping its data.
trait Restartable {
    fn bootstrap(&self) -> String;
    fn restart(&mut self);
}

struct Strata {
    dir: tempfile::TempDir,
    process: Option<BrokerProcess>,
}

impl Restartable for Strata {
    fn bootstrap(&self) -> String {
        self.process.as_ref().expect("running").bootstrap.clone()
    }

    fn restart(&mut self) {
        self.process
            .take()
            .expect("running")
            .terminate()
            .expect("stops");
        self.process = Some(BrokerProcess::spawn(self.dir.path(), &[]).expect("restarts"));
    }
}

/// Apache Kafka in KRaft combined mode, configured by `bench/peers.sh kafka-config`.
struct Kafka {
    dir: tempfile::TempDir,
    bootstrap: String,
    child: Child,
}

fn kafka_libs() -> PathBuf {
    let cache = std::env::var_os("STRATA_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/strata"),
        PathBuf::from,
    );
    cache.join("kafka-libs")
}

impl Kafka {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let configured = Command::new("bash")
            .arg(repo_root().join("bench/peers.sh"))
            .arg("kafka-config")
            .arg(dir.path())
            .output()
            .expect("peers.sh runs");
        assert!(configured.status.success(), "kafka-config: {configured:?}");
        let bootstrap = String::from_utf8_lossy(&configured.stdout)
            .trim()
            .to_string();
        let child = Self::run(dir.path());
        let kafka = Self {
            dir,
            bootstrap,
            child,
        };
        kafka.wait_serving();
        kafka
    }

    fn run(dir: &Path) -> Child {
        Command::new("java")
            .arg("-cp")
            .arg(kafka_libs().join("*"))
            .arg("kafka.Kafka")
            .arg(dir.join("server.properties"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java starts")
    }

    /// Waits until Kafka answers Metadata on its listener.
    fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            assert!(Instant::now() < deadline, "Kafka never listened");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Restartable for Kafka {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    fn restart(&mut self) {
        let stopped = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(stopped.success());
        self.child.wait().expect("Kafka exits");
        self.child = Self::run(self.dir.path());
        self.wait_serving();
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The partition's leader epoch once it has a leader.
fn leader_epoch(bootstrap: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = Client::connect(bootstrap).send(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC)))),
            ])),
            12,
        );
        let partition = response.topics.first().and_then(|t| t.partitions.first());
        if let Some(p) = partition.filter(|p| p.error_code == 0 && p.leader_id.0 >= 0) {
            return p.leader_epoch;
        }
        assert!(Instant::now() < deadline, "no leader: {response:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes the rounds, restarting between them; answers each round's leader epoch.
fn write_rounds(broker: &mut dyn Restartable) -> Vec<i32> {
    client_runtime().block_on(create_replicated_topic(
        &broker.bootstrap(),
        TOPIC,
        1,
        1,
        &[],
    ));
    let mut epochs = Vec::new();
    for (round, records) in ROUNDS.into_iter().enumerate() {
        if round > 0 {
            broker.restart();
        }
        epochs.push(leader_epoch(&broker.bootstrap()));
        let acknowledged = produce_records(
            &broker.bootstrap(),
            TOPIC,
            1,
            records,
            &[("acks", "all"), ("enable.idempotence", "true")],
        );
        assert_eq!(acknowledged.len(), records);
    }
    epochs
}

/// An epoch as a broker-neutral name: the round written under it, or the raw value when
/// no round was (-1 stays -1).
fn name(epoch: i32, epochs: &[i32]) -> String {
    match epochs.iter().position(|e| *e == epoch) {
        Some(round) => format!("round{round}"),
        None if epoch < 0 => epoch.to_string(),
        None => format!("unwritten({})", epoch - epochs[epochs.len() - 1]),
    }
}

/// OffsetForLeaderEpoch for `leader_epoch` with `current_leader_epoch`: (error, epoch, end).
fn end_of(bootstrap: &str, current: i32, leader_epoch: i32, epochs: &[i32]) -> (i16, String, i64) {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(leader_epoch),
                ]),
        ]);
    let response = Client::connect(bootstrap).send(&request, 4);
    let p = &response.topics[0].partitions[0];
    (p.error_code, name(p.leader_epoch, epochs), p.end_offset)
}

/// A consumer Fetch at `offset` saying its last batch was of `last_fetched_epoch`: (error,
/// diverging epoch, its end offset, high watermark).
fn fetch_diverging(
    bootstrap: &str,
    offset: i64,
    last_fetched_epoch: i32,
    epochs: &[i32],
) -> (i16, String, i64, i64) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(epochs[epochs.len() - 1])
                        .with_last_fetched_epoch(last_fetched_epoch)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let response = Client::connect(bootstrap).send(&request, 12);
    let p = &response.responses[0].partitions[0];
    (
        p.error_code,
        name(p.diverging_epoch.epoch, epochs),
        p.diverging_epoch.end_offset,
        p.high_watermark,
    )
}

/// Every question asked of one broker, in order, with its broker-neutral answer.
fn answers(bootstrap: &str, epochs: &[i32]) -> Vec<(String, String)> {
    let latest = epochs[epochs.len() - 1];
    let mut answers = Vec::new();
    let mut ask = |question: String, answer: String| answers.push((question, answer));
    for (round, epoch) in epochs.iter().enumerate() {
        ask(
            format!("end of round{round}'s epoch"),
            format!("{:?}", end_of(bootstrap, -1, *epoch, epochs)),
        );
    }
    ask(
        "end of the epoch after the latest".into(),
        format!("{:?}", end_of(bootstrap, -1, latest + 1, epochs)),
    );
    ask(
        "end of epoch -1".into(),
        format!("{:?}", end_of(bootstrap, -1, -1, epochs)),
    );
    ask(
        "current epoch older than the leader's".into(),
        format!("{:?}", end_of(bootstrap, latest - 1, epochs[0], epochs).0),
    );
    ask(
        "current epoch newer than the leader's".into(),
        format!("{:?}", end_of(bootstrap, latest + 1, epochs[0], epochs).0),
    );
    // A fetcher that read round 0 and then, under round 0's epoch, past where it ended.
    let past_round_0 = i64::try_from(ROUNDS[0] + 1).expect("small");
    ask(
        "fetch past round0's end with round0 as the last fetched epoch".into(),
        format!(
            "{:?}",
            fetch_diverging(bootstrap, past_round_0, epochs[0], epochs)
        ),
    );
    ask(
        "fetch at round1's end with round1 as the last fetched epoch".into(),
        format!(
            "{:?}",
            fetch_diverging(
                bootstrap,
                i64::try_from(ROUNDS[0] + ROUNDS[1]).expect("small"),
                epochs[1],
                epochs
            )
        ),
    );
    answers
}

#[test]
fn offset_for_leader_epoch_and_diverging_epochs_answer_as_apache_kafka_does() {
    if !toolchain_ready("Apache Kafka (bench/peers.sh install)", || {
        kafka_libs().join(".done").exists()
    }) {
        return;
    }
    let mut kafka = Kafka::start();
    let kafka_epochs = write_rounds(&mut kafka);
    let expected = answers(&kafka.bootstrap(), &kafka_epochs);
    drop(kafka);

    let dir = tempfile::tempdir().expect("tempdir");
    let process = Some(BrokerProcess::spawn(dir.path(), &[]).expect("strata starts"));
    let mut strata = Strata { dir, process };
    let strata_epochs = write_rounds(&mut strata);
    let got = answers(&strata.bootstrap(), &strata_epochs);
    eprintln!("Kafka's epochs {kafka_epochs:?}, Strata's {strata_epochs:?}");
    for ((question, kafka), (_, strata)) in expected.iter().zip(&got) {
        eprintln!("{question}: Kafka {kafka}, Strata {strata}");
    }
    assert_eq!(got, expected);
}
