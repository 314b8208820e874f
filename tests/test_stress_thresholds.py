"""Stress thresholds (k6 style) and baseline comparison."""

from __future__ import annotations

import pytest

from wfctl.errors import InputError
from wfctl.stress.compare import (
    REGRESSION_EXIT_CODE,
    compare,
    higher_is_better,
    regression_exit_code,
    regressions,
)
from wfctl.stress.metrics import known_metric_names
from wfctl.stress.thresholds import (
    BREACH_EXIT_CODE,
    combine_thresholds,
    evaluate_thresholds,
    parse_threshold,
    parse_thresholds,
)

METRICS = {
    "start_latency.p99": 42.0,
    "e2e_latency.p50": 120.0,
    "e2e_latency.p99_9": 1500.0,
    "e2e_latency.max": None,
    "completions.rate": 1200.0,
    "failed": 0,
    "stuck": 2,
    "success_rate": 0.996,
    "duration_s": 60.0,
    "step_latency.action.p95": 3.0,
}


@pytest.mark.parametrize(
    "text, metric, op, value, passed",
    [
        ("start_latency.p99 < 50ms", "start_latency.p99", "<", 50.0, True),
        ("start_latency.p99<0.04s", "start_latency.p99", "<", 40.0, False),
        ("start_latency.p99 <= 42", "start_latency.p99", "<=", 42.0, True),
        ("e2e_latency.p50 > 100ms", "e2e_latency.p50", ">", 100.0, True),
        ("e2e_latency.p99.9 >= 2s", "e2e_latency.p99_9", ">=", 2000.0, False),
        ("e2e_latency.p(99.9) < 2s", "e2e_latency.p99_9", "<", 2000.0, True),
        ("e2e_latency.med < 200ms", "e2e_latency.p50", "<", 200.0, True),
        ("failed == 0", "failed", "==", 0.0, True),
        ("stuck != 0", "stuck", "!=", 0.0, True),
        ("stuck == 0", "stuck", "==", 0.0, False),
        ("completions.rate > 1000/s", "completions.rate", ">", 1000.0, True),
        ("completions.rate > 1500", "completions.rate", ">", 1500.0, False),
        ("success_rate >= 99.5%", "success_rate", ">=", 0.995, True),
        ("success_rate >= 0.999", "success_rate", ">=", 0.999, False),
        ("duration_s < 90s", "duration_s", "<", 90.0, True),
        ("duration_s > 61000ms", "duration_s", ">", 61.0, False),
        ("step_latency.action.p95 < 5ms", "step_latency.action.p95", "<", 5.0, True),
        ("  failed   ==   0  ", "failed", "==", 0.0, True),
    ],
)
def test_threshold_forms(text, metric, op, value, passed):
    t = parse_threshold(text)
    assert (t.metric, t.op) == (metric, op)
    assert t.value == pytest.approx(value)
    r = t.evaluate(METRICS)
    assert r.passed is passed and r.text == " ".join(text.split())
    assert r.actual == METRICS[metric]


def test_missing_or_empty_metric_does_not_pass():
    assert parse_threshold("e2e_latency.max < 1s").evaluate(METRICS).passed is False
    r = parse_threshold("retries_per_1000 < 5").evaluate(METRICS)
    assert r.passed is False and r.actual is None


CONTENDED = {"retries": 12, "retries_per_1000": 40.0, "retries.lock_busy": 12, "retries_per_1000.lock_busy": 40.0,
             "wait_ms": 250.0}


def test_retry_thresholds_by_cause():
    assert parse_threshold("retries.lock_busy < 20").evaluate(CONTENDED).passed is True
    assert parse_threshold("retries_per_1000.lock_busy < 30").evaluate(CONTENDED).actual == 40.0
    # a cause the shards did not report retried nothing (SQLite never deadlocks): 0, not "no value"
    r = parse_threshold("retries.deadlock == 0").evaluate(CONTENDED)
    assert r.passed is True and r.actual == 0
    assert parse_threshold("retries.deadlock == 0").evaluate(METRICS).actual is None  # no retries figure at all
    assert parse_threshold("wait_ms < 0.2s").value == 200.0  # wait_ms is in ms like a latency
    with pytest.raises(InputError, match="unknown metric 'retries.lock_bussy'; did you mean 'retries.lock_busy'"):
        parse_threshold("retries.lock_bussy < 1")


