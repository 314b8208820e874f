"""Repetitions of a scenario's variants: their order, their median and spread, and ratios per repetition.

``--repeat N`` (or a scenario's ``repeat``) runs every variant N times. The order alternates
(A B C, C B A, A B C, ...) so a machine that slowly gets busier or quieter does not favour
the variant that always runs first (:func:`run_order`). Each variant's repetitions are then
folded into one variant entry (:func:`aggregate`):

* ``metrics``: the median of every figure over the repetitions (for an even N, the lower
  middle value of a count, the mean of the two middle values otherwise);
* ``repeats``: ``count``, ``spread`` (``{metric: {"min", "max"}}`` over the repetitions) and
  ``runs`` (each repetition's own metrics, start time, duration and machine load);
* ``timeline``, ``shards`` and ``slots`` of the repetition whose ``duration_s`` is the median
  (``repeats.representative``); ``errors`` summed; the cross-check differences of every
  repetition, each prefixed with its repetition;
* ``machine``: the median CPU busy of the repetitions, the busiest interval of any, and
  ``saturated_runs``, the repetitions that ran on a saturated machine.

A comparison scenario's ratios are computed per repetition (each variant against the
baseline variant of the same sweep, which ran next to it), then their median and spread
(:func:`ratio_stats`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, TypeVar

from .metrics import as_number

T = TypeVar("T")


def run_order(variants: Sequence[T], repeat: int) -> list[tuple[int, T]]:
    """(repetition, variant) in running order: forward on even repetitions, backward on odd ones."""
    order = []
    for rep in range(repeat):
        sweep = list(variants) if rep % 2 == 0 else list(reversed(variants))
        order += [(rep, v) for v in sweep]
    return order


def median(values: Sequence[object]) -> float | int | None:
    """The median of the numbers among ``values`` (None when there are none); for an even count
    the lower middle value when every value is an integer (a count stays a count), else the mean."""
    numbers = [v for v in values if as_number(v) is not None]
    if not numbers:
        return None
    if all(isinstance(v, int) for v in numbers):
        return statistics.median_low(numbers)  # type: ignore[type-var]
    return statistics.median(numbers)  # type: ignore[type-var]


def spread(values: Sequence[object]) -> dict[str, Any] | None:
    """``{"min", "max"}`` of the numbers among ``values`` (None when there are none)."""
    numbers = [v for v in values if as_number(v) is not None]
    return {"min": min(numbers), "max": max(numbers)} if numbers else None  # type: ignore[type-var]


def _machine(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    loads = [r.get("machine") for r in runs if isinstance(r.get("machine"), dict)]
    if not loads:
        return None
    first = loads[0]
    peaks = [m["cpu_busy_peak"] for m in loads if m.get("cpu_busy_peak") is not None]
    flags = [m.get("saturated") for m in loads if m.get("saturated") is not None]
    busy = median([m.get("cpu_busy") for m in loads])
    return {
        "cpus": first.get("cpus"),
        "processes": first.get("processes"),
        "cpu_busy": None if busy is None else round(busy, 3),
        "cpu_busy_peak": max(peaks) if peaks else None,
        "own_cpu": median([m.get("own_cpu") for m in loads]),
        "runnable_peak": max((m["runnable_peak"] for m in loads if m.get("runnable_peak") is not None), default=None),
        "saturated": any(flags) if flags else None,
        "saturated_runs": sum(1 for f in flags if f),
    }


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One variant entry from its repetitions (``runs``, each a variant entry of one repetition).
    One repetition: that entry with ``repeats`` null."""
    if len(runs) == 1:
        return {**runs[0], "repeats": None}
    names: list[str] = []
    for run in runs:
        names += [m for m in run["metrics"] if m not in names]
    metrics = {m: median([r["metrics"].get(m) for r in runs]) for m in names}
    by_duration = sorted(range(len(runs)), key=lambda k: runs[k]["metrics"].get("duration_s") or 0.0)
    rep = by_duration[(len(runs) - 1) // 2]
    errors: dict[str, int] = {}
    differences = []
    for k, run in enumerate(runs):
        for error in run.get("errors") or []:
            errors[error["message"]] = errors.get(error["message"], 0) + error["count"]
        differences += [f"repetition {k + 1}: {d}" for d in run["crosscheck"]["differences"]]
    entry = dict(runs[rep])
    entry.update(
        duration_s=metrics.get("duration_s", entry["duration_s"]),
        metrics=metrics,
        errors=[{"message": m, "count": n} for m, n in sorted(errors.items(), key=lambda kv: -kv[1])],
        crosscheck={"ok": not differences, "differences": differences},
        machine=_machine(runs),
        started_at=runs[0]["started_at"],
        data_dir=runs[0].get("data_dir"),
        repeats={
            "count": len(runs),
            "representative": rep + 1,
            "spread": {m: spread([r["metrics"].get(m) for r in runs]) for m in names},
            "runs": [{"repetition": k + 1, "started_at": r["started_at"], "duration_s": r["duration_s"],
                      "data_dir": r.get("data_dir"), "machine": r.get("machine"), "metrics": r["metrics"]}
                     for k, r in enumerate(runs)],
        },
    )
    return entry


def repetition_metrics(variant: dict[str, Any]) -> list[dict[str, Any]]:
    """Each repetition's metrics of a variant entry (the entry's own metrics when it ran once)."""
    repeats = variant.get("repeats")
    if isinstance(repeats, dict) and repeats.get("runs"):
        return [r["metrics"] for r in repeats["runs"]]
    return [variant["metrics"]]


def ratio_stats(variant: dict[str, Any], baseline: dict[str, Any], metric: str) -> tuple[float | None, dict | None]:
    """The ratio ``variant / baseline`` of ``metric``: per repetition, then (median, spread);
    the spread is None when either ran once. A repetition where either value is missing or the
    baseline's is 0 has no ratio."""
    mine, base = repetition_metrics(variant), repetition_metrics(baseline)
    if len(mine) != len(base) or len(mine) == 1:
        value, reference = as_number(variant["metrics"].get(metric)), as_number(baseline["metrics"].get(metric))
        return (value / reference if value is not None and reference else None), None
    ratios = []
    for m, b in zip(mine, base):
        value, reference = as_number(m.get(metric)), as_number(b.get(metric))
        if value is not None and reference:
            ratios.append(value / reference)
    if not ratios:
        return None, None
    return statistics.median(ratios), {"min": min(ratios), "max": max(ratios)}
