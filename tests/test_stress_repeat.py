"""--repeat N: interleaved order, medians and spreads, ratios per repetition, thresholds on every
repetition, the machine's CPU load per variant; one real comparison run with two repetitions."""

from __future__ import annotations

import json
import statistics
from datetime import datetime

import pytest
from jsonschema import Draft202012Validator

from helpers import ROOT, wfctl, wfctl_env
from wfctl.errors import InputError
from wfctl.stress.harness import _evaluate, scenario_thresholds
from wfctl.stress.machine import summarise
from wfctl.stress.repeat import aggregate, ratio_stats, run_order
from wfctl.stress.report import machine_line
from wfctl.stress.scenarios import load_scenario


def test_run_order_alternates_so_drift_favours_no_variant():
    assert run_order("ABC", 3) == [(0, "A"), (0, "B"), (0, "C"), (1, "C"), (1, "B"), (1, "A"),
                                   (2, "A"), (2, "B"), (2, "C")]
    assert run_order("AB", 1) == [(0, "A"), (0, "B")]


def _run(k: int, **metrics) -> dict:
    return {"name": "v", "started_at": f"2026-01-01T00:00:0{k}.000Z", "duration_s": metrics.get("duration_s", 1.0),
            "data_dir": None, "metrics": metrics, "errors": [{"message": "boom", "count": k}],
            "crosscheck": {"ok": k != 2, "differences": ["the shard files hold 9 runs"] if k == 2 else []},
            "timeline": {"interval_s": 1.0, "points": [{"t": 0.0, "k": k}]}, "shards": [], "slots": None,
            "machine": {"cpus": 2, "processes": 5, "cpu_busy": 0.5 + k / 10, "cpu_busy_peak": 0.6 + k / 10,
                        "own_cpu": 0.3, "runnable_peak": k, "saturated": k == 4}}


def test_aggregate_reports_median_and_spread_of_every_figure():
    runs = [_run(1, **{"completions.rate": 100.0, "failed": 0, "duration_s": 3.0, "e2e_latency.p50": None}),
            _run(2, **{"completions.rate": 300.0, "failed": 2, "duration_s": 1.0, "e2e_latency.p50": None}),
            _run(4, **{"completions.rate": 200.0, "failed": 1, "duration_s": 2.0, "e2e_latency.p50": None}),
            _run(3, **{"completions.rate": 250.0, "failed": 1, "duration_s": 4.0, "e2e_latency.p50": None})]
    entry = aggregate(runs)
    assert entry["metrics"]["completions.rate"] == 225.0  # mean of the two middle values
    assert entry["metrics"]["failed"] == 1 and isinstance(entry["metrics"]["failed"], int)  # a count stays a count
    assert entry["metrics"]["e2e_latency.p50"] is None
    assert entry["repeats"]["spread"]["completions.rate"] == {"min": 100.0, "max": 300.0}
    assert entry["repeats"]["spread"]["e2e_latency.p50"] is None
    assert entry["repeats"]["count"] == 4 and [r["repetition"] for r in entry["repeats"]["runs"]] == [1, 2, 3, 4]
    assert entry["repeats"]["representative"] == 3 and entry["timeline"]["points"][0]["k"] == 4  # median duration
    assert entry["errors"] == [{"message": "boom", "count": 10}]
    assert entry["crosscheck"] == {"ok": False, "differences": ["repetition 2: the shard files hold 9 runs"]}
    assert entry["machine"]["saturated"] is True and entry["machine"]["saturated_runs"] == 1
    assert entry["machine"]["cpu_busy_peak"] == pytest.approx(1.0)
    assert aggregate([runs[0]])["repeats"] is None


def test_ratios_per_repetition_then_their_median():
    base = aggregate([_run(1, **{"completions.rate": 100.0}), _run(2, **{"completions.rate": 400.0}),
                      _run(3, **{"completions.rate": 100.0})])
    other = aggregate([_run(1, **{"completions.rate": 200.0}), _run(2, **{"completions.rate": 400.0}),
                       _run(3, **{"completions.rate": 150.0})])
    ratio, spread = ratio_stats(other, base, "completions.rate")
    assert ratio == 1.5 and spread == {"min": 1.0, "max": 2.0}  # 2.0, 1.0, 1.5; the ratio of the medians is 2.0
    assert ratio_stats(aggregate([_run(1, **{"completions.rate": 5.0})]), aggregate([_run(1, **{"completions.rate": 2.0})]),
                       "completions.rate") == (2.5, None)


def test_thresholds_hold_on_every_repetition():
    scenario = load_scenario("concurrent-starts", smoke=True)
    checks = [c for c in scenario_thresholds(scenario, []) if c[0].metric == "failed"]
    entry = aggregate([_run(1, failed=0), _run(2, failed=3), _run(3, failed=0)])
    assert entry["metrics"]["failed"] == 0  # the median hides the failure ...
    (outcome,) = _evaluate(checks, entry)
    assert outcome["passed"] is False and outcome["value"] == 3  # ... the thresholds do not