@pytest.mark.parametrize("old, new", [("lock_retries_per_1000 < 50", "retries_per_1000"),
                                      ("lock_retries <= 10", "retries"), ("lock_wait_ms < 1s", "wait_ms")])
def test_thresholds_with_the_old_names_keep_working(old, new):
    t = parse_threshold(old)
    assert t.metric == new and t.text == old
    assert t.evaluate(CONTENDED).actual == CONTENDED[new]
    # a command-line threshold with the old name replaces the scenario's with the new one
    (kept,) = combine_thresholds(parse_thresholds([f"{new} > 0"]), [t])
    assert kept is t


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("start_latency.p99 50ms", "expected '<metric> <op>"),
        ("start_latency.p99 < fast", "expected"),
        ("start_latency.p99 < 50 minutes", "expected"),
        ("< 50ms", "expected"),
        ("start_latency.p99 =< 50ms", "expected"),
        ("start_latency.p98 < 50ms", "did you mean 'start_latency.p99'"),
        ("completion.rate > 1000/s", "did you mean 'completions.rate'"),
        ("zzz > 1", "unknown metric 'zzz'"),
        ("start_latency.p99 < 50/s", "does not fit"),
        ("completions.rate > 5ms", "does not fit"),
        ("failed == 0%", "does not fit"),
        ("failed < 1s", "does not fit"),
        ("success_rate >= 99.5", "write a percentage"),
    ],
)
def test_threshold_errors_are_one_line_input_errors(text, fragment):
    with pytest.raises(InputError) as info:
        parse_threshold(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_no_did_you_mean_when_nothing_close():
    with pytest.raises(InputError) as info:
        parse_threshold("qqqqqqqqqq > 1")
    assert "did you mean" not in str(info.value)


def test_multiline_input_still_one_line_error():
    with pytest.raises(InputError) as info:
        parse_threshold("bogus\n< 1")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError):
        parse_threshold(5)  # type: ignore[arg-type]


def test_strict_known_metrics_list():
    known = known_metric_names(["action"])
    assert parse_threshold("step_latency.action.p99 < 1s", known).value == 1000.0
    with pytest.raises(InputError, match="did you mean 'step_latency.action.p99'"):
        parse_threshold("step_latency.actoin.p99 < 1s", known)
    # Without a list, any step type is accepted (types are known only at run time).
    assert parse_threshold("step_latency.whatever.p99 < 1s").metric == "step_latency.whatever.p99"


def test_evaluate_all_and_exit_code():
    ok = parse_thresholds(["failed == 0", "completions.rate > 1000/s"])
    results, code = evaluate_thresholds(ok, METRICS)
    assert code == 0 and all(r.passed for r in results)
    bad = parse_thresholds(["failed == 0", "stuck == 0"])
    results, code = evaluate_thresholds(bad, METRICS)
    assert code == BREACH_EXIT_CODE == 99
    assert [r.passed for r in results] == [True, False] and results[1].actual == 2


def test_combine_scenario_defaults_with_cli():
    defaults = parse_thresholds(["failed == 0", "start_latency.p99 < 50ms"])
    cli = parse_thresholds(["start_latency.p99 < 80ms"])
    combined = combine_thresholds(defaults, cli)
    assert [str(t) for t in combined] == ["failed == 0", "start_latency.p99 < 80ms"]


# --- compare ----------------------------------------------------------------------


def test_directions():
    assert higher_is_better("start_latency.p99") is False
    assert higher_is_better("step_latency.llm.max") is False
    assert higher_is_better("start_latency.count") is None
    assert higher_is_better("failed") is False and higher_is_better("retries_per_1000") is False
    assert higher_is_better("retries.deadlock") is False and higher_is_better("retries_per_1000.lock_busy") is False
    assert higher_is_better("completions.rate") is True and higher_is_better("success_rate") is True
    assert higher_is_better("duration_s") is None


