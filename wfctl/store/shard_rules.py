"""The rules every shard store follows whatever its database (each backend keeps its own SQL).

Stored rows are read in one column order: a run row as ``_RUN_FIELDS`` of the backends lists it
(:func:`run_record`), a journal row as ``execution_id, seq, step_slug, step_type, attempt,
status, port, output, error, started_at, finished_at`` (:func:`journal_record`). Journal rows are
written as the tuples :func:`journal_params` makes, which :func:`ended_by` reads.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from ..errors import InputError
from .base import (COMPLETED, FAILED, FINISHED, JOURNAL_STATUSES, PENDING, RUNNING, STARTED, JournalRecord,
                   JournalRow, NewRun, RunRecord, StepCommit)
from .payload import check_size, decode, encode

Encoded = tuple[str | None, int]
"""A value as :func:`~wfctl.store.payload.encode` makes it: ``(JSON text or None, size in UTF-8 bytes)``."""


def checked_statuses(statuses: Collection[str] | None, allowed: tuple[str, ...], action: str) -> tuple[str, ...]:
    """``statuses`` (None: every one of ``allowed``); InputError naming ``action`` for one not allowed."""
    if statuses is None:
        return allowed
    for status in statuses:
        if status not in allowed:
            raise InputError(f"cannot {action} runs with status {status!r} "
                             f"(expected one of {', '.join(allowed)})")
    return tuple(statuses)


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``, in order."""
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def run_record(row: Sequence[Any], shard: int) -> RunRecord:
    """The run of a stored row (input, output and state decoded)."""
    return RunRecord(row[0], row[1], shard, row[2], decode(row[3]), decode(row[4]), row[5], decode(row[6]), *row[7:])


def journal_record(row: Sequence[Any]) -> JournalRecord:
    """The journal record of a stored row (its output decoded)."""
    return JournalRecord(*row[:7], decode(row[7]), *row[8:])


def first_step(run: NewRun) -> str | None:
    """The step a run to create starts at (its state's ``current``)."""
    return run.state.get("current") if run.state else None


def new_run_values(run: NewRun, max_payload_bytes: int) -> tuple[Encoded, Encoded]:
    """A run to create, checked before any write: its encoded input and state."""
    return (encode(run.input, f"input of run {run.execution_id}", max_payload_bytes),
            encode(run.state, f"state of run {run.execution_id}", max_payload_bytes))


def created_record(run: NewRun, shard: int, now: float) -> RunRecord:
    """The record of ``run`` as created on ``shard`` at ``now`` (pending, first attempt, not started)."""
    return RunRecord(run.execution_id, run.definition_id, shard, PENDING, run.input, None, None, run.state,
                     first_step(run), 1,
                     run.idempotency_key, run.timeout_s, now, None, None, now, None, run.slot_time,
                     run.definition_version)


def check_start(execution_id: str, input_json: Encoded, state_json: Encoded, max_payload_bytes: int) -> None:
    """PayloadTooLargeError, before anything is written, when a start's input or state is too large."""
    check_size(input_json[1], f"input of run {execution_id}", max_payload_bytes)
    check_size(state_json[1], f"state of run {execution_id}", max_payload_bytes)


def holders(wanted: Iterable[tuple[str, str | None]], found: Iterable[Sequence[Any]]) -> dict[str, str]:
    """For each ``(execution id, idempotency key)`` of ``wanted`` that is taken: the id of the run
    holding it, among the ``(execution_id, idempotency_key)`` rows ``found``: the run with that id
    first, else the one with that key."""
    ids: set[str] = set()
    by_key: dict[str, str] = {}
    for execution_id, key in found:
        ids.add(execution_id)
        if key is not None:
            by_key[key] = execution_id
    taken = {}
    for execution_id, key in wanted:
        if execution_id in ids:
            taken[execution_id] = execution_id
        elif key in by_key:
            taken[execution_id] = by_key[key]
    return taken


def as_float(value: float | None) -> float | None:
    """A time or duration as a float (PostgreSQL's ``float8[]`` arrays refuse lists mixing int and float)."""
    return None if value is None else float(value)


def journal_params(execution_id: str, rows: Sequence[JournalRow], max_payload_bytes: int) -> list[tuple]:
    """Journal rows checked and encoded before any write: ``(step_slug, step_type, attempt, status,
    port, error, started_at, finished_at, output)`` (times as floats), ``seq`` left to the write."""
    params = []
    for row in rows:
        if row.status not in JOURNAL_STATUSES:
            raise ValueError(f"journal status must be one of {JOURNAL_STATUSES}, got {row.status!r}")
        output, _ = encode(row.output, f"output of step {row.step_slug!r} of run {execution_id}", max_payload_bytes)
        params.append((row.step_slug, row.step_type, row.attempt, row.status, row.port, row.error,
                       as_float(row.started_at), as_float(row.finished_at), output))
    return params


def ended_by(last: Sequence[Any] | None, params: list[tuple], end: float | None) -> list[tuple]:
    """The journal rows (:func:`journal_params`) of a run that finished at ``end`` which are still
    recorded: the steps done by then, and the result of the side-effecting step journaled as started
    (in flight when the run was canceled; ``last`` is the run's last journal row as ``(step_slug,
    attempt, status)``, None when it has none); nothing computed later."""
    in_flight = (last[0], last[1]) if last is not None and last[2] == STARTED else None
    kept = []
    for p in params:
        done = p[7] if p[7] is not None else p[6]
        if (p[0], p[2]) == in_flight:
            in_flight = None
        elif not (end is None or done is None or done <= end):
            continue
        kept.append(p)
    return kept


def commit_values(update: StepCommit, max_payload_bytes: int) -> tuple[Encoded, Encoded, list[tuple]]:
    """A run's transition checked before any write (ValueError for a status it cannot commit or a
    finished run re-queued): its encoded state and output, and its journal rows (:func:`journal_params`)."""
    eid = update.execution_id
    if update.status not in (RUNNING, COMPLETED, FAILED):
        raise ValueError(f"a step commit's status must be running, completed or failed, got {update.status!r}")
    if update.status != RUNNING and update.ready_at is not None:
        raise ValueError(f"run {eid} is {update.status}: it cannot be re-queued")
    return (encode(update.state, f"state of run {eid}", max_payload_bytes),
            encode(update.output, f"output of run {eid}", max_payload_bytes),
            journal_params(eid, update.journal, max_payload_bytes))


def retry_values(commit: StepCommit, max_payload_bytes: int) -> tuple[Encoded, Encoded, list[tuple]]:
    """A retry's commit (:meth:`~wfctl.store.base.ShardStore.retry_run`) checked before any write:
    a running, queued run; its values as :func:`commit_values` gives them."""
    if commit.status != RUNNING or commit.ready_at is None:
        raise ValueError(f"a retry of run {commit.execution_id} must leave it running and queued")
    return commit_values(commit, max_payload_bytes)


def retry_applies(found: Sequence[Any] | None, expected: tuple[str, float]) -> bool:
    """Whether a retry applies to a run stored with ``found`` = ``(status, updated_at)`` (None: gone):
    only to a finished run that still has the status and ``updated_at`` the retry was planned on."""
    return (found is not None and expected[0] in FINISHED
            and (found[0], float(found[1])) == (expected[0], float(expected[1])))
