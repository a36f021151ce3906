//! Tiered storage, one scenario run against every kind of object store: `file://` (the
//! embedded default), `memory://`, and a real S3-compatible server (moto) on loopback.
//!
//! A real client produces past many small segments; the broker uploads them, deletes the
//! local copies, and serves everything again from offset 0 byte for byte, ListOffsets by
//! time and earliest included; after a restart, the tiered data is still served.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use strata_broker::BrokerConfig;
use strata_e2e::{BrokerProcess, InProcessBroker, http, server_command};
use strata_objects::FaultPlan;

use crate::object_store::s3_server;
use crate::produce_fetch::{Sent, consume_and_check, produce_records};
use crate::{admin, client_runtime, consumer, create_topic, metric, producer};

const TOPIC: &str = "tiered";
const PARTITIONS: i32 = 2;
/// Small segments, local copies deleted as soon as they are tiered, no whole-log retention
/// (the records carry 2023 timestamps).
const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("segment.bytes", "65536"),
    ("local.retention.bytes", "0"),
    ("retention.ms", "-1"),
];

/// Where the scenario's objects go.
pub(crate) struct Backend {
    url: String,
    env: Vec<(&'static str, &'static str)>,
    /// Whether the store outlives the broker process (not so for `memory://`).
    durable: bool,
    /// How many tiered objects the store holds, asked of the store itself (`None` where the
    /// test cannot see into it).
    stored_objects: Box<dyn Fn() -> Option<usize>>,
}

impl Backend {
    /// A `file://` store in `objects`, counted by listing the directory.
    pub(crate) fn directory(objects: &Path) -> Self {
        let segments = objects.join("segments");
        Self {
            url: format!("file://{}", objects.display()),
            env: vec![],
            durable: true,
            stored_objects: Box::new(move || Some(files_under(&segments))),
        }
    }
}

fn start(data_dir: &Path, backend: &Backend) -> BrokerProcess {
    start_tiered(
        data_dir,
        backend,
        "\"remote.log.manager.task.interval.ms\" = 100\n\
         \"strata.tiering.upload.max.lag.ms\" = 300\n\
         \"strata.tiering.object.target.bytes\" = 1048576\n\
         \"strata.tiering.cache.disk.bytes\" = 16777216\n\
         \"strata.tiering.orphan.grace.ms\" = 1000\n\
         \"strata.tiering.sweep.interval.ms\" = 200\n\
         \"log.retention.check.interval.ms\" = 200\n",
    )
}

/// Starts a broker on `data_dir` that tiers to `backend`, with the settings in `config` (a
/// TOML file's text).
pub(crate) fn start_tiered(data_dir: &Path, backend: &Backend, config: &str) -> BrokerProcess {
    let config_file = data_dir.with_extension("toml");
    std::fs::write(&config_file, config).expect("config file");
    let mut command = server_command(data_dir).expect("strata binary");
    command
        .arg("--object-store")
        .arg(&backend.url)
        .arg("--config")
        .arg(&config_file)
        .envs(backend.env.iter().copied())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    BrokerProcess::start(command).expect("broker starts")
}

/// The partition's directory under the data directory.
fn partition_dir(data_dir: &Path, partition: i32) -> PathBuf {
    let log = data_dir.join("log");
    let topic = std::fs::read_dir(&log)
        .expect("log dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{TOPIC}.")))
        })
        .expect("the topic's directory");
    topic.join(partition.to_string())
}

/// The base offset of the oldest local segment.
fn local_log_start(data_dir: &Path, partition: i32) -> i64 {
    std::fs::read_dir(partition_dir(data_dir, partition))
        .expect("partition dir")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<i64>()
                .ok()
        })
        .min()
        .unwrap_or(0)
}

pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The offset ListOffsets answers for `timestamp`.
fn offset_for_time(bootstrap: &str, partition: i32, timestamp: i64) -> Offset {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(TOPIC, partition, Offset::Offset(timestamp))
        .expect("query");
    consumer(bootstrap, &[])
        .offsets_for_times(query, Duration::from_secs(10))
        .expect("offsets_for_times")
        .find_partition(TOPIC, partition)
        .expect("answered")
        .offset()
}