def test_compare_changes_and_regressions_both_directions():
    base = {"start_latency.p99": 40.0, "completions.rate": 1000.0, "success_rate": 1.0, "duration_s": 60.0}
    cur = {"start_latency.p99": 50.0, "completions.rate": 800.0, "success_rate": 0.999, "duration_s": 90.0}
    rows = {c.metric: c for c in compare(base, cur, tolerance_pct=5)}
    assert rows["start_latency.p99"].change_pct == pytest.approx(25.0)
    assert rows["start_latency.p99"].regression is True  # lower is better, went up
    assert rows["completions.rate"].change_pct == pytest.approx(-20.0)
    assert rows["completions.rate"].regression is True  # higher is better, went down
    assert rows["success_rate"].regression is False  # -0.1% within tolerance
    assert rows["duration_s"].regression is False  # informational
    # Improvements never regress.
    assert regressions(cur, base, tolerance_pct=0) == []


def test_compare_improvements_are_not_regressions():
    base = {"start_latency.p99": 50.0, "completions.rate": 800.0}
    cur = {"start_latency.p99": 40.0, "completions.rate": 1000.0}
    assert regressions(base, cur, 0) == []


def test_tolerance_boundary():
    base, cur = {"e2e_latency.p50": 100.0}, {"e2e_latency.p50": 110.0}
    assert regressions(base, cur, 10) == []
    assert [c.metric for c in regressions(base, cur, 9.9)] == ["e2e_latency.p50"]


def test_zero_baselines_are_guarded():
    base = {"failed": 0, "completions.rate": 0.0, "stuck": 0, "retries_per_1000": 0.0}
    cur = {"failed": 3, "completions.rate": 500.0, "stuck": 0, "retries_per_1000": 0.0}
    rows = {c.metric: c for c in compare(base, cur, 50)}
    assert all(c.change_pct is None for c in rows.values())
    assert rows["failed"].regression is True  # 0 -> 3 is a regression at any tolerance
    assert rows["completions.rate"].regression is False  # cannot regress from 0
    assert rows["stuck"].regression is False and rows["retries_per_1000"].regression is False


def test_missing_and_none_values():
    rows = {c.metric: c for c in compare({"failed": 1, "e2e_latency.p99": None}, {"stuck": 2, "e2e_latency.p99": 5.0})}
    assert rows["failed"].current is None and rows["failed"].regression is False
    assert rows["stuck"].baseline is None and rows["stuck"].change_pct is None
    assert rows["e2e_latency.p99"].regression is False
    assert list(rows) == ["failed", "e2e_latency.p99", "stuck"]


def test_exit_decision():
    base, cur = {"start_latency.p99": 40.0}, {"start_latency.p99": 44.0}  # +10%
    assert regression_exit_code(base, cur, None) == 0
    assert regression_exit_code(base, cur, 15) == 0
    assert regression_exit_code(base, cur, 5) == REGRESSION_EXIT_CODE
    assert REGRESSION_EXIT_CODE not in (0, BREACH_EXIT_CODE)
    with pytest.raises(InputError):
        compare(base, cur, -1)


def test_results_comparison_and_its_exit_code():
    from wfctl.stress.compare import compare_results, comparisons_exit_code

    def result(p99):
        return {"scenarios": [{"name": "s", "variants": [{"name": "main", "metrics": {"start_latency.p99": p99}}]}]}

    worse = compare_results(result(10.0), result(12.0), 10.0)
    assert [(c.scenario, c.variant, [r.metric for r in c.regressions]) for c in worse] == [
        ("s", "main", ["start_latency.p99"])]
    assert comparisons_exit_code(worse, 10.0) == REGRESSION_EXIT_CODE
    assert comparisons_exit_code(worse, None) == 0  # without --fail-on-regression nothing fails
    assert comparisons_exit_code(compare_results(result(10.0), result(10.5), 10.0), 10.0) == 0
    other = {"scenarios": [{"name": "t", "variants": [{"name": "main", "metrics": {}}]}]}
    with pytest.raises(InputError, match="no scenario and variant in common"):
        compare_results(result(10.0), other)
