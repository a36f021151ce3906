//! The `strata server` contract: port 0 and the startup line, the admin endpoints, flags from
//! the environment and the config file, and SIGTERM's ordered shutdown.

use std::process::Command;
use std::time::Duration;

use strata_e2e::{BrokerProcess, http_get, server_command, strata_bin};

use crate::{client_runtime, create_topic};

#[test]
fn the_server_reports_its_ports_serves_admin_endpoints_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The startup line comes once the listeners are bound; `spawn` then waits for /readyz
    // (the node has also joined the metadata quorum and registered).
    let mut broker = BrokerProcess::spawn(dir.path(), &[]).expect("broker starts and is ready");
    assert_eq!(http_get(&broker.admin, "/healthz").expect("healthz").0, 200);
    client_runtime().block_on(create_topic(&broker.bootstrap, "contract", 1, &[]));
    let (status, metrics) = http_get(&broker.admin, "/metrics").expect("metrics");
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
    // A broker heartbeat (one every 2 s) may be committed and not yet applied.
    assert!(value("strata_quorum_apply_lag") <= 1);

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
