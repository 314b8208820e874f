"""The PostgreSQL shard store: one schema per shard (see :mod:`.schema` for its tables).

Round trips: a start is one (``INSERT ... ON CONFLICT DO NOTHING RETURNING`` feeding the queue
insert in a CTE, then, after the COMMIT, the NOTIFY that wakes a listening worker, in its own
transaction; a taken id or key costs one more read); a claim is one (fence, then ``FOR UPDATE
SKIP LOCKED`` marked with the generation in the same statement); a group commit is two whatever
the batch size (fence, runs locked in id order and the journal tails read; then one set-based
statement each for journal rows, run updates, queue deletes and queue re-inserts, and COMMIT).
With ``hot_rows``, a start updates the shard's ``hot_row`` in its one statement (a CTE) and a
group commit that finishes runs sends one statement more, in its last round trip.
A transaction that reads before it writes ends its first round trip with a Sync
(``Session.fetch_synced``), so a stopped client's session is ended by the server's
``idle_in_transaction_session_timeout`` and releases its locks; a client stopped mid-pipeline,
which no server timeout ends, is ended by the next lease takeover (:meth:`PostgresShardStore.acquire_lease`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import psycopg

from ..base import (FINISHED, LOCK_BUSY, RUN_STATUSES, RUNNING, UNFINISHED, JournalRecord, JournalRow, NewRun,
                    RunRecord, RunTimes, ShardHealth, ShardProgress, ShardStats, ShardStore, StepCommit)
from ..errors import FencingError
from ..payload import DEFAULT_MAX_PAYLOAD_BYTES, decode
from ..shard_rules import (check_start, checked_statuses, chunks, commit_values, created_record, ended_by, first_step,
                           as_float, holders, journal_params, journal_record, new_run_values, retry_applies,
                           retry_values, run_record)
from .connection import RETRY_CAUSES, Session
from .schema import ADDED_SHARD_TABLES, check_shard_schema, complete_shard, missing_columns, missing_tables

_log = logging.getLogger("wfctl.store.postgresql")

DELETE_BATCH = 100

_RUN_FIELDS = ("r.execution_id, r.definition_id, r.status, r.input, r.output, r.error, {state}, r.current_step,"
               " r.attempt, r.idempotency_key, r.timeout_s, r.created_at, r.started_at, r.completed_at,"
               " r.updated_at, r.wake_at, r.slot_time, r.definition_version")
_SELECT_RUN = "SELECT " + _RUN_FIELDS.format(state="r.state") + " FROM runs r"
_SELECT_SUMMARY = "SELECT " + _RUN_FIELDS.format(state="NULL") + " FROM runs r"
_START = (
    "WITH {lock}ins AS (INSERT INTO runs (execution_id, definition_id, status, current_step, attempt, idempotency_key,"
    " timeout_s, created_at, updated_at, input, state, slot_time, definition_version)"
    " SELECT %(id)s::text, %(definition)s::text, 'pending', %(step)s::text, 1, %(key)s::text, %(timeout)s::float8,"
    " %(now)s::float8, %(now)s::float8, %(input)s::text, %(state)s::text, %(slot)s::float8, %(version)s::text{source}"
    " ON CONFLICT DO NOTHING RETURNING execution_id),"
    " q AS (INSERT INTO queue (execution_id, ready_at) SELECT execution_id, %(now)s FROM ins){hot}"
    " SELECT execution_id, true FROM ins UNION ALL"
    " (SELECT execution_id, false FROM runs WHERE NOT EXISTS (SELECT 1 FROM ins)"
    " AND (execution_id = %(id)s OR idempotency_key = %(key)s) ORDER BY execution_id = %(id)s DESC LIMIT 1)")
_CREATE = (
    "WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[],"
    " %s::text[], %s::float8[], %s::text[]) WITH ORDINALITY AS v(execution_id, definition_id, current_step,"
    " idempotency_key, timeout_s, input, state, slot_time, definition_version, ord)),"
    " ins AS (INSERT INTO runs (execution_id, definition_id, status, current_step, attempt, idempotency_key,"
    " timeout_s, created_at, updated_at, input, state, slot_time, definition_version)"
    " SELECT execution_id, definition_id, 'pending', current_step, 1, idempotency_key, timeout_s, %s, %s, input,"
    " state, slot_time, definition_version FROM v ORDER BY ord ON CONFLICT DO NOTHING RETURNING execution_id),"
    " q AS (INSERT INTO queue (execution_id, ready_at) SELECT execution_id, %s FROM ins){hot}"
    " SELECT execution_id FROM ins")
_HOT_CTE = (", h AS (UPDATE hot_row SET count = count + (SELECT COUNT(*) FROM ins) WHERE id = 1"
            " AND EXISTS (SELECT 1 FROM ins))")
"""With ``hot_rows``: a start's (or a batch's) runs created, added to the shard's one ``hot_row`` row."""
_HOT_ROW = "UPDATE hot_row SET count = count + %s WHERE id = 1"
_TRY_START = _START.format(lock="lk AS (SELECT id FROM hot_row WHERE id = 1 FOR UPDATE SKIP LOCKED), ",
                           source=" FROM lk", hot=_HOT_CTE)
