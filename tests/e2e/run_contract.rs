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

#[test]
fn an_s3_store_without_credentials_is_one_clear_line_and_a_failed_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = server_command(&dir.path().join("data")).expect("binary");
    command
        .args(["--object-store", "s3://no-such-bucket/prefix"])
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("AWS_PROFILE")
        // No ~/.aws to find credentials in, and no instance metadata to ask.
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        command.env_remove(var);
    }
    let started = std::time::Instant::now();
    let output = command.output().expect("run");
    assert!(!output.status.success(), "it exits with a failure");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "at once, not after retries"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("strata:"))
        .collect();
    assert_eq!(lines.len(), 1, "one line says what is wrong: {stderr}");
    assert!(
        lines[0].contains("s3://no-such-bucket/prefix"),
        "which URL: {stderr}"
    );
    assert!(
        lines[0].contains("AWS_ACCESS_KEY_ID"),
        "how to fix it: {stderr}"
    );
    assert!(
        !stderr.contains("backtrace"),
        "no backtrace unless asked: {stderr}"
    );
}

/// Every Kafka-named and Strata setting docs/settings.md documents, with a value it
/// accepts: its documented default where the table gives one.
fn documented_settings() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/settings.md"))
        .expect("docs/settings.md");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut settings = Vec::new();
    let mut section = "";
    for line in doc.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = if title.starts_with("Broker-wide") {
                "broker"
            } else if title.starts_with("Topic-level") {
                "topic"
            } else {
                ""
            };
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if section.is_empty() || cells.len() < 4 || cells[1].starts_with("---") {
            continue;
        }
        // Broker table: setting | default; topic table: topic name | broker name | default.
        let (names, default) = match section {
            "broker" => (ticked(cells[1]), cells[2]),
            _ => (ticked(cells[2]), cells[3]),
        };
        // "`a`, `b`" under "`x`, `y`": each name its own default.
        let defaults = ticked(default);
        for (i, name) in names.into_iter().enumerate() {
            let default = defaults.get(i).or(defaults.first()).cloned();
            let value = default.unwrap_or_else(|| match name.as_str() {
                "broker.rack" => "rack-a".into(),
                "log.retention.hours" | "log.roll.hours" => "168".into(),
                "log.retention.minutes" => "10080".into(),
                _ => "100".into(),
            });
            settings.push((name, value));
        }
    }
    settings
}

#[test]
fn every_documented_setting_starts_a_broker() {
    let settings = documented_settings();
    assert!(settings.len() >= 40, "the tables were read: {settings:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("strata.toml");
    let body: String = settings
        .iter()
        .map(|(name, value)| format!("\"{name}\" = \"{value}\"\n"))
        .collect();
    std::fs::write(&config, body).expect("config");
    let mut command = server_command(&dir.path().join("data")).expect("binary");
    command.arg("--config").arg(&config);
    let broker = BrokerProcess::start(command).expect("every documented setting is accepted");
    client_runtime().block_on(create_topic(&broker.bootstrap, "documented", 1, &[]));
}