def test_repeat_in_files_smoke_and_command_line(tmp_path):
    assert load_scenario("shard-comparison").repeat == 3
    assert load_scenario("shard-comparison", smoke=True).repeat == 1
    assert load_scenario("concurrent-starts").repeat == 1
    assert load_scenario("shard-comparison", {"repeat": 5}, smoke=True).repeat == 5
    proc = wfctl(None, "stress", "run", "concurrent-starts", "--repeat", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "--repeat" in proc.stderr and proc.stdout == ""


def test_machine_summary_and_saturation_line(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\nprocs_running 3\n")
    from wfctl.stress.machine import read_cpu_times

    start = read_cpu_times(str(stat))
    assert start == (200.0, 1000.0, 3)
    busy = summarise(start, (1150.0, 2000.0, 9), 0.97, 9, 300.0, 11, 2)
    assert busy["cpu_busy"] == 0.95 and busy["saturated"] is True and busy["own_cpu"] == 0.3
    assert busy["runnable_peak"] == 9 and busy["processes"] == 11
    line = machine_line(busy)
    assert "CPU 95% busy" in line and "this run 30%" in line and "11 processes on 2 cores" in line
    assert "SATURATED" in line and "CPU-bound" in line
    quiet = summarise(start, (400.0, 2000.0, 1), None, 1, None, 3, 2)
    assert quiet["cpu_busy"] == 0.2 and quiet["saturated"] is False and "SATURATED" not in machine_line(quiet)
    assert summarise(None, None, None, None, None, 3, 2)["saturated"] is None and machine_line({"cpu_busy": None}) is None


SCENARIO = """
stuck_after = "60s"
[scenario]
name = "repeat-pair"
description = "Two variants, two repetitions."
shows = "Interleaving, medians and ratios per repetition."
[engine]
workers = 1
[workload]
model = "closed"
clients = 2
total = 20
[[definitions]]
builtin = "greet"
copies = 2
[input]
generator = "sequence"
[comparison]
shards = [1, 2]
routes = ["definition"]
hot_definition = false
[thresholds]
defaults = ["failed == 0"]
"""


def test_real_comparison_with_two_repetitions(tmp_path):
    (tmp_path / "pair.toml").write_text(SCENARIO)
    proc = wfctl(None, "stress", "run", "./pair.toml", "--repeat", "2", "--no-live", "--json", "r.json",
                 "--html", "r.html", cwd=tmp_path, timeout=900, env=wfctl_env(TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    schema = json.loads((ROOT / "docs" / "stress-result.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(result)) == []
    (scenario,) = result["scenarios"]
    assert scenario["settings"]["repeat"] == 2
    first, second = scenario["variants"]
    starts = {v["name"]: [datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
                          for r in v["repeats"]["runs"]] for v in (first, second)}
    # A B, then B A
    assert starts["1sh/spread"][0] < starts["2sh/def/spread"][0] < starts["2sh/def/spread"][1] < starts["1sh/spread"][1]
    for variant in (first, second):
        runs = variant["repeats"]["runs"]
        assert [r["metrics"]["completed"] for r in runs] == [20, 20]
        rates = [r["metrics"]["completions.rate"] for r in runs]
        assert variant["metrics"]["completions.rate"] == pytest.approx(statistics.median(rates))
        assert variant["repeats"]["spread"]["completions.rate"] == {"min": min(rates), "max": max(rates)}
        assert 0 <= variant["machine"]["cpu_busy"] <= 1 and variant["machine"]["processes"] >= 3
    row = next(r for r in scenario["comparison"]["rows"] if r["metric"] == "completions.rate")
    per_rep = [b["metrics"]["completions.rate"] / a["metrics"]["completions.rate"]
               for a, b in zip(first["repeats"]["runs"], second["repeats"]["runs"])]
    assert row["ratios"]["2sh/def/spread"] == pytest.approx(statistics.median(per_rep))
    assert row["ratio_spread"]["2sh/def/spread"] == pytest.approx({"min": min(per_rep), "max": max(per_rep)})
    assert "median (min–max) over 2 repetitions" in proc.stdout
    assert "machine during 1sh/spread: CPU" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("PASS")
    html = (tmp_path / "r.html").read_text()
    assert "medians of 2 repetitions" in html and "<p>Machine: CPU " in html


def test_smoke_runs_once_unless_its_table_says_otherwise(tmp_path):
    path = tmp_path / "pair.toml"
    path.write_text("repeat = 4\n" + SCENARIO)
    assert load_scenario(path).repeat == 4
    assert load_scenario(path, smoke=True).repeat == 1  # no [smoke] table at all
    path.write_text("repeat = 4\n" + SCENARIO + "[smoke]\nrepeat = 2\n")
    assert load_scenario(path, smoke=True).repeat == 2
    path.write_text("repeat = 0\n" + SCENARIO)
    with pytest.raises(InputError, match="repeat"):
        load_scenario(path)
