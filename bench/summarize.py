"""Medians of a bench/report.sh (or bench/omb.sh) output directory as markdown tables:
python3 bench/summarize.py OUT_DIR

Throughput cells are medians of the max-rate `produce` runs; latencies are medians of the
`e2e` runs at 50% of that cell's median max rate. With baseline.json present, throughput is
also given as a share of the disk's buffered write bandwidth and of loopback TCP; with
Strata and peers present, Strata's ratio to each peer."""

import collections
import json
import pathlib
import re
import statistics
import sys


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(report, path):
    for key in path.split("."):
        report = report.get(key) if isinstance(report, dict) else None
    return report


def load_cells(out):
    """{broker: {cell: {"max": [...], "half": [...]}}} from LABEL-pN-acksX-codec-KIND-RUN.json"""
    cells = collections.defaultdict(lambda: collections.defaultdict(lambda: {"max": [], "half": []}))
    for path in sorted(out.glob("*-p*-acks*-*-*-*.json")):
        name, kind, _run = path.stem.rsplit("-", 2)
        broker, cell = re.fullmatch(r"(.+)-(p\d+-acks[^-]+-[^-]+)", name).groups()
        cells[broker][cell][kind].append(json.loads(path.read_text()))
    return cells


def summarize(runs):
    maxes, halves = runs["max"], runs["half"]
    return {
        "n": len(maxes),
        "mb_per_s": median(r["mb_per_s"] for r in maxes),
        "cpu": median(get(r, "broker.cpu_core_seconds_per_gib") for r in maxes),
        "rss_mib": max((get(r, "broker.peak_rss_bytes") or 0) / 2**20 for r in maxes) if maxes else None,
        "p50": median(get(r, "produce_latency_us.p50") for r in halves),
        "p99": median(get(r, "produce_latency_us.p99") for r in halves),
        "e50": median(get(r, "e2e_latency_us.p50") for r in halves),
        "e99": median(get(r, "e2e_latency_us.p99") for r in halves),
        "p999": median(get(r, "produce_latency_us.p999") for r in halves),
        "e999": median(get(r, "e2e_latency_us.p999") for r in halves),
        # The worst window's p99.9 of any latency run: a stall of seconds shows here.
        "worst": max((w["p999"] for r in halves for w in r.get("produce_windows", []) + r.get("e2e_windows", [])),
                     default=None),
        "windows": max((len(r.get("e2e_windows", [])) for r in halves), default=0),
    }


def fmt(value, spec, scale=1.0):
    return "–" if value is None else format(value / scale, spec)


def ratio(a, b):
    return "–" if a is None or b in (None, 0) else f"{a / b:.2f}×"


def main():
    out = pathlib.Path(sys.argv[1])
    baseline_path = out / "baseline.json"
    baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else {}
    disk = baseline.get("disk_buffered_mb_per_s")
    loopback = baseline.get("loopback_tcp_mb_per_s")
    cells = load_cells(out)
    stats = {b: {c: summarize(r) for c, r in cs.items()} for b, cs in cells.items()}

    if baseline:
        print(
            f"Baselines: disk buffered {disk:.0f} MB/s, disk fsync'd {baseline['disk_fsync_mb_per_s']:.0f} MB/s, "
            f"loopback TCP {loopback:.0f} MB/s.\n"
        )
    print("| broker | cell | max MB/s | of disk | of loopback | core-s/GiB | peak RSS MiB "
          "| produce p50 / p99 / p99.9 ms | e2e p50 / p99 / p99.9 ms | worst window p99.9 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for broker in sorted(stats):
        for cell, s in sorted(stats[broker].items()):
            print(
                f"| {broker} | {cell} | {fmt(s['mb_per_s'], '.0f')} | {ratio(s['mb_per_s'], disk)} "
                f"| {ratio(s['mb_per_s'], loopback)} | {fmt(s['cpu'], '.2f')} | {fmt(s['rss_mib'], '.0f')} "
                f"| {fmt(s['p50'], '.1f', 1e3)} / {fmt(s['p99'], '.1f', 1e3)} / {fmt(s['p999'], '.1f', 1e3)} "
                f"| {fmt(s['e50'], '.1f', 1e3)} / {fmt(s['e99'], '.1f', 1e3)} / {fmt(s['e999'], '.1f', 1e3)} "
                f"| {fmt(s['worst'], '.1f', 1e3) if s['windows'] > 1 else '–'} |"
            )

    peers = sorted(b for b in stats if b != "strata")
    if "strata" in stats and peers:
        print("\nStrata / peer, per cell: throughput, throughput per broker core-second "
              "(the inverse ratio of core-s/GiB), produce p99 at 50% of each one's max.\n")
        print("| cell | " + " | ".join(f"vs {p}: MB/s, per core, p99" for p in peers) + " |")
        print("|---|" + "---|" * len(peers))
        for cell, s in sorted(stats["strata"].items()):
            row = []
            for peer in peers:
                q = stats[peer].get(cell)
                if q is None:
                    row.append("–")
                    continue
                row.append(f"{ratio(s['mb_per_s'], q['mb_per_s'])}, {ratio(q['cpu'], s['cpu'])}, "
                           f"{ratio(s['p99'], q['p99'])}")
            print(f"| {cell} | " + " | ".join(row) + " |")

    startups = sorted(out.glob("startup-*.json"))
    if startups:
        print("\n| broker | first answer ms | idle RSS MiB |")
        print("|---|---|---|")
        for path in startups:
            s = json.loads(path.read_text())
            print(f"| {path.stem.removeprefix('startup-')} | {s['first_answer_ms']:.0f} "
                  f"| {s['idle_rss_bytes'] / 2**20:.1f} |")


if __name__ == "__main__":
    main()
