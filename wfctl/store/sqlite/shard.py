"""The SQLite shard store: one file per shard (see :mod:`.schema` for its tables)."""

from __future__ import annotations

import heapq
import itertools
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..base import (FINISHED, LOCK_BUSY, RUN_STATUSES, RUNNING, UNFINISHED, JournalRecord, JournalRow, NewRun,
                    RunRecord, RunTimes, ShardHealth, ShardProgress, ShardStats, ShardStore, StepCommit)
from ..errors import CorruptShardError, FencingError
from ..payload import DEFAULT_MAX_PAYLOAD_BYTES, decode
from ..shard_rules import (check_start, checked_statuses, chunks, commit_values, created_record, ended_by, first_step,
                           holders, journal_params, journal_record, new_run_values, retry_applies,
                           retry_values, run_record)
from .connection import DEFAULT_BUSY_DEADLINE_S, Connection
from .schema import (SHARD_APP_ID, add_hot_row, add_run_columns, check_schema, create_shard_schema, has_hot_row,
                     is_initialized, shard_lacks_columns)

#: Inputs, states and outputs larger than this are stored out of line (the ``blobs`` table).
DEFAULT_SPILL_THRESHOLD_BYTES = 256 * 1024
DELETE_BATCH = 100
_IN_CHUNK = 500

_COUNTERS_SQL = ("UPDATE shard_status SET lock_retries = lock_retries + ?, "
                 "lock_wait_ms = lock_wait_ms + ?, transactions = transactions + ? WHERE id = 1")
_RUN_FIELDS = ("r.execution_id, r.definition_id, r.status, COALESCE(r.input, bi.body), "
               "COALESCE(r.output, bo.body), r.error, {state}, r.current_step, r.attempt, "
               "r.idempotency_key, r.timeout_s, r.created_at, r.started_at, r.completed_at, "
               "r.updated_at, r.wake_at, r.slot_time, r.definition_version")
_SELECT_RUN = ("SELECT " + _RUN_FIELDS.format(state="COALESCE(r.state, bs.body)")
               + " FROM runs r LEFT JOIN blobs bi ON bi.id = r.input_blob"
               " LEFT JOIN blobs bs ON bs.id = r.state_blob LEFT JOIN blobs bo ON bo.id = r.output_blob")
_SELECT_SUMMARY = ("SELECT " + _RUN_FIELDS.format(state="NULL")
                   + " FROM runs r LEFT JOIN blobs bi ON bi.id = r.input_blob"
                   " LEFT JOIN blobs bo ON bo.id = r.output_blob")
