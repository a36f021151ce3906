//! Metadata at scale, at a size CI runs in a few minutes (`bench/scale.sh` is the long
//! version, docs/benchmarks.md "Metadata at scale"):
//! - 1,000 partitions written a trickle, an upload round every 200 ms and a 20 s retention,
//!   so retention is reached within the run. Once it is, the manifest's entries, the broker's
//!   resident memory and its descriptors stop growing, and stay within the bounds
//!   docs/operations.md gives.
//! - A long history of small upload rounds, merged level upon level, survives a restart, a
//!   kill -9 and the loss of the disk: every record reads back at its offset.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use strata_e2e::{BrokerProcess, server_command};

use crate::produce_fetch::{Sent, consume_and_check, produce_numbered};
use crate::tiering::{Backend, start_tiered, wait_until};
use crate::{client_runtime, consumer, create_topic, metric, open_fds, producer};

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

const HISTORY_TOPIC: &str = "history";
const HISTORY_PARTITIONS: i32 = 4;
/// Upload rounds in the history: each with a record in every partition, so each adds an
/// entry per partition until merges take eight into one, and merged entries merge again.
const HISTORY_ROUNDS: f64 = 300.0;
/// docs/operations.md, "What a partition costs": a restart's time follows the bytes in
/// active segments, not the history (1.6 s for 10 000 partitions holding 2 GB). A handful of
/// small partitions is ready in well under a second; this bound is ten times anything seen,
/// the promise that history does not count, not a measurement.
const RESTART_BOUND: Duration = Duration::from_secs(15);

/// Starts a broker on `data_dir` whose objects go to `objects`, with upload rounds every
/// 50 ms; answers it and how long it took to be ready.
fn start_history_broker(data_dir: &Path, objects: &Path) -> (BrokerProcess, Duration) {
    let started = Instant::now();
    let broker = start_tiered(
        data_dir,
        &Backend::directory(objects),
        "\"remote.log.manager.task.interval.ms\" = 50\n\
         \"strata.tiering.upload.max.lag.ms\" = 50\n\
         \"strata.tiering.orphan.grace.ms\" = 1000\n\
         \"strata.tiering.sweep.interval.ms\" = 500\n\
         \"log.retention.check.interval.ms\" = 200\n",
    );
    (broker, started.elapsed())
}

/// Checks a restarted broker: it was ready within the documented bound, every record reads
/// back at its offset from the merged objects, and the log ends where it did.
fn check_after_restart(
    how: &str,
    (broker, took): &(BrokerProcess, Duration),
    landed: &HashMap<(i32, i64), Sent>,
    ends: &[i64],
) {
    eprintln!("ready {took:?} after {how}");
    assert!(
        *took < RESTART_BOUND,
        "ready {took:?} after {how}, past the documented {RESTART_BOUND:?}"
    );
    consume_and_check(&broker.bootstrap, HISTORY_TOPIC, HISTORY_PARTITIONS, landed);
    assert_eq!(log_ends(&broker.bootstrap), ends, "log ends after {how}");
}

fn log_ends(bootstrap: &str) -> Vec<i64> {
    let consumer = consumer(bootstrap, &[]);
    (0..HISTORY_PARTITIONS)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(HISTORY_TOPIC, p, Duration::from_secs(10))
                .expect("watermarks");
            assert_eq!(low, 0, "partition {p} keeps its whole history");
            high
        })
        .collect()
}

#[test]
fn a_long_merged_history_reads_back_at_its_offsets_after_a_restart_a_kill_9_and_a_lost_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data_dir, objects) = (dir.path().join("data"), dir.path().join("objects"));
    let mut broker = start_history_broker(&data_dir, &objects).0;
    // Every uploaded byte leaves the disk, so reads come from the merged objects.
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        HISTORY_TOPIC,
        HISTORY_PARTITIONS,
        &[("local.retention.bytes", "0"), ("retention.ms", "-1")],
    ));
    let uploads = |b: &BrokerProcess| metric(&b.admin, "strata_tiering_objects_uploaded_total");
    let history = producer(&broker.bootstrap, &[("acks", "all")]);
    let mut landed = HashMap::new();
    let mut round = 0;
    let per_round = HISTORY_PARTITIONS as usize;
    while uploads(&broker) < HISTORY_ROUNDS {
        assert!(
            round < 20 * HISTORY_ROUNDS as usize,
            "{round} produce rounds made only {} uploads",
            uploads(&broker)
        );
        let numbers = round * per_round..(round + 1) * per_round;
        landed.extend(produce_numbered(
            &history,
            HISTORY_TOPIC,
            HISTORY_PARTITIONS,
            numbers,
        ));
        round += 1;
        // About one upload round (50 ms) between produce rounds.
        std::thread::sleep(Duration::from_millis(60));
    }
    wait_until("everything is uploaded", || {
        metric(&broker.admin, "strata_tiering_upload_lag_records") == 0.0
    });
    // The manifest gauge is refreshed every 2 s. Without merging there would be an entry
    // per partition per upload; merges leave a few per size class of each partition's data.
    let entries = || metric(&broker.admin, "strata_tiering_manifest_segments");
    wait_until("the manifest gauge counts the entries", || entries() > 0.0);
    let (uploaded, merged) = (
        uploads(&broker),
        metric(&broker.admin, "strata_tiering_merge_runs_replaced_total"),
    );
    eprintln!(
        "{round} produce rounds, {uploaded} uploads, {merged} runs merged, {} entries",
        entries()
    );
    assert!(
        entries() < uploaded,
        "{} entries after {uploaded} uploads into {HISTORY_PARTITIONS} partitions",
        entries()
    );
    let ends = log_ends(&broker.bootstrap);
    assert_eq!(ends.iter().sum::<i64>() as usize, landed.len());
    consume_and_check(
        &broker.bootstrap,
        HISTORY_TOPIC,
        HISTORY_PARTITIONS,
        &landed,
    );

    broker.terminate().expect("SIGTERM");
    drop(broker);
    let restarted = start_history_broker(&data_dir, &objects);
    check_after_restart("SIGTERM", &restarted, &landed, &ends);

    restarted.0.kill9().expect("kill -9");
    let restarted = start_history_broker(&data_dir, &objects);
    check_after_restart("kill -9", &restarted, &landed, &ends);

    // Nothing was written since the restart: the store and its metadata backup hold the
    // whole history.
    restarted.0.kill9().expect("kill -9");
    std::fs::remove_dir_all(&data_dir).expect("rm -rf data");
    let restored = start_history_broker(&data_dir, &objects);
    check_after_restart("losing the disk", &restored, &landed, &ends);
    // Appends continue after the history.
    let producer = producer(&restored.0.bootstrap, &[("acks", "all")]);
    let numbers = round * per_round..(round + 1) * per_round;
    let after = produce_numbered(&producer, HISTORY_TOPIC, HISTORY_PARTITIONS, numbers);
    for (partition, offset) in after.keys() {
        assert_eq!(*offset, ends[*partition as usize], "partition {partition}");
    }
}
