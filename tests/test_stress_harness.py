"""The stress harness end to end: every packaged scenario in smoke mode through the real CLI,
with real worker, client and scheduler processes, checked against the shard files themselves.

One run of ``wfctl stress run all --smoke --keep`` (module fixture, ~45 s) feeds most tests;
the exit-code tests run one small scenario each.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import wait_until
from wfctl.stress.harness import crosscheck, variants
from wfctl.stress.html import chart_titles
from wfctl.stress.metrics import Counters
from wfctl.stress.scenarios import load_scenario, scenario_names
from wfctl.stress.workload import planned_arrivals


def wfctl(*args: str, tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "wfctl", *args], capture_output=True, text=True, cwd=tmp,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_all(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stress")
    proc = wfctl("stress", "run", "all", "--smoke", "--keep", "--json", "all.json", "--html", "all.html", tmp=tmp)
    return proc, tmp


@pytest.fixture(scope="module")
def result(smoke_all):
    proc, tmp = smoke_all
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return json.loads((tmp / "all.json").read_text())


def scenario(result, name):
    return next(s for s in result["scenarios"] if s["name"] == name)


def files_of(variant) -> dict:
    """Counts read straight from the variant's kept shard files with sqlite3."""
    data = Path(variant["data_dir"])
    shard_files = sorted(data.glob("shard-*.db"))
    assert len(shard_files) == variant["shard_count"]
    by_status, per_shard, slots = Counter(), [], Counter()
    for path in shard_files:
        conn = sqlite3.connect(path)
        rows = conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        by_status.update(dict(rows))
        per_shard.append(sum(n for _, n in rows))
        slots.update(conn.execute("SELECT definition_id, slot_time FROM runs").fetchall())
        conn.close()
    return {"by_status": by_status, "per_shard": per_shard, "runs": sum(per_shard), "slots": slots}


def test_every_scenario_ran_and_passed(result, smoke_all):
    proc, tmp = smoke_all
    assert [s["name"] for s in result["scenarios"]] == scenario_names()
    assert result["passed"] and result["exit_code"] == 0
    assert "PASS: all thresholds passed" in proc.stdout
    for s in result["scenarios"]:
        assert s["smoke"] and s["passed"]
        expected = [v.name for v in variants(load_scenario(s["name"], smoke=True))]
        assert [v["name"] for v in s["variants"]] == expected


def test_counts_match_the_shard_files(result):
    for s in result["scenarios"]:
        for v in s["variants"]:
            files, m = files_of(v), v["metrics"]
            assert v["crosscheck"] == {"ok": True, "differences": []}
            assert m["crosscheck.differences"] == 0
            assert m["started"] == files["runs"] > 0, (s["name"], v["name"])
            assert m["completed"] == files["by_status"]["completed"]
            assert m["failed"] == files["by_status"].get("failed", 0)
            assert m["stuck"] == files["by_status"].get("pending", 0) + files["by_status"].get("running", 0)
            assert [sh["runs"] for sh in v["shards"]] == files["per_shard"]
            assert m["e2e_latency.count"] == m["completed"]


def test_retries_by_cause_reach_the_json(result):
    """SQLite's one cause, lock_busy, per shard and in the metrics, as the shard files counted it; the
    single-shard variants of shard-comparison (4 client processes starting on one file) contend."""
    for s in result["scenarios"]:
        for v in s["variants"]:
            m, shards = v["metrics"], v["shards"]
            assert all(set(sh["retries"]) == set(sh["wait_ms"]) == {"lock_busy"} for sh in shards)
            assert [name for name in m if name.startswith("retries")] == [
                "retries", "retries_per_1000", "retries.lock_busy", "retries_per_1000.lock_busy"]
            assert m["retries"] == m["retries.lock_busy"] == sum(sh["retries"]["lock_busy"] for sh in shards)
            assert m["retries_per_1000.lock_busy"] == pytest.approx(m["retries"] * 1000 / m["started"])
            assert m["wait_ms"] == pytest.approx(sum(sh["wait_ms"]["lock_busy"] for sh in shards), abs=0.01)
            for sh, path in zip(shards, sorted(Path(v["data_dir"]).glob("shard-*.db"))):
                assert sh["size_bytes"] == sh["details"]["file_bytes"] + sh["details"]["wal_bytes"] > 0
                conn = sqlite3.connect(path)
                (stored,) = conn.execute("SELECT lock_retries FROM shard_status").fetchone()
                conn.close()
                assert sh["retries"]["lock_busy"] == stored  # what every process persisted
    one_shard = [v for v in scenario(result, "shard-comparison")["variants"] if v["shard_count"] == 1]
    assert sum(v["metrics"]["retries.lock_busy"] for v in one_shard) > 0


def test_closed_scenarios_start_every_run_once(result):
    for name in ("concurrent-starts", "loop-contention", "shard-comparison"):
        total = load_scenario(name, smoke=True).workload.total
        for v in scenario(result, name)["variants"]:
            assert v["metrics"]["started"] == v["metrics"]["completed"] == total
            assert v["metrics"]["start_latency.count"] == total
            assert v["metrics"]["start_latency.p50"] > 0


