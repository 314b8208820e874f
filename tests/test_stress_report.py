"""Stress end report (Rich tables), the compare table and the live progress view."""

from __future__ import annotations

import copy
import io

import pytest
from rich.console import Console

from wfctl.stress.compare import Comparison, compare
from wfctl.stress.live import LiveView, plain_line, render_snapshot
from wfctl.stress.report import (
    format_bytes,
    format_ms,
    format_value,
    render_comparison,
    render_report,
)

BASE = "1 shard, spread"
HOT = "4 shards [hot]"  # markup-like text must come out literally


def _latency(prefix: str, p50: float, p99: float, mx: float, count: int = 5) -> dict:
    out = {f"{prefix}.count": count}
    for stat, value in (("min", p50 / 2), ("mean", p50), ("p50", p50), ("p90", p99), ("p95", p99),
                        ("p99", p99), ("p99_9", mx), ("max", mx)):
        out[f"{prefix}.{stat}"] = value if count else None
    return out


def _metrics(rate: float, p99: float, *, failed: int = 0, fire_count: int = 0) -> dict:
    m = {}
    m.update(_latency("start_latency", 0.042, p99, 1234.5))
    m.update(_latency("e2e_latency", 4.0, 9.5, 9.5))
    m.update(_latency("fire_lag", 2.0, 3.0, 3.0, count=fire_count))
    m.update({"step_latency.start.count": 5, "step_latency.start.p50": 0.004, "step_latency.start.max": 0.01})
    m.update({
        "started": 5, "completed": 5 - failed, "failed": failed, "canceled": 0, "stuck": 0, "dropped": 0,
        "late": 0, "rejected": 0, "completions.count": 5 - failed, "completions.rate": rate,
        "completions.peak_rate": 5, "starts.rate": rate, "starts.target_rate": None,
        "success_rate": (5 - failed) / 5, "errors.count": failed, "retries": 3,
        "retries_per_1000": 600.0, "retries.lock_busy": 3, "retries_per_1000.lock_busy": 600.0, "wait_ms": 12.5,
        "stored_bytes": 4096,
        "file_growth_bytes": 65536, "slots.expected": 0, "slots.fired": 0, "slots.duplicates": 0,
        "slots.missed": 0, "crosscheck.differences": 0, "duration_s": 2.1,
    })
    return m


def _variant(name: str, shards: int, rate: float, p99: float, **kw) -> dict:
    return {
        "name": name, "route": "definition", "hot_definition": False, "data_dir": None,
        "started_at": "2026-11-24T15:00:01.000Z", "duration_s": 2.1,
        "metrics": _metrics(rate, p99, **kw),
        "errors": [],
        "timeline": {"interval_s": 1.0, "points": []},
        "shards": [
            {"shard": i, "runs": 5, "by_status": {"completed": 4, "failed": 1}, "queue_depth": i,
             "retries": {"lock_busy": 1}, "wait_ms": {"lock_busy": 4.0}, "transactions": 12,
             "size_bytes": 1_200_000, "details": {"file_bytes": 1_150_000, "wal_bytes": 50_000},
             "file_growth_bytes": 65536}
            for i in range(shards)
        ],
        "crosscheck": {"ok": True, "differences": []},
        "slots": None,
    }