fn scenario(backend: &Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let broker = start(&data_dir, backend);
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        TOPIC_CONFIGS,
    ));
    let landed = produce_records(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        4000,
        &[("acks", "all"), ("linger.ms", "5")],
    );
    // Sealed segments go up and their local copies go away; the active one stays.
    wait_until("local segments are deleted after upload", || {
        (0..PARTITIONS).all(|p| local_log_start(&data_dir, p) > 1000)
    });
    assert!(metric(&broker.admin, "strata_tiering_objects_uploaded_total") >= 1.0);
    // The manifest gauges are refreshed every 2 s.
    wait_until("the manifest gauge counts the objects", || {
        metric(&broker.admin, "strata_tiering_manifest_objects") >= 1.0
    });
    if let Some(stored) = (backend.stored_objects)() {
        assert!(stored >= 1, "the store itself lists the objects");
    }
    assert!(
        metric(
            &broker.admin,
            "strata_object_store_requests_total{op=\"put\",purpose=\"segments\"}"
        ) >= 1.0
    );

    // Everything reads back from offset 0, the tiered part from the object store.
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
    assert!(metric(&broker.admin, "strata_tiering_remote_read_bytes_total") > 0.0);
    let (low, high) = consumer(&broker.bootstrap, &[])
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 2000), "earliest is the tiered log start");
    let sent = &landed[&(0, 10)];
    assert_eq!(
        offset_for_time(&broker.bootstrap, 0, sent.timestamp),
        Offset::Offset(10),
        "ListOffsets by time finds a tiered record"
    );
    let broker = if backend.durable {
        drop(broker);
        let broker = start(&data_dir, backend);
        consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
        lose_the_disk(broker, &data_dir, backend, landed)
    } else {
        broker
    };
    deletes_and_expires(&broker, backend);
}

/// Uploads everything, kills the broker, deletes its whole data directory and starts it
/// again with the same object store: every record comes back, and appends continue.
fn lose_the_disk(
    broker: BrokerProcess,
    data_dir: &Path,
    backend: &Backend,
    mut landed: HashMap<(i32, i64), Sent>,
) -> BrokerProcess {
    let committed =
        |broker: &BrokerProcess| metric(&broker.admin, "strata_tiering_segments_committed_total");
    let before = committed(&broker);
    // An idempotent batch whose acknowledgement the producer will not have seen.
    let producer_id = new_producer_id(&broker.bootstrap);
    let original = produce_idempotent(&broker.bootstrap, producer_id);
    landed.insert(
        (0, original),
        Sent {
            key: b"idempotent".to_vec(),
            value: b"once".to_vec(),
            header: b"retried".to_vec(),
            timestamp: 1_700_000_000_000,
        },
    );
    let more = produce_records(&broker.bootstrap, TOPIC, PARTITIONS, 10, &[("acks", "all")]);
    assert!(
        more.keys().all(|(_, offset)| *offset >= 2000),
        "appends after a restart continue after the tiered offsets"
    );
    landed.extend(more);
    // The lag gauge is measured every 250 ms, so a reading taken before the produce can
    // still say 0: wait for the new segments' commits, then for a fresh reading of 0 (which
    // on this embedded node also means a metadata backup holds the commits).
    wait_until("the new records are committed", || {
        committed(&broker) >= before + f64::from(PARTITIONS)
    });
    std::thread::sleep(Duration::from_millis(500));
    wait_until(
        "everything acknowledged is safe in the object store",
        || metric(&broker.admin, "strata_tiering_upload_lag_records") == 0.0,
    );
    // The backup is a snapshot and the raft log written after it, in deltas.
    assert!(
        metric(
            &broker.admin,
            "strata_tiering_metadata_backup_snapshots_total"
        ) >= 1.0
    );
    assert!(metric(&broker.admin, "strata_tiering_metadata_backup_deltas_total") >= 1.0);
    // A producer id handed out just before the crash (its block possibly after the last
    // metadata backup) is never handed out again after the restore.
    let before_crash = new_producer_id(&broker.bootstrap);
    broker.kill9().expect("kill -9");
    std::fs::remove_dir_all(data_dir).expect("rm -rf data");
    let broker = start(data_dir, backend);
    assert!(
        new_producer_id(&broker.bootstrap) > before_crash,
        "producer ids continue past every id handed out before the disk was lost"
    );
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
    // Its retry after the restart is recognised from the tiered log, not appended again.
    assert_eq!(
        produce_idempotent(&broker.bootstrap, producer_id),
        original,
        "the retry is answered with the original offset"
    );
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
    let after = produce_records(&broker.bootstrap, TOPIC, PARTITIONS, 10, &[("acks", "all")]);
    assert!(
        after.keys().all(|(_, offset)| *offset >= 2005),
        "a broker that lost its disk appends after the tiered offsets"
    );
    broker
}