def test_payload_pressure_rejects_the_oversized_input_and_keeps_the_rest(result):
    v = scenario(result, "payload-pressure")["variants"][0]
    m = v["metrics"]
    assert m["rejected"] == 1 and m["started"] == 4 and m["completed"] == 4  # the 5th of 5 is oversized
    assert len(v["errors"]) == 1 and v["errors"][0]["count"] == 1 and "limit" in v["errors"][0]["message"]
    assert m["stored_bytes"] > 4 * 100_000  # inputs (and their journal/output) are held by the shards
    assert files_of(v)["runs"] == 4  # the refused start wrote nothing


def test_loop_contention_journals_every_iteration(result):
    v = scenario(result, "loop-contention")["variants"][0]
    loop_steps = v["metrics"]["step_latency.loop.count"]
    sc = load_scenario("loop-contention", smoke=True)
    iterations, rows = sc.input.iterations, sc.input.rows
    # per run: the outer item loop and the row loop with a nested cell loop each step once per iteration
    assert loop_steps >= sc.workload.total * (iterations + rows * iterations)


def test_sustained_load_follows_the_arrival_plan(result):
    sc = load_scenario("sustained-load", smoke=True)
    v = scenario(result, "sustained-load")["variants"][0]
    m = v["metrics"]
    assert m["started"] + m["dropped"] + m["rejected"] == planned_arrivals(sc.workload)
    assert m["starts.target_rate"] == pytest.approx(planned_arrivals(sc.workload) / sc.workload.duration)
    assert m["duration_s"] >= sc.workload.duration * 0.9  # arrivals were spread over the planned duration
    assert sum(p.get("starts", 0) for p in v["timeline"]["points"]) == m["started"]


def test_scheduler_overlap_fires_every_slot_once(result):
    v = scenario(result, "scheduler-overlap")["variants"][0]
    assert v["slots"]["expected"] >= 6 and v["slots"]["missed"] == 0 and v["slots"]["duplicates"] == 0
    assert v["slots"]["fired"] == v["slots"]["expected"]
    files = files_of(v)
    assert files["slots"] and max(files["slots"].values()) == 1  # no (definition, slot) with two runs
    assert len({d for d, _ in files["slots"]}) == 6
    assert v["metrics"]["fire_lag.count"] == files["runs"]


def test_shard_comparison_routes_as_configured(result):
    s = scenario(result, "shard-comparison")
    by_name = {v["name"]: v for v in s["variants"]}
    assert [sh["runs"] > 0 for sh in by_name["4sh/def/hot"]["shards"]].count(True) == 1  # a hot definition: one shard
    assert all(sh["runs"] > 0 for sh in by_name["4sh/exec/hot"]["shards"])  # execution routing spreads it
    assert all(sh["runs"] > 0 for sh in by_name["4sh/def/spread"]["shards"])
    rows = {r["metric"]: r for r in s["comparison"]["rows"]}
    assert s["comparison"]["baseline"] == "1sh/spread"
    assert rows["retries_per_1000"]["label"] == "retries (lock busy) per 1k starts"
    for metric in ("completions.rate", "start_latency.p50", "start_latency.p99", "retries_per_1000"):
        assert rows[metric]["ratios"]["1sh/spread"] in (1.0, None)
        assert set(rows[metric]["values"]) == set(by_name)
    # failed is 0 everywhere: its ratio is guarded, not a division by zero
    assert all(r is None for r in rows["failed"]["ratios"].values())


def test_html_report_names_every_chart(result, smoke_all):
    _, tmp = smoke_all
    html = (tmp / "all.html").read_text()
    titles = chart_titles(result)
    assert len(titles) >= 3 * sum(len(s["variants"]) for s in result["scenarios"])
    for title in titles:
        assert title in html
    assert "<script src" not in html


def test_variants_keep_their_in_flight_and_queue_samples_for_the_report(result, smoke_all):
    _, tmp = smoke_all
    html = (tmp / "all.html").read_text()
    for s in result["scenarios"]:
        for v in s["variants"]:
            samples = v["samples"]
            assert samples, (s["name"], v["name"])
            times = [p["t"] for p in samples]
            assert times == sorted(times) and times[0] >= 0
            assert all(0 <= p["in_flight"] <= v["metrics"]["started"] and p["queue_depth"] >= 0 for p in samples)
            assert f"In-flight runs and queue depth over time — {v['name']}" in html


def test_crosscheck_reports_each_disagreement():
    workers = Counters(completed=9, failed=1)
    assert crosscheck({"completed": 9, "failed": 1}, 10, workers) == []
    found = crosscheck({"completed": 8, "failed": 1, "running": 2}, 10, workers)
    assert found == ["the shards hold 11 runs; the clients started 10",
                     "the shards hold 8 completed runs; the workers reported 9"]
    assert crosscheck({"completed": 9, "failed": 1}, None, workers) == []  # scheduled: no client count