def _result() -> dict:
    base = _variant(BASE, 1, 2.38, 1.2)
    hot = _variant(HOT, 4, 4.1, 75.0, failed=1, fire_count=3)
    hot["errors"] = [{"message": "input too large [/red] for run 0-abc", "count": 2}]
    hot["crosscheck"] = {"ok": False, "differences": ["shard 2: harness counted 5 completed, file has 4"]}
    hot["slots"] = {"expected": 10, "fired": 9, "duplicates": 0, "missed": 1}
    return {
        "schema": "wfctl.stress.result/1",
        "passed": False,
        "exit_code": 99,
        "scenarios": [{
            "name": "shard-comparison",
            "smoke": True,
            "duration_s": 12.3,
            "passed": False,
            "variants": [base, hot],
            "comparison": {
                "baseline": BASE,
                "rows": [
                    {"metric": "completions.rate", "label": "throughput (completions/s)", "higher_is_better": True,
                     "values": {BASE: 2.38, HOT: 4.1}, "ratios": {BASE: 1.0, HOT: 1.72}},
                    {"metric": "start_latency.p99", "label": "start latency p99", "higher_is_better": False,
                     "values": {BASE: 0.0, HOT: 75.0}, "ratios": {BASE: None, HOT: None}},
                ],
            },
            "thresholds": [
                {"expression": "failed == 0", "metric": "failed", "variant": BASE, "value": 0,
                 "passed": True, "source": "scenario"},
                {"expression": "start_latency.p99 < 50ms", "metric": "start_latency.p99", "variant": HOT,
                 "value": 75.0, "passed": False, "source": "scenario"},
                {"expression": "success_rate >= 99.5%", "metric": "success_rate", "variant": HOT,
                 "value": 0.8, "passed": False, "source": "scenario"},
            ],
        }],
    }


def _console(**kwargs) -> Console:
    return Console(record=True, width=160, file=io.StringIO(), **kwargs)


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


# -- formatting ------------------------------------------------------------------------


def test_format_ms():
    assert format_ms(0.042) == "0.042"
    assert format_ms(1234.5) == "1,234"
    assert format_ms(4.0) == "4.00"
    assert format_ms(None) == "-"


def test_format_bytes():
    assert format_bytes(1_200_000) == "1.2 MB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(98304) == "98.3 kB"
    assert format_bytes(-2_000) == "-2.0 kB"


def test_format_value_uses_metric_units():
    assert format_value("start_latency.p99", 75.0) == "75.0 ms"
    assert format_value("start_latency.count", 5) == "5"
    assert format_value("completions.rate", 1200.0) == "1,200/s"
    assert format_value("success_rate", 0.995) == "99.5%"
    assert format_value("fire_lag.p99", 3.0) == "3.00 ms"
    assert format_value("failed", 0) == "0"
    assert format_value("failed", None) == "n/a"


# -- the run report --------------------------------------------------------------------


def test_report_shows_variants_side_by_side_and_the_breach():
    con = _console()
    render_report(con, _result())
    text = con.export_text()

    assert "shard-comparison" in text and "smoke" in text and "12.3 s" in text
    assert BASE in text and HOT in text
    # counts, variants as columns: one row for 'failed' holding both variants' values
    assert any("0" in line and "1" in line for line in _lines_with(text, "│ failed"))
    assert "success rate" in text and "100%" in text and "80%" in text
    # latencies in ms, formatted
    assert "0.042" in text and "1,234" in text
    assert "step start" in text
    assert "fire lag" in text  # one variant has fire-lag samples
    # shards (160 columns: the wide table): human-readable sizes, unfinished and failed runs
    shard_rows = _lines_with(text, "MB")
    assert "1.2 MB" in text and any(" 5 " in line and " 1 " in line for line in shard_rows)
    assert "transactions" in text and "(lock busy)" in text  # the retries column names SQLite's one cause
    # errors, escaped markup comes out literally
    assert "input too large [/red] for run 0-abc" in text
    # cross-check
    assert "cross-check OK: the shards agree" in text
    assert "harness counted 5 completed, file has 4" in text
    # slots
    assert "schedule slots" in text and "missed" in text
    # comparison: value and ratio per variant, null ratio -> n/a
    row = _lines_with(text, "throughput (completions/s)")[0]
    assert "×1.00" in row and "×1.72" in row and "4.10/s" in row
    assert "n/a" in _lines_with(text, "start latency p99")[0]
    # thresholds: actual in the metric's unit and PASS / FAIL
    breach = _lines_with(text, "start_latency.p99 < 50ms")[0]
    assert "75.0 ms" in breach and "FAIL" in breach and HOT in breach
    assert "80%" in _lines_with(text, "success_rate >= 99.5%")[0]
    assert "PASS" in _lines_with(text, "failed == 0")[0]
    assert "2 thresholds breached (exit 99)" in text.splitlines()[-1]