"""With ``hot_rows``, :data:`_START` writing only when the shard's ``hot_row`` is not locked (no row
back when it is, unless the id or key was taken)."""
_EXISTING = ("SELECT execution_id, idempotency_key FROM runs WHERE execution_id = ANY(%s)"
             " OR idempotency_key = ANY(%s)")
_CLAIM = (
    "WITH ready AS (SELECT execution_id, ready_at FROM queue WHERE ready_at <= %s AND claimed IS DISTINCT FROM %s{among}"
    " ORDER BY ready_at LIMIT %s FOR UPDATE SKIP LOCKED),"
    " upd AS (UPDATE queue q SET claimed = %s FROM ready WHERE q.execution_id = ready.execution_id"
    " RETURNING q.execution_id, ready.ready_at) "
    + "SELECT " + _RUN_FIELDS.format(state="r.state")
    + " FROM upd JOIN runs r ON r.execution_id = upd.execution_id ORDER BY upd.ready_at, r.execution_id")
_LOCK_RUNS = "SELECT execution_id, status, completed_at FROM runs WHERE execution_id = ANY(%s) ORDER BY execution_id FOR UPDATE"
_JOURNAL_TAILS = (
    "SELECT i, j.seq, j.step_slug, j.attempt, j.status FROM unnest(%s::text[]) AS i LEFT JOIN LATERAL"
    " (SELECT seq, step_slug, attempt, status FROM journal WHERE execution_id = i ORDER BY seq DESC LIMIT 1) j ON true")
_INSERT_JOURNAL = (
    "INSERT INTO journal (execution_id, seq, step_slug, step_type, attempt, status, port, error, started_at,"
    " finished_at, output) SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::int[],"
    " %s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[])")
_UPDATE_RUNS = (
    "UPDATE runs r SET status = v.status, current_step = v.current_step, attempt = v.attempt, state = v.state,"
    " output = v.output, error = v.error, wake_at = v.wake_at, updated_at = %s,"
    " started_at = COALESCE(r.started_at, %s), completed_at = v.completed_at"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::float8[],"
    " %s::float8[]) AS v(execution_id, status, current_step, attempt, state, output, error, wake_at, completed_at)"
    " WHERE r.execution_id = v.execution_id")
_REQUEUE = ("INSERT INTO queue (execution_id, ready_at) SELECT * FROM unnest(%s::text[], %s::float8[])"
            " ON CONFLICT (execution_id) DO UPDATE SET ready_at = excluded.ready_at, claimed = NULL")
_MARK_STARTED = (
    "WITH r AS (SELECT execution_id, state FROM runs WHERE execution_id = %(id)s AND status IN ('pending', 'running')),"
    " j AS (INSERT INTO journal (execution_id, seq, step_slug, step_type, attempt, status, port, error, started_at,"
    " finished_at, output, state) SELECT execution_id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal"
    " WHERE execution_id = %(id)s), %(slug)s, %(type)s, %(attempt)s, %(status)s, %(port)s, %(error)s, %(started)s,"
    " %(finished)s, %(output)s, state FROM r),"
    " u AS (UPDATE runs SET status = 'running', current_step = %(slug)s, attempt = %(attempt)s,"
    " updated_at = %(now)s, started_at = COALESCE(started_at, %(now)s) WHERE execution_id IN (SELECT execution_id FROM r))"
    " SELECT COUNT(*) FROM r")
_JOURNAL_FIELDS = ("SELECT execution_id, seq, step_slug, step_type, attempt, status, port, output, error,"
                   " started_at, finished_at FROM journal")
_EPOCH = "extract(epoch FROM clock_timestamp())::float8"

TAKEOVER_LOCK_TIMEOUT_S = 1.0
"""How long a lease takeover waits for the shard's status row before it looks for an expired holder."""

_END_EXPIRED_HOLDERS = (
    "WITH holders AS MATERIALIZED (SELECT a.pid, a.application_name FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid CROSS JOIN shard_status s"
    " WHERE s.id = 1 AND s.lease_expires_at <= " + _EPOCH +
    " AND l.locktype = 'relation' AND l.relation = 'shard_status'::regclass AND l.granted"
    " AND l.pid <> pg_backend_pid() AND a.application_name LIKE 'wfctl %'"
    " AND extract(epoch FROM a.xact_start) < s.lease_expires_at)"
    " SELECT pid, application_name FROM holders WHERE pg_terminate_backend(pid)")
"""The wfctl sessions holding the shard's status row in a transaction that began before its
lease expired, ended (one statement); none while the lease is valid."""