/// Produces one batch of producer `producer_id` (epoch 0, sequence 0) to partition 0 with
/// acks=all; answers its base offset.
fn produce_idempotent(bootstrap: &str, producer_id: i64) -> i64 {
    use kafka_protocol::messages::{ProduceRequest, TopicName, produce_request};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: 0,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 1_700_000_000_000,
        key: Some(bytes::Bytes::from_static(b"idempotent")),
        value: Some(bytes::Bytes::from_static(b"once")),
        headers: [(
            kafka_protocol::protocol::StrBytes::from_static_str("trace"),
            Some(bytes::Bytes::from_static(b"retried")),
        )]
        .into_iter()
        .collect(),
    };
    let mut batch = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, &[record], &options).expect("encodes");
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(crate::raw::s(TOPIC)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.freeze())),
                ]),
        ]);
    let answer = crate::raw::Client::connect(bootstrap).send(&request, 9);
    let partition = &answer.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "idempotent produce");
    partition.base_offset
}

/// A fresh idempotent producer id from InitProducerId.
fn new_producer_id(bootstrap: &str) -> i64 {
    let request = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let answer = crate::raw::Client::connect(bootstrap).send(&request, 4);
    assert_eq!(answer.error_code, 0);
    answer.producer_id.0
}

/// DeleteRecords into the tiered part, then whole-log retention expiring every tiered
/// segment, then the sweeper deleting the objects nothing references any more.
fn deletes_and_expires(broker: &BrokerProcess, backend: &Backend) {
    let admin = admin(&broker.bootstrap);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut delete = TopicPartitionList::new();
    delete
        .add_partition_offset(TOPIC, 0, Offset::Offset(1500))
        .expect("offset");
    let deleted = client_runtime()
        .block_on(admin.delete_records(&delete, &options))
        .expect("delete_records");
    let answered = deleted.find_partition(TOPIC, 0).expect("answered");
    assert_eq!(answered.error(), Ok(()));
    assert_eq!(
        answered.offset(),
        Offset::Offset(1500),
        "the new low watermark"
    );
    let low = |partition| {
        consumer(&broker.bootstrap, &[])
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(10))
            .expect("watermarks")
            .0
    };
    assert_eq!(low(0), 1500);
    let mut too_far = TopicPartitionList::new();
    too_far
        .add_partition_offset(TOPIC, 1, Offset::Offset(1_000_000))
        .expect("offset");
    let refused = client_runtime()
        .block_on(admin.delete_records(&too_far, &options))
        .expect("delete_records");
    assert!(
        refused
            .find_partition(TOPIC, 1)
            .expect("answered")
            .error()
            .is_err(),
        "deleting past the high watermark is OFFSET_OUT_OF_RANGE"
    );

    // The records are from 2023: a day of retention expires every tiered segment.
    // AlterConfigs replaces every override: the others are named again.
    let mut retention = AlterConfig::new(ResourceSpecifier::Topic(TOPIC));
    for (name, value) in TOPIC_CONFIGS {
        retention = retention.set(name, value);
    }
    let retention = retention.set("retention.ms", "86400000");
    client_runtime()
        .block_on(admin.alter_configs([&retention], &options))
        .expect("alter_configs")
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    wait_until("retention moves both partitions' log start", || {
        (0..PARTITIONS).all(|p| low(p) >= 1900)
    });
    // Every object stored is then unreferenced, and the sweeper deletes each.
    wait_until("the sweeper deletes the unreferenced objects", || {
        metric(&broker.admin, "strata_tiering_manifest_objects") == 0.0
            && metric(&broker.admin, "strata_tiering_objects_deleted_total") >= 1.0
            && (backend.stored_objects)().is_none_or(|n| n == 0)
    });
}

