"""k6-style pass/fail thresholds on the flat metric namespace of :mod:`wfctl.stress.metrics`.

Syntax: ``<metric> <op> <number>[unit]`` with ``op`` one of ``< <= > >= == !=`` and
``unit`` one of ``ms``, ``s``, ``/s``, ``%``::

    start_latency.p99 < 50ms
    e2e_latency.p99.9 <= 2s          (p99.9, p(99.9) and p99_9 are the same stat)
    failed == 0
    completions.rate > 1000/s
    success_rate >= 99.5%

Units are normalised to the metric's unit:

* latency stats are in **milliseconds**: ``50ms`` -> 50, ``2s`` -> 2000, a bare number is ms;
* rates (``*.rate``, ``completions.peak_rate``) are **per second**: ``/s`` or bare;
* ``success_rate`` is a **fraction** 0..1: ``99.5%`` -> 0.995; a bare number must be in
  0..1 (a bare ``99.5`` is rejected with a hint to write ``99.5%``);
* ``duration_s`` is in seconds (``s``, ``ms`` or bare);
* ``wait_ms`` is in milliseconds like a latency;
* counts (``failed``, ``*.count``, ``retries_per_1000``, ``retries.lock_busy`` ...) take no unit.

A metric written with its name from before retries had causes (``lock_retries_per_1000``) is
read as today's (``retries_per_1000``, see :mod:`wfctl.stress.contention`). A cause no shard
reported counts as 0 retries (``retries.deadlock == 0`` holds on SQLite).

A threshold whose metric has no value after the run (e.g. a latency percentile with no
samples) does not pass: a CI gate must not pass vacuously. Any breach exits
:data:`BREACH_EXIT_CODE` (99, as in k6).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from wfctl.errors import InputError
from wfctl.store.base import RETRY_CAUSES
from wfctl.stress.contention import WAIT_MS, current_name, metric_value
from wfctl.stress.metrics import LATENCY_STATS, is_latency_metric, is_step_latency_metric, known_metric_names

BREACH_EXIT_CODE = 99

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": lambda a, b: a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "!=": lambda a, b: not (a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)),
    "<": operator.lt,
    ">": operator.gt,
}

_EXPR_RE = re.compile(
    r"""^\s*
    (?P<metric>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_()\-]+(?:\.[0-9]+\)?)?)*)
    \s*(?P<op><=|>=|==|!=|<|>)\s*
    (?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    \s*(?P<unit>ms|s|/s|%)?
    \s*$""",
    re.VERBOSE,
)

_STAT_ALIASES = {"med": "p50", "median": "p50", "avg": "mean", "p100": "max", "p0": "min"}

# Unit kinds and the factor converting each accepted suffix ("" = bare) to the metric unit.
_UNIT_FACTORS: dict[str, dict[str, float]] = {
    "ms": {"": 1.0, "ms": 1.0, "s": 1000.0},
    "rate": {"": 1.0, "/s": 1.0},
    "fraction": {"": 1.0, "%": 0.01},
    "seconds": {"": 1.0, "s": 1.0, "ms": 0.001},
    "count": {"": 1.0},
}
_UNIT_LABEL = {"ms": "ms", "rate": "/s", "fraction": "", "seconds": "s", "count": ""}


def metric_unit_kind(metric: str) -> str:
    """``ms``, ``rate``, ``fraction``, ``seconds`` or ``count``."""
    last = metric.rsplit(".", 1)[-1]
    if is_latency_metric(metric):
        return "count" if last == "count" else "ms"
    if metric == WAIT_MS:
        return "ms"
    if metric == "success_rate":
        return "fraction"
    if metric == "duration_s":
        return "seconds"
    if last in ("rate", "peak_rate"):
        return "rate"
    return "count"


def normalise_metric_name(name: str) -> str:
    """Map stat spellings (``p99.9``, ``p(99.9)``, ``p(95)``, ``med``, ``avg``) and old metric names
    (``lock_retries_per_1000``) to ours."""
    name = current_name(name.strip())
    match = re.match(r"^(.*?)\.p\(?(\d+(?:\.\d+)?)\)?$", name)
    if match:
        base, pct = match.groups()
        stat = "p" + pct.replace(".", "_")
        return f"{base}.{_STAT_ALIASES.get(stat, stat)}"
    head, _, last = name.rpartition(".")
    if head and last in _STAT_ALIASES:
        return f"{head}.{_STAT_ALIASES[last]}"
    return name


@dataclass(frozen=True)
class ThresholdResult:
    passed: bool
    actual: float | int | None
    text: str
    metric: str = ""


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float  # in the metric's unit (see the module docstring)
    text: str  # as the user wrote it, stripped

    def evaluate(self, metrics: Mapping[str, float | int | None]) -> ThresholdResult:
        actual = metric_value(metrics, self.metric)
        if actual is None or (isinstance(actual, float) and math.isnan(actual)):
            return ThresholdResult(False, None, self.text, self.metric)
        return ThresholdResult(bool(_OPS[self.op](actual, self.value)), actual, self.text, self.metric)

    def __str__(self) -> str:
        label = _UNIT_LABEL[metric_unit_kind(self.metric)]
        value = f"{self.value:g}"
        return f"{self.metric} {self.op} {value}{label}"


def _unknown_metric(text: str, name: str, known: list[str]) -> InputError:
    suggestion = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{suggestion[0]}'?" if suggestion else ""
    return InputError(f"threshold {text!r}: unknown metric '{name}'{hint}")


def parse_threshold(text: str, known_metrics: Iterable[str] | None = None) -> Threshold:
    """Parse one threshold expression; raise :class:`InputError` (one line) if invalid.

    With ``known_metrics`` None the known names are :func:`known_metric_names` (with every retry
    cause) plus ``step_latency.<any type>.<stat>``; a given list is used strictly.
    """
    if not isinstance(text, str):
        raise InputError(f"threshold must be a string, got {type(text).__name__}")
    stripped = " ".join(text.split())
    match = _EXPR_RE.match(stripped)
    if not match:
        raise InputError(
            f"threshold {stripped!r}: expected '<metric> <op> <number>[unit]' with op one of"
            " < <= > >= == != and unit one of ms, s, /s, % (e.g. 'start_latency.p99 < 50ms')"
        )
    name = normalise_metric_name(match["metric"])
    if known_metrics is None:
        known = known_metric_names(causes=RETRY_CAUSES, server=True)
        ok = name in known or is_step_latency_metric(name)
    else:
        known = list(known_metrics)
        ok = name in known
    if not ok:
        raise _unknown_metric(stripped, name, known)
    kind = metric_unit_kind(name)
    unit = match["unit"] or ""
    factors = _UNIT_FACTORS[kind]
    if unit not in factors:
        allowed = ", ".join(repr(u) for u in factors if u) or "no unit"
        raise InputError(
            f"threshold {stripped!r}: unit '{unit}' does not fit metric '{name}' (allowed: {allowed})"
        )
    value = float(match["value"]) * factors[unit]
    if kind == "fraction" and not unit and not 0.0 <= value <= 1.0:
        raise InputError(
            f"threshold {stripped!r}: '{name}' is a fraction 0..1; write a percentage with '%'"
            f" (e.g. {match['value']}%)"
        )
    return Threshold(name, match["op"], value, stripped)


def parse_thresholds(texts: Iterable[str], known_metrics: Iterable[str] | None = None) -> list[Threshold]:
    known = None if known_metrics is None else list(known_metrics)
    return [parse_threshold(t, known) for t in texts]


def combine_thresholds(defaults: Iterable[Threshold], overrides: Iterable[Threshold]) -> list[Threshold]:
    """Scenario-file defaults, with any metric named on the command line replaced there."""
    overrides = list(overrides)
    overridden = {t.metric for t in overrides}
    return [t for t in defaults if t.metric not in overridden] + overrides


def evaluate_thresholds(
    thresholds: Iterable[Threshold], metrics: Mapping[str, float | int | None]
) -> tuple[list[ThresholdResult], int]:
    """Results in order, and the exit code: 0, or :data:`BREACH_EXIT_CODE` on any breach."""
    results = [t.evaluate(metrics) for t in thresholds]
    code = BREACH_EXIT_CODE if any(not r.passed for r in results) else 0
    return results, code


__all__ = [
    "BREACH_EXIT_CODE",
    "LATENCY_STATS",
    "Threshold",
    "ThresholdResult",
    "combine_thresholds",
    "evaluate_thresholds",
    "metric_unit_kind",
    "normalise_metric_name",
    "parse_threshold",
    "parse_thresholds",
]
