"""The stress harness's figures are what they say they are, at any run length, and a variant
whose processes start slowly still measures from one origin (issue 10).

Each end-to-end test runs a real scenario (real worker, client and scheduler processes) with
``--keep`` and recomputes its figures from the kept shard files with sqlite3.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers import wfctl_argv, wfctl_env
from wfctl.stress.metrics import TIMELINE_INTERVAL_S, RunMetrics, Timeline


def stress(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """``wfctl stress run ARGS --keep --no-live --json r.json`` with its temporary folders under ``tmp``."""
    return subprocess.run(wfctl_argv(None, "stress", "run", *args, "--keep", "--no-live", "--json", "r.json"),
                          capture_output=True, text=True, cwd=tmp, stdin=subprocess.DEVNULL,
                          env=wfctl_env(TMPDIR=str(tmp)), timeout=600)


def the_variant(tmp: Path) -> dict:
    [scenario] = json.loads((tmp / "r.json").read_text())["scenarios"]
    [variant] = scenario["variants"]
    return variant


def from_files(variant: dict) -> dict:
    """First planned start, last start and last completion, read from the kept shard files."""
    first, last_start, last_completed, runs = math.inf, -math.inf, -math.inf, 0
    for path in Path(variant["data_dir"]).glob("shard-*.db"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            for slot, created, completed in conn.execute("SELECT slot_time, created_at, completed_at FROM runs"):
                runs += 1
                first = min(first, created if slot is None else min(slot, created))
                last_start = max(last_start, created)
                if completed is not None:
                    last_completed = max(last_completed, completed)
    return {"first": first, "last_start": last_start, "last_completed": last_completed, "runs": runs}


# -- the figures, from the helpers -----------------------------------------------------------------


def test_peak_rate_of_a_sub_second_run_is_not_below_its_mean():
    # 10 completions in 0.09 s: with 1 s buckets the "peak" was 10/s against a mean of 111/s.
    timeline = Timeline(origin=1000.0)
    for i in range(10):
        timeline.count("completions", 1000.0 + i * 0.01)
    assert timeline.interval_s == TIMELINE_INTERVAL_S and len(timeline.points()) >= 9
    mean = 10 / 0.09
    assert timeline.peak_rate("completions", 0.009) >= mean
    assert timeline.peak_rate("starts", 0.009) is None  # no such series


def test_peak_rate_finds_a_burst_in_a_long_run():
    timeline = Timeline(origin=0.0)
    for i in range(600):  # 1/s for 10 min ...
        timeline.count("completions", i + 0.5)
    timeline.count("completions", 300.2, 500)  # ... and a burst of 500 in one second
    assert timeline.interval_s >= 2.0 and len(timeline.points()) <= 300
    assert timeline.peak_rate("completions", 60.0) == pytest.approx((60 + 500) / 60, rel=0.05)


def test_starts_rate_uses_the_start_phase_when_given():
    metrics = RunMetrics(duration_s=10.0)
    for i in range(100):
        metrics.record_start(0.001, at=100 + i * 0.01)
    metrics.start_phase_s = 1.0
    figures = metrics.to_dict()
    assert figures["starts.rate"] == pytest.approx(100.0) and figures["completions.rate"] == 0.0


# -- the figures, end to end ---------------------------------------------------------------------------


def test_starts_and_completions_per_second_are_measured_over_their_own_phases(tmp_path):
    proc = stress(tmp_path, "concurrent-starts", "--smoke")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    variant = the_variant(tmp_path)
    m, files = variant["metrics"], from_files(variant)
    assert m["started"] == m["completed"] == files["runs"] == 10
    start_phase = files["last_start"] - files["first"]
    completion_phase = files["last_completed"] - files["first"]
    assert m["starts.rate"] == pytest.approx(10 / max(start_phase, 1e-3), rel=1e-3)
    assert m["completions.rate"] == pytest.approx(10 / completion_phase, rel=1e-3)
    assert m["duration_s"] == pytest.approx(completion_phase, rel=1e-3)
    assert m["starts.rate"] > m["completions.rate"]  # the last start comes before the last completion
    # The peak is over windows that fit the run, never below the mean.
    assert m["completions.peak_rate"] >= m["completions.rate"]
    timeline = variant["timeline"]
    assert timeline["interval_s"] <= max(TIMELINE_INTERVAL_S, variant["duration_s"] / 2)
    assert sum(p.get("completions", 0) for p in timeline["points"]) == 10
    assert sum(p.get("starts", 0) for p in timeline["points"]) == 10


def test_a_stuck_run_measures_to_the_end_of_the_wait(tmp_path):
    definition = {"id": "stuck", "name": "stuck", "steps": [
        {"stepSlug": "start", "name": "start", "stepType": "start", "config": {}, "nextSteps": {"success": "nap"}},
        {"stepSlug": "nap", "name": "nap", "stepType": "action",
         "config": {"type": "sleep", "parameters": {"seconds": 3600}}, "nextSteps": {"success": "done"}},
        {"stepSlug": "done", "name": "done", "stepType": "output", "config": {"mapping": {}}, "nextSteps": {}},
    ]}  # held an hour before "done": unfinished at the end of the wait
    (tmp_path / "stuck.json").write_text(json.dumps(definition))
    (tmp_path / "stuck.toml").write_text("""
