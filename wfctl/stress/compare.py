"""Compare a stress run's flat metrics against a baseline run's.

``change_pct`` is ``(current - baseline) / |baseline| * 100`` and ``None`` when the
baseline is 0 or either side is missing (divide-by-zero guarded). Each metric knows its
direction: latencies, failures, stuck runs, drops, errors and lock retries are better
lower; rates, counts of completions and success are better higher; other metrics
(sample counts, ``started``, ``duration_s``) are informational and never regress.

A metric regresses when it moves the wrong way by more than ``tolerance_pct``. With a
zero baseline, a lower-is-better metric regresses on any increase (``failed`` 0 -> 1);
a higher-is-better metric cannot. :func:`regression_exit_code` gives the exit decision
for ``--fail-on-regression PCT``: :data:`REGRESSION_EXIT_CODE` (98, distinct from the
threshold breach code 99) if any metric regressed beyond ``PCT``, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wfctl.errors import InputError
from wfctl.stress.metrics import as_number, is_latency_metric

REGRESSION_EXIT_CODE = 98

_LOWER_IS_BETTER = {
    "failed",
    "canceled",
    "stuck",
    "dropped",
    "late",
    "errors.count",
    "lock_retries",
    "lock_retries_per_1000",
    "lock_wait_ms",
    "rejected",
    "slots.duplicates",
    "slots.missed",
    "crosscheck.differences",
}
_HIGHER_IS_BETTER = {
    "completed",
    "completions.count",
    "completions.rate",
    "completions.peak_rate",
    "starts.rate",
    "success_rate",
}


def higher_is_better(metric: str) -> bool | None:
    """True / False for a metric with a direction, None for an informational one."""
    if is_latency_metric(metric):
        return None if metric.endswith(".count") else False
    if metric in _LOWER_IS_BETTER:
        return False
    if metric in _HIGHER_IS_BETTER:
        return True
    return None


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float | int | None
    current: float | int | None
    change_pct: float | None
    regression: bool
    higher_is_better: bool | None = None


def _compare_one(metric: str, base: object, cur: object, tolerance_pct: float) -> Comparison:
    direction = higher_is_better(metric)
    b, c = as_number(base), as_number(cur)
    change = None
    if b is not None and c is not None and b != 0:
        change = (c - b) / abs(b) * 100.0
    regression = False
    if direction is not None and b is not None and c is not None:
        if change is None:  # baseline 0
            regression = direction is False and c > 0
        elif direction is False:
            regression = change > tolerance_pct
        else:
            regression = change < -tolerance_pct
    return Comparison(metric, base, cur, change, regression, direction)  # type: ignore[arg-type]


def compare(
    baseline: Mapping[str, object], current: Mapping[str, object], tolerance_pct: float = 0.0
) -> list[Comparison]:
    """One :class:`Comparison` per metric in either run, baseline order first."""
    if tolerance_pct < 0 or not math.isfinite(tolerance_pct):
        raise InputError(f"regression tolerance must be a non-negative percentage, got {tolerance_pct}")
    metrics = list(baseline) + [m for m in current if m not in baseline]
    return [_compare_one(m, baseline.get(m), current.get(m), tolerance_pct) for m in metrics]


def regressions(
    baseline: Mapping[str, object], current: Mapping[str, object], tolerance_pct: float = 0.0
) -> list[Comparison]:
    return [c for c in compare(baseline, current, tolerance_pct) if c.regression]


def regression_exit_code(
    baseline: Mapping[str, object], current: Mapping[str, object], fail_on_regression_pct: float | None
) -> int:
    """Exit code for ``--fail-on-regression PCT`` (None: the option was not given -> 0)."""
    if fail_on_regression_pct is None:
        return 0
    return REGRESSION_EXIT_CODE if regressions(baseline, current, fail_on_regression_pct) else 0


RESULT_SCHEMA = "wfctl.stress.result/1"


@dataclass(frozen=True)
class VariantComparison:
    """One variant of one scenario present in both runs, metric by metric."""

    scenario: str
    variant: str
    rows: list[Comparison]

    @property
    def regressions(self) -> list[Comparison]:
        return [row for row in self.rows if row.regression]


def load_result(path: str) -> dict:
    """A result written by ``wfctl stress run --json``; one-line InputError otherwise."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the result: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != RESULT_SCHEMA:
        raise InputError(f"{path}: not a wfctl stress result (expected \"schema\": \"{RESULT_SCHEMA}\")")
    return data


def compare_results(baseline: Mapping, current: Mapping, tolerance_pct: float = 0.0) -> list[VariantComparison]:
    """Every (scenario, variant) of ``current`` that ``baseline`` also has, compared metric by metric;
    InputError when they have none in common."""
    base = {(s["name"], v["name"]): v["metrics"] for s in baseline.get("scenarios", []) for v in s.get("variants", [])}
    out = []
    for scenario in current.get("scenarios", []):
        for variant in scenario.get("variants", []):
            metrics = base.get((scenario["name"], variant["name"]))
            if metrics is not None:
                out.append(VariantComparison(scenario["name"], variant["name"],
                                             compare(metrics, variant["metrics"], tolerance_pct)))
    if not out:
        raise InputError("the baseline has no scenario and variant in common with the current result")
    return out


def comparisons_exit_code(comparisons: Sequence[VariantComparison], fail_on_regression_pct: float | None) -> int:
    """Exit code for ``--fail-on-regression PCT`` over :func:`compare_results` (made with that
    tolerance): :data:`REGRESSION_EXIT_CODE` if any metric regressed, else 0 (0 without the option)."""
    if fail_on_regression_pct is None:
        return 0
    return REGRESSION_EXIT_CODE if any(c.regressions for c in comparisons) else 0
