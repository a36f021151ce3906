//! A seconds-long smoke run of `strata-bench` (CI checks the tool works; measurements live
//! in docs/benchmarks.md).

use std::process::Command;

use strata_e2e::InProcessBroker;

fn bench_bin() -> std::path::PathBuf {
    let strata = strata_e2e::strata_bin().expect("target directory");
    strata.with_file_name("strata-bench")
}

#[test]
fn the_bench_tool_produces_and_measures_end_to_end_latency() {
    let broker = InProcessBroker::start().expect("broker");
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in ["produce", "e2e"] {
        let json = dir.path().join(format!("{mode}.json"));
        let status = Command::new(bench_bin())
            .args([
                mode,
                "--bootstrap",
                &broker.bootstrap,
                "--duration",
                "1",
                "--rate",
                "2000",
                "--partitions",
                "4",
                "--quiet",
            ])
            .arg("--json")
            .arg(&json)
            .status()
            .expect("strata-bench runs (cargo build -p strata-bench first)");
        assert!(status.success(), "{mode} run succeeds");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).expect("json report"))
                .expect("valid json");
        assert!(
            report["records"].as_u64().is_some_and(|n| n > 500),
            "{mode} moved records: {report}"
        );
        assert_eq!(
            report["errors"].as_u64(),
            Some(0),
            "{mode} had no errors: {report}"
        );
        let latency = if mode == "e2e" {
            "e2e_latency_us"
        } else {
            "produce_latency_us"
        };
        assert!(
            report[latency]["p99"].as_u64().is_some_and(|p| p > 0),
            "{mode} reports {latency}: {report}"
        );
    }
    let baseline = Command::new(bench_bin())
        .args([
            "baseline",
            "--disk-mib",
            "16",
            "--loopback-mib",
            "64",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("baseline runs");
    assert!(baseline.status.success());
    assert!(String::from_utf8_lossy(&baseline.stdout).contains("loopback_tcp_mb_per_s"));
}
