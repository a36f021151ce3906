//! `strata-bench`: drives produce, consume and end-to-end load through librdkafka (a real
//! client, as in the OpenMessaging Benchmark), measures the machine's own limits in the
//! same run, and reports throughput, latency percentiles and broker CPU per GiB.

mod baseline;
mod broker_stats;
mod latency;
mod raw_get;
mod report;
mod startup;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    version,
    about = "Benchmarks a Kafka-compatible broker with librdkafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce at a target rate (or as fast as possible); latency is send → acknowledgement.
    Produce(workload::WorkloadArgs),
    /// Produce and consume at once; latency is send → consumer receipt.
    E2e(workload::WorkloadArgs),
    /// Consume a topic from the beginning as fast as possible.
    Consume(workload::WorkloadArgs),
    /// The machine's limits: sequential writes to a directory (buffered and fsync'd) and
    /// loopback TCP throughput.
    Baseline(baseline::BaselineArgs),
    /// Start a broker command and time its first answered request; then its idle RSS.
    Startup(startup::StartupArgs),
    /// The object store's own read throughput: every object under a prefix read in 1 MiB
    /// ranged GETs (the broker's block size), a bounded number at a time.
    RawGet(raw_get::RawGetArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::Produce(args) => workload::run(workload::Mode::Produce, &args)?,
        Command::E2e(args) => workload::run(workload::Mode::EndToEnd, &args)?,
        Command::Consume(args) => workload::run(workload::Mode::Consume, &args)?,
        Command::Baseline(args) => {
            println!("{}", serde_json::to_string_pretty(&baseline::run(&args)?)?);
            return Ok(());
        }
        Command::Startup(args) => {
            println!("{}", serde_json::to_string_pretty(&startup::run(&args)?)?);
            return Ok(());
        }
        Command::RawGet(args) => {
            println!("{}", serde_json::to_string_pretty(&raw_get::run(&args)?)?);
            return Ok(());
        }
    };
    report.print_table();
    if let Some(path) = report.json_path.clone() {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
