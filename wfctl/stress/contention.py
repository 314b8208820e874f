"""Retries and wait time by cause in stress results: metric names, labels, and older names.

A shard counts the writes it retried and the time it waited by cause
(:data:`wfctl.store.base.RETRY_CAUSES`; SQLite's only one is ``lock_busy``). A result carries
``retries`` (all causes), ``retries_per_1000`` (per 1000 started runs) and ``wait_ms``, plus
``retries.<cause>`` and ``retries_per_1000.<cause>`` for every cause the shards reported.

Results, thresholds and ``--metrics`` globs written before causes existed use ``lock_retries``,
``lock_retries_per_1000`` and ``lock_wait_ms``, and per shard ``lock_retries``, ``lock_wait_ms``,
``file_bytes`` and ``wal_bytes`` (every such result ran on SQLite: its retries were ``lock_busy``).
They are mapped to today's names when read, here only: :func:`current_name` (a threshold's or a
glob's metric) and :func:`upgrade_result` (a baseline result).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from ..store.base import LOCK_BUSY, RETRY_CAUSES

RETRIES = "retries"
RETRIES_PER_1000 = "retries_per_1000"
WAIT_MS = "wait_ms"
#: The figures reported per cause too (``retries.lock_busy``, ``retries_per_1000.lock_busy``).
BY_CAUSE = (RETRIES, RETRIES_PER_1000)

#: Metric names before retries had causes -> today's.
OLD_METRIC_NAMES = {"lock_retries": RETRIES, "lock_retries_per_1000": RETRIES_PER_1000, "lock_wait_ms": WAIT_MS}


def cause_metric_names(causes: Iterable[str] = RETRY_CAUSES) -> list[str]:
    """``retries.<cause>`` and ``retries_per_1000.<cause>`` for each of ``causes``."""
    return [f"{base}.{cause}" for base in BY_CAUSE for cause in causes]


def split_cause(metric: str) -> tuple[str, str | None]:
    """``retries.lock_busy`` -> ``("retries", "lock_busy")``; any other name -> ``(name, None)``."""
    base, _, cause = metric.partition(".")
    return (base, cause) if base in BY_CAUSE and cause else (metric, None)


def retry_metrics(retries: Mapping[str, int], started: int) -> dict[str, float | int]:
    """The flat retry metrics of ``retries`` (cause -> count) over ``started`` runs."""
    def per_1000(count: int) -> float:
        return count * 1000.0 / started if started else 0.0

    total = sum(retries.values())
    out: dict[str, float | int] = {RETRIES: total, RETRIES_PER_1000: per_1000(total)}
    for cause in sorted(retries):
        out[f"{RETRIES}.{cause}"] = retries[cause]
        out[f"{RETRIES_PER_1000}.{cause}"] = per_1000(retries[cause])
    return out


def metric_value(metrics: Mapping[str, Any], metric: str) -> Any:
    """``metrics[metric]``; a cause no shard reported retried nothing: 0 once the total is known."""
    value = metrics.get(metric)
    base, cause = split_cause(metric)
    if value is None and cause is not None and metrics.get(base) is not None:
        return 0
    return value


def causes_of(metric_names: Iterable[str]) -> list[str]:
    """The causes of the ``retries.<cause>`` names among ``metric_names``, in order."""
    found: list[str] = []
    for name in metric_names:
        base, cause = split_cause(name)
        if base == RETRIES and cause is not None and cause not in found:
            found.append(cause)
    return found


def cause_label(cause: str) -> str:
    """A cause for people: ``lock_busy`` -> "lock busy"."""
    return cause.replace("_", " ")


def retries_label(causes: Iterable[str], what: str = "retries") -> str:
    """``what`` with its cause when there is exactly one: "retries (lock busy)"; else ``what``."""
    causes = list(causes)
    return f"{what} ({cause_label(causes[0])})" if len(causes) == 1 else what


def current_name(metric: str) -> str:
    """Today's name of a metric written with an old one (``lock_retries_per_1000`` -> ``retries_per_1000``)."""
    return OLD_METRIC_NAMES.get(metric, metric)


def current_globs(globs: Iterable[str], known: Iterable[str]) -> list[str]:
    """``--metrics`` globs with old names read as today's: a glob that matches no ``known`` name
    but matches old names (``lock_*``) stands for their new names."""
    known = list(known)
    out: list[str] = []
    for glob in globs:
        old = [name for name in OLD_METRIC_NAMES if fnmatch.fnmatchcase(name, glob)]
        if old and not fnmatch.filter(known, glob):
            out += [OLD_METRIC_NAMES[name] for name in old if OLD_METRIC_NAMES[name] not in out]
        else:
            out.append(glob)
    return out


def _upgrade_metrics(metrics: Any) -> None:
    """Old metric names (of a variant, a repetition or a spread) -> today's, with the lock_busy share."""
    if not isinstance(metrics, dict):
        return
    for old, new in OLD_METRIC_NAMES.items():
        if old in metrics:
            value = metrics.pop(old)
            metrics.setdefault(new, value)
            if new in BY_CAUSE:
                metrics.setdefault(f"{new}.{LOCK_BUSY}", value)


def _upgrade_shard(shard: Any) -> None:
    if not isinstance(shard, dict) or "lock_retries" not in shard:
        return
    shard[RETRIES] = {LOCK_BUSY: shard.pop("lock_retries")}
    shard[WAIT_MS] = {LOCK_BUSY: shard.pop("lock_wait_ms", 0.0)}
    details = {key: shard.pop(key) for key in ("file_bytes", "wal_bytes") if key in shard}
    shard["size_bytes"] = sum(v for v in details.values() if isinstance(v, (int, float)))
    shard["details"] = details


def upgrade_result(result: dict) -> dict:
    """``result`` (a ``wfctl stress run --json`` document) with old metric and shard field names
    replaced by today's, in place; a result with today's names is left as it is."""
    for scenario in result.get("scenarios") or []:
        if not isinstance(scenario, dict):
            continue
        for variant in scenario.get("variants") or []:
            if not isinstance(variant, dict):
                continue
            _upgrade_metrics(variant.get("metrics"))
            for shard in variant.get("shards") or []:
                _upgrade_shard(shard)
            repeats = variant.get("repeats")
            if isinstance(repeats, dict):
                _upgrade_metrics(repeats.get("spread"))
                for run in repeats.get("runs") or []:
                    if isinstance(run, dict):
                        _upgrade_metrics(run.get("metrics"))
        for row in (scenario.get("comparison") or {}).get("rows") or []:
            if isinstance(row, dict) and isinstance(row.get("metric"), str):
                row["metric"] = current_name(row["metric"])
        for threshold in scenario.get("thresholds") or []:
            if isinstance(threshold, dict) and isinstance(threshold.get("metric"), str):
                threshold["metric"] = current_name(threshold["metric"])
    return result