_INSERT_RUN = (
    "INSERT INTO runs (execution_id, definition_id, status, current_step, attempt, idempotency_key,"
    " timeout_s, created_at, updated_at, input_blob, state_blob, input, state, slot_time, definition_version)"
    " VALUES (?, ?, 'pending', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_INSERT_QUEUE = "INSERT INTO queue (execution_id, ready_at) VALUES (?, ?)"
_HOT_ROW = "UPDATE hot_row SET count = count + ? WHERE id = 1"
_UPDATE_RUN = (
    "UPDATE runs SET status = ?, current_step = ?, attempt = ?, state = ?, state_blob = ?,"
    " output = ?, output_blob = ?, error = ?, wake_at = ?, updated_at = ?,"
    " started_at = COALESCE(started_at, ?), completed_at = ? WHERE execution_id = ?")
_REQUEUE = ("INSERT INTO queue (execution_id, ready_at) VALUES (?, ?) ON CONFLICT (execution_id)"
            " DO UPDATE SET ready_at = excluded.ready_at, claimed = NULL")
_INSERT_JOURNAL = (
    "INSERT INTO journal (execution_id, seq, step_slug, step_type, attempt, status, port, error,"
    " started_at, finished_at, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_MARK_STARTED = (  # the row of a step marked started, keeping the run's stored state
    "INSERT INTO journal (execution_id, seq, step_slug, step_type, attempt, status, port, error, started_at,"
    " finished_at, output, state) SELECT :id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal"
    " WHERE execution_id = :id), :slug, :type, :attempt, :status, :port, :error, :started, :finished, :output,"
    " COALESCE(r.state, b.body)"
    " FROM runs r LEFT JOIN blobs b ON b.id = r.state_blob WHERE r.execution_id = :id")
_JOURNAL_FIELDS = ("SELECT execution_id, seq, step_slug, step_type, attempt, status, port, output, error,"
                   " started_at, finished_at FROM journal")


def create_shard_file(path: Path, shard: int, *, durability: str, now: float) -> None:
    """Create (or complete) shard file ``path`` for shard number ``shard``."""
    db = Connection(path, durability=durability, create=True)
    try:
        with db.write() as conn:
            if not is_initialized(conn):
                create_shard_schema(conn, shard, now)
    finally:
        db.close()


def _newest_first(row: tuple) -> tuple:
    return row[11], row[0]  # (created_at, execution_id) of a _SELECT_SUMMARY row


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SQLiteShardStore(ShardStore):
    """:class:`~wfctl.store.base.ShardStore` on one SQLite file (see :mod:`wfctl.store.base`).

    Inputs, states and outputs larger than ``spill_threshold_bytes`` live in the ``blobs``
    table; a run whose state went out of line keeps it there. Values over
    ``max_payload_bytes`` are refused before any write. ``hot_rows``: every transaction that
    creates, finishes or cancels runs also adds their number to the ``hot_row`` row.
    """

    def __init__(self, path: Path, shard: int, *, durability: str = "normal",
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 spill_threshold_bytes: int = DEFAULT_SPILL_THRESHOLD_BYTES,
                 busy_deadline_s: float = DEFAULT_BUSY_DEADLINE_S, hot_rows: bool = False):
        self.shard = shard
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self.spill_threshold_bytes = spill_threshold_bytes
        self.hot_rows = hot_rows
        self._db = Connection(self.path, durability=durability, busy_deadline_s=busy_deadline_s,
                              counters_sql=_COUNTERS_SQL)
        try:
            with self._db.read() as conn:
                check_schema(conn, self.path, SHARD_APP_ID)
                (stored,) = conn.execute("SELECT shard FROM shard_status WHERE id = 1").fetchone()
                old = shard_lacks_columns(conn)
                self._has_hot_row = has_hot_row(conn)
            if stored != shard:
                raise CorruptShardError(f"{self.path} holds shard {stored}, not shard {shard}")
            # Written before schedules, versions or hot_row: add them (additive, same schema version);
            # a file opened read-only without hot_row reports a count of 0.
            if old or not (self._has_hot_row or self._db.readonly):
                with self._db.write() as conn:
                    add_run_columns(conn)
                    add_hot_row(conn)
                self._has_hot_row = True
        except BaseException:
            self._db.conn.close()
            raise

    # -- helpers ---------------------------------------------------------------------------

    def _place(self, conn: sqlite3.Connection, execution_id: str, text: str | None, size: int,
               blob: int | None) -> tuple[str | None, int | None]:
        """Where a value goes: ``(inline text, blob id)``; once out of line, it stays there."""
        if blob is not None:
            if text is None:
                conn.execute("DELETE FROM blobs WHERE id = ?", (blob,))
                return None, None
            conn.execute("UPDATE blobs SET body = ? WHERE id = ?", (text, blob))
            return None, blob
        if size > self.spill_threshold_bytes:
            cur = conn.execute("INSERT INTO blobs (execution_id, body) VALUES (?, ?)", (execution_id, text))
            return None, cur.lastrowid
        return text, None

    @staticmethod
    def _append_journal(conn: sqlite3.Connection, execution_id: str, params: list[tuple]) -> None:
        if not params:
            return
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal WHERE execution_id = ?",
                               (execution_id,)).fetchone()
        conn.executemany(_INSERT_JOURNAL, [(execution_id, last + i, *p) for i, p in enumerate(params, 1)])

    def _count_hot(self, conn: sqlite3.Connection, n: int) -> None:
        """With ``hot_rows``: add ``n`` runs created or finished to the shard's one ``hot_row`` row."""
        if self.hot_rows and n:
            conn.execute(_HOT_ROW, (n,))

    @staticmethod
    def _ended_by(conn: sqlite3.Connection, execution_id: str, params: list[tuple], end: float | None) -> list[tuple]:
        """:func:`~wfctl.store.shard_rules.ended_by` after the run's last journal row."""
        last = conn.execute("SELECT step_slug, attempt, status FROM journal WHERE execution_id = ?"
                            " ORDER BY seq DESC LIMIT 1", (execution_id,)).fetchone()
        return ended_by(last, params, end)

    @contextmanager
    def _fenced(self, generation: int) -> Iterator[sqlite3.Connection]:
        """A write transaction that first checks the lease generation is still current."""
        with self._db.write() as conn:
            self._check_generation(conn, generation)
            yield conn

    def _check_generation(self, conn: sqlite3.Connection, generation: int) -> None:
        owner, current = conn.execute(
            "SELECT lease_owner, generation FROM shard_status WHERE id = 1").fetchone()
        if current != generation or owner is None:
            state = f"generation is now {current}" if current != generation else "the lease was released"
            raise FencingError(f"shard {self.shard} ({self.path}): lease generation {generation} "
                               f"is no longer valid ({state})")

    def _load(self, conn: sqlite3.Connection, execution_ids: Sequence[str]) -> list[RunRecord]:
        """Full records of ``execution_ids`` (missing ones left out), in that order."""
        found: dict[str, RunRecord] = {}
        for chunk in chunks(execution_ids, _IN_CHUNK):
            for row in conn.execute(f"{_SELECT_RUN} WHERE r.execution_id IN ({_marks(len(chunk))})", chunk):
                found[row[0]] = run_record(row, self.shard)
        return [found[i] for i in execution_ids if i in found]

    @staticmethod
    def _where(statuses: Sequence[str] | None, definition_id: str | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            clauses.append(f"r.status IN ({_marks(len(statuses))})")
            params.extend(statuses)
        if definition_id is not None:
            clauses.append("r.definition_id = ?")
            params.append(definition_id)
        return clauses, params

    # -- clients ---------------------------------------------------------------------------

    def _existing(self, conn: sqlite3.Connection, execution_id: str, idempotency_key: str | None) -> str | None:
        """The id of the run that has ``execution_id`` (first) or ``idempotency_key``, if any."""
        if idempotency_key is None:
            rows = conn.execute("SELECT execution_id, NULL FROM runs WHERE execution_id = ?", (execution_id,))
        else:
            rows = conn.execute("SELECT execution_id, idempotency_key FROM runs WHERE execution_id = ?"
                                " OR idempotency_key = ?", (execution_id, idempotency_key))
        return holders([(execution_id, idempotency_key)], rows).get(execution_id)

    def _insert(self, conn: sqlite3.Connection, execution_id: str, definition_id: str, current: str | None,
                idempotency_key: str | None, timeout_s: float | None, input_json: tuple[str | None, int],
                state_json: tuple[str | None, int], now: float, slot_time: float | None = None,
                definition_version: str | None = None) -> str | None:
        """Insert a pending run and its queue entry; the existing run's id (nothing written)
        when the id or the key is taken. Three statements: the conflict check is the insert's."""
        input_text, input_size = input_json
        state_text, state_size = state_json
        input_blob = state_blob = None
        if input_size > self.spill_threshold_bytes or state_size > self.spill_threshold_bytes:
            existing = self._existing(conn, execution_id, idempotency_key)  # before writing any blob
            if existing is not None:
                return existing
            input_text, input_blob = self._place(conn, execution_id, input_text, input_size, None)
            state_text, state_blob = self._place(conn, execution_id, state_text, state_size, None)
        cur = conn.execute(_INSERT_RUN, (execution_id, definition_id, current, idempotency_key, timeout_s, now, now,
                                         input_blob, state_blob, input_text, state_text, slot_time,
                                         definition_version))
        if cur.rowcount == 0:
            return self._existing(conn, execution_id, idempotency_key)
        conn.execute(_INSERT_QUEUE, (execution_id, now))
        return None

    def create_runs(self, runs: Sequence[NewRun], *, now: float) -> list[tuple[RunRecord, bool]]:
        prepared = [(run, *new_run_values(run, self.max_payload_bytes)) for run in runs]
        results: list[tuple[RunRecord, bool]] = []
        if not prepared:
            return results
        with self._db.write() as conn:
            for run, input_json, state_json in prepared:
                existing = self._insert(conn, run.execution_id, run.definition_id, first_step(run),
                                        run.idempotency_key, run.timeout_s, input_json, state_json, now, run.slot_time,
                                        run.definition_version)
                if existing is not None:
                    results.append((self._load(conn, [existing])[0], False))
                    continue
                results.append((created_record(run, self.shard, now), True))
            self._count_hot(conn, sum(created for _, created in results))
        return results

    can_try_start = True

    def start_run(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                  state_json: tuple[str | None, int], *, current_step: str | None,
                  idempotency_key: str | None = None, timeout_s: float | None = None, now: float,
                  slot_time: float | None = None, definition_version: str | None = None) -> tuple[str, bool]:
        return self._start(execution_id, definition_id, input_json, state_json, current_step, idempotency_key,
                           timeout_s, now, slot_time, definition_version, wait=True)

    def try_start(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                  state_json: tuple[str | None, int], *, current_step: str | None,
                  idempotency_key: str | None = None, timeout_s: float | None = None, now: float,
                  slot_time: float | None = None, definition_version: str | None = None) -> tuple[str, bool] | None:
        """:meth:`start_run`, or None at once, writing nothing, when the file's write lock is held
        elsewhere (counted as a lock retry)."""
        return self._start(execution_id, definition_id, input_json, state_json, current_step, idempotency_key,
                           timeout_s, now, slot_time, definition_version, wait=False)

    def _start(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
               state_json: tuple[str | None, int], current_step: str | None, idempotency_key: str | None,
               timeout_s: float | None, now: float, slot_time: float | None, definition_version: str | None,
               *, wait: bool) -> tuple[str, bool] | None:
        check_start(execution_id, input_json, state_json, self.max_payload_bytes)
        db = self._db
        if not db.begin(wait=wait):
            return None
        try:
            existing = self._insert(db.conn, execution_id, definition_id, current_step, idempotency_key, timeout_s,
                                    input_json, state_json, now, slot_time, definition_version)
            self._count_hot(db.conn, int(existing is None))
        except BaseException as exc:
            raise db.abandon(exc)
        db.commit()
        return (execution_id, True) if existing is None else (existing, False)

    def get_run(self, execution_id: str) -> RunRecord | None:
        with self._db.read() as conn:
            row = conn.execute(f"{_SELECT_RUN} WHERE r.execution_id = ?", (execution_id,)).fetchone()
        return None if row is None else run_record(row, self.shard)

    def journal(self, execution_id: str) -> list[JournalRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                f"{_JOURNAL_FIELDS} WHERE execution_id = ? ORDER BY seq",
                (execution_id,)).fetchall()
        return [journal_record(r) for r in rows]

    def journal_page(self, execution_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[JournalRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                f"{_JOURNAL_FIELDS} WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (execution_id, after_seq, limit)).fetchall()
        return [journal_record(r) for r in rows]

    def journal_of_step(self, execution_id: str, step_slug: str) -> list[JournalRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                f"{_JOURNAL_FIELDS} WHERE execution_id = ? AND step_slug = ? ORDER BY seq",
                (execution_id, step_slug)).fetchall()
        return [journal_record(r) for r in rows]

    def journal_count(self, execution_id: str) -> int:
        with self._db.read() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM journal WHERE execution_id = ?", (execution_id,)).fetchone()
        return count

    def journal_steps(self, execution_id: str) -> int:
        with self._db.read() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM journal j WHERE j.execution_id = ? AND NOT (j.status = 'started' AND EXISTS ("
                "SELECT 1 FROM journal n WHERE n.execution_id = j.execution_id AND n.seq = j.seq + 1"
                " AND n.step_slug = j.step_slug AND n.attempt = j.attempt))", (execution_id,)).fetchone()
        return count

    def list_runs(self, statuses: Collection[str] | None = None, definition_id: str | None = None,
                  limit: int = 100, before: tuple[float, str] | None = None,
                  finished_since: float | None = None) -> list[RunRecord]:
        wanted = None if statuses is None else checked_statuses(statuses, RUN_STATUSES, "list")
        order = " ORDER BY r.created_at DESC, r.execution_id DESC LIMIT ?"
        after = " AND (r.created_at, r.execution_id) < (?, ?)" if before is not None else ""
        bounds: tuple[Any, ...] = tuple(before or ())
        if finished_since is not None:
            after += " AND r.completed_at >= ?"
            bounds += (finished_since,)
        if definition_id is None:  # one range of the status index per status, merged newest first
            pages = []
            with self._db.read() as conn:
                for status in dict.fromkeys(RUN_STATUSES if wanted is None else wanted):
                    params = (status, *bounds, limit)
                    pages.append(conn.execute(f"{_SELECT_SUMMARY} WHERE r.status = ?{after}{order}", params).fetchall())
            merged = heapq.merge(*pages, key=_newest_first, reverse=True)
            return [run_record(row, self.shard) for row in itertools.islice(merged, limit)]
        clauses, params = self._where(wanted, definition_id)
        with self._db.read() as conn:
            rows = conn.execute(f"{_SELECT_SUMMARY} WHERE {' AND '.join(clauses)}{after}{order}",
                                (*params, *bounds, limit)).fetchall()
        return [run_record(row, self.shard) for row in rows]

    def count_runs(self, statuses: Collection[str] | None = None, definition_id: str | None = None,
                   finished_before: float | None = None) -> int:
        wanted = None if statuses is None else checked_statuses(statuses, RUN_STATUSES, "count")
        clauses, params = self._where(wanted, definition_id)
        if finished_before is not None:
            clauses.append("r.completed_at < ?")
            params.append(finished_before)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.read() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM runs r{where}", params).fetchone()[0]

    def _cancel(self, conn: sqlite3.Connection, execution_ids: Sequence[str], now: float | Callable[[], float]) -> list[str]:
        """Cancel in the write transaction ``conn`` holds; a clock ``now`` is read here, with the lock held."""
        now = now() if callable(now) else now
        canceled = [r[0] for r in conn.execute(
            f"UPDATE runs SET status = 'canceled', completed_at = ?, updated_at = ?"
            f" WHERE execution_id IN ({_marks(len(execution_ids))}) AND status IN ('pending', 'running')"
            " RETURNING execution_id", (now, now, *execution_ids)).fetchall()]
        if canceled:
            conn.execute(f"DELETE FROM queue WHERE execution_id IN ({_marks(len(canceled))})", canceled)
            self._count_hot(conn, len(canceled))
        return canceled

    def cancel_runs(self, execution_ids: Collection[str], *, now: float | Callable[[], float]) -> list[str]:
        canceled: list[str] = []
        for chunk in chunks(list(dict.fromkeys(execution_ids)), DELETE_BATCH):
            with self._db.write() as conn:
                canceled.extend(self._cancel(conn, chunk, now))
        return canceled

    def cancel_matching(self, definition_id: str | None, statuses: Collection[str] | None = None,
                        *, now: float | Callable[[], float], batch: int = DELETE_BATCH) -> int:
        clauses, params = self._where(checked_statuses(statuses, UNFINISHED, "cancel"), definition_id)
        select = f"SELECT execution_id FROM runs r WHERE {' AND '.join(clauses)} LIMIT ?"
        total = 0
        while True:
            with self._db.write() as conn:
                ids = [r[0] for r in conn.execute(select, (*params, batch))]
                if ids:
                    total += len(self._cancel(conn, ids, now))
            if len(ids) < batch:
                return total

    @staticmethod
    def _delete(conn: sqlite3.Connection, execution_ids: Sequence[str]) -> int:
        marks = _marks(len(execution_ids))
        deleted = conn.execute(f"DELETE FROM runs WHERE execution_id IN ({marks})", execution_ids).rowcount
        for table in ("journal", "blobs", "queue"):
            conn.execute(f"DELETE FROM {table} WHERE execution_id IN ({marks})", execution_ids)
        return deleted

    def delete_runs(self, execution_ids: Collection[str]) -> int:
        total = 0
        finished = f"status IN ({_marks(len(FINISHED))})"
        for chunk in chunks(list(dict.fromkeys(execution_ids)), DELETE_BATCH):
            with self._db.write() as conn:
                ids = [r[0] for r in conn.execute(
                    f"SELECT execution_id FROM runs WHERE execution_id IN ({_marks(len(chunk))}) AND {finished}",
                    (*chunk, *FINISHED))]
                if ids:
                    total += self._delete(conn, ids)
        return total

    def delete_finished(self, older_than: float, statuses: Collection[str] | None = None,
                        *, batch: int = DELETE_BATCH) -> int:
        wanted = checked_statuses(statuses, FINISHED, "delete")
        select = (f"SELECT execution_id FROM runs WHERE status IN ({_marks(len(wanted))})"
                  " AND completed_at < ? LIMIT ?")
        total = 0
        while True:
            with self._db.write() as conn:
                ids = [r[0] for r in conn.execute(select, (*wanted, older_than, batch))]
                if ids:
                    total += self._delete(conn, ids)
            if len(ids) < batch:
                return total

    def inactive_runs(self, now: float, default_timeout_s: float, limit: int = 100) -> list[RunRecord]:
        active = "MAX(r.updated_at, COALESCE(r.wake_at, 0))"
        with self._db.read() as conn:
            rows = conn.execute(
                f"{_SELECT_RUN} WHERE r.status IN ('pending', 'running')"
                f" AND {active} + COALESCE(r.timeout_s, ?) < ? ORDER BY {active} LIMIT ?",
                (default_timeout_s, now, limit)).fetchall()
        return [run_record(row, self.shard) for row in rows]

    def stats(self) -> ShardStats:
        with self._db.read() as conn:
            by_status = dict(conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
            (depth,) = conn.execute("SELECT COUNT(*) FROM queue").fetchone()
            waiting = conn.execute("SELECT COUNT(*), MAX(error) FROM runs WHERE status IN ('pending', 'running')"
                                   " AND error IS NOT NULL").fetchone()
            row = conn.execute(
                "SELECT lock_retries, lock_wait_ms, transactions, lease_owner, lease_expires_at,"
                " generation, heartbeat_at FROM shard_status WHERE id = 1").fetchone()
            hot = conn.execute("SELECT count FROM hot_row WHERE id = 1").fetchone()[0] if self._has_hot_row else 0
        wal = Path(f"{self.path}-wal")
        file_bytes, wal_bytes = os.path.getsize(self.path), wal.stat().st_size if wal.exists() else 0
        retries, wait_ms = self._contention(row[0], row[1])
        return ShardStats(
            shard=self.shard, runs_by_status=by_status, queue_depth=depth, retries=retries, wait_ms=wait_ms,
            transactions=row[2] + self._db.transactions, lease_owner=row[3], lease_expires_at=row[4], generation=row[5],
            heartbeat_at=row[6], size_bytes=file_bytes + wal_bytes,
            details={"file_bytes": file_bytes, "wal_bytes": wal_bytes, "hot_row_count": hot}, waiting=waiting[0],
            waiting_error=waiting[1])

    def _contention(self, stored_retries: int, stored_wait_ms: float) -> tuple[dict[str, int], dict[str, float]]:
        """The persisted lock counters plus this process's unpersisted share, by cause: SQLite's
        only one is a busy write lock."""
        db = self._db
        return ({LOCK_BUSY: stored_retries + db.lock_retries},
                {LOCK_BUSY: stored_wait_ms + db.lock_wait_s * 1000.0})

    def progress(self) -> ShardProgress:
        with self._db.read() as conn:
            # MAX(rowid) is a b-tree lookup (runs are never re-inserted); the unfinished are a
            # short range of the status index; neither grows with the finished runs.
            (runs,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()
            (unfinished,) = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running')").fetchone()
            (depth,) = conn.execute("SELECT COUNT(*) FROM queue").fetchone()
            row = conn.execute("SELECT lock_retries, lock_wait_ms, transactions FROM shard_status WHERE id = 1").fetchone()
        retries, wait_ms = self._contention(row[0], row[1])
        return ShardProgress(self.shard, runs, unfinished, depth, retries, wait_ms, row[2] + self._db.transactions)

    def health(self, *, now: float) -> ShardHealth:
        with self._db.read() as conn:
            (depth,) = conn.execute("SELECT COUNT(*) FROM queue").fetchone()
            row = conn.execute("SELECT lock_retries, lock_wait_ms, lease_owner, lease_expires_at, generation,"
                               " heartbeat_at FROM shard_status WHERE id = 1").fetchone()
            ready, oldest = conn.execute("SELECT COUNT(*), MIN(ready_at) FROM queue WHERE ready_at <= ?"
                                         " AND claimed IS NOT ?", (now, -1 if row[2] is None else row[4])).fetchone()
        retries, wait_ms = self._contention(row[0], row[1])
        return ShardHealth(self.shard, depth, ready, oldest, *row[2:], retries, wait_ms, now)

    def scan_runs(self, batch: int = 1000) -> Iterator[RunTimes]:
        with self._db.read() as conn:
            cursor = conn.execute("SELECT definition_id, status, created_at, completed_at, slot_time, error FROM runs")
            while rows := cursor.fetchmany(batch):
                for row in rows:
                    yield RunTimes(*row)

    def version_counts(self, definition_id: str) -> dict[str | None, int]:
        with self._db.read() as conn:
            return dict(conn.execute("SELECT definition_version, COUNT(*) FROM runs WHERE definition_id = ?"
                                     " GROUP BY definition_version", (definition_id,)).fetchall())

    def check(self) -> None:
        with self._db.read() as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            detail = "; ".join(" ".join(p.split()) for p in problems)
            raise CorruptShardError(f"{self.path} is corrupt or not a wfctl database ({detail})")

    def stored_bytes(self) -> int:
        with self._db.read() as conn:
            (runs,) = conn.execute("SELECT COALESCE(SUM(COALESCE(LENGTH(input), 0) + COALESCE(LENGTH(state), 0)"
                                   " + COALESCE(LENGTH(output), 0)), 0) FROM runs").fetchone()
            (blobs,) = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM blobs").fetchone()
        return runs + blobs

    # -- the lease holder ------------------------------------------------------------------

    def acquire_lease(self, owner: str, ttl_s: float, *, now: float) -> int | None:
        lease = "SELECT lease_owner, lease_expires_at, generation FROM shard_status WHERE id = 1"

        def held(row: tuple) -> bool:
            return row[0] is not None and row[0] != owner and row[1] > now

        with self._db.read() as conn:  # a held lease needs no write transaction
            if held(conn.execute(lease).fetchone()):
                return None
        with self._db.write() as conn:
            row = conn.execute(lease).fetchone()
            if held(row):
                return None
            generation = row[2] + 1
            conn.execute("UPDATE shard_status SET lease_owner = ?, lease_expires_at = ?, generation = ?,"
                         " heartbeat_at = ? WHERE id = 1", (owner, now + ttl_s, generation, now))
        return generation

    def renew_lease(self, owner: str, generation: int, ttl_s: float, *, now: float) -> float:
        with self._fenced(generation) as conn:
            cur = conn.execute("UPDATE shard_status SET lease_expires_at = ?, heartbeat_at = ?"
                               " WHERE id = 1 AND lease_owner = ?", (now + ttl_s, now, owner))
            if cur.rowcount != 1:
                raise FencingError(f"shard {self.shard} ({self.path}): the lease of generation "
                                   f"{generation} is not held by {owner!r}")
        return now + ttl_s

    def release_lease(self, owner: str, generation: int) -> bool:
        with self._db.write() as conn:
            cur = conn.execute("UPDATE shard_status SET lease_owner = NULL, lease_expires_at = NULL"
                               " WHERE id = 1 AND generation = ? AND lease_owner = ?", (generation, owner))
        return cur.rowcount == 1

    def claim_ready(self, generation: int, *, now: float, limit: int,
                    only: Collection[str] | None = None) -> list[RunRecord]:
        wanted = tuple(dict.fromkeys(only or ()))
        if only is not None and not wanted:
            return []
        among = "" if only is None else f" AND execution_id IN ({_marks(len(wanted))})"
        ready = (f"SELECT execution_id FROM queue WHERE ready_at <= ? AND claimed IS NOT ?{among}"
                 " ORDER BY ready_at LIMIT ?")
        with self._db.read() as conn:  # an empty queue needs no write transaction
            self._check_generation(conn, generation)
            if conn.execute(ready, (now, generation, *wanted, 1)).fetchone() is None:
                return []
        with self._fenced(generation) as conn:
            ids = [r[0] for r in conn.execute(ready, (now, generation, *wanted, limit))]
            conn.executemany("UPDATE queue SET claimed = ? WHERE execution_id = ?", [(generation, i) for i in ids])
            return self._load(conn, ids)

    def mark_step_started(self, generation: int, execution_id: str, row: JournalRow, *, now: float) -> bool:
        params = journal_params(execution_id, [row], self.max_payload_bytes)
        with self._fenced(generation) as conn:
            found = conn.execute("SELECT status FROM runs WHERE execution_id = ?", (execution_id,)).fetchone()
            if found is None or found[0] in FINISHED:
                return False
            names = ("slug", "type", "attempt", "status", "port", "error", "started", "finished", "output")
            conn.execute(_MARK_STARTED, {**dict(zip(names, params[0])), "id": execution_id})
            conn.execute("UPDATE runs SET status = 'running', current_step = ?, attempt = ?, updated_at = ?,"
                         " started_at = COALESCE(started_at, ?) WHERE execution_id = ?",
                         (row.step_slug, row.attempt, now, now, execution_id))
        return True

    def commit_steps(self, generation: int, updates: Sequence[StepCommit], *, now: float) -> list[str]:
        prepared = [(u, *commit_values(u, self.max_payload_bytes)) for u in updates]
        skipped: list[str] = []
        finished = 0
        with self._fenced(generation) as conn:
            for u, (state_text, state_size), (output_text, output_size), journal in prepared:
                eid = u.execution_id
                found = conn.execute("SELECT status, state_blob, output_blob, completed_at FROM runs"
                                     " WHERE execution_id = ?", (eid,)).fetchone()
                if found is None:
                    skipped.append(eid)
                    continue
                if found[0] in FINISHED:  # canceled meanwhile
                    self._append_journal(conn, eid, self._ended_by(conn, eid, journal, found[3]))
                    skipped.append(eid)
                    continue
                self._append_journal(conn, eid, journal)
                state_text, state_blob = self._place(conn, eid, state_text, state_size, found[1])
                output_text, output_blob = self._place(conn, eid, output_text, output_size, found[2])
                completed_at = now if u.status != RUNNING else None
                finished += completed_at is not None
                conn.execute(_UPDATE_RUN, (u.status, u.current_step, u.attempt, state_text, state_blob,
                                           output_text, output_blob, u.error, u.wake_at, now, now, completed_at, eid))
                if u.ready_at is None:
                    conn.execute("DELETE FROM queue WHERE execution_id = ?", (eid,))
                else:
                    conn.execute(_REQUEUE, (eid, u.ready_at))
            self._count_hot(conn, finished)
        return skipped

    # -- retries ---------------------------------------------------------------------------

    def step_state(self, execution_id: str, seq: int) -> dict[str, Any] | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT state FROM journal WHERE execution_id = ? AND seq = ?",
                               (execution_id, seq)).fetchone()
        return None if row is None else decode(row[0])

    def retry_run(self, commit: StepCommit, *, expected: tuple[str, float], now: float) -> bool:
        (state_text, state_size), (output_text, output_size), journal = retry_values(commit, self.max_payload_bytes)
        eid = commit.execution_id
        with self._db.write() as conn:  # BEGIN IMMEDIATE: the status compared is the one replaced
            found = conn.execute("SELECT status, updated_at, state_blob, output_blob FROM runs WHERE execution_id = ?",
                                 (eid,)).fetchone()
            if not retry_applies(found, expected):
                return False
            self._append_journal(conn, eid, journal)
            state_text, state_blob = self._place(conn, eid, state_text, state_size, found[2])
            output_text, output_blob = self._place(conn, eid, output_text, output_size, found[3])
            conn.execute(_UPDATE_RUN, (RUNNING, commit.current_step, commit.attempt, state_text, state_blob,
                                       output_text, output_blob, commit.error, commit.wake_at, now, now, None, eid))
            conn.execute(_REQUEUE, (eid, commit.ready_at))
        return True

    def close(self) -> None:
        self._db.close()