def test_report_shows_retries_by_cause_when_there_are_several():
    result = _result()
    variant = result["scenarios"][0]["variants"][0]
    variant["shards"][0].update(retries={"serialization_failure": 9, "deadlock": 2, "lock_timeout": 0},
                                wait_ms={"serialization_failure": 30.0, "deadlock": 5.5, "lock_timeout": 0.0})
    con = _console()
    render_report(con, result)
    text = con.export_text()
    shards = text[text.index("\nshards "):text.index("\nerrors ")]
    assert "(lock busy)" not in shards  # several causes: the header names none
    words = " ".join(shards.replace("│", " ").split())
    assert "serialization failure 9" in words and "deadlock 2" in words and "lock timeout" not in words
    assert "serialization failure 30.0" in words and "deadlock 5.50" in words
    row = next(line for line in shards.splitlines() if " 11 " in line)  # the total of the first shard
    assert "35.5" in row


def test_report_colours_pass_and_fail():
    con = _console(force_terminal=True, color_system="standard")
    render_report(con, _result())
    html = con.export_html(inline_styles=True)
    assert "FAIL" in html and "PASS" in html
    # rich's standard palette: red for FAIL
    assert "color: #800000" in html


def test_report_single_variant_all_passed():
    result = _result()
    scenario = result["scenarios"][0]
    scenario["variants"] = scenario["variants"][:1]
    scenario["comparison"] = None
    scenario["thresholds"] = [t for t in scenario["thresholds"] if t["passed"]]
    scenario["passed"] = result["passed"] = True
    con = _console()
    render_report(con, result)
    text = con.export_text()
    assert "variant: 1 shard, spread" in text
    assert "value" in text  # the single value column
    assert "fire lag" not in text  # no fire-lag samples
    assert "errors" not in text
    assert "ratio vs baseline" not in text
    assert "PASS: all thresholds passed (1 checked)" in text


def test_report_tolerates_sparse_result():
    con = _console()
    render_report(con, {"scenarios": [{"name": "empty", "variants": [{"name": "v", "metrics": {}, "shards": 1}]}]})
    text = con.export_text()
    assert "empty" in text and "full" in text
    render_report(con, {"scenarios": []})


def test_report_shows_target_rate_when_set():
    result = _result()
    result["scenarios"][0]["variants"][0]["metrics"]["starts.target_rate"] = 50.0
    con = _console()
    render_report(con, result)
    assert "50.0" in _lines_with(con.export_text(), "target starts/s")[0]


def test_throughput_rows_name_the_window_each_rate_is_measured_over():
    """starts/s and completions/s are measured over different windows (docs/stress.md): the
    terminal report says which, so equal-looking figures are not read as one measurement."""
    result = _result()
    metrics = result["scenarios"][0]["variants"][0]["metrics"]
    metrics["starts.rate"], metrics["completions.rate"] = 2345.0, 1276.0
    con = _console()
    render_report(con, result)
    text = con.export_text()
    assert "2,345" in _lines_with(text, "starts/s (first start to last start)")[0]
    assert "1,276" in _lines_with(text, "completions/s (first start to last completion)")[0]


# -- wfctl stress compare --------------------------------------------------------------


def test_render_comparison_marks_regression_and_improvement():
    baseline = {"start_latency.p99": 10.0, "completions.rate": 100.0, "failed": 0, "started": 100,
                "e2e_latency.p50": None}
    current = {"start_latency.p99": 25.0, "completions.rate": 150.0, "failed": 0, "started": 100,
               "e2e_latency.p50": None}
    rows = compare(baseline, current, tolerance_pct=5.0)
    con = _console()
    render_comparison(con, rows, "main@abc", "pr [42]", 5.0)
    text = con.export_text()
    latency = _lines_with(text, "start_latency.p99")[0]
    assert "REGRESSION" in latency and "+150.0%" in latency and "10.0 ms" in latency
    throughput = _lines_with(text, "completions.rate")[0]
    assert "improved" in throughput and "+50.0%" in throughput and "REGRESSION" not in throughput
    assert "REGRESSION" not in _lines_with(text, "started")[0]
    assert "e2e_latency.p50" not in text  # both values None: skipped
    assert "main@abc" in text and "pr [42]" in text
    assert "5%" in text
    assert "1 metric regressed" in text