def _where(statuses: Sequence[str] | None, definition_id: str | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if statuses is not None:
        clauses.append("r.status = ANY(%s)")
        params.append(list(statuses))
    if definition_id is not None:
        clauses.append("r.definition_id = %s")
        params.append(definition_id)
    return clauses, params


def _layers(updates: Sequence[StepCommit]) -> list[list[StepCommit]]:
    """``updates`` cut where a run comes again, so each part touches a run once (in order)."""
    layers: list[list[StepCommit]] = [[]]
    seen: set[str] = set()
    for u in updates:
        if u.execution_id in seen:
            layers.append([])
            seen = set()
        seen.add(u.execution_id)
        layers[-1].append(u)
    return layers


def shard_stats(shard: int, by_status: dict[str, int], depth: int, waiting: tuple[int, str | None],
                lease: tuple, retries: dict[str, int], wait_ms: dict[str, float], transactions: int,
                size_bytes: int, details: dict[str, Any]) -> ShardStats:
    """The stats record from what :meth:`PostgresShardStore.stats` gathered."""
    owner, expires, generation, heartbeat = lease
    return ShardStats(
        shard=shard, runs_by_status=by_status, queue_depth=depth, retries=retries, wait_ms=wait_ms,
        transactions=transactions, lease_owner=owner, lease_expires_at=expires, generation=generation,
        heartbeat_at=heartbeat, size_bytes=size_bytes, details=details, waiting=waiting[0], waiting_error=waiting[1])


def shard_progress(shard: int, runs: int, unfinished: int, depth: int, retries: dict[str, int],
                   wait_ms: dict[str, float], transactions: int) -> ShardProgress:
    """The progress record (like :func:`shard_stats`)."""
    return ShardProgress(shard, runs, unfinished, depth, retries, wait_ms, transactions)


class PostgresShardStore(ShardStore):
    """:class:`~wfctl.store.base.ShardStore` on one PostgreSQL schema (see :mod:`wfctl.store.base`).

    Lease times are the database server's clock (``clock_timestamp()``, epoch seconds): the
    lease methods ignore the caller's ``now``, so workers on machines whose clocks differ agree on
    who holds a shard. Every other time (run timestamps, ready times, ``claim_ready``'s ``now``) is
    the caller's, as with SQLite. ``start_run`` never waits for another start, unless ``hot_rows``:
    then every transaction that creates, finishes or cancels runs also adds their number to the
    schema's one ``hot_row`` row (a start in its one statement, a group commit in one more), so
    concurrent writers of the shard wait for its row lock (read committed) or fail with 40001 and
    are retried (serializable); and :meth:`try_start` lets the engine start a run on another
    shard instead of waiting for a held row.
    """

    def __init__(self, dsn: str, schema: str, shard: int, *, durability: str = "normal",
                 isolation: str = "read committed", max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 ready_channel: str | None = None, hot_rows: bool = False):
        self.shard = shard
        self.max_payload_bytes = max_payload_bytes
        self.hot_rows = hot_rows
        self.can_try_start = hot_rows  # the hot row is the one lock starts wait for
        self._start = _START.format(lock="", source="", hot=_HOT_CTE if hot_rows else "")
        self._create = _CREATE.format(hot=_HOT_CTE if hot_rows else "")
        # A start's NOTIFY, sent after its commit (see .waker); None: starts announce nothing.
        self._notify = None if ready_channel is None else ("SELECT pg_notify(%s, '')", (ready_channel,))
        self._db = Session(dsn, schema=schema, label=f"shard {shard}", isolation=isolation,
                           durability=durability, counters=True)

        def check(conn: psycopg.Connection) -> list[str]:
            check_shard_schema(conn, schema, shard, self._db.where)
            return missing_tables(conn, schema, ADDED_SHARD_TABLES) + missing_columns(conn, schema)

        if self._db.check_or_close(check):  # created before a table or column was added: add it
            self._db.check_or_close(lambda conn: complete_shard(conn, schema))

    @property
    def where(self) -> str:
        """``shard 3 (host:port/dbname schema wfctl_shard_003)``."""
        return self._db.where

    # -- helpers ---------------------------------------------------------------------------

    def _read(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        return self._db.run(work, write=False)

    def _fetch(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        return self._read(lambda conn: conn.execute(query, params)).fetchall()

    def _load(self, execution_ids: Sequence[str]) -> list[RunRecord]:
        rows = self._fetch(f"{_SELECT_RUN} WHERE r.execution_id = ANY(%s)", (list(execution_ids),))
        found = {row[0]: run_record(row, self.shard) for row in rows}
        return [found[i] for i in execution_ids if i in found]

    def _existing(self, runs: Sequence[tuple[str, str | None]]) -> dict[str, str]:
        """For each ``(execution id, key)`` taken: the id of the run that holds the id (first) or the key."""
        return holders(runs, self._fetch(_EXISTING, ([r[0] for r in runs], [r[1] for r in runs if r[1] is not None])))

    # -- clients ---------------------------------------------------------------------------

    def create_runs(self, runs: Sequence[NewRun], *, now: float) -> list[tuple[RunRecord, bool]]:
        prepared = [(run, *new_run_values(run, self.max_payload_bytes)) for run in runs]
        if not prepared:
            return []
        columns = [[r.execution_id for r, *_ in prepared], [r.definition_id for r, *_ in prepared],
                   [first_step(r) for r, *_ in prepared], [r.idempotency_key for r, *_ in prepared],
                   [as_float(r.timeout_s) for r, *_ in prepared], [p[1][0] for p in prepared],
                   [p[2][0] for p in prepared], [as_float(r.slot_time) for r, *_ in prepared],
                   [r.definition_version for r, *_ in prepared]]
        cursor = self._db.run(lambda conn: conn.execute(self._create, (*columns, now, now, now)),
                              after_commit=self._notify)
        created = {row[0] for row in cursor.fetchall()}
        if self._db.lost_and_retried:  # the first attempt may have committed: our own ids are ours
            created |= set(self._existing([(r.execution_id, None) for r, *_ in prepared]))
        taken = self._existing([(r.execution_id, r.idempotency_key) for r, *_ in prepared
                                if r.execution_id not in created])
        loaded = {r.execution_id: r for r in self._load(sorted(set(taken.values())))}
        results: list[tuple[RunRecord, bool]] = []
        for run, _, _ in prepared:
            if run.execution_id in created:  # the batch's first run of that id (a later one gets this one)
                created.discard(run.execution_id)
                record = created_record(run, self.shard, now)
                taken[run.execution_id] = run.execution_id
                loaded[run.execution_id] = record
                results.append((record, True))
            elif run.execution_id in taken and taken[run.execution_id] in loaded:
                results.append((loaded[taken[run.execution_id]], False))
            else:  # deleted between the insert and the read: start it again
                results.append(self.create_runs([run], now=now)[0])
        return results

    def start_run(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                  state_json: tuple[str | None, int], *, current_step: str | None,
                  idempotency_key: str | None = None, timeout_s: float | None = None, now: float,
                  slot_time: float | None = None, definition_version: str | None = None) -> tuple[str, bool]:
        params = self._start_params(execution_id, definition_id, input_json, state_json, current_step, idempotency_key,
                                    timeout_s, now, slot_time, definition_version)
        while True:
            row = self._db.run(lambda conn: conn.execute(self._start, params), after_commit=self._notify).fetchone()
            if row is not None and row[0] == execution_id and self._db.lost_and_retried:
                return execution_id, True  # the first attempt committed before the connection broke
            if row is not None:
                return row[0], row[1]
            # The run holding the id or key committed after this statement's snapshot was taken.
            found = self._existing([(execution_id, idempotency_key)])
            if execution_id in found:
                return found[execution_id], False

    def try_start(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                  state_json: tuple[str | None, int], *, current_step: str | None,
                  idempotency_key: str | None = None, timeout_s: float | None = None, now: float,
                  slot_time: float | None = None, definition_version: str | None = None) -> tuple[str, bool] | None:
        """With ``hot_rows`` (:attr:`can_try_start`): :meth:`start_run`, or None at once, writing
        nothing, when another transaction holds the shard's ``hot_row`` (counted as a lock retry),
        so that the engine starts the run on a shard whose row is free instead of waiting, or
        failing with 40001 under serializable isolation, behind this one."""
        params = self._start_params(execution_id, definition_id, input_json, state_json, current_step, idempotency_key,
                                    timeout_s, now, slot_time, definition_version)
        began = time.monotonic()
        row = self._db.run(lambda conn: conn.execute(_TRY_START, params), after_commit=self._notify).fetchone()
        if row is None:  # busy (or the id's holder committed after the snapshot: the engine draws another id)
            self._db.count(LOCK_BUSY, (time.monotonic() - began) * 1000.0)
            return None
        if row[0] == execution_id and self._db.lost_and_retried:
            return execution_id, True  # the first attempt committed before the connection broke
        return row[0], row[1]

    def _start_params(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                      state_json: tuple[str | None, int], current_step: str | None, idempotency_key: str | None,
                      timeout_s: float | None, now: float, slot_time: float | None,
                      definition_version: str | None) -> dict[str, Any]:
        """The parameters of :data:`_START`, once the size limit is checked."""
        check_start(execution_id, input_json, state_json, self.max_payload_bytes)
        return {"id": execution_id, "definition": definition_id, "step": current_step, "key": idempotency_key,
                "timeout": timeout_s, "now": now, "input": input_json[0], "state": state_json[0],
                "slot": slot_time, "version": definition_version}

    def get_run(self, execution_id: str) -> RunRecord | None:
        rows = self._fetch(f"{_SELECT_RUN} WHERE r.execution_id = %s", (execution_id,))
        return run_record(rows[0], self.shard) if rows else None

    def journal(self, execution_id: str) -> list[JournalRecord]:
        rows = self._fetch(f"{_JOURNAL_FIELDS} WHERE execution_id = %s ORDER BY seq", (execution_id,))
        return [journal_record(r) for r in rows]

    def journal_page(self, execution_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[JournalRecord]:
        rows = self._fetch(f"{_JOURNAL_FIELDS} WHERE execution_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                           (execution_id, after_seq, limit))
        return [journal_record(r) for r in rows]

    def journal_of_step(self, execution_id: str, step_slug: str) -> list[JournalRecord]:
        rows = self._fetch(f"{_JOURNAL_FIELDS} WHERE execution_id = %s AND step_slug = %s ORDER BY seq",
                           (execution_id, step_slug))
        return [journal_record(r) for r in rows]

    def journal_count(self, execution_id: str) -> int:
        return self._fetch("SELECT COUNT(*) FROM journal WHERE execution_id = %s", (execution_id,))[0][0]

    def journal_steps(self, execution_id: str) -> int:
        return self._fetch(
            "SELECT COUNT(*) FROM journal j WHERE j.execution_id = %s AND NOT (j.status = 'started' AND EXISTS ("
            "SELECT 1 FROM journal n WHERE n.execution_id = j.execution_id AND n.seq = j.seq + 1"
            " AND n.step_slug = j.step_slug AND n.attempt = j.attempt))", (execution_id,))[0][0]

    def list_runs(self, statuses: Collection[str] | None = None, definition_id: str | None = None,
                  limit: int = 100, before: tuple[float, str] | None = None,
                  finished_since: float | None = None) -> list[RunRecord]:
        wanted = None if statuses is None else checked_statuses(statuses, RUN_STATUSES, "list")
        order = " ORDER BY r.created_at DESC, r.execution_id DESC LIMIT %s"
        after = " AND (r.created_at, r.execution_id) < (%s, %s)" if before is not None else ""
        bounds: tuple[Any, ...] = tuple(before or ())
        if finished_since is not None:
            after += " AND r.completed_at >= %s"
            bounds += (finished_since,)
        if definition_id is None:  # one range of the status index per status, merged newest first
            parts, params = [], []
            for status in dict.fromkeys(RUN_STATUSES if wanted is None else wanted):
                parts.append(f"({_SELECT_SUMMARY} WHERE r.status = %s{after}{order})")
                params.extend((status, *bounds, limit))
            query = (f"SELECT * FROM ({' UNION ALL '.join(parts)}) r"
                     " ORDER BY r.created_at DESC, r.execution_id DESC LIMIT %s")
            return [run_record(row, self.shard) for row in self._fetch(query, (*params, limit))]
        clauses, params = _where(wanted, definition_id)
        rows = self._fetch(f"{_SELECT_SUMMARY} WHERE {' AND '.join(clauses)}{after}{order}",
                           (*params, *bounds, limit))
        return [run_record(row, self.shard) for row in rows]

    def count_runs(self, statuses: Collection[str] | None = None, definition_id: str | None = None,
                   finished_before: float | None = None) -> int:
        wanted = None if statuses is None else checked_statuses(statuses, RUN_STATUSES, "count")
        clauses, params = _where(wanted, definition_id)
        if finished_before is not None:
            clauses.append("r.completed_at < %s")
            params.append(finished_before)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._fetch(f"SELECT COUNT(*) FROM runs r{where}", params)[0][0]

    def _cancel(self, conn: psycopg.Connection, locked: list[str], now: float | Callable[[], float]) -> list[str]:
        """Cancel ``locked`` (unfinished runs whose rows this transaction locked); a clock ``now``
        is read here, once the locks are held, so no step committed before the cancel is later."""
        if locked:
            when = now() if callable(now) else now
            conn.execute("UPDATE runs SET status = 'canceled', completed_at = %s, updated_at = %s"
                         " WHERE execution_id = ANY(%s)", (when, when, locked))
            conn.execute("DELETE FROM queue WHERE execution_id = ANY(%s)", (locked,))
            if self.hot_rows:
                conn.execute(_HOT_ROW, (len(locked),))
        return locked

    def cancel_runs(self, execution_ids: Collection[str], *, now: float | Callable[[], float]) -> list[str]:
        canceled: list[str] = []
        lock = ("SELECT execution_id FROM runs WHERE execution_id = ANY(%s) AND status IN ('pending', 'running')"
                " ORDER BY execution_id FOR UPDATE")
        for chunk in chunks(list(dict.fromkeys(execution_ids)), DELETE_BATCH):
            canceled.extend(self._db.run(lambda conn: self._cancel(
                conn, [r[0] for r in self._db.fetch_synced(conn, (lock, (chunk,)))[0]], now)))
        return canceled

    def cancel_matching(self, definition_id: str | None, statuses: Collection[str] | None = None,
                        *, now: float | Callable[[], float], batch: int = DELETE_BATCH) -> int:
        clauses, params = _where(checked_statuses(statuses, UNFINISHED, "cancel"), definition_id)
        lock = (f"SELECT execution_id FROM runs r WHERE {' AND '.join(clauses)} ORDER BY execution_id"
                " LIMIT %s FOR UPDATE")
        total = 0
        while True:
            canceled = self._db.run(lambda conn: self._cancel(
                conn, [r[0] for r in self._db.fetch_synced(conn, (lock, (*params, batch)))[0]], now))
            total += len(canceled)
            if not canceled:
                return total

    def _delete(self, conn: psycopg.Connection, select: str, params: Sequence[Any]) -> int:
        """Delete the finished runs ``select`` locks (in id order), with their journals and queue entries."""
        ids = [r[0] for r in self._db.fetch_synced(conn, (select, params))[0]]
        if ids:
            conn.execute("DELETE FROM runs WHERE execution_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM journal WHERE execution_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM queue WHERE execution_id = ANY(%s)", (ids,))
            conn.execute("INSERT INTO counters (name, count) VALUES ('deleted_runs', %s)"
                         " ON CONFLICT (name) DO UPDATE SET count = counters.count + excluded.count", (len(ids),))
        return len(ids)

    def delete_runs(self, execution_ids: Collection[str]) -> int:
        select = ("SELECT execution_id FROM runs WHERE execution_id = ANY(%s) AND status = ANY(%s)"
                  " ORDER BY execution_id FOR UPDATE")
        return sum(self._db.run(lambda conn: self._delete(conn, select, (chunk, list(FINISHED))))
                   for chunk in chunks(list(dict.fromkeys(execution_ids)), DELETE_BATCH))

    def delete_finished(self, older_than: float, statuses: Collection[str] | None = None,
                        *, batch: int = DELETE_BATCH) -> int:
        wanted = list(checked_statuses(statuses, FINISHED, "delete"))
        select = ("SELECT execution_id FROM runs WHERE status = ANY(%s) AND completed_at < %s"
                  " ORDER BY execution_id LIMIT %s FOR UPDATE")
        total = 0
        while True:
            deleted = self._db.run(lambda conn: self._delete(conn, select, (wanted, older_than, batch)))
            total += deleted
            if not deleted:
                return total

    def inactive_runs(self, now: float, default_timeout_s: float, limit: int = 100) -> list[RunRecord]:
        active = "GREATEST(r.updated_at, COALESCE(r.wake_at, 0))"
        rows = self._fetch(f"{_SELECT_RUN} WHERE r.status IN ('pending', 'running')"
                           f" AND {active} + COALESCE(r.timeout_s, %s) < %s ORDER BY {active} LIMIT %s",
                           (default_timeout_s, now, limit))
        return [run_record(row, self.shard) for row in rows]

    def _counters(self) -> tuple[dict[str, int], dict[str, float], int, int, int]:
        """Retries and wait by cause, transactions and rolled-back transactions (persisted plus this
        process's pending), deleted runs."""
        rows = self._fetch("SELECT name, count, wait_ms FROM counters")
        pending_retries, pending_wait_ms, transactions, rollbacks = self._db.pending()
        retries = {cause: pending_retries.get(cause, 0) for cause in RETRY_CAUSES}
        wait_ms = {cause: pending_wait_ms.get(cause, 0.0) for cause in RETRY_CAUSES}
        deleted = 0
        for name, count, waited in rows:
            if name == "transactions":
                transactions += count
            elif name == "rollbacks":
                rollbacks += count
            elif name == "deleted_runs":
                deleted = count
            else:
                retries[name] = retries.get(name, 0) + count
                wait_ms[name] = wait_ms.get(name, 0.0) + waited
        return retries, wait_ms, transactions, rollbacks, deleted

    def stats(self) -> ShardStats:
        def gather(conn: psycopg.Connection) -> tuple:
            return (conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"),
                    conn.execute("SELECT COUNT(*) FROM queue"),
                    conn.execute("SELECT COUNT(*), MAX(error) FROM runs WHERE status IN ('pending', 'running')"
                                 " AND error IS NOT NULL"),
                    conn.execute("SELECT lease_owner, lease_expires_at, generation, heartbeat_at FROM shard_status"
                                 " WHERE id = 1"),
                    conn.execute("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
                                 " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"),
                    conn.execute("SELECT COALESCE(SUM(n_dead_tup), 0)::bigint FROM pg_stat_user_tables"
                                 " WHERE schemaname = current_schema()"),
                    conn.execute("SELECT count FROM hot_row WHERE id = 1"))

        by_status, depth, waiting, lease, size, dead, hot = self._read(gather)
        retries, wait_ms, transactions, rollbacks, _ = self._counters()
        details = {"dead_tuples": dead.fetchone()[0], "server": self._db.server, "hot_row_count": hot.fetchone()[0],
                   "rolled_back": rollbacks}
        return shard_stats(self.shard, dict(by_status.fetchall()), depth.fetchone()[0], waiting.fetchone(),
                           lease.fetchone(), retries, wait_ms, transactions, size.fetchone()[0], details)

    def progress(self) -> ShardProgress:
        counts = self._fetch("SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM runs"
                             " WHERE status IN ('pending', 'running')), (SELECT COUNT(*) FROM queue)")[0]
        retries, wait_ms, transactions, _, deleted = self._counters()
        return shard_progress(self.shard, counts[0] + deleted, counts[1], counts[2], retries, wait_ms, transactions)

    def health(self, *, now: float) -> ShardHealth:
        (owner, expires, generation, heartbeat, depth, ready, oldest, lease_now), = self._fetch(
            "SELECT s.lease_owner, s.lease_expires_at, s.generation, s.heartbeat_at, (SELECT COUNT(*) FROM queue),"
            f" q.ready, q.oldest, {_EPOCH} FROM shard_status s, LATERAL (SELECT COUNT(*) AS ready, MIN(ready_at) AS oldest"
            " FROM queue WHERE ready_at <= %s AND (s.lease_owner IS NULL OR claimed IS DISTINCT FROM s.generation)) q"
            " WHERE s.id = 1", (now,))
        retries, wait_ms, *_ = self._counters()
        return ShardHealth(self.shard, depth, ready, oldest, owner, expires, generation, heartbeat, retries, wait_ms,
                           lease_now)

    def scan_runs(self, batch: int = 1000) -> Iterator[RunTimes]:
        last = ""
        while True:  # keyset pages: no long transaction holds back vacuum
            rows = self._fetch("SELECT execution_id, definition_id, status, created_at, completed_at, slot_time, error"
                               " FROM runs WHERE execution_id > %s ORDER BY execution_id LIMIT %s", (last, batch))
            for row in rows:
                yield RunTimes(*row[1:])
            if len(rows) < batch:
                return
            last = rows[-1][0]

    def version_counts(self, definition_id: str) -> dict[str | None, int]:
        return dict(self._fetch("SELECT definition_version, COUNT(*) FROM runs WHERE definition_id = %s"
                                " GROUP BY definition_version", (definition_id,)))

    def check(self) -> None:
        """Raise CorruptShardError when the shard's schema is missing or malformed."""
        self._db.run(lambda conn: check_shard_schema(conn, self._db.schema, self.shard, self._db.where),
                     write=False, pipeline=False)

    def stored_bytes(self) -> int:
        return self._fetch("SELECT COALESCE(SUM(COALESCE(octet_length(input), 0) + COALESCE(octet_length(state), 0)"
                           " + COALESCE(octet_length(output), 0)), 0)::bigint FROM runs")[0][0]

    # -- the lease holder ------------------------------------------------------------------

    def acquire_lease(self, owner: str, ttl_s: float, *, now: float) -> int | None:
        """Take the lease when free or expired on the server's clock (``now`` is ignored). The
        row is locked ``FOR UPDATE``, which waits for fenced writes in flight (they hold it
        ``FOR KEY SHARE``): once a new generation is taken, no older one commits anything.

        A holder stopped in the middle of a transaction (``SIGSTOP``, a frozen machine) keeps its
        row lock for as long as its connection lives, which no server timeout bounds. So when the
        takeover waits :data:`TAKEOVER_LOCK_TIMEOUT_S` on an expired lease, it ends the wfctl
        sessions whose transactions on this shard began before the lease expired
        (``pg_terminate_backend``: the same role, a superuser or ``pg_signal_backend``), then
        tries again. The ended holder's write is rolled back and fenced off."""
        query = (f"WITH cur AS (SELECT id FROM shard_status WHERE id = 1 AND (lease_owner IS NULL OR lease_owner = %s"
                 f" OR lease_expires_at <= {_EPOCH}) FOR UPDATE)"
                 f" UPDATE shard_status s SET lease_owner = %s, generation = s.generation + 1,"
                 f" lease_expires_at = {_EPOCH} + %s, heartbeat_at = {_EPOCH} FROM cur WHERE s.id = cur.id"
                 " RETURNING s.generation")

        def take(conn: psycopg.Connection) -> psycopg.Cursor:
            conn.execute(f"SET LOCAL lock_timeout = {int(TAKEOVER_LOCK_TIMEOUT_S * 1000)}")
            return conn.execute(query, (owner, owner, ttl_s))

        row = self._db.run(take, on_lock_timeout=self._end_expired_holders).fetchone()
        return None if row is None else row[0]

    def _end_expired_holders(self, conn: psycopg.Connection) -> None:
        ended = conn.execute(_END_EXPIRED_HOLDERS).fetchall()
        for pid, application in ended:
            _log.warning("%s: ended session %s (%s), which held the shard past its lease", self.where, pid,
                         application)

    def renew_lease(self, owner: str, generation: int, ttl_s: float, *, now: float) -> float:
        """Extend the lease to the server's clock + ``ttl_s`` (``now`` is ignored); returns that expiry."""
        query = (f"UPDATE shard_status SET lease_expires_at = {_EPOCH} + %s, heartbeat_at = {_EPOCH}"
                 " WHERE id = 1 AND generation = %s AND lease_owner = %s RETURNING lease_expires_at")
        row = self._db.run(lambda conn: conn.execute(query, (ttl_s, generation, owner))).fetchone()
        if row is not None:
            return row[0]
        found, holder = self._fetch("SELECT generation, lease_owner FROM shard_status WHERE id = 1")[0]
        if found != generation:
            state = f"generation is now {found}"
        elif holder is None:
            state = "the lease was released"
        else:
            state = f"it is held by {holder!r}, not {owner!r}"
        raise FencingError(f"{self.where}: lease generation {generation} is no longer valid ({state})")

    def release_lease(self, owner: str, generation: int) -> bool:
        cursor = self._db.run(lambda conn: conn.execute(
            "UPDATE shard_status SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = 1 AND generation = %s AND lease_owner = %s", (generation, owner)))
        return cursor.rowcount == 1

    def claim_ready(self, generation: int, *, now: float, limit: int,
                    only: Collection[str] | None = None) -> list[RunRecord]:
        wanted = list(dict.fromkeys(only or ()))
        if only is not None and not wanted:
            return []
        among = "" if only is None else " AND execution_id = ANY(%s)"
        params = (now, generation, *([wanted] if only is not None else []), limit, generation)

        def claim(conn: psycopg.Connection) -> psycopg.Cursor:
            conn.execute("SELECT fence(%s)", (generation,))
            return conn.execute(_CLAIM.format(among=among), params)

        rows = self._db.run(claim, idempotent=False).fetchall()
        return [run_record(row, self.shard) for row in rows]

    def mark_step_started(self, generation: int, execution_id: str, row: JournalRow, *, now: float) -> bool:
        (slug, step_type, attempt, status, port, error, started, finished, output), = \
            journal_params(execution_id, [row], self.max_payload_bytes)
        params = {"id": execution_id, "slug": slug, "type": step_type, "attempt": attempt, "status": status,
                  "port": port, "error": error, "started": started, "finished": finished, "output": output,
                  "now": now}

        def mark(conn: psycopg.Connection) -> psycopg.Cursor:
            conn.execute("SELECT fence(%s)", (generation,))
            conn.execute("SELECT 1 FROM runs WHERE execution_id = %s FOR UPDATE", (execution_id,))
            return conn.execute(_MARK_STARTED, params)

        return self._db.run(mark, idempotent=False).fetchone()[0] == 1

    def commit_steps(self, generation: int, updates: Sequence[StepCommit], *, now: float) -> list[str]:
        prepared = {id(u): commit_values(u, self.max_payload_bytes) for u in updates}

        def commit(conn: psycopg.Connection) -> list[str]:
            conn.execute("SELECT fence(%s)", (generation,))
            skipped: list[str] = []
            finished = 0
            for layer in _layers(updates):
                skipped_here, finished_here = self._commit_layer(conn, layer, prepared, now)
                skipped.extend(skipped_here)
                finished += finished_here
            if self.hot_rows and finished:
                conn.execute(_HOT_ROW, (finished,))
            return skipped

        return self._db.run(commit, idempotent=False) if updates else []

    def _commit_layer(self, conn: psycopg.Connection, layer: list[StepCommit], prepared: dict[int, tuple],
                      now: float) -> tuple[list[str], int]:
        """Apply one run's transition at most per run: lock the runs and read their journal tails
        (one round trip), then four set-based statements; the runs skipped, and how many finished."""
        ids = [u.execution_id for u in layer]
        locked, tail_rows = self._db.fetch_synced(conn, (_LOCK_RUNS, (ids,)), (_JOURNAL_TAILS, (ids,)))
        found = {row[0]: row for row in locked}
        last_seq = {row[0]: row[1] or 0 for row in tail_rows}
        last_row = {row[0]: row[2:] if row[1] is not None else None for row in tail_rows}
        journal: list[tuple] = []
        runs: list[tuple] = []
        dequeue: list[str] = []
        requeue: list[tuple[str, float]] = []
        skipped: list[str] = []
        for u in layer:
            eid = u.execution_id
            (state, _), (output, _), rows = prepared[id(u)]
            if eid not in found:
                skipped.append(eid)
                continue
            if found[eid][1] in FINISHED:  # canceled meanwhile
                rows = ended_by(last_row[eid], rows, found[eid][2])
                skipped.append(eid)
            else:
                runs.append((eid, u.status, u.current_step, u.attempt, state, output, u.error, as_float(u.wake_at),
                             as_float(now) if u.status != RUNNING else None))
                if u.ready_at is None:
                    dequeue.append(eid)
                else:
                    requeue.append((eid, float(u.ready_at)))
            journal.extend((eid, last_seq[eid] + i, *p) for i, p in enumerate(rows, 1))
        if journal:
            conn.execute(_INSERT_JOURNAL, [list(column) for column in zip(*journal)])
        if runs:
            conn.execute(_UPDATE_RUNS, (now, now, *[list(column) for column in zip(*runs)]))
        if dequeue:
            conn.execute("DELETE FROM queue WHERE execution_id = ANY(%s)", (dequeue,))
        if requeue:
            conn.execute(_REQUEUE, [list(column) for column in zip(*requeue)])
        return skipped, sum(1 for run in runs if run[-1] is not None)

    # -- retries ---------------------------------------------------------------------------

    def step_state(self, execution_id: str, seq: int) -> dict[str, Any] | None:
        rows = self._fetch("SELECT state FROM journal WHERE execution_id = %s AND seq = %s", (execution_id, seq))
        return decode(rows[0][0]) if rows else None

    def retry_run(self, commit: StepCommit, *, expected: tuple[str, float], now: float) -> bool:
        (state, _), (output, _), rows = retry_values(commit, self.max_payload_bytes)
        eid = commit.execution_id

        def retry(conn: psycopg.Connection) -> bool:
            locked, tails = self._db.fetch_synced(  # the run's row locked: a cleanup or another retry waits
                conn, ("SELECT status, updated_at FROM runs WHERE execution_id = %s FOR UPDATE", (eid,)),
                (_JOURNAL_TAILS, ([eid],)))
            if not retry_applies(locked[0] if locked else None, expected):
                return False
            last = tails[0][1] or 0
            if rows:
                journal = [(eid, last + i, *p) for i, p in enumerate(rows, 1)]
                conn.execute(_INSERT_JOURNAL, [list(column) for column in zip(*journal)])
            conn.execute(_UPDATE_RUNS, (now, now, [eid], [RUNNING], [commit.current_step], [commit.attempt], [state],
                                        [output], [commit.error], [as_float(commit.wake_at)], [None]))
            conn.execute(_REQUEUE, ([eid], [float(commit.ready_at)]))
            return True

        return self._db.run(retry, idempotent=False, after_commit=self._notify)

    def close(self) -> None:
        self._db.close()
