"""Start-up time of the commands people run most: ``wfctl --help``, ``status``, ``list``.

    python bench/bench_cli_startup.py [--repeat 10] [--json]

Creates a throwaway data directory with one finished run, then times each command as a
fresh process (the way a user or a script runs it) and prints the median and the best
wall time. The goal: under 150 ms each on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wfctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wfctl", *args], capture_output=True, text=True, env=env)


def timed(args: list[str], env: dict, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = wfctl(*args, env=env)
        samples.append((time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"wfctl {' '.join(args)} failed: {proc.stderr.strip()}")
    return {"median_ms": round(statistics.median(samples), 1), "best_ms": round(min(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WFCTL_DATA_DIR": str(Path(tmp) / "data")}
        started = wfctl("start", str(ROOT / "examples" / "hello.json"), "--wait", "--json", env=env)
        if started.returncode != 0:
            raise SystemExit(f"could not start a run: {started.stderr.strip()}")
        execution_id = json.loads(started.stdout)["execution_id"]
        results = {
            "wfctl --help": timed(["--help"], env, args.repeat),
            "wfctl status ID": timed(["status", execution_id], env, args.repeat),
            "wfctl list": timed(["list"], env, args.repeat),
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"{name:18} median {figures['median_ms']:7.1f} ms   best {figures['best_ms']:7.1f} ms")


if __name__ == "__main__":
    main()
