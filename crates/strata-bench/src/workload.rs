//! The produce, end-to-end and consume workloads.
//!
//! Each producer thread owns a librdkafka producer and paces itself to its share of the
//! target rate; delivery callbacks record send → acknowledgement latency. In end-to-end
//! mode every payload starts with its send time (nanoseconds since the Unix epoch) and a
//! consumer thread, assigned to every partition at the log end before producing starts,
//! records send → receipt latency.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::broker_stats;
use crate::latency::Latencies;
use crate::report::{BrokerUsage, Report};

/// Settings shared by every workload.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadArgs {
    /// Broker bootstrap address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to use; created with `--partitions` if missing. Default: a fresh one.
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub partitions: i32,
    /// Replicas of each partition of a topic it creates.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Producer threads (each its own librdkafka client).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Records per second across all producers; 0 means as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// librdkafka's `linger.ms`; 1 as in the OpenMessaging Benchmark's Kafka driver.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    /// librdkafka's `batch.size`; 1 MiB as in the OpenMessaging Benchmark's Kafka driver.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_size: u64,
    /// The broker's PID, to report its CPU core-seconds per GiB and peak RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Latency percentiles are also reported per window of this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub window_s: f64,
    /// A config of a topic it creates, `name=value`; repeatable.
    #[arg(long = "topic-config", value_parser = parse_topic_config)]
    pub topic_configs: Vec<(String, String)>,
    /// No progress bar (for CI logs).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    EndToEnd,
    Consume,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Produce => "produce",
            Self::EndToEnd => "e2e",
            Self::Consume => "consume",
        }
    }
}

/// Counters every thread updates.
struct Totals {
    records: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// When the last record was counted, in nanoseconds since `epoch`.
    last_counted_ns: AtomicU64,
    epoch: Instant,
}

