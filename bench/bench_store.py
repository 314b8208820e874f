"""Storage benchmark: create_run throughput and latency under write contention, real processes.

    python bench/bench_store.py [--starts 8000] [--durability normal|full] [--json]

Each configuration gets a fresh data directory (execution routing, so starts spread evenly
over the shards). Client processes wait on a barrier, then each creates its share of the
starts, one create_run (one BEGIN IMMEDIATE transaction) each, timing every call.
Configurations: 1 and 8 processes against 1 and 4 shards, plus one process starting runs
in groups of 100 per transaction (create_runs, group commit).

Reported: starts/s (all starts over the wall time from the first start to the last end),
commits/s (write transactions counted by the shards over the same time), retries per
1,000 starts (every cause; persisted shard counters), p50/p99/max create latency in ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid

from wfctl.store import DataDir, NewRun

CONFIGS = [  # (processes, shards, batch)
    (1, 1, 1), (1, 4, 1), (8, 1, 1), (8, 4, 1), (1, 1, 100),
]
STATE = {"variables": {"input": {"order": 1, "items": [1, 2, 3]}, "config": {}, "variables": {}, "steps": {},
                       "executionId": None, "wfDefinitionId": "bench"},
         "current": "start", "status": "running", "output": None, "error": None, "wake_at": None, "steps_run": 0}


def client(path: str, count: int, batch: int, barrier, results) -> None:
    """Create ``count`` runs (``batch`` per transaction); report (start, end, latencies)."""
    datadir = DataDir.open(path, create=False)
    stores = [datadir.open_shard(i) for i in range(datadir.shard_count)]
    barrier.wait()
    latencies = []
    start = time.monotonic()
    for _ in range(0, count, batch):
        runs = [NewRun(uuid.uuid4().hex, "bench", {"order": 1, "items": [1, 2, 3]}, STATE) for _ in range(batch)]
        shard = datadir.shard_for("bench", runs[0].execution_id)
        t0 = time.perf_counter()
        stores[shard].create_runs(runs, now=time.time())
        latencies.append(time.perf_counter() - t0)
    end = time.monotonic()
    for store in stores:
        store.close()
    results.put((start, end, latencies))


def measure(processes: int, shards: int, batch: int, starts: int, durability: str) -> dict:
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="wfctl-bench-") as tmp:
        DataDir.init(tmp, shards=shards, route="execution", durability=durability)
        barrier = ctx.Barrier(processes)
        results = ctx.Queue()
        share = starts // processes
        procs = [ctx.Process(target=client, args=(tmp, share, batch, barrier, results)) for _ in range(processes)]
        for proc in procs:
            proc.start()
        outs = [results.get() for _ in procs]
        for proc in procs:
            proc.join()
        datadir = DataDir.open(tmp, create=False)
        transactions = retries = 0
        for i in range(shards):
            with datadir.open_shard(i) as store:
                stats = store.stats()
                transactions += stats.transactions
                retries += stats.total_retries
    wall = max(o[1] for o in outs) - min(o[0] for o in outs)
    latencies = sorted(lat for o in outs for lat in o[2])
    total = share * processes
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "processes": processes, "shards": shards, "batch": batch, "starts": total,
        "seconds": round(wall, 3), "starts_per_s": round(total / wall), "commits_per_s": round(transactions / wall),
        "retries_per_1000": round(retries * 1000 / total, 1),
        "p50_ms": round(cuts[49] * 1000, 3), "p99_ms": round(cuts[98] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=8000, help="runs started per configuration")
    parser.add_argument("--durability", choices=("normal", "full"), default="normal")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = [measure(p, s, b, args.starts, args.durability) for p, s, b in CONFIGS]
    if args.json:
        print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                      "sqlite": sqlite3.sqlite_version, "durability": args.durability},
                          "results": rows}, indent=2))
        return
    print(f"create_run, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
          f" durability {args.durability}")
    header = ("procs", "shards", "batch", "starts/s", "commits/s", "retries/1k", "p50 ms", "p99 ms", "max ms")
    print(" ".join(f"{h:>10}" for h in header))
    for r in rows:
        print(" ".join(f"{v:>10}" for v in (r["processes"], r["shards"], r["batch"], r["starts_per_s"],
                                           r["commits_per_s"], r["retries_per_1000"], r["p50_ms"],
                                           r["p99_ms"], r["max_ms"])))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
