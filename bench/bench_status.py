"""``wfctl status`` on a run with a long journal: wall time and peak memory per variant.

    python bench/bench_status.py [--rows 50000] [--json]

Builds one run whose journal has ROWS rows (a side-effecting step's started and completed
rows, written straight through the store), then times ``wfctl status ID`` (the last 50
steps), ``--json``, and ``--all-steps --json`` (every step, written page by page), each in a
fresh process whose peak RSS is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"status": [], "status --json": ["--json"], "status --all-steps --json": ["--all-steps", "--json"]}


def build(data: Path, rows: int) -> str:
    from wfctl.engine import Engine
    from wfctl.store import JournalRow
    from wfctl.store.base import StepCommit

    with Engine(data) as eng:
        started = eng.start(str(ROOT / "examples" / "hello.json"), {"name": "bench"})
        store = eng.shard_store(started.shard)
        generation = store.acquire_lease("bench", 600, now=eng.clock())
        journal = []
        for i in range(rows // 2):
            journal.append(JournalRow(f"s{i}", "action", "started", started_at=float(i)))
            journal.append(JournalRow(f"s{i}", "action", "completed", port="success",
                                      output={"data": {"i": i, "text": "x" * 40}}, finished_at=i + 0.5))
        store.commit_steps(generation, [StepCommit(started.execution_id, "completed", None, None, journal=journal)],
                           now=eng.clock())
        store.release_lease("bench", generation)
    return started.execution_id


def measure(data: Path, eid: str, args: list[str]) -> dict:
    """Run ``wfctl status`` under a small parent that reports its child's peak RSS alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "wfctl", "--data-dir", str(data), "status", eid, *args]
    parent = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True);"
              " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", parent, *command], capture_output=True, text=True, env=env, check=True)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(int(out.stdout) / 1024, 1)}  # ru_maxrss: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        eid = build(data, opts.rows)
        results = {name: measure(data, eid, args) for name, args in VARIANTS.items()}
    if opts.json:
        print(json.dumps({"rows": opts.rows, "results": results}, indent=2))
        return
    print(f"journal rows: {opts.rows}")
    for name, r in results.items():
        print(f"  wfctl {name:28} {r['seconds']:7.2f} s   peak RSS {r['peak_rss_mib']:7.1f} MiB")


if __name__ == "__main__":
    main()