def test_render_comparison_change_na_and_no_regressions():
    rows = [Comparison("failed", 0, 0, None, False, False)]
    con = _console()
    render_comparison(con, rows, "a", "b", None)
    text = con.export_text()
    assert "n/a" in _lines_with(text, "failed")[0]
    assert "no regressions" in text


# -- live view ---------------------------------------------------------------------------


def _snapshot(**overrides) -> dict:
    snap = {
        "scenario": "shard-comparison", "variant": HOT, "phase": "running", "elapsed_s": 3.5,
        "target": 500, "started": 130, "finished": 120, "unfinished": 10, "starts_per_s": 40.0,
        "completions_per_s": 38.5, "dropped": 0, "rejected": 2,
        "shards": [{"shard": 0, "runs": 60, "unfinished": 4, "queue_depth": 3,
                    "retries": {"lock_busy": 7}, "wait_ms": {"lock_busy": 12.0}}],
    }
    snap.update(overrides)
    return snap


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_view_non_terminal_prints_throttled_plain_lines():
    con = _console()
    assert not con.is_terminal
    clock = _Clock()
    with LiveView(con, clock=clock) as view:
        view.update(_snapshot(phase="starting", elapsed_s=0.0))  # first: printed
        clock.now = 1.0
        view.update(_snapshot(phase="running"))  # phase change: printed
        clock.now = 2.0
        view.update(_snapshot())  # within 5 s, same phase: not printed
        clock.now = 6.0
        view.update(_snapshot(finished=250))  # 5 s since the last line: printed
        clock.now = 7.0
        view.update(_snapshot(phase="draining", target=None, shards=[]))  # phase change
        clock.now = 7.5
        view.update(_snapshot(phase="collecting", target=None, shards=[], finished=500))
    lines = [line for line in con.export_text().splitlines() if line]
    assert len(lines) == 5
    assert "starting" in lines[0] and "running" in lines[1]
    assert "finished 250/500 (50%)" in lines[2]
    assert "draining" in lines[3] and "finished 120 " in lines[3]
    assert "collecting" in lines[4] and "finished 500 " in lines[4]
    assert HOT in lines[1] and "rejected 2" in lines[1] and "max queue 3" in lines[1]
    assert "retries (lock busy) 7, waited 12ms" in lines[1]
    assert "\x1b" not in con.file.getvalue()  # no animation, no escape codes


def test_live_view_disabled_prints_nothing():
    con = _console(force_terminal=True)
    with LiveView(con, enabled=False) as view:
        view.update(_snapshot())
    assert con.export_text() == ""


def test_live_view_tolerates_empty_shards_and_unknown_target():
    snap = _snapshot(target=None, shards=[])
    assert "finished 120" in plain_line(snap)
    con = _console()
    con.print(render_snapshot(snap))
    con.print(render_snapshot({}))  # nothing known yet
    text = con.export_text()
    assert "120 finished" in text and "shard-comparison" in text


@pytest.mark.parametrize("snap", [_snapshot(), _snapshot(target=None, shards=[])])
def test_live_view_animates_on_a_terminal(snap):
    con = _console(force_terminal=True)
    assert con.is_terminal
    with LiveView(con) as view:
        assert view.animated
        view.update(snap)
        view.update(copy.deepcopy(snap) | {"phase": "draining"})
    text = con.export_text()
    assert "draining" in text and HOT in text
    if snap["shards"]:
        assert "retries (lock busy)" in text and "120/500 finished (24%)" in text
