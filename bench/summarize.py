"""Medians of bench/omb.sh runs as a markdown table: python3 bench/summarize.py OUT_DIR"""

import collections
import json
import pathlib
import statistics
import sys


def main():
    cells = collections.defaultdict(lambda: {"max": [], "half": []})
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
        name = path.stem  # LABEL-pN-acksX-codec-{max|half}-RUN
        cell, kind, _run = name.rsplit("-", 2)
        cells[cell][kind].append(json.loads(path.read_text()))
    print("| cell | max MB/s (median) | broker core-s/GiB | peak RSS MiB | produce p99 ms @50% | e2e p50 / p99 ms @50% |")
    print("|---|---|---|---|---|---|")
    for cell, runs in sorted(cells.items()):
        maxes = runs["max"]
        halves = runs["half"]
        mbs = statistics.median(r["mb_per_s"] for r in maxes)
        cpu = statistics.median(r["broker"]["cpu_core_seconds_per_gib"] for r in maxes if r.get("broker"))
        rss = max(r["broker"]["peak_rss_bytes"] for r in maxes if r.get("broker")) / 2**20
        p99 = statistics.median(r["produce_latency_us"]["p99"] for r in halves if r.get("produce_latency_us")) / 1e3
        e50 = statistics.median(r["e2e_latency_us"]["p50"] for r in halves if r.get("e2e_latency_us")) / 1e3
        e99 = statistics.median(r["e2e_latency_us"]["p99"] for r in halves if r.get("e2e_latency_us")) / 1e3
        print(f"| {cell} | {mbs:.0f} | {cpu:.2f} | {rss:.0f} | {p99:.1f} | {e50:.1f} / {e99:.1f} |")


if __name__ == "__main__":
    main()
