//! The `strata server` contract: port 0 and the startup line, the admin endpoints, flags from
//! the environment and the config file, and SIGTERM's ordered shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use strata_e2e::{BrokerProcess, server_command, strata_bin};

use crate::{client_runtime, create_topic};

/// A GET on an admin port: its status code and body.
pub(crate) fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_server_reports_its_ports_serves_admin_endpoints_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::spawn(dir.path(), &[]).expect("broker starts");
    assert_eq!(http_get(&broker.admin, "/healthz").0, 200);
    // The startup line comes once the listeners are bound; ready means the node has also
    // joined the metadata quorum and registered, which takes a moment more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while http_get(&broker.admin, "/readyz").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never turned ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    client_runtime().block_on(create_topic(&broker.bootstrap, "contract", 1, &[]));
    let (status, metrics) = http_get(&broker.admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("strata_kafka_requests_total"),
        "request counters are exported:\n{metrics}"
    );
    assert!(metrics.contains("api=\"create_topics\""));
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("{name} is exported:\n{metrics}"))
    };
    assert!(value("strata_quorum_term") >= 1);
    assert_eq!(
        value("strata_quorum_leader"),
        1,
        "a quorum of one leads itself"
    );
    assert_eq!(value("strata_quorum_live_brokers"), 1);
    assert_eq!(value("strata_quorum_apply_lag"), 0);

    let status = broker.terminate().expect("the broker stops after SIGTERM");
    assert!(status.success(), "ordered shutdown exits 0, got {status}");
    let log: Vec<String> = broker.log.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("partitions flushed")),
        "shutdown flushed partitions: {log:?}"
    );
}

#[test]
fn flags_come_from_the_environment_and_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        "kafka-listen = \"127.0.0.1:0\"\nadmin-listen = \"127.0.0.1:0\"\nnum.partitions = 3\n",
    )
    .expect("config");
    let mut command = Command::new(strata_bin().expect("binary"));
    command
        .args(["server", "--config"])
        .arg(&config)
        .env("STRATA_DATA_DIR", dir.path().join("data"));
    let broker = BrokerProcess::start(command).expect("broker starts");
    assert!(
        dir.path().join("data/meta/node.json").exists(),
        "STRATA_DATA_DIR was used"
    );
    // num.partitions from the file applies to auto-created topics.
    let consumer = crate::consumer(&broker.bootstrap, &[("allow.auto.create.topics", "true")]);
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(
        &consumer,
        Some("auto-made"),
        Duration::from_secs(5),
    )
    .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
}

#[test]
fn a_bad_setting_is_refused_at_startup_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, "log.retention.ms = \"soon\"\n").expect("config");
    let output = server_command(dir.path())
        .expect("binary")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("retention.ms"),
        "the error names the setting: {stderr}"
    );
}
