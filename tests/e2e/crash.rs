//! kill -9 while producers run: every acknowledged record is there after a restart, at its
//! acknowledged offset, and nothing read back is corrupt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use strata_e2e::{BrokerProcess, strata_bin, unused_port};

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

#[test]
fn an_idempotent_producer_retrying_across_a_kill_9_leaves_no_duplicates() {
    const RECORDS: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", unused_port());
    let start = || {
        let mut command = std::process::Command::new(strata_bin().expect("binary"));
        command
            .args([
                "server",
                "--kafka-listen",
                &listen,
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path());
        BrokerProcess::start(command).expect("broker starts")
    };
    let broker = start();
    client_runtime().block_on(create_topic(&listen, "idem-crash", 2, &[]));
    let producer = producer(
        &listen,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "60000"),
            ("retry.backoff.ms", "100"),
        ],
    );
    // Send steadily for about a second so the crash lands mid-stream.
    let sender = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            let mut deliveries = Vec::with_capacity(RECORDS);
            for chunk in 0..(RECORDS / 200) {
                for i in chunk * 200..(chunk + 1) * 200 {
                    let value = i.to_string();
                    let record = FutureRecord::to("idem-crash")
                        .partition((i % 2) as i32)
                        .key("k")
                        .payload(&value);
                    deliveries.push(producer.send_result(record).expect("queue has room"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            deliveries
        })
    };
    // Crash the broker while batches are in flight, then bring it back on the same port.
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !sender.is_finished(),
        "the crash lands while records are still being sent"
    );
    broker.kill9().expect("kill -9");
    std::thread::sleep(Duration::from_millis(500));
    let broker = start();
    let deliveries = sender.join().expect("sender");
    let runtime = client_runtime();
    let mut acked = HashMap::new();
    for delivery in deliveries {
        let d = runtime
            .block_on(delivery)
            .expect("reported")
            .expect("every record is eventually acknowledged");
        acked.insert((d.partition, d.offset), ());
    }
    assert_eq!(acked.len(), RECORDS, "every record got its own offset");

    let consumer = consumer(&broker.bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset("idem-crash", p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = std::collections::HashSet::new();
    let mut last_per_partition: HashMap<i32, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "read {} of {RECORDS}",
            seen.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("message");
        let value: usize = std::str::from_utf8(message.payload().expect("payload"))
            .expect("utf8")
            .parse()
            .expect("number");
        assert!(seen.insert(value), "record {value} is stored twice");
        if let Some(previous) = last_per_partition.insert(message.partition(), value) {
            assert!(
                value > previous,
                "partition {} keeps the send order",
                message.partition()
            );
        }
    }
    for p in 0..2 {
        let (low, high) = consumer
            .fetch_watermarks("idem-crash", p, Duration::from_secs(5))
            .expect("watermarks");
        assert_eq!(
            high - low,
            (RECORDS / 2) as i64,
            "partition {p} holds exactly its records"
        );
    }
}
