//! The compatibility runners of other Kafka clients (tests/clients), each against its own
//! in-process broker. `scripts/install-test-deps.sh` installs their toolchains; `.ci/run`
//! sets STRATA_REQUIRE_CLIENTS=1 so a missing client fails instead of being skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_e2e::InProcessBroker;

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn required() -> bool {
    std::env::var("STRATA_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Whether a client toolchain is installed; when it is not, a CI run fails and a local run
/// skips with a note.
pub(crate) fn toolchain_ready(name: &str, ready: impl Fn() -> bool) -> bool {
    if ready() {
        return true;
    }
    assert!(
        !required(),
        "{name}: its toolchain is missing; run scripts/install-test-deps.sh"
    );
    eprintln!("skipping {name}: run scripts/install-test-deps.sh to install it");
    false
}

/// Runs `program args` from the repository root with `env`, and fails if it does.
pub(crate) fn run_script(name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .envs(env.iter().copied())
        .status()
        .expect("runner starts");
    assert!(
        status.success(),
        "{name} runner failed ({status}); its output is above"
    );
}

/// Runs `program args` with STRATA_BOOTSTRAP pointing at a fresh broker, which it returns
/// for checks after the run (`None` when the toolchain is missing and that is allowed).
fn run_runner(
    name: &str,
    program: &str,
    args: &[&str],
    ready: impl Fn() -> bool,
) -> Option<InProcessBroker> {
    if !toolchain_ready(name, ready) {
        return None;
    }
    let broker = InProcessBroker::start().expect("broker");
    run_script(
        name,
        program,
        args,
        &[("STRATA_BOOTSTRAP", &broker.bootstrap)],
    );
    Some(broker)
}

/// The test venv's Python (confluent-kafka and kafka-python installed), if it is there.
pub(crate) fn confluent_python(name: &str) -> Option<String> {
    let python = cache_dir().join("venv/bin/python");
    let python = python.to_string_lossy().into_owned();
    toolchain_ready(name, || Path::new(&python).exists()).then_some(python)
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
    let Some(python) = confluent_python("confluent-kafka") else {
        return;
    };
    let broker = InProcessBroker::start().expect("broker");
    run_script(
        "confluent-kafka",
        &python,
        &["tests/clients/python/compat_confluent.py"],
        &[("STRATA_BOOTSTRAP", &broker.bootstrap)],
    );
}

#[test]
fn python_confluent_kafka_consumer_groups_pass() {
    let name = "confluent-kafka groups";
    let Some(python) = confluent_python(name) else {
        return;
    };
    // No initial rebalance delay: the runner forms many small groups.
    let broker = InProcessBroker::start_with(|c| {
        c.groups.limits.initial_rebalance_delay = std::time::Duration::ZERO;
    })
    .expect("broker");
    run_script(
        name,
        &python,
        &["tests/clients/python/groups_confluent.py"],
        &[("STRATA_BOOTSTRAP", &broker.bootstrap)],
    );
}

#[test]
fn kafka_python_consumer_groups_pass() {
    let name = "kafka-python groups";
    let Some(python) = confluent_python(name) else {
        return;
    };
    let broker = InProcessBroker::start().expect("broker");
    run_script(
        name,
        &python,
        &["tests/clients/python/groups_kafka_python.py"],
        &[("STRATA_BOOTSTRAP", &broker.bootstrap)],
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
    let Some(broker) = run_runner(
        "kafka-clients",
        "bash",
        &["tests/clients/java/run.sh"],
        || root.join("tests/clients/java/target/classes").exists(),
    ) else {
        return;
    };
    // The Java consumer opens a fetch session (KIP-227) and then fetches incrementally.
    let incremental = crate::metric(
        &broker.admin.to_string(),
        "strata_fetch_session_incremental_fetches_total",
    );
    assert!(incremental > 0.0, "the Java client fetched incrementally");
    // Its records left the broker from their segment files, never copied through it.
    let sent = crate::metric(
        &broker.admin.to_string(),
        "strata_fetch_sendfile_bytes_total",
    );
    assert!(sent > 0.0, "fetched records were sent with sendfile");
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