#[test]
fn tiering_on_the_local_directory_store() {
    let objects = tempfile::tempdir().expect("tempdir");
    scenario(&Backend::directory(objects.path()));
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => files_under(&e.path()),
                    _ => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn tiering_on_the_memory_store() {
    scenario(&Backend {
        url: "memory://".into(),
        env: vec![],
        durable: false,
        stored_objects: Box::new(|| None),
    });
}

#[test]
fn tiering_on_an_s3_server() {
    let Some(server) = s3_server("strata-tiering") else {
        return;
    };
    let address = server.endpoint.trim_start_matches("http://").to_string();
    scenario(&Backend {
        url: format!(
            "s3://strata-tiering/cluster?endpoint={}&region=us-east-1&path_style=true",
            server.endpoint
        ),
        env: vec![
            ("AWS_ACCESS_KEY_ID", "strata"),
            ("AWS_SECRET_ACCESS_KEY", "strata"),
        ],
        durable: true,
        stored_objects: Box::new(move || {
            let listing = http(
                &address,
                &format!(
                    "GET /strata-tiering?list-type=2&prefix=cluster/segments/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
                ),
            )
            .ok()?;
            Some(listing.matches("<Key>").count())
        }),
    });
}

/// An in-process broker that tiers quickly to a `file://` store under `objects`, with
/// `faults` injected under the store's retry layer.
fn faulty_broker(
    objects: &Path,
    faults: &Arc<FaultPlan>,
    local_budget_bytes: u64,
) -> InProcessBroker {
    tiering_broker(objects, |c| {
        c.object_store_faults = Some(faults.clone());
        c.tiering.local_budget_bytes = local_budget_bytes;
    })
}

/// An in-process broker that tiers quickly to a `file://` store under `objects`.
fn tiering_broker(objects: &Path, adjust: impl FnOnce(&mut BrokerConfig)) -> InProcessBroker {
    InProcessBroker::start_with(|c| {
        c.object_store_url = format!("file://{}", objects.display());
        c.tiering.upload_interval = Duration::from_millis(100);
        c.tiering.upload_max_lag = Duration::from_millis(300);
        c.tiering.object_target_bytes = 256 * 1024;
        c.tiering.cache_disk_bytes = 16 << 20;
        adjust(c);
    })
    .expect("broker starts")
}

/// The store fails every third request, loses the answers to some PUTs after storing them,
/// answers slowly, and then fails everything for a while: produce carries on, and every
/// acknowledged record is read back at its offset once the local copies are gone.
#[test]
fn object_store_faults_lose_nothing_acknowledged() {
    let objects = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(FaultPlan::default());
    faults.fail_every.store(3, Ordering::Release);
    faults.ambiguous_puts.store(4, Ordering::Release);
    faults.delay_ms.store(20, Ordering::Release);
    let broker = faulty_broker(objects.path(), &faults, 0);
    let admin = broker.admin.to_string();
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        TOPIC_CONFIGS,
    ));
    let mut landed = produce_records(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        3000,
        &[("acks", "all")],
    );
    wait_until("an upload got through the faults", || {
        metric(&admin, "strata_tiering_segments_committed_total") >= 1.0
    });

    // An outage: every request fails. Produce is not affected.
    faults.fail_next.store(u32::MAX, Ordering::Release);
    let during = produce_records(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        1000,
        &[("acks", "all")],
    );
    assert_eq!(
        during.len(),
        1000,
        "produce carries on while the store is down"
    );
    faults.fail_next.store(0, Ordering::Release);
    landed.extend(during);

    wait_until("everything is uploaded after the outage", || {
        metric(&admin, "strata_tiering_upload_lag_records") == 0.0
            && (0..PARTITIONS).all(|p| local_log_start(&broker.data_dir, p) > 1500)
    });
    assert_eq!(
        faults.ambiguous_puts.load(Ordering::Acquire),
        0,
        "the ambiguous PUTs happened"
    );
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
}

