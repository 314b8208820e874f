"""The seed's contention on PostgreSQL: ``shard-comparison`` over one server and two, summarized.

    python bench/bench_stress_pg.py [--dsn DSN] [--total 8000] [--repeat 3] [--clients N] [--json out.json]

Starts a second, throwaway PostgreSQL server (bench/pg_server.py), then runs
``wfctl stress run shard-comparison --backend postgresql --dsn DSN --dsn SECOND`` (1 and 4
shards, hot rows off and on, read committed and serializable, 4 shards on one server and over
two; each variant ``--repeat`` times, interleaved) and prints, per isolation level and hot rows
setting, what 4 shards change against 1 shard on the same run: completions/s, conflicts
(serialization failures retried), lock waits (per 1,000 starts and sampled seconds) and
deadlocks per 1,000 starts, the median over repetitions with the spread (min-max) of the
per-repetition ratios; then each variant's CPU busy and the clients' against the server's
rolled-back transactions. ``--clients`` sets the virtual users (default: the scenario's 8), to see
how the ratios depend on the offered load. ``--dsn`` defaults to
``$WFCTL_DSN``, else the local server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import throwaway_server  # noqa: E402

ROWS = (("completions.rate", "completions/s"),
        ("retries_per_1000.serialization_failure", "conflicts per 1k starts"),
        ("server.lock_waits_per_1000", "lock waits per 1k starts"),
        ("server.lock_wait_s", "lock wait (s, sampled)"),
        ("retries_per_1000.deadlock", "deadlocks per 1k starts"))


def _cell(row: dict, name: str) -> str:
    value = row["values"].get(name)
    ratio = row["ratios"].get(name)
    spread = (row.get("ratio_spread") or {}).get(name)
    text = "-" if value is None else f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if ratio is not None:
        text += f" (x{ratio:.2f}" + (f", {spread['min']:.2f}-{spread['max']:.2f}" if spread else "") + ")"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("WFCTL_DSN", "host=127.0.0.1 user=postgres dbname=test"))
    parser.add_argument("--total", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, help="virtual users (default: the scenario's)")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args()
    out = args.json_path or Path(tempfile.mkdtemp(prefix="wfctl-bench-")) / "shard-comparison-pg.json"
    with throwaway_server() as second:
        command = ["wfctl", "stress", "run", "shard-comparison", "--backend", "postgresql", "--dsn", args.dsn,
                   "--dsn", second, "--total", str(args.total), "--repeat", str(args.repeat), "--no-live",
                   "--json", str(out), *(["--clients", str(args.clients)] if args.clients else [])]
        print("$", " ".join(command), flush=True)
        done = subprocess.run(command, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    [scenario] = result["scenarios"]
    rows = {row["metric"]: row for row in scenario["comparison"]["rows"]}
    names = [v["name"] for v in scenario["variants"]]
    print(f"\nshard-comparison on PostgreSQL ({out}; exit {done.returncode}); median, ratio to the variant's "
          "1-shard baseline (spread of the per-repetition ratios)")
    for metric, label in ROWS:
        print(f"\n{label}")
        for name in names:
            print(f"  {name:34} {_cell(rows[metric], name)}" if metric in rows else f"  {name:34} -")
    print("\nCPU busy (whole machine, representative repetition); client vs server rolled-back transactions")
    for variant in scenario["variants"]:
        busy = (variant.get("machine") or {}).get("cpu_busy")
        checks = {c["what"]: c for c in (variant.get("server") or {}).get("cross_check", [])}
        rolled = checks.get("rolled-back transactions", {})
        print(f"  {variant['name']:34} {'-' if busy is None else f'{busy:.0%}':>5}   "
              f"{rolled.get('client', '-')} / {rolled.get('server', '-')}")
    _headroom(scenario["variants"])
    return done.returncode


def _headroom(variants: list[dict]) -> None:
    """Each variant's completions/s over the 1-shard hot-rows serializable baseline's, per repetition:
    the 4-shard variants without hot rows bound what removing the contention could give."""
    rates = {v["name"]: [run["metrics"]["completions.rate"] for run in v["repeats"]["runs"]] for v in variants
             if v.get("repeats")}
    base = next((name for name, v in ((v["name"], v) for v in variants)
                 if v["shard_count"] == 1 and v["hot_rows"] and v["isolation"] == "serializable"), None)
    if base is None or base not in rates:
        return
    print(f"\ncompletions/s over {base}'s, per repetition (without hot rows: the most removing the contention gives)")
    for name, values in rates.items():
        print(f"  {name:34} " + ", ".join(f"{a / b:.2f}x" for a, b in zip(values, rates[base])))


if __name__ == "__main__":
    raise SystemExit(main())
