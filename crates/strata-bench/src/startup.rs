//! Time from starting a broker process to its first answered Metadata request, and its
//! idle resident memory a moment later.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::broker_stats;

#[derive(Debug, Clone, clap::Args)]
pub struct StartupArgs {
    /// Where the broker will listen (it must be told this port by its command line).
    #[arg(long)]
    pub bootstrap: String,
    /// Seconds to wait after the first answer before sampling idle RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// The broker command, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    pub first_answer_ms: f64,
    pub idle_rss_bytes: u64,
}

pub fn run(args: &StartupArgs) -> anyhow::Result<Startup> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command"))?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &args.bootstrap)
            .set("reconnect.backoff.ms", "10")
            .set("reconnect.backoff.max.ms", "50")
            .create()?;
        let first_answer = loop {
            if consumer
                .fetch_metadata(None, Duration::from_millis(200))
                .is_ok()
            {
                break started.elapsed();
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "no answer within 120 s"
            );
            anyhow::ensure!(
                child.try_wait()?.is_none(),
                "the broker exited before answering"
            );
        };
        std::thread::sleep(Duration::from_secs_f64(args.settle));
        let rss = broker_stats::sample(child.id())?.rss_bytes;
        Ok(Startup {
            first_answer_ms: first_answer.as_secs_f64() * 1e3,
            idle_rss_bytes: rss,
        })
    })();
    // The child is ours: stop it by PID.
    let _ = child.kill();
    let _ = child.wait();
    result
}
