"""Memory of the stress harness over a long sustained run: does it grow with the number of runs?

Runs ``wfctl stress run sustained-load --rate R --duration D`` (open model, R x D runs) and
samples, once a second, the resident memory (RSS, from /proc) of the harness process and
of its worker and client processes. Prints the peak per process kind and the RSS of the
harness at 10 %, 50 % and 100 % of the runs, so growth with the run count shows.

    python bench/bench_stress_memory.py                      # 1,000,000 runs: a 20 s ramp to 4000/s, then 4000/s to 260 s
    python bench/bench_stress_memory.py --rate 2000 --duration 30s
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


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def kind(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    return "resource tracker" if "resource_tracker" in cmd else "child"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4000)
    parser.add_argument("--duration", default="260s")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="wfctl-bench-mem-")) / "result.json"
    cmd = [sys.executable, "-m", "wfctl", "stress", "run", "sustained-load", "--rate", str(args.rate),
           "--duration", args.duration, "--no-live", "--json", str(out)]
    began = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_parent = peak_child = 0
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        parent = rss_kb(proc.pid)
        peak_parent = max(peak_parent, parent)
        kids = [p for p in children(proc.pid) if kind(p) == "child"]
        peak_child = max([peak_child, *(rss_kb(p) for p in kids)])
        samples.append((time.time() - began, parent))
        time.sleep(1.0)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode not in (0, 99):
        sys.exit(f"wfctl stress run failed ({proc.returncode}): {stderr.strip()}")
    result = json.loads(out.read_text())
    metrics = result["scenarios"][0]["variants"][0]["metrics"]
    span = samples[-1][0] if samples else 0
    variant = result["scenarios"][0]["variants"][0]
    print(f"runs started {metrics['started']:,}, completed {metrics['completed']:,}, dropped {metrics['dropped']:,},"
          f" rejected {metrics['rejected']:,}, late {metrics['late']:,}, stuck {metrics['stuck']:,};"
          f" achieved {metrics['starts.rate']:,.0f} starts/s of {metrics['starts.target_rate']:,.0f} planned;"
          f" e2e p99 {metrics['e2e_latency.p99']} ms; {time.time() - began:.0f} s in all")
    for error in variant["errors"][:3]:
        print(f"  error x{error['count']}: {error['message']}")
    for fraction in (0.1, 0.5, 1.0):
        at = next((rss for t, rss in samples if t >= span * fraction), samples[-1][1] if samples else 0)
        print(f"harness RSS at {fraction:>4.0%} of the run: {at / 1024:.1f} MB")
    print(f"peak RSS: harness {peak_parent / 1024:.1f} MB, largest worker/client process {peak_child / 1024:.1f} MB")
    os.unlink(out)


if __name__ == "__main__":
    main()