stuck_after = "3s"
[scenario]
name = "stuck"
description = "Runs that never complete within the wait."
shows = "duration_s and the rates when runs are stuck."
[engine]
shards = 2
workers = 1
[workload]
model = "closed"
clients = 3
total = 3
[[definitions]]
path = "stuck.json"
[input]
generator = "fixed"
value = {}
""")
    proc = stress(tmp_path, "./stuck.toml")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    variant = the_variant(tmp_path)
    m, files = variant["metrics"], from_files(variant)
    assert m["started"] == m["stuck"] == files["runs"] == 3 and m["completed"] == 0
    # The wait ran stuck_after (3 s) past the last start: the duration runs to its end.
    assert variant["duration_s"] >= 3.0 and m["duration_s"] >= 3.0
    assert m["starts.rate"] == pytest.approx(3 / max(files["last_start"] - files["first"], 1e-3), rel=1e-3)
    assert m["completions.rate"] == 0 and m["completions.peak_rate"] == 0


SLOW_START = """
import math, sys, time
from wfctl.stress import harness
wait_ready = harness._VariantRun.wait_ready
def slow_start(self):
    wait_ready(self)
    # Simulated slow start-up (this test's workload, not a synchronisation): past the next due
    # instant of the every-10-s schedules, and long enough for a run to complete.
    past_slot = math.floor(time.time() / 10) * 10 + 10 + 3
    time.sleep(max(0.0, past_slot - time.time()))
harness._VariantRun.wait_ready = slow_start
from wfctl.cli import main
sys.argv = ["wfctl", "stress", "run", "scheduler-overlap", "--smoke", "--keep", "--no-live", "--json", "r.json"]
main()
"""


def test_a_scheduled_variant_whose_processes_start_slowly_measures_from_one_origin(tmp_path):
    """The processes took so long to start that a due slot passed before the start instant: the
    schedulers and workers used to act before it (a worker timeline without origin: "timelines with
    different origins cannot be merged", exit 2 and no report; or a duration of 1 ms and 6,000 starts/s)."""
    import sys

    proc = subprocess.run([sys.executable, "-c", SLOW_START], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=wfctl_env(TMPDIR=str(tmp_path)), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "PASS: all thresholds passed" in proc.stdout  # the report was printed
    variant = the_variant(tmp_path)
    m, files = variant["metrics"], from_files(variant)
    assert variant["slots"] == {"expected": 6, "fired": 6, "duplicates": 0, "missed": 0}
    assert m["started"] == m["completed"] == files["runs"] == 6
    assert m["duration_s"] == pytest.approx(files["last_completed"] - files["first"], rel=1e-3)
    assert m["starts.rate"] == pytest.approx(6 / max(files["last_start"] - files["first"], 1e-3), rel=1e-3)
    assert sum(p.get("completions", 0) for p in variant["timeline"]["points"]) == 6


def test_an_internal_failure_is_not_reported_as_a_usage_error(tmp_path):
    """A bug in the harness (here: a timeline merge that fails) exits 70 with one line, never 2
    (a usage error)."""
    script = (
        "import sys\n"
        "from wfctl.stress import metrics\n"
        "def broken(self, other):\n"
        "    raise ValueError('timelines with different origins cannot be merged')\n"
        "metrics.Timeline.merge = broken\n"
        "from wfctl.cli import main\n"
        "sys.argv = ['wfctl', 'stress', 'run', 'concurrent-starts', '--smoke', '--no-live', '--total', '2']\n"
        "main()\n"
    )
    import sys

    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=wfctl_env(TMPDIR=str(tmp_path)), timeout=600)
    assert proc.returncode == 70, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("wfctl: internal error: ValueError: timelines with different origins")


def test_smoke_late_after_gives_a_loaded_machine_room():
    """A loaded 2-core machine fired scheduler-overlap's slots up to 0.7 s late: the smoke preset's
    late threshold (late == 0) counts a start late after 3 s, the full preset after 1 s."""
    from wfctl.stress.scenarios import load_scenario

    full, smoke = load_scenario("scheduler-overlap"), load_scenario("scheduler-overlap", smoke=True)
    assert full.workload.late_after == 1.0 and smoke.workload.late_after == 3.0