/// With the store down, data waiting for it grows to the local budget; from then on produce
/// answers KAFKA_STORAGE_ERROR (retriable) instead of filling the disk, and once the store
/// is back everything acknowledged is there and produce works again.
#[test]
fn a_full_local_budget_refuses_produce_until_the_store_returns() {
    let objects = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(FaultPlan::default());
    let broker = faulty_broker(objects.path(), &faults, 64 * 1024);
    let admin = broker.admin.to_string();
    client_runtime().block_on(create_topic(&broker.bootstrap, TOPIC, 1, TOPIC_CONFIGS));
    faults.fail_next.store(u32::MAX, Ordering::Release);
    let producer = producer(
        &broker.bootstrap,
        &[
            ("acks", "all"),
            ("message.timeout.ms", "10000"),
            ("linger.ms", "5"),
        ],
    );
    let mut acknowledged = HashMap::new();
    let value = "v".repeat(200);
    client_runtime().block_on(async {
        for round in 0..20 {
            let deliveries: Vec<_> = (0..100)
                .map(|i| {
                    let key = format!("{round}-{i}");
                    let record = FutureRecord::to(TOPIC)
                        .partition(0)
                        .key(&key)
                        .payload(&value);
                    (key.clone(), producer.send_result(record).expect("queued"))
                })
                .collect();
            let mut refused = false;
            for (key, delivery) in deliveries {
                match delivery.await {
                    Ok(Ok(delivered)) => {
                        acknowledged.insert(delivered.offset, key);
                    }
                    _ => refused = true,
                }
            }
            if refused {
                break;
            }
            // Give the uploader's measurement time to see the backlog.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let refused = metric(
        &admin,
        "strata_kafka_request_errors_total{api=\"produce\",error=\"kafka_storage_error\"}",
    );
    assert!(
        refused >= 1.0,
        "produce was refused once the budget was full"
    );
    assert!(
        acknowledged.len() < 2000,
        "not everything was acknowledged while the store was down"
    );
    faults.fail_next.store(0, Ordering::Release);
    wait_until("the backlog is uploaded", || {
        metric(&admin, "strata_tiering_upload_lag_bytes") < 64.0 * 1024.0
    });
    let after = produce_records(&broker.bootstrap, TOPIC, 1, 10, &[("acks", "all")]);
    assert_eq!(after.len(), 10, "produce works again");
    let consumer = consumer(&broker.bootstrap, &[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < acknowledged.len() {
        assert!(
            Instant::now() < deadline,
            "only {seen} acknowledged records read back"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume");
        if let Some(key) = acknowledged.get(&message.offset()) {
            assert_eq!(
                message.key(),
                Some(key.as_bytes()),
                "offset {}",
                message.offset()
            );
            seen += 1;
        }
    }
}

/// The object-request bill does not grow with the partition count: the same bytes produced
/// into 1 partition and into 100 make about the same number of PUTs.
#[test]
fn puts_do_not_grow_with_the_partition_count() {
    let puts = |partitions: i32| {
        let objects = tempfile::tempdir().expect("tempdir");
        // Objects larger than the client's batches, so the batch size does not decide, and
        // a lag long enough that objects are cut when full, not by how long producing took.
        let broker = tiering_broker(objects.path(), |c| {
            c.tiering.object_target_bytes = 2 << 20;
            c.tiering.upload_max_lag = Duration::from_secs(3);
        });
        let admin = broker.admin.to_string();
        client_runtime().block_on(create_topic(
            &broker.bootstrap,
            TOPIC,
            partitions,
            &[("local.retention.bytes", "0"), ("retention.ms", "-1")],
        ));
        // 4 MiB in 1 KiB records, spread evenly.
        let producer = producer(&broker.bootstrap, &[("acks", "all"), ("linger.ms", "5")]);
        let value = vec![b'x'; 1024];
        client_runtime().block_on(async {
            let deliveries: Vec<_> = (0..4096)
                .map(|i| {
                    let record = FutureRecord::<(), _>::to(TOPIC)
                        .partition(i % partitions)
                        .payload(&value);
                    producer.send_result(record).expect("queued")
                })
                .collect();
            for delivery in deliveries {
                delivery.await.expect("delivered").expect("acknowledged");
            }
        });
        wait_until("everything is uploaded", || {
            metric(&admin, "strata_tiering_upload_lag_records") == 0.0
                && metric(&admin, "strata_tiering_uploaded_bytes_total") >= 4.0 * 1024.0 * 1024.0
        });
        metric(
            &admin,
            "strata_object_store_requests_total{op=\"put\",purpose=\"segments\"}",
        )
    };
    let (one, hundred) = (puts(1), puts(100));
    eprintln!("PUTs for 4 MiB: {one} into 1 partition, {hundred} into 100 partitions");
    assert!(one >= 1.0 && hundred >= 1.0);
    assert!(
        hundred <= 2.0 * one + 4.0,
        "100 partitions made {hundred} PUTs where 1 made {one}"
    );
}

/// Produces `rounds` small bursts, each given time to be uploaded on its own, so that every
/// partition gets a manifest entry per burst: what the merger works on.
fn trickle(bootstrap: &str, rounds: usize) -> HashMap<(i32, i64), Sent> {
    let mut landed = HashMap::new();
    for _ in 0..rounds {
        landed.extend(produce_records(
            bootstrap,
            TOPIC,
            PARTITIONS,
            10,
            &[("acks", "all")],
        ));
        std::thread::sleep(Duration::from_millis(400));
    }
    landed
}

/// Waits until the store holds only objects the manifest references: the sweeper removed
/// what merges replaced and every orphan. The manifest gauge is refreshed every 2 s.
fn wait_for_no_orphans(admin: &str, objects: &Path) {
    wait_until("the store holds only referenced objects", || {
        let referenced = metric(admin, "strata_tiering_manifest_objects");
        referenced >= 1.0 && files_under(&objects.join("segments")) as f64 == referenced
    });
}

/// The merger copies runs of small entries into new objects while the store fails every
/// third request and loses the answers to some PUTs: every acknowledged record still reads
/// back at its offset, and the sweeper leaves only referenced objects.
#[test]
fn merges_under_store_faults_lose_nothing_and_leave_no_orphans() {
    let objects = tempfile::tempdir().expect("tempdir");
    let faults = Arc::new(FaultPlan::default());
    faults.fail_every.store(3, Ordering::Release);
    faults.ambiguous_puts.store(4, Ordering::Release);
    let broker = tiering_broker(objects.path(), |c| {
        c.object_store_faults = Some(faults.clone());
        c.tiering.orphan_grace = Duration::from_secs(2);
        c.tiering.sweep_interval = Duration::from_millis(300);
    });
    let admin = broker.admin.to_string();
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        TOPIC_CONFIGS,
    ));
    let landed = trickle(&broker.bootstrap, 30);
    wait_until("runs of entries were merged", || {
        metric(&admin, "strata_tiering_merge_runs_replaced_total") >= 2.0
    });
    wait_until("everything is uploaded", || {
        metric(&admin, "strata_tiering_upload_lag_records") == 0.0
    });
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
    faults.fail_every.store(0, Ordering::Release);
    wait_for_no_orphans(&admin, objects.path());
    let entries = metric(&admin, "strata_tiering_manifest_segments");
    assert!(
        entries < f64::from(PARTITIONS) * 30.0,
        "{entries} entries for 30 upload rounds of {PARTITIONS} partitions"
    );
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
}

/// kill -9 while the merger works: after the restart every acknowledged record reads back
/// at its offset, and whatever the crash left half done (a merged object never committed)
/// is swept.
#[test]
fn a_kill_9_while_merging_loses_nothing_and_its_orphans_are_swept() {
    let objects = tempfile::tempdir().expect("tempdir");
    let backend = Backend::directory(objects.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let broker = start(&data_dir, &backend);
    client_runtime().block_on(create_topic(
        &broker.bootstrap,
        TOPIC,
        PARTITIONS,
        TOPIC_CONFIGS,
    ));
    let mut landed = trickle(&broker.bootstrap, 20);
    wait_until("a merge happened", || {
        metric(&broker.admin, "strata_tiering_merge_objects_total") >= 1.0
    });
    // More rounds keep the merger busy; the kill comes while it is.
    landed.extend(trickle(&broker.bootstrap, 10));
    broker.kill9().expect("kill -9");
    let broker = start(&data_dir, &backend);
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
    landed.extend(trickle(&broker.bootstrap, 10));
    wait_until("everything is uploaded", || {
        metric(&broker.admin, "strata_tiering_upload_lag_records") == 0.0
    });
    wait_for_no_orphans(&broker.admin, objects.path());
    consume_and_check(&broker.bootstrap, TOPIC, PARTITIONS, &landed);
}