def test_breached_threshold_exits_99(tmp_path):
    proc = wfctl("stress", "run", "concurrent-starts", "--smoke", "--no-live", "--json", "r.json",
                 "--threshold", "completed > 1000000", tmp=tmp_path)
    assert proc.returncode == 99, proc.stderr
    assert "FAIL" in proc.stdout and "completed > 1000000" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["exit_code"] == 99


def test_unknown_metric_is_rejected_before_anything_runs(tmp_path):
    proc = wfctl("stress", "run", "concurrent-starts", "--smoke", "--threshold", "start_latncy.p99 < 5ms",
                 "--json", "r.json", tmp=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown metric 'start_latncy.p99'" in proc.stderr
    assert "did you mean 'start_latency.p99'" in proc.stderr
    assert not (tmp_path / "r.json").exists() and proc.stdout == ""


def test_compare_catches_an_injected_regression(result, tmp_path):
    base = tmp_path / "base.json"
    worse = tmp_path / "worse.json"
    base.write_text(json.dumps(result))
    injected = copy.deepcopy(result)
    metrics = scenario(injected, "concurrent-starts")["variants"][0]["metrics"]
    metrics["start_latency.p99"] *= 3
    worse.write_text(json.dumps(injected))
    proc = wfctl("stress", "compare", str(base), str(worse), "--fail-on-regression", "10", tmp=tmp_path)
    assert proc.returncode == 98, proc.stderr
    assert "REGRESSION" in proc.stdout and "start_latency.p99" in proc.stdout
    same = wfctl("stress", "compare", str(base), str(base), "--fail-on-regression", "10", tmp=tmp_path)
    assert same.returncode == 0 and "REGRESSION" not in same.stdout
    data = json.loads(wfctl("stress", "compare", str(base), str(worse), "--json", tmp=tmp_path).stdout)
    flagged = [(c["scenario"], m["metric"]) for c in data for m in c["metrics"] if m["worse"]]
    assert flagged == [("concurrent-starts", "start_latency.p99")]


def test_run_compare_against_a_better_baseline_exits_98(result, tmp_path):
    better = copy.deepcopy(result)
    metrics = scenario(better, "concurrent-starts")["variants"][0]["metrics"]
    metrics["completions.rate"] = metrics["completions.rate"] * 100  # sub-ms latencies are noise, not regressions
    (tmp_path / "base.json").write_text(json.dumps(better))
    proc = wfctl("stress", "run", "concurrent-starts", "--smoke", "--no-live", "--compare", "base.json",
                 "--fail-on-regression", "50", "--json", "r.json", tmp=tmp_path)
    assert proc.returncode == 98, proc.stdout[-2000:] + proc.stderr
    assert "REGRESSION" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["exit_code"] == 98


def test_bad_baseline_is_one_line(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    proc = wfctl("stress", "compare", "bad.json", "bad.json", tmp=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("wfctl: error: bad.json: not valid JSON")
    assert proc.stderr.count("\n") == 1


def test_sigterm_stops_every_process_and_removes_the_data_directory(tmp_path):
    import signal
    import time

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "wfctl", "stress", "run", "sustained-load", "--no-live"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    def runs_started() -> bool:  # the variant is running: workers and clients are up, the first run exists
        for shard in tmp_path.glob("sustained-load-*/data/shard-*.db"):
            try:
                with sqlite3.connect(f"file:{shard}?mode=ro", uri=True, timeout=5) as conn:
                    if conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                        return True
            except sqlite3.Error:  # not created yet
                pass
        return False

    assert wait_until(runs_started, timeout=120, interval=0.2), "the variant did not start any run"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(tmp_path.glob("sustained-load-*")) == []  # the variant's data directory is gone
    # No worker, client or scheduler process is left (multiprocessing's resource tracker, which
    # watches its parent's pipe, may take a moment to notice the parent is gone).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        left = subprocess.run(["ps", "-o", "pid,args", "-g", str(proc.pid)], capture_output=True, text=True).stdout
        pytest.fail(f"processes left in the group:\n{left}")


def test_a_stress_process_that_meets_a_wfctl_error_says_so_in_one_line_and_exits_1(tmp_path, capfd):
    import multiprocessing

    from wfctl.stress.agents import Sync, worker_main

    ctx = multiprocessing.get_context("spawn")
    sync = Sync(ctx.Semaphore(0), ctx.Event(), ctx.Value("d", 0.0), ctx.Value("q", 0), ctx.Event(),
                ctx.Value("q", 0), ctx.Value("q", 0))
    damaged = tmp_path / "data"
    damaged.mkdir()
    (damaged / "wfctl.json").write_text("{not json", encoding="utf-8")
    proc = ctx.Process(target=worker_main, args=(str(damaged), [0], sync, str(tmp_path / "metrics.json")),
                       name="wfctl-stress-worker-1", daemon=True)
    proc.start()
    proc.join(120)
    assert proc.exitcode == 1
    [line] = capfd.readouterr().err.splitlines()
    assert line.startswith(f"wfctl: error: wfctl-stress-worker-1: cannot read {damaged / 'wfctl.json'}: "), line
    assert sorted(p.name for p in damaged.iterdir()) == ["wfctl.json"]
