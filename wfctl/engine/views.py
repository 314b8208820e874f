"""Runs and journals as JSON for people (``status``, ``list``), and the checks of what they are asked."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from ..errors import InputError
from ..store import JournalRecord, RunRecord
from ..store.base import STARTED


def shown(text: str, limit: int = 80) -> str:
    """``text`` for a one-line message: escaped like a Python string and shortened."""
    escaped = repr(text)[1:-1] if isinstance(text, str) else repr(text)
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as JSON (without its journal). ``slot_time`` (ISO 8601 UTC) and ``fire_lag_ms``
    (``created_at - slot_time`` in ms) are set for a run started for a schedule slot, null for
    a run started by hand. ``definition_version`` is the version the run is pinned to (null:
    a run stored before versions, which follows the current version)."""
    scheduled = run.slot_time is not None
    return {
        "execution_id": run.execution_id, "definition_id": run.definition_id,
        "definition_version": run.definition_version, "shard": run.shard,
        "status": run.status, "current_step": run.current_step, "input": run.input, "output": run.output,
        "error": run.error, "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at), "slot_time": iso(run.slot_time) if scheduled else None,
        "fire_lag_ms": round((run.created_at - run.slot_time) * 1000.0, 3) if scheduled else None,
    }


def fold_steps(journal: Iterable[JournalRecord]) -> Iterator[dict[str, Any]]:
    """The journal rows (oldest first, read as they come) as JSON steps: a side-effecting
    step's ``started`` row is folded into its result.

    A ``started`` row with no result right after it is ``started`` when it is the last row (the
    step is in flight) and ``interrupted`` otherwise (its worker died; the step was run again).
    """
    prev = row = None
    for nxt in itertools.chain(journal, [None]):
        if row is not None and not (row.status == STARTED and nxt is not None
                                    and (nxt.step_slug, nxt.attempt) == (row.step_slug, row.attempt)):
            status = row.status
            started_at = row.started_at
            if prev is not None and prev.status == STARTED and (prev.step_slug, prev.attempt) == (row.step_slug, row.attempt):
                started_at = prev.started_at
            elif status == STARTED and nxt is not None:
                status = "interrupted"
            yield {"slug": row.step_slug, "type": row.step_type, "status": status, "attempt": row.attempt,
                   "port": row.port, "output": row.output, "error": row.error,
                   "started_at": iso(started_at), "finished_at": iso(row.finished_at)}
        prev, row = row, nxt


#: The most runs :meth:`Engine.list` returns at once (and the most steps ``status`` shows).
MAX_LIST_LIMIT = 1_000_000_000


def check_limit(value: int, what: str) -> int:
    """``value`` if it is an int in 1..:data:`MAX_LIST_LIMIT`; else InputError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIST_LIMIT:
        raise InputError(f"{what}: expected a whole number from 1 to {MAX_LIST_LIMIT}, got {value!r}")
    return value
