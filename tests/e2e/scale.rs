//! Metadata at scale, at a size CI runs in a minute and a half (`bench/scale.sh` is the long
//! version, docs/benchmarks.md "Metadata at scale"): 1,000 partitions written a trickle, an
//! upload round every 200 ms and a 20 s retention, so retention is reached within the run.
//! Once it is, the manifest's entries, the broker's resident memory and its descriptors stop
//! growing, and stay within the bounds docs/operations.md gives.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_e2e::{BrokerProcess, server_command};

use crate::{metric, open_fds};

const PARTITIONS: usize = 1000;
/// `strata.log.open.segments.max`: a small shared set, so that the descriptor bound below is
/// about the partitions' own.
const OPEN_SEGMENTS: usize = 64;
const RETENTION: Duration = Duration::from_secs(20);
const RUN: Duration = Duration::from_secs(80);

/// What one sample saw.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    entries: f64,
    rss_mib: f64,
    fds: usize,
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

#[test]
fn entries_memory_and_descriptors_stop_growing_once_retention_is_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!(
            "\"remote.log.manager.task.interval.ms\" = 100\n\
             \"strata.tiering.upload.max.lag.ms\" = 200\n\
             \"log.retention.ms\" = {}\n\
             \"log.retention.check.interval.ms\" = 1000\n\
             \"strata.tiering.orphan.grace.ms\" = 5000\n\
             \"strata.tiering.sweep.interval.ms\" = 2000\n\
             \"strata.log.open.segments.max\" = {OPEN_SEGMENTS}\n",
            RETENTION.as_millis()
        ),
    )
    .expect("config");
    let mut command = server_command(&dir.path().join("data")).expect("strata binary");
    command.arg("--config").arg(&config);
    let broker = BrokerProcess::start(command).expect("broker");
    let pid = broker.child.id();
    let bench = strata_e2e::strata_bin()
        .expect("target directory")
        .with_file_name("strata-bench");
    let mut load = Command::new(bench)
        .args([
            "produce",
            "--bootstrap",
            &broker.bootstrap,
            "--topic",
            "scale",
        ])
        .args(["--partitions", &PARTITIONS.to_string()])
        .args(["--rate", &PARTITIONS.to_string(), "--record-size", "100"])
        .args(["--duration", &RUN.as_secs().to_string(), "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .expect("strata-bench runs (cargo build -p strata-bench first)");

    let started = Instant::now();
    let mut samples = Vec::new();
    while load.try_wait().expect("the load generator").is_none() {
        std::thread::sleep(Duration::from_secs(5));
        samples.push(Sample {
            at: started.elapsed(),
            entries: metric(&broker.admin, "strata_tiering_manifest_segments"),
            rss_mib: rss_mib(pid),
            fds: open_fds(pid),
        });
        assert!(started.elapsed() < RUN * 2, "the load generator overran");
    }
    assert!(load.wait().expect("exit").success(), "the load ran cleanly");
    for sample in &samples {
        eprintln!("{sample:?}");
    }

    // Twice the retention in, the manifest holds what retention keeps. Merges make the
    // count saw (each takes eight entries into one), so the later half of the run is
    // compared with the earlier half on average, and every sample with the bound.
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= RETENTION * 2).collect();
    assert!(settled.len() >= 6, "samples after retention: {samples:?}");
    let (earlier, later) = settled.split_at(settled.len() / 2);
    let mean = |part: &[&Sample], f: fn(&Sample) -> f64| {
        part.iter().map(|s| f(s)).sum::<f64>() / part.len() as f64
    };
    let entries = |s: &Sample| s.entries;
    let rss = |s: &Sample| s.rss_mib;
    assert!(
        mean(earlier, entries) > 0.0,
        "the manifest holds entries: {samples:?}"
    );
    assert!(
        mean(later, entries) <= mean(earlier, entries) * 1.5,
        "manifest entries kept growing past retention: {samples:?}"
    );
    // Without merging, a partition written once a second would keep about 25 entries
    // within the retention (an entry per record); merges keep about 7 per size class.
    assert!(
        settled
            .iter()
            .all(|s| s.entries <= (PARTITIONS * 16) as f64),
        "more than 16 entries per partition: {samples:?}"
    );
    assert!(
        mean(later, rss) <= mean(earlier, rss) * 1.25 + 16.0,
        "resident memory kept growing past retention: {samples:?}"
    );
    // One descriptor per partition (its active segment), the shared set of sealed ones,
    // and the rest of the process (sockets, the raft log, the cache).
    let bound = PARTITIONS + OPEN_SEGMENTS + 200;
    assert!(
        samples.iter().all(|s| s.fds <= bound),
        "more than {bound} descriptors: {samples:?}"
    );
}
