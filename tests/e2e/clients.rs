//! The compatibility runners of other Kafka clients (tests/clients), each against its own
//! in-process broker. `scripts/install-test-deps.sh` installs their toolchains; `.ci/run`
//! sets STRATA_REQUIRE_CLIENTS=1 so a missing client fails instead of being skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_e2e::InProcessBroker;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn required() -> bool {
    std::env::var("STRATA_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Runs `program args` with STRATA_BOOTSTRAP pointing at a fresh broker.
fn run_runner(name: &str, program: &str, args: &[&str], ready: impl Fn() -> bool) {
    if !ready() {
        assert!(
            !required(),
            "{name}: its toolchain is missing; run scripts/install-test-deps.sh"
        );
        eprintln!("skipping {name}: run scripts/install-test-deps.sh to install it");
        return;
    }
    let broker = InProcessBroker::start().expect("broker");
    let status = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .env("STRATA_BOOTSTRAP", &broker.bootstrap)
        .status()
        .expect("runner starts");
    assert!(
        status.success(),
        "{name} runner failed ({status}); its output is above"
    );
}

fn cache_dir() -> PathBuf {
    std::env::var_os("STRATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/strata")
        })
}

#[test]
fn python_confluent_kafka_runner_passes() {
    let python = cache_dir().join("venv/bin/python");
    let python = python.to_string_lossy().into_owned();
    run_runner(
        "confluent-kafka",
        &python,
        &["tests/clients/python/compat_confluent.py"],
        || Path::new(&python).exists(),
    );
}

#[test]
fn kafkajs_runner_passes() {
    let root = repo_root();
    run_runner(
        "kafkajs",
        "node",
        &["tests/clients/js/compat_kafkajs.js"],
        || root.join("tests/clients/js/node_modules/kafkajs").exists(),
    );
}

#[test]
fn java_kafka_clients_runner_passes() {
    let root = repo_root();
    run_runner(
        "kafka-clients",
        "bash",
        &["tests/clients/java/run.sh"],
        || root.join("tests/clients/java/target/classes").exists(),
    );
}

#[test]
fn kcat_runner_passes() {
    run_runner(
        "kcat",
        "bash",
        &["tests/clients/kcat/compat_kcat.sh"],
        || {
            Command::new("kcat")
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
        },
    );
}
