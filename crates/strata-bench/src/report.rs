//! What a run measured, as a table for people and JSON for scripts.

use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::latency::WindowPercentiles;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        (!histogram.is_empty()).then(|| Self {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        })
    }
}

/// The broker's resource use over the run (needs `--broker-pid`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BrokerUsage {
    pub cpu_seconds: f64,
    pub cpu_core_seconds_per_gib: f64,
    pub peak_rss_bytes: u64,
}

/// One run's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub record_size: usize,
    pub producers: usize,
    pub target_rate: u64,
    pub acks: String,
    pub compression: String,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    /// From start until every record was acknowledged (or consumed) after the load stopped.
    pub elapsed_s: f64,
    /// From the first send until the last record was acknowledged (or consumed): what
    /// `mb_per_s` and `records_per_s` are measured over.
    pub busy_s: f64,
    pub mb_per_s: f64,
    pub records_per_s: f64,
    pub produce_latency_us: Option<Percentiles>,
    pub e2e_latency_us: Option<Percentiles>,
    pub produce_windows: Vec<WindowPercentiles>,
    pub e2e_windows: Vec<WindowPercentiles>,
    pub broker: Option<BrokerUsage>,
    #[serde(skip)]
    pub json_path: Option<PathBuf>,
}

fn latency_row(name: &str, p: Option<Percentiles>) {
    if let Some(p) = p {
        println!(
            "{name:<22} p50 {:>8.2} ms   p99 {:>8.2} ms   p99.9 {:>8.2} ms   max {:>8.2} ms   ({} samples)",
            p.p50 as f64 / 1e3,
            p.p99 as f64 / 1e3,
            p.p999 as f64 / 1e3,
            p.max as f64 / 1e3,
            p.count
        );
    }
}

/// Each window's p99 and p99.9, when the run had more than one.
fn window_rows(name: &str, windows: &[WindowPercentiles]) {
    if windows.len() < 2 {
        return;
    }
    println!("{name} p99 / p99.9 ms per window:");
    for w in windows {
        println!(
            "  {:>6.0} s   {:>8.2} / {:>8.2}   ({} samples)",
            w.start_s,
            w.percentiles.p99 as f64 / 1e3,
            w.percentiles.p999 as f64 / 1e3,
            w.percentiles.count
        );
    }
}

impl Report {
    pub fn print_table(&self) {
        println!(
            "{} {} partitions={} record={}B producers={} rate={} acks={} compression={}",
            self.mode,
            self.topic,
            self.partitions,
            self.record_size,
            self.producers,
            if self.target_rate == 0 {
                "max".to_string()
            } else {
                format!("{}/s", self.target_rate)
            },
            self.acks,
            self.compression
        );
        println!(
            "{:<22} {:>10.1} MB/s   {:>10.0} records/s   {} records in {:.2} s, {} errors",
            "throughput",
            self.mb_per_s,
            self.records_per_s,
            self.records,
            self.elapsed_s,
            self.errors
        );
        latency_row("produce latency", self.produce_latency_us);
        latency_row("end-to-end latency", self.e2e_latency_us);
        window_rows("produce", &self.produce_windows);
        window_rows("end-to-end", &self.e2e_windows);
        if let Some(b) = self.broker {
            println!(
                "{:<22} {:>10.2} core-s/GiB   {:.2} cpu-s total   peak RSS {:.1} MiB",
                "broker",
                b.cpu_core_seconds_per_gib,
                b.cpu_seconds,
                b.peak_rss_bytes as f64 / (1 << 20) as f64
            );
        }
    }
}
