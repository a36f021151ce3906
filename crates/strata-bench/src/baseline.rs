//! The machine's own limits, measured in the same run as the broker so reports can give
//! ratios: sequential writes to a directory (buffered, and fsync'd at the end like a
//! durable append) and loopback TCP throughput.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, clap::Args)]
pub struct BaselineArgs {
    /// Directory to write in (use the broker's data directory's filesystem).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// MiB written per disk measurement.
    #[arg(long, default_value_t = 1024)]
    pub disk_mib: u64,
    /// MiB sent per loopback measurement.
    #[arg(long, default_value_t = 4096)]
    pub loopback_mib: u64,
    /// Times each measurement is taken; the median is reported (a VM's disk is erratic).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub disk_buffered_mb_per_s: f64,
    pub disk_fsync_mb_per_s: f64,
    pub loopback_tcp_mb_per_s: f64,
}

const CHUNK: usize = 1 << 20;

pub fn run(args: &BaselineArgs) -> anyhow::Result<Baseline> {
    Ok(Baseline {
        disk_buffered_mb_per_s: median_of(args.repeat, || disk(args, false))?,
        disk_fsync_mb_per_s: median_of(args.repeat, || disk(args, true))?,
        loopback_tcp_mb_per_s: median_of(args.repeat, || loopback(args.loopback_mib))?,
    })
}

fn median_of(times: usize, measure: impl Fn() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut values = (0..times.max(1))
        .map(|_| measure())
        .collect::<anyhow::Result<Vec<_>>>()?;
    values.sort_by(f64::total_cmp);
    Ok(values[values.len() / 2])
}

fn disk(args: &BaselineArgs, fsync: bool) -> anyhow::Result<f64> {
    let path = args
        .dir
        .join(format!(".strata-bench-{}", std::process::id()));
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        for _ in 0..args.disk_mib {
            file.write_all(&chunk)?;
        }
        if fsync {
            file.sync_data()?;
        }
        anyhow::Ok(())
    })();
    let elapsed = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    result?;
    Ok(args.disk_mib as f64 * CHUNK as f64 / 1e6 / elapsed)
}

fn loopback(mib: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let chunk = vec![0x5au8; CHUNK];
    let started = Instant::now();
    {
        let mut stream = TcpStream::connect(addr)?;
        for _ in 0..mib {
            stream.write_all(&chunk)?;
        }
    }
    let received = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let elapsed = started.elapsed().as_secs_f64();
    Ok(received as f64 / 1e6 / elapsed)
}
