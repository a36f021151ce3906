//! One identity, one process: a data directory is locked by the process using it, and two
//! live processes registered under one node id never serve together.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use strata_e2e::{BrokerProcess, server_command, unused_port};

use crate::{client_runtime, producer};

/// Runs `command` to its exit (within `limit`): its status and what it wrote to stderr.
fn run_to_exit(mut command: Command, limit: Duration) -> (std::process::ExitStatus, String) {
    let mut child = command
        .env("NO_COLOR", "1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("stderr");
    (status, stderr)
}

fn delivered(bootstrap: &str) -> bool {
    let producer = producer(bootstrap, &[("message.timeout.ms", "10000")]);
    client_runtime()
        .block_on(producer.send(
            FutureRecord::to("identity").key("k").payload("v"),
            Duration::from_secs(10),
        ))
        .is_ok()
}

#[test]
fn a_second_process_on_one_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = BrokerProcess::spawn(dir.path(), &[]).expect("first");
    let (status, stderr) = run_to_exit(
        server_command(dir.path()).expect("strata binary"),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "the second process exits: {status}");
    assert!(
        stderr.contains("another strata process is using the data directory"),
        "it says why: {stderr}"
    );
    assert!(delivered(&first.bootstrap), "the first one serves on");
}

#[test]
fn two_live_processes_with_one_node_id_never_serve_together() {
    let quorum = format!("1@127.0.0.1:{}", unused_port());
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let _controller = BrokerProcess::spawn(
        dirs[0].path(),
        &[
            "--node-id",
            "1",
            "--roles",
            "controller",
            "--controller-quorum",
            &quorum,
        ],
    )
    .expect("controller");
    let broker = |dir: &tempfile::TempDir| {
        let mut command = server_command(dir.path()).expect("strata binary");
        command.args([
            "--node-id",
            "2",
            "--roles",
            "broker",
            "--controller-quorum",
            &quorum,
        ]);
        command
    };
    let mut first = BrokerProcess::start(broker(&dirs[1])).expect("first broker");
    assert!(delivered(&first.bootstrap));

    // Node 2 is alive and heartbeating: another process with its id is refused.
    let (status, stderr) = run_to_exit(broker(&dirs[2]), Duration::from_secs(60));
    assert!(!status.success(), "the duplicate exits: {status}");
    assert!(
        stderr.contains("in use by another live broker"),
        "it says why: {stderr}"
    );
    assert!(delivered(&first.bootstrap), "the first one serves on");

    // The first hangs (SIGSTOP): a second process may take the id over once its heartbeats
    // have stopped. When the first wakes up, it learns it was superseded and stops serving.
    let pid = first.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {name}");
    };
    signal("-STOP");
    let second = BrokerProcess::start(broker(&dirs[2])).expect("second broker");
    assert!(delivered(&second.bootstrap), "the second one serves");
    signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = first.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the superseded process was still running 30 s after it woke"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !status.success(),
        "the superseded process stops with an error: {status}"
    );
    assert!(delivered(&second.bootstrap), "the second one serves on");
}
