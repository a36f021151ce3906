//! The broker process's CPU time and resident memory, read from `/proc/<pid>`.

use anyhow::Context as _;

/// CPU seconds (user + system) and resident bytes of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Samples `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS).
pub fn sample(pid: u32) -> anyhow::Result<ProcessSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    let cpu_ticks = ticks(11)? + ticks(12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcessSample {
        cpu_seconds: cpu_ticks / clock_ticks_per_second(),
        rss_bytes: rss_kib * 1024,
    })
}

/// `sysconf(_SC_CLK_TCK)`; 100 on every Linux this runs on, read from `getconf` to be sure.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
