"""Compare a stress run's flat metrics against a baseline run's, judging changes against noise.

``change_pct`` is ``(current - baseline) / |baseline| * 100`` and ``None`` when the
baseline is 0 or either side is missing (divide-by-zero guarded). Each metric knows its
direction: latencies, failures, stuck runs, drops, errors, retries and wait time are better
lower; rates, counts of completions and success are better higher; other metrics
(sample counts, ``started``, ``duration_s``) are informational and never regress.

A metric *regresses* only when it moved the wrong way by more than all of:

* the relative tolerance ``tolerance_pct`` (with a zero baseline, a lower-is-better
  metric moves "beyond" it on any increase: ``failed`` 0 -> 1);
* the absolute floor of its kind (:func:`absolute_floor`: 1 ms for latencies, 1/s for
  rates, 10 per 1,000 starts for retries (of any cause), 0.1 % for the success rate, nothing for
  failures), so a 0.3 ms -> 0.9 ms latency is never a regression by its percentage alone;
* when both results have repetitions, the other result's range: the current repetitions
  must all be worse than every baseline repetition (the ranges do not overlap).

An improvement is judged by the same rules. :func:`compare_results` compares the headline
metrics (:data:`HEADLINE_METRICS`) unless ``metrics`` globs choose others;
:func:`comparisons_exit_code` gives :data:`REGRESSION_EXIT_CODE` (98, distinct from the
threshold breach code 99) for ``--fail-on-regression PCT`` when anything regressed.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wfctl.errors import InputError
from wfctl.store.base import RETRY_CAUSES
from wfctl.stress.contention import (RETRIES, RETRIES_PER_1000, WAIT_MS, current_globs, split_cause,
                                     upgrade_result)
from wfctl.stress.metrics import as_number, is_latency_metric, known_metric_names

REGRESSION_EXIT_CODE = 98

_LOWER_IS_BETTER = {
    "failed",
    "canceled",
    "stuck",
    "dropped",
    "late",
    "errors.count",
    RETRIES,
    RETRIES_PER_1000,
    WAIT_MS,
    "rejected",
    "slots.duplicates",
    "slots.missed",
    "crosscheck.differences",
    "server.lock_waits",
    "server.lock_wait_s",
    "server.lock_waits_per_1000",
    "server.rollbacks",
    "server.deadlocks",
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
    metric = split_cause(metric)[0]  # retries.<cause>: as retries
    if metric in _LOWER_IS_BETTER:
        return False
    if metric in _HIGHER_IS_BETTER:
        return True
    return None


#: What ``compare`` and ``--compare`` look at unless ``--metrics`` says otherwise.
HEADLINE_METRICS = (
    "completions.rate",
    "starts.rate",
    "start_latency.p50",
    "start_latency.p99",
    "e2e_latency.p50",
    "e2e_latency.p99",
    "fire_lag.p50",
    "fire_lag.p99",
    "failed",
    "stuck",
    RETRIES_PER_1000,
)
#: The relative tolerance when no ``--fail-on-regression`` is given (changes beyond it are marked
#: "worse", never "REGRESSION", and the exit code stays 0).
DEFAULT_TOLERANCE_PCT = 10.0

_FLOORS = {RETRIES_PER_1000: 10.0, RETRIES: 10.0, WAIT_MS: 10.0, "success_rate": 0.001}


def absolute_floor(metric: str) -> float:
    """The smallest change of ``metric`` that can count as a regression or improvement, in its unit:
    1 ms for latencies, 1/s for rates, 10 for retries (of any cause, and per 1,000 starts) and wait
    ms, 0.001 (0.1 %) for the success rate, 0 for counts such as ``failed``."""
    base = split_cause(metric)[0]
    if base in _FLOORS:
        return _FLOORS[base]
    if is_latency_metric(metric):
        return 1.0
    if metric.endswith((".rate", ".peak_rate")):
        return 1.0
    return 0.0


Range = tuple[float, float]


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float | int | None
    current: float | int | None
    change_pct: float | None
    regression: bool
    higher_is_better: bool | None = None
    improved: bool = False
    #: Why a move the wrong way beyond the tolerance is not a regression (noise), else None.
    note: str | None = None
    baseline_range: Range | None = None
    current_range: Range | None = None


def _beyond(metric: str, gain: float, reference: float, tolerance_pct: float,
            better_range: Range | None, worse_range: Range | None, direction: bool) -> tuple[bool, str | None]:
    """Whether a move by ``gain`` (> 0: towards ``better_range``'s side) from ``reference`` passes the
    tolerance, the floor and the ranges; and the reason when it passed only the tolerance."""
    if gain <= 0 or (reference != 0 and gain / abs(reference) * 100.0 <= tolerance_pct):
        return False, None
    floor = absolute_floor(metric)
    if gain <= floor:
        return False, f"within the noise floor ({floor:g})"
    if better_range is not None and worse_range is not None:
        low, high = (worse_range, better_range) if direction else (better_range, worse_range)
        if low[1] >= high[0]:  # the lower range reaches into the higher one
            return False, "the repetitions' ranges overlap"
    return True, None


def _compare_one(metric: str, base: object, cur: object, tolerance_pct: float,
                 base_range: Range | None = None, cur_range: Range | None = None) -> Comparison:
    direction = higher_is_better(metric)
    b, c = as_number(base), as_number(cur)
    change = None
    if b is not None and c is not None and b != 0:
        change = (c - b) / abs(b) * 100.0
    regression = improved = False
    note = None
    if direction is not None and b is not None and c is not None:
        gain = (c - b) if direction else (b - c)  # > 0: the current value is better
        improved, _ = _beyond(metric, gain, b, tolerance_pct, cur_range, base_range, direction)
        regression, note = _beyond(metric, -gain, b, tolerance_pct, base_range, cur_range, direction)
    return Comparison(metric, base, cur, change, regression, direction, improved, note,  # type: ignore[arg-type]
                      base_range, cur_range)


def compare(
    baseline: Mapping[str, object], current: Mapping[str, object], tolerance_pct: float = 0.0, *,
    baseline_spread: Mapping[str, object] | None = None, current_spread: Mapping[str, object] | None = None,
    metrics: Sequence[str] | None = None,
) -> list[Comparison]:
    """One :class:`Comparison` per metric (``metrics``, else every metric in either run, baseline
    order first). ``*_spread``: each run's ``{metric: {"min", "max"}}`` over its repetitions; the
    ranges count only when both are given."""
    if tolerance_pct < 0 or not math.isfinite(tolerance_pct):
        raise InputError(f"regression tolerance must be a non-negative percentage, got {tolerance_pct}")
    if metrics is None:
        metrics = list(baseline) + [m for m in current if m not in baseline]
    both = baseline_spread is not None and current_spread is not None
    return [_compare_one(m, baseline.get(m), current.get(m), tolerance_pct,
                         _range(baseline_spread, m) if both else None, _range(current_spread, m) if both else None)
            for m in metrics]


def _range(spread: Mapping[str, object] | None, metric: str) -> Range | None:
    item = (spread or {}).get(metric)
    if not isinstance(item, Mapping):
        return None
    low, high = as_number(item.get("min")), as_number(item.get("max"))
    return (low, high) if low is not None and high is not None else None


def metric_globs(texts: Iterable[str] | None) -> list[str] | None:
    """``--metrics`` values (repeatable, comma-separated; ``all`` = every metric) as globs; None
    when none was given (the headline metrics). Old metric names (``lock_retries_per_1000``) are
    read as today's."""
    globs = [g.strip() for text in texts or () for g in text.split(",") if g.strip()]
    if not globs:
        return None
    known = known_metric_names(causes=RETRY_CAUSES, server=True)
    return current_globs(["*" if g == "all" else g for g in globs], known)


def check_metric_globs(globs: Sequence[str] | None, names: Iterable[str] = ()) -> None:
    """InputError for a glob that matches no metric (the known ones, or ``names`` from a result)."""
    known = [*known_metric_names(causes=RETRY_CAUSES, server=True), *names]
    for glob in globs or ():
        if glob.startswith("step_latency.") or fnmatch.filter(known, glob):
            continue
        raise InputError(f"--metrics: '{glob}' matches no metric (e.g. 'completions.rate', 'start_latency.p*', "
                         f"'all'; see docs/stress.md)")


def select_metrics(globs: Sequence[str] | None, *runs: Mapping[str, object]) -> list[str]:
    """The metrics to compare: those of ``runs`` matching ``globs`` (in the runs' order), or the
    headline metrics (:data:`HEADLINE_METRICS`); metrics without a value in any run are left out."""
    present = [m for run in runs for m in run if as_number(run.get(m)) is not None]
    if globs is None:
        return [m for m in HEADLINE_METRICS if m in present]
    out: list[str] = []
    for m in present:
        if m not in out and any(fnmatch.fnmatchcase(m, g) for g in globs):
            out.append(m)
    return out


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
    """A result written by ``wfctl stress run --json`` (by any version: old metric and shard field
    names are read as today's, :func:`wfctl.stress.contention.upgrade_result`); one-line InputError
    otherwise."""
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
    return upgrade_result(data)


def _spread(variant: Mapping) -> Mapping | None:
    repeats = variant.get("repeats")
    return repeats.get("spread") if isinstance(repeats, Mapping) else None


def compare_results(baseline: Mapping, current: Mapping, tolerance_pct: float = DEFAULT_TOLERANCE_PCT,
                    metrics: Sequence[str] | None = None) -> list[VariantComparison]:
    """Every (scenario, variant) of ``current`` that ``baseline`` also has, compared on the metrics
    ``metrics`` globs select (default: the headline metrics), with the repetitions' ranges when
    both have them; InputError when they have no variant in common."""
    base = {(s["name"], v["name"]): v for s in baseline.get("scenarios", []) for v in s.get("variants", [])}
    out = []
    for scenario in current.get("scenarios", []):
        for variant in scenario.get("variants", []):
            before = base.get((scenario["name"], variant["name"]))
            if before is not None:
                names = select_metrics(metrics, before["metrics"], variant["metrics"])
                rows = compare(before["metrics"], variant["metrics"], tolerance_pct, metrics=names,
                               baseline_spread=_spread(before), current_spread=_spread(variant))
                out.append(VariantComparison(scenario["name"], variant["name"], rows))
    if not out:
        raise InputError("the baseline has no scenario and variant in common with the current result")
    return out


def comparisons_exit_code(comparisons: Sequence[VariantComparison], fail_on_regression_pct: float | None) -> int:
    """Exit code for ``--fail-on-regression PCT`` over :func:`compare_results` (made with that
    tolerance): :data:`REGRESSION_EXIT_CODE` if any metric regressed, else 0 (0 without the option)."""
    if fail_on_regression_pct is None:
        return 0
    return REGRESSION_EXIT_CODE if any(c.regressions for c in comparisons) else 0
