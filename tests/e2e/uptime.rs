//! Long uptime in short: a tiered broker with many partitions and upload rounds every few
//! hundred milliseconds (each round rolls every partition that took data) keeps its open
//! descriptors flat. `scripts/soak-fds.sh` runs the same for as long as you like.

use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use strata_e2e::{BrokerProcess, server_command};

use crate::{client_runtime, create_topic, metric, open_fds, producer};

const PARTITIONS: i32 = 40;

/// The segment files (`*.log`) under `dir`, however deep.
fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .map(|path| match path.extension() {
                _ if path.is_dir() => segment_files(&path),
                Some(ext) if ext == "log" => 1,
                _ => 0,
            })
            .sum()
    })
}

#[test]
fn descriptors_stay_flat_while_every_partition_rolls_a_segment_every_upload_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        "\"strata.tiering.upload.max.lag.ms\" = 200\n\
         \"remote.log.manager.task.interval.ms\" = 100\n\
         \"log.roll.ms\" = 200\n\
         \"strata.log.open.segments.max\" = 64\n",
    )
    .expect("config");
    let mut command = server_command(&dir.path().join("data")).expect("strata binary");
    command.arg("--config").arg(&config);
    let broker = BrokerProcess::start(command).expect("broker");
    let pid = broker.child.id();
    let runtime = client_runtime();
    runtime.block_on(create_topic(&broker.bootstrap, "busy", PARTITIONS, &[]));
    let producer = producer(&broker.bootstrap, &[("linger.ms", "5")]);
    let produce_for = |duration: Duration| {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            runtime.block_on(async {
                let sends = (0..PARTITIONS).map(|p| {
                    producer.send(
                        FutureRecord::to("busy").partition(p).key("k").payload("v"),
                        Duration::from_secs(10),
                    )
                });
                for delivered in futures::future::join_all(sends).await {
                    assert!(delivered.is_ok(), "{delivered:?}");
                }
            });
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Warm up: every partition has rolled, uploaded and opened what it keeps open.
    produce_for(Duration::from_secs(5));
    let uploads_before = metric(&broker.admin, "strata_tiering_objects_uploaded_total");
    let early = open_fds(pid);
    produce_for(Duration::from_secs(15));
    let late = open_fds(pid);
    let uploads = metric(&broker.admin, "strata_tiering_objects_uploaded_total") - uploads_before;
    println!(
        "descriptors: {early} after warm-up, {late} after 15 s more ({uploads} objects uploaded meanwhile)"
    );
    assert!(uploads >= 10.0, "upload rounds ran: {uploads}");
    let segments = segment_files(&dir.path().join("data"));
    assert!(
        segments >= 10 * PARTITIONS as usize,
        "segments rolled by `log.roll.ms`: {segments} files"
    );
    // Before segments shared a bounded descriptor set, each round added two per partition
    // (about 80 here), thousands over these 15 s.
    assert!(
        late <= early + 40,
        "descriptors grew from {early} to {late} over {uploads} upload rounds"
    );
    assert!(metric(&broker.admin, "strata_process_open_fds") > 0.0);
    assert!(metric(&broker.admin, "strata_log_open_segment_files") <= 64.0);
}
