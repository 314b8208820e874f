"""Comparisons judged against noise: relative tolerance, absolute floors per metric kind, the repetitions'
ranges, --metrics globs and the headline default; REGRESSION only with an exit 98, FAIL on its last line."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT, wfctl, wfctl_env
from wfctl.errors import InputError
from wfctl.stress.compare import (
    HEADLINE_METRICS,
    check_metric_globs,
    compare,
    compare_results,
    metric_globs,
    select_metrics,
)


def _rows(base, cur, tolerance=10.0, **kw):
    return {c.metric: c for c in compare(base, cur, tolerance, **kw)}


def test_sub_millisecond_latency_never_regresses_by_percentage_alone():
    rows = _rows({"start_latency.p50": 0.3, "e2e_latency.p99": 40.0}, {"start_latency.p50": 0.9, "e2e_latency.p99": 41.5})
    assert rows["start_latency.p50"].change_pct == pytest.approx(200.0)
    assert not rows["start_latency.p50"].regression and "floor" in rows["start_latency.p50"].note
    assert not rows["e2e_latency.p99"].regression and rows["e2e_latency.p99"].note is None  # within 10 %
    assert _rows({"start_latency.p50": 0.3}, {"start_latency.p50": 1.5})["start_latency.p50"].regression


def test_floors_per_kind():
    base = {"completions.rate": 2.0, "retries_per_1000": 0.0, "retries_per_1000.deadlock": 0.0, "success_rate": 1.0,
            "failed": 0}
    cur = {"completions.rate": 1.2, "retries_per_1000": 8.0, "retries_per_1000.deadlock": 8.0, "success_rate": 0.9995,
           "failed": 1}
    rows = _rows(base, cur, 0.0)
    assert not rows["completions.rate"].regression  # -40 % but under 1/s
    assert not rows["retries_per_1000"].regression  # 0 -> 8 per 1,000 starts: under the floor of 10
    assert not rows["retries_per_1000.deadlock"].regression  # a cause has the same floor
    assert not rows["success_rate"].regression  # -0.05 percentage points
    assert rows["failed"].regression  # a failure is never noise
    worse = _rows(base, {**cur, "retries_per_1000": 30.0, "retries_per_1000.deadlock": 30.0}, 0.0)
    assert worse["retries_per_1000"].regression and worse["retries_per_1000.deadlock"].regression


def test_with_repetitions_overlapping_ranges_are_noise():
    base, cur = {"start_latency.p99": 10.0}, {"start_latency.p99": 20.0}
    overlapping = _rows(base, cur, baseline_spread={"start_latency.p99": {"min": 8.0, "max": 25.0}},
                        current_spread={"start_latency.p99": {"min": 15.0, "max": 30.0}})["start_latency.p99"]
    assert not overlapping.regression and "overlap" in overlapping.note
    apart = _rows(base, cur, baseline_spread={"start_latency.p99": {"min": 8.0, "max": 12.0}},
                  current_spread={"start_latency.p99": {"min": 15.0, "max": 30.0}})["start_latency.p99"]
    assert apart.regression and apart.current_range == (15.0, 30.0)
    # Only one side with repetitions: the ranges do not count.
    assert _rows(base, cur, baseline_spread={"start_latency.p99": {"min": 8.0, "max": 25.0}})["start_latency.p99"].regression
    # Higher is better: the current range must lie wholly below the baseline's.
    up = _rows({"completions.rate": 100.0}, {"completions.rate": 50.0},
               baseline_spread={"completions.rate": {"min": 90.0, "max": 110.0}},
               current_spread={"completions.rate": {"min": 40.0, "max": 95.0}})["completions.rate"]
    assert not up.regression and not up.improved


def test_improvements_follow_the_same_rules():
    rows = _rows({"start_latency.p50": 0.9, "completions.rate": 100.0}, {"start_latency.p50": 0.3, "completions.rate": 200.0})
    assert not rows["start_latency.p50"].improved  # under the 1 ms floor
    assert rows["completions.rate"].improved and not rows["completions.rate"].regression


def _result(metrics_by_variant: dict, spread: dict | None = None) -> dict:
    variants = []
    for name, metrics in metrics_by_variant.items():
        repeats = {"count": 3, "representative": 1, "spread": spread, "runs": []} if spread else None
        variants.append({"name": name, "metrics": metrics, "repeats": repeats})
    return {"schema": "wfctl.stress.result/1", "scenarios": [{"name": "s", "variants": variants}]}


FULL = {"start_latency.count": 10, "start_latency.p50": 2.0, "start_latency.p90": 3.0, "start_latency.p99": 4.0,
        "e2e_latency.p50": 20.0, "e2e_latency.p99": 40.0, "fire_lag.p50": None, "fire_lag.p99": None,
        "completions.rate": 100.0, "starts.rate": 120.0, "failed": 0, "stuck": 0, "retries_per_1000": 5.0,
        "wait_ms": 3.0, "stored_bytes": 1000, "duration_s": 1.0}


def test_default_compares_the_headline_metrics_only():
    (row,) = compare_results(_result({"main": FULL}), _result({"main": FULL}))
    names = [r.metric for r in row.rows]
    assert names == [m for m in HEADLINE_METRICS if FULL.get(m) is not None]
    assert "start_latency.p90" not in names and "stored_bytes" not in names and "fire_lag.p99" not in names


def test_metrics_globs_select_and_unknown_globs_are_refused():
    globs = metric_globs(["start_latency.p*", "stored_bytes,wait_ms"])
    assert select_metrics(globs, FULL) == ["start_latency.p50", "start_latency.p90", "start_latency.p99",
                                           "wait_ms", "stored_bytes"]
    assert len(select_metrics(metric_globs(["all"]), FULL)) == sum(v is not None for v in FULL.values())
    assert metric_globs(None) is None
    check_metric_globs(["step_latency.*.p99", "slots.*"])
    with pytest.raises(InputError, match="'start_latncy.p99' matches no metric"):
        check_metric_globs(["start_latncy.p99"])


def _write(tmp_path, name, result) -> str:
    (tmp_path / name).write_text(json.dumps(result))
    return name


def test_cli_marks_worse_without_the_option_and_fails_with_it(tmp_path):
    base = _write(tmp_path, "base.json", _result({"main": FULL}))
    worse = _write(tmp_path, "worse.json", _result({"main": {**FULL, "e2e_latency.p99": 400.0,
                                                             "start_latency.p50": 0.2}}))
    plain = wfctl(None, "stress", "compare", base, worse, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "REGRESSION" not in plain.stdout and "worse" in plain.stdout
    assert plain.stdout.strip().splitlines()[-1].startswith("PASS")
    failing = wfctl(None, "stress", "compare", base, worse, "--fail-on-regression", "50", cwd=tmp_path)
    assert failing.returncode == 98
    lines = failing.stdout.strip().splitlines()
    assert "REGRESSION" in failing.stdout and lines[-1].startswith("FAIL") and "(exit 98)" in lines[-1]
    assert sum("REGRESSION" in line for line in lines) == 1  # e2e p99; start p50 improved
    data = json.loads(wfctl(None, "stress", "compare", base, worse, "--json", cwd=tmp_path).stdout)
    flagged = [(m["metric"], m["worse"], m["regression"]) for m in data[0]["metrics"] if m["worse"]]
    assert flagged == [("e2e_latency.p99", True, False)]
    only = wfctl(None, "stress", "compare", base, worse, "--fail-on-regression", "50", "--metrics", "failed",
                 cwd=tmp_path)
    assert only.returncode == 0 and "e2e_latency" not in only.stdout


def test_cli_ranges_from_repetitions_keep_noise_green(tmp_path):
    spread = {"e2e_latency.p99": {"min": 30.0, "max": 500.0}}
    base = _write(tmp_path, "base.json", _result({"main": FULL}, spread))
    cur = _write(tmp_path, "cur.json", _result({"main": {**FULL, "e2e_latency.p99": 400.0}},
                                               {"e2e_latency.p99": {"min": 300.0, "max": 450.0}}))
    proc = wfctl(None, "stress", "compare", base, cur, "--fail-on-regression", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "ranges overlap" in proc.stdout and "REGRESSION" not in proc.stdout


def test_cli_unknown_metric_glob_is_one_line(tmp_path):
    base = _write(tmp_path, "base.json", _result({"main": FULL}))
    proc = wfctl(None, "stress", "compare", base, base, "--metrics", "nope*", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "'nope*' matches no metric" in proc.stderr
    run = wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--compare", base, "--metrics", "nope*",
                cwd=tmp_path)
    assert run.returncode == 2 and "'nope*' matches no metric" in run.stderr and run.stdout == ""


def _baseline_for_run(tmp_path, rate: float) -> str:
    return _write(tmp_path, f"base-{rate:g}.json", {"schema": "wfctl.stress.result/1", "scenarios": [
        {"name": "concurrent-starts", "variants": [{"name": "main", "metrics": {"completions.rate": rate, "failed": 0}}]}]})


def test_run_compare_says_fail_last_on_98_and_never_regression_on_0(tmp_path):
    better = _baseline_for_run(tmp_path, 1e9)  # a baseline no real run can match
    proc = wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--no-live", "--compare", better,
                 "--fail-on-regression", "50", cwd=tmp_path, timeout=600, env=wfctl_env(TMPDIR=str(tmp_path)))
    assert proc.returncode == 98, proc.stdout[-3000:] + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("FAIL") and "exit 98" in last
    worse = _baseline_for_run(tmp_path, 1e-6)
    proc = wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--no-live", "--compare", worse,
                 cwd=tmp_path, timeout=600, env=wfctl_env(TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "REGRESSION" not in proc.stdout and proc.stdout.strip().splitlines()[-1].startswith("PASS")


def test_metrics_globs_with_the_old_names_keep_working():
    assert metric_globs(["lock_retries_per_1000"]) == ["retries_per_1000"]
    assert metric_globs(["lock_*,failed"]) == ["retries", "retries_per_1000", "wait_ms", "failed"]
    assert metric_globs(["*retries*"]) == ["*retries*"]  # matches today's names as it is
    assert select_metrics(metric_globs(["lock_wait_ms"]), FULL) == ["wait_ms"]
    check_metric_globs(metric_globs(["lock_retries", "retries.*", "retries_per_1000.lock_busy"]))


OLD_NAMES = ROOT / "tests" / "data" / "stress-smoke-result-old-names.json"  # a real result from before causes


def test_a_baseline_with_the_old_names_is_compared(tmp_path):
    old = json.loads(OLD_NAMES.read_text())
    assert "lock_retries_per_1000" in old["scenarios"][1]["variants"][0]["metrics"]
    current = json.loads((ROOT / "tests" / "data" / "stress-smoke-result.json").read_text())
    variant = next(s for s in current["scenarios"] if s["name"] == "loop-contention")["variants"][0]
    variant["metrics"].update({"retries_per_1000": 1500.0, "retries_per_1000.lock_busy": 1500.0})  # was 1000
    cur = _write(tmp_path, "cur.json", current)
    proc = wfctl(None, "stress", "compare", str(OLD_NAMES), cur, "--json", "--metrics",
                 "lock_retries_per_1000,retries_per_1000.*,wait_ms", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {(c["scenario"], c["variant"], m["metric"]): m for c in json.loads(proc.stdout) for m in c["metrics"]}
    loop = rows[("loop-contention", "main", "retries_per_1000")]
    assert (loop["baseline"], loop["current"], loop["worse"]) == (1000.0, 1500.0, True)
    by_cause = rows[("loop-contention", "main", "retries_per_1000.lock_busy")]  # the old retries were SQLite's lock waits
    assert (by_cause["baseline"], by_cause["worse"]) == (1000.0, True)
    assert rows[("shard-comparison", "1sh/spread", "wait_ms")]["baseline"] == 282.871
    assert not any(m.startswith("lock_") for *_, m in rows)
    # the whole baseline, with its shards, reads as a result of today
    from wfctl.stress.compare import load_result

    upgraded = load_result(str(OLD_NAMES))
    shard = upgraded["scenarios"][0]["variants"][0]["shards"][0]
    assert shard["retries"] == {"lock_busy": 0} and shard["size_bytes"] == shard["details"]["file_bytes"] == 53248


def test_old_names_in_repetitions_and_spreads_are_read_too(tmp_path):
    from wfctl.stress.compare import load_result

    old = _result({"main": {"lock_retries_per_1000": 50.0}}, {"lock_retries_per_1000": {"min": 40.0, "max": 60.0}})
    old["scenarios"][0]["variants"][0]["repeats"]["runs"] = [{"metrics": {"lock_retries_per_1000": 40.0}}]
    upgraded = load_result(str(tmp_path / _write(tmp_path, "old.json", old)))
    v = upgraded["scenarios"][0]["variants"][0]
    assert v["metrics"] == {"retries_per_1000": 50.0, "retries_per_1000.lock_busy": 50.0}
    assert v["repeats"]["spread"]["retries_per_1000"] == {"min": 40.0, "max": 60.0}
    assert v["repeats"]["runs"][0]["metrics"] == {"retries_per_1000": 40.0, "retries_per_1000.lock_busy": 40.0}
    cur = _result({"main": {"retries_per_1000": 75.0}}, {"retries_per_1000": {"min": 55.0, "max": 90.0}})
    (row,) = compare_results(upgraded, cur, 0.0)[0].rows  # the headline metric, by its new name
    assert row.metric == "retries_per_1000" and row.baseline_range == (40.0, 60.0)
    assert not row.regression and "overlap" in row.note
