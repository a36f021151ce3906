//! kill -9 while producers run: every acknowledged record is there after a restart, at its
//! acknowledged offset, and nothing read back is corrupt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use strata_e2e::BrokerProcess;

use crate::{client_runtime, consumer, create_topic, producer};

const PARTITIONS: i32 = 4;

fn crash_while_producing(durability: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker =
        BrokerProcess::spawn(dir.path(), &["--durability", durability]).expect("broker starts");
    let bootstrap = broker.bootstrap.clone();
    client_runtime().block_on(create_topic(
        &bootstrap,
        "crash",
        PARTITIONS,
        &[("segment.bytes", "200000")],
    ));

    let acked: Arc<Mutex<HashMap<(i32, i64), String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|worker| {
            let (acked, stop, bootstrap) = (acked.clone(), stop.clone(), bootstrap.clone());
            std::thread::spawn(move || {
                let producer = producer(
                    &bootstrap,
                    &[
                        ("acks", "all"),
                        ("linger.ms", "2"),
                        ("message.timeout.ms", "3000"),
                    ],
                );
                client_runtime().block_on(async {
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let value = format!("w{worker}-{i}-{}", "p".repeat((i % 200) as usize));
                        let futures: Vec<_> = (0..50)
                            .map(|j| {
                                let record = FutureRecord::to("crash")
                                    .partition(((i + j) % PARTITIONS as u64) as i32)
                                    .key("k")
                                    .payload(&value);
                                producer.send_result(record).map_err(|_| ())
                            })
                            .collect();
                        for delivery in futures.into_iter().flatten() {
                            if let Ok(Ok(d)) = delivery.await {
                                acked
                                    .lock()
                                    .expect("acked")
                                    .insert((d.partition, d.offset), value.clone());
                            }
                        }
                        i += 1;
                    }
                });
            })
        })
        .collect();

    // Let the producers get going, then crash the broker under them.
    let started = Instant::now();
    while acked.lock().expect("acked").len() < 5000 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.kill9().expect("kill -9");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer thread");
    }
    let acked = Arc::try_unwrap(acked)
        .expect("producers done")
        .into_inner()
        .expect("acked");
    assert!(
        acked.len() >= 1000,
        "the producers had records acknowledged before the crash"
    );

    let broker =
        BrokerProcess::spawn(dir.path(), &["--durability", durability]).expect("broker restarts");
    let consumer = consumer(&broker.bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset("crash", p, Offset::Beginning)
            .expect("assign");
        let (_, high) = consumer
            .fetch_watermarks("crash", p, Duration::from_secs(5))
            .expect("watermarks");
        ends.insert(p, high);
    }
    consumer.assign(&assignment).expect("assign");
    let total: i64 = ends.values().sum();
    let mut found = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (found.len() as i64) < total {
        assert!(
            Instant::now() < deadline,
            "read {} of {total} records after restart",
            found.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("every stored batch passes its CRC check");
        let value = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf8");
        found.insert((message.partition(), message.offset()), value);
    }
    for (at, value) in &acked {
        assert_eq!(
            found.get(at),
            Some(value),
            "acknowledged record at {at:?} survived the crash"
        );
    }
}

#[test]
fn acknowledged_records_survive_kill_9_with_os_durability() {
    crash_while_producing("os");
}

#[test]
fn acknowledged_records_survive_kill_9_with_fsync_durability() {
    crash_while_producing("fsync");
}