impl Totals {
    fn new() -> Self {
        Self {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_counted_ns: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn count(&self, bytes: u64) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_counted_ns.fetch_max(now, Ordering::Relaxed);
    }

    /// Seconds from `started` until the last record was counted.
    fn busy_seconds_since(&self, started: Instant) -> f64 {
        let last = self.epoch + Duration::from_nanos(self.last_counted_ns.load(Ordering::Relaxed));
        last.saturating_duration_since(started).as_secs_f64()
    }
}

struct DeliveryContext {
    totals: Arc<Totals>,
    latency: Arc<Mutex<Latencies>>,
    record_size: u64,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Box<Instant>) {
        match result {
            Ok(_) => {
                self.totals.count(self.record_size);
                let micros = sent_at.elapsed().as_micros() as u64;
                if let Ok(mut latency) = self.latency.lock() {
                    latency.record(micros, Instant::now());
                }
            }
            Err(_) => {
                self.totals.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn client_config(args: &WorkloadArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap);
    config
}

fn parse_topic_config(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .ok_or_else(|| format!("expected name=value, got {text:?}"))
}

fn ensure_topic(args: &WorkloadArgs, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let mut new_topic = NewTopic::new(
        topic,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    for (name, value) in &args.topic_configs {
        new_topic = new_topic.set(name, value);
    }
    let results = block_on(admin.create_topics(
        &[new_topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

fn delete_topic(args: &WorkloadArgs, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in block_on(admin.delete_topics(&[topic], &options))? {
        result.map_err(|(name, code)| anyhow::anyhow!("deleting topic {name}: {code}"))?;
    }
    Ok(())
}

/// rdkafka's admin futures complete on librdkafka's threads; a tiny executor is enough.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(50)),
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs one workload and returns its report.
pub fn run(mode: Mode, args: &WorkloadArgs) -> anyhow::Result<Report> {
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| format!("bench-{}", now_nanos() % 1_000_000_000));
    if mode != Mode::Consume || args.topic.is_none() {
        ensure_topic(args, &topic)?;
    }
    let totals = Arc::new(Totals::new());
    let window = Duration::from_secs_f64(args.window_s);
    let produce_latency = Arc::new(Mutex::new(Latencies::new(Instant::now(), window)));
    let e2e_latency = Arc::new(Mutex::new(Latencies::new(Instant::now(), window)));
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs_f64(args.duration);

    let broker_before = args.broker_pid.map(broker_stats::sample).transpose()?;
    let mut peak_rss = broker_before.map_or(0, |s| s.rss_bytes);

    let consumer = match mode {
        Mode::Produce => None,
        Mode::EndToEnd | Mode::Consume => Some(spawn_consumer(
            args,
            &topic,
            mode,
            &totals,
            &e2e_latency,
            &stop,
        )?),
    };
    let started = Instant::now();
    for latency in [&produce_latency, &e2e_latency] {
        if let Ok(mut latency) = latency.lock() {
            latency.restart_windows_at(started);
        }
    }
    let producers: Vec<_> = if mode == Mode::Consume {
        Vec::new()
    } else {
        (0..args.producers)
            .map(|i| spawn_producer(args, &topic, i, mode, &totals, &produce_latency, &stop))
            .collect::<anyhow::Result<_>>()?
    };

    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(duration.as_secs().max(1))
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(250));
        let elapsed = started.elapsed().as_secs_f64();
        let mb = totals.bytes.load(Ordering::Relaxed) as f64 / 1e6;
        progress.set_position(elapsed as u64);
        progress.set_message(format!("{:.1} MB/s", mb / elapsed));
        if let Some(pid) = args.broker_pid {
            peak_rss = peak_rss.max(broker_stats::sample(pid)?.rss_bytes);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
    }
    if let Some(consumer) = consumer {
        consumer
            .join()
            .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let records = totals.records.load(Ordering::Relaxed);
    let bytes = totals.bytes.load(Ordering::Relaxed);
    // Throughput counts everything sent, over the time until its last record was counted:
    // the broker is saturated for all of it in a max-rate run, and a window that stopped
    // counting when sending stops would drop what the client still had queued.
    let busy_s = totals.busy_seconds_since(started);
    let broker = match (args.broker_pid, broker_before) {
        (Some(pid), Some(before)) => {
            let after = broker_stats::sample(pid)?;
            let cpu_seconds = after.cpu_seconds - before.cpu_seconds;
            let gib = bytes as f64 / (1u64 << 30) as f64;
            Some(BrokerUsage {
                cpu_seconds,
                cpu_core_seconds_per_gib: if gib > 0.0 { cpu_seconds / gib } else { 0.0 },
                peak_rss_bytes: peak_rss.max(after.rss_bytes),
            })
        }
        _ => None,
    };
    if args.topic.is_none() {
        // A generated topic served this run only: free the broker's disk for the next one.
        delete_topic(args, &topic)?;
    }
    let (produce_latency, e2e_latency) = (
        produce_latency
            .lock()
            .map_err(|_| anyhow::anyhow!("a latency lock was poisoned"))?,
        e2e_latency
            .lock()
            .map_err(|_| anyhow::anyhow!("a latency lock was poisoned"))?,
    );
    Ok(Report {
        mode: mode.name(),
        bootstrap: args.bootstrap.clone(),
        topic,
        partitions: args.partitions,
        record_size: args.record_size,
        producers: if mode == Mode::Consume {
            0
        } else {
            args.producers
        },
        target_rate: args.rate,
        acks: args.acks.clone(),
        compression: args.compression.clone(),
        records,
        bytes,
        errors: totals.errors.load(Ordering::Relaxed),
        elapsed_s,
        busy_s,
        mb_per_s: bytes as f64 / 1e6 / busy_s.max(f64::EPSILON),
        records_per_s: records as f64 / busy_s.max(f64::EPSILON),
        produce_latency_us: produce_latency.total(),
        e2e_latency_us: e2e_latency.total(),
        produce_windows: produce_latency.windows(),
        e2e_windows: e2e_latency.windows(),
        broker,
        json_path: args.json.clone(),
    })
}

type Worker = std::thread::JoinHandle<anyhow::Result<()>>;

fn spawn_producer(
    args: &WorkloadArgs,
    topic: &str,
    index: usize,
    mode: Mode,
    totals: &Arc<Totals>,
    latency: &Arc<Mutex<Latencies>>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Worker> {
    let context = DeliveryContext {
        // End-to-end mode counts at the consumer, so producer deliveries only time acks.
        totals: if mode == Mode::EndToEnd {
            Arc::new(Totals::new())
        } else {
            totals.clone()
        },
        latency: latency.clone(),
        record_size: args.record_size as u64,
    };
    // A threaded producer serves delivery reports on its own thread as they arrive; polling
    // from the send loop served one report event per call and let them pile up.
    let producer: ThreadedProducer<DeliveryContext> = client_config(args)
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(context)
        .context("creating a producer")?;
    let topic = topic.to_string();
    let partitions = args.partitions;
    let record_size = args.record_size.max(8);
    let per_thread_rate = args.rate as f64 / args.producers as f64;
    let stop = stop.clone();
    Ok(std::thread::spawn(move || {
        let mut payload = vec![b'x'; record_size];
        let started = Instant::now();
        let mut sent: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            if per_thread_rate > 0.0 {
                let due = (started.elapsed().as_secs_f64() * per_thread_rate) as u64;
                if sent >= due {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
            }
            payload[..8].copy_from_slice(&now_nanos().to_be_bytes());
            let partition = ((sent as usize + index) % partitions as usize) as i32;
            let record = BaseRecord::with_opaque_to(&topic, Box::new(Instant::now()))
                .partition(partition)
                .payload(&payload[..]);
            match producer.send::<(), [u8]>(record) {
                Ok(()) => sent += 1,
                Err((_, _)) => {
                    // The local queue is full: let the broker catch up.
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .context("flushing the producer")?;
        Ok(())
    }))
}

fn spawn_consumer(
    args: &WorkloadArgs,
    topic: &str,
    mode: Mode,
    totals: &Arc<Totals>,
    latency: &Arc<Mutex<Latencies>>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Worker> {
    let consumer: BaseConsumer = client_config(args)
        .set("group.id", "strata-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating a consumer")?;
    let start = if mode == Mode::Consume {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..args.partitions {
        assignment.add_partition_offset(topic, p, start)?;
    }
    consumer.assign(&assignment)?;
    // Wait until the assignment has resolved its start offsets so no record is missed.
    for _ in 0..20 {
        consumer.poll(Duration::from_millis(50));
    }
    let (totals, latency, stop) = (totals.clone(), latency.clone(), stop.clone());
    Ok(std::thread::spawn(move || {
        let mut idle_since = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    idle_since = Instant::now();
                    let payload = message.payload().unwrap_or_default();
                    totals.count(payload.len() as u64);
                    if mode == Mode::EndToEnd && payload.len() >= 8 {
                        let sent = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
                        let micros = now_nanos().saturating_sub(sent) / 1000;
                        if let Ok(mut latency) = latency.lock() {
                            latency.record(micros, Instant::now());
                        }
                    }
                }
                Some(Err(_)) => {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                }
                // After the producers stop, drain until the topic has been quiet for a second.
                None if stopping && idle_since.elapsed() > Duration::from_secs(1) => return Ok(()),
                None => {}
            }
            if stopping && mode == Mode::Consume {
                return Ok(());
            }
        }
    }))
}
