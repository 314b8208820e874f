"""PostgreSQL sessions: one psycopg connection per store, transactions retried by SQLSTATE cause.

A :class:`Session` runs each transaction as a function of the connection, in pipeline mode
(``BEGIN``, the statements and ``COMMIT`` travel together: one round trip unless the function
reads a result before sending the rest). A transaction that failed with a serialization
failure (40001), a deadlock (40P01) or a lock timeout (55P03) was rolled back by the server: it
is retried after a short jittered sleep, counted by cause. A lost connection (class 08,
57P01-57P03, an idle session ended by the server) is re-opened with backoff for at most
:data:`RECONNECT_DEADLINE_S` (a first connection: :data:`CONNECT_DEADLINE_S`; a server this
process gave up on recently, or a caller inside :func:`~wfctl.store.patience.impatient`: one
attempt; a connection refused for good, see :data:`_REFUSED`, is one error at once); a
transaction that may have committed before the connection broke is retried only
when the caller declares it idempotent, otherwise an :class:`UnreachableError` says its outcome
is unknown. Every other error is one line naming the shard and the server
(host:port/dbname, never a password).

Counters (retries and wait by cause, transactions) accumulate in memory and are persisted in
their own small transaction at most every :data:`FLUSH_EVERY_S` seconds and on :meth:`Session.close`,
so no start updates a shared row.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo

from ...errors import InputError
from ..base import CONNECTION_LOST, DEADLOCK, LOCK_BUSY, LOCK_TIMEOUT, SERIALIZATION_FAILURE
from ..errors import CorruptShardError, FencingError, StoreBusyError, StoreError, UnreachableError
from ..patience import is_impatient
from ..roles import application_name, session_role

T = TypeVar("T")
_log = logging.getLogger("wfctl.store.postgresql")


def _not_pipeline_aborted(record: logging.LogRecord) -> bool:
    """False for psycopg's warning that leaving a pipeline failed after its transaction failed
    (``pipeline aborted``): the transaction's own error is what the session handles (a conflict
    retried and counted), so the warning is noise on every worker's stderr."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (record.msg == "error ignored terminating %r: %s" and len(args) == 2
                and isinstance(args[1], psycopg.errors.PipelineAborted))


logging.getLogger("psycopg").addFilter(_not_pipeline_aborted)

CAUSES = {"40001": SERIALIZATION_FAILURE, "40P01": DEADLOCK, "55P03": LOCK_TIMEOUT}
RETRY_CAUSES = (SERIALIZATION_FAILURE, DEADLOCK, LOCK_TIMEOUT, CONNECTION_LOST, LOCK_BUSY)
"""The causes a PostgreSQL store counts retries under (reported even when 0)."""
_LOST = {"57P01", "57P02", "57P03", "25P03"}  # shutdowns, cannot connect now, idle-in-transaction timeout
_MISSING = {"3F000", "42P01", "42883", "42703"}  # no such schema, table, function, column
_REFUSED = ("does not exist", "password authentication failed", "no password supplied", "pg_hba.conf",
            "permission denied")
"""What a server says when it refuses a connection for good (no such database or role, wrong or
missing password, not allowed): told at once, never retried. libpq gives no SQLSTATE for these."""
FENCED = "WF001"  # raised by the shard schema's fence() function
STALE_STATEMENT = "26000"
"""A prepared statement the connection does not have: psycopg prepares a statement run often by
sending its Parse in the pipeline and takes it for prepared at once, but a failure earlier in the
pipeline (a retried conflict) makes the server skip that Parse. Its next use fails with this
before anything runs; the session then opens a fresh connection (with no such statements) and
runs the transaction again."""

ISOLATIONS = ("read committed", "serializable")
SYNCHRONOUS_COMMIT = {"normal": "off", "full": "on"}
RETRY_START_S = 0.001
RETRY_CAP_S = 0.1
RETRY_DEADLINE_S = 30.0
RECONNECT_START_S = 0.1
RECONNECT_CAP_S = 2.0
RECONNECT_DEADLINE_S = 30.0
CONNECT_DEADLINE_S = 5.0
CONNECT_TIMEOUT_S = 10
FLUSH_EVERY_S = 5.0
IDLE_IN_TRANSACTION_S = 10
LOCK_TIMEOUT_S = 10

#: server DSN -> when (monotonic) this process last gave up reaching it
_gave_up: dict[str, float] = {}


def parse_dsn(dsn: str, where: str) -> dict[str, str]:
    """The DSN's parameters; InputError (one line) when it is malformed or holds a password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InputError(f"{where}: not a valid PostgreSQL DSN ({' '.join(str(exc).split())})") from None
    if params.get("password"):
        raise InputError(f"{where}: the DSN holds a password; put it in ~/.pgpass or $PGPASSWORD instead")
    return {k: str(v) for k, v in params.items()}


def server_name(dsn: str, env: Mapping[str, str] = os.environ) -> str:
    """``host:port/dbname`` of a DSN, libpq's environment and defaults filling the gaps."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "?"
    host = str(params.get("host") or params.get("hostaddr") or env.get("PGHOST") or "localhost")
    port = str(params.get("port") or env.get("PGPORT") or "5432")
    user = params.get("user") or env.get("PGUSER") or ""
    dbname = str(params.get("dbname") or env.get("PGDATABASE") or user or "?")
    return f"{host}:{port}/{dbname}"


class Session:
    """One connection to one schema of one server, shared between threads (a lock serializes use).

    ``label`` names what it serves in errors (``shard 3``); ``schema`` is its ``search_path``;
    ``isolation`` applies to every transaction; ``durability`` sets ``synchronous_commit``;
    ``counters``: persist the counters in the schema's ``counters`` table. The connection's
    ``application_name`` is ``wfctl <schema> <role>`` (:mod:`wfctl.store.roles`), renamed at the
    next transaction when the process's role changes.
    """

    def __init__(self, dsn: str, *, schema: str, label: str, isolation: str = "read committed",
                 durability: str = "normal", counters: bool = False, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if isolation not in ISOLATIONS:
            raise InputError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        if durability not in SYNCHRONOUS_COMMIT:
            raise InputError(f"durability must be one of {', '.join(SYNCHRONOUS_COMMIT)}, got {durability!r}")
        self.dsn = dsn
        self.schema = schema
        self.label = label
        self.server = server_name(dsn)
        self.isolation = isolation
        self.durability = durability
        self.retries: dict[str, int] = {}
        self.wait_ms: dict[str, float] = {}
        self.transactions = 0
        self.rollbacks = 0  # transactions that ended rolled back on a live connection, whatever the cause
        self.lost_and_retried = False  # whether the last run() was retried after losing its connection
        self.counters = counters
        self._flushed_at = time.monotonic()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._pipeline: psycopg.Pipeline | None = None
        self._connected_once = False
        self._after_commit_failed = False
        self._role = session_role()  # the role the connection is named with (see wfctl.store.roles)

    @property
    def where(self) -> str:
        """``shard 3 (127.0.0.1:5432/test schema wfctl_shard_003)``, for messages."""
        return f"{self.label} ({self.server} schema {self.schema})"

    # -- connecting ------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        options = (f"-c search_path={self.schema} -c synchronous_commit={SYNCHRONOUS_COMMIT[self.durability]}"
                   f" -c default_transaction_isolation={self.isolation.replace(' ', chr(92) + ' ')}"
                   f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_S * 1000}"
                   f" -c lock_timeout={LOCK_TIMEOUT_S * 1000}")
        params = parse_dsn(self.dsn, self.label)
        if params.get("options"):
            options = f"{params['options']} {options}"
        timeout = params.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT") or CONNECT_TIMEOUT_S
        self._role = session_role()
        return psycopg.connect(self.dsn, autocommit=True, options=options, connect_timeout=int(timeout),
                               application_name=application_name(self.schema, self._role))

    def connection(self) -> psycopg.Connection:
        """The open connection, (re)connecting with backoff for at most :data:`RECONNECT_DEADLINE_S`
        (:data:`CONNECT_DEADLINE_S` before the first connection: a wrong DSN is told soon). Once
        a session of this process gave up on the server, the next :data:`RECONNECT_DEADLINE_S`
        seconds make one attempt per call (so do :func:`~wfctl.store.patience.impatient` callers),
        so no caller waits again for a server known to be down."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        start = time.monotonic()
        delay = RECONNECT_START_S
        deadline = RECONNECT_DEADLINE_S if self._connected_once else CONNECT_DEADLINE_S
        gave_up = _gave_up.get(self.dsn)
        if is_impatient() or (gave_up is not None and start - gave_up < RECONNECT_DEADLINE_S):
            deadline = 0.0
        while True:
            try:
                self._conn = self._connect()
                self._connected_once = True
                _gave_up.pop(self.dsn, None)
                return self._conn
            except psycopg.OperationalError as exc:
                if not _is_lost(exc) or any(refusal in str(exc) for refusal in _REFUSED):
                    raise self.error(exc) from None
                waited = time.monotonic() - start
                if waited >= deadline:
                    _gave_up[self.dsn] = time.monotonic()
                    took = f" for {waited:.0f} s" if waited >= 1 else ""
                    raise UnreachableError(f"{self.where}: cannot reach the server{took}: {_first_line(exc)}") from None
                self._count(CONNECTION_LOST, 0.0)
                pause = min(delay * self._rng.uniform(0.5, 1.5), deadline - waited)
                self._sleep(pause)
                self._count(CONNECTION_LOST, pause * 1000.0, retries=0)
                delay = min(delay * 2, RECONNECT_CAP_S)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    # -- transactions ----------------------------------------------------------------------

    def run(self, work: Callable[[psycopg.Connection], T], *, idempotent: bool = True, write: bool = True,
            isolation: str | None = None, pipeline: bool = True, after_commit: tuple[str, Any] | None = None,
            on_lock_timeout: Callable[[psycopg.Connection], None] | None = None) -> T:
        """Run ``work(conn)`` in one transaction and commit; retried as the module says. ``write``:
        count it as a write transaction; ``isolation`` overrides the session's; ``pipeline`` False
        for work that sends several statements in one string (DDL). ``after_commit``: a statement
        ``(query, params)`` sent after the COMMIT in the same round trip, run in its own transaction
        (a NOTIFY that the commit must not wait for); its failure is logged, not raised.
        ``on_lock_timeout(conn)``: called (outside any transaction) before retrying a lock timeout,
        to deal with whoever holds the lock; its errors are logged."""
        with self._lock:
            start = time.monotonic()
            delay = RETRY_START_S
            self.lost_and_retried = False
            renewed = False
            while True:
                conn = self.connection()
                attempted_at = time.monotonic()
                try:
                    result = self._attempt(conn, work, isolation, pipeline, after_commit)
                except psycopg.Error as exc:
                    self._rollback(conn)
                    if not (conn.broken or conn.closed):
                        self.rollbacks += 1
                    sqlstate = getattr(exc, "sqlstate", None)
                    cause = CAUSES.get(sqlstate or "")
                    if cause is not None:
                        waited = time.monotonic() - start
                        if waited >= RETRY_DEADLINE_S:
                            raise StoreBusyError(f"{self.where}: gave up after {waited:.1f} s of {cause.replace('_', ' ')}"
                                                 f"s: {_first_line(exc)}") from None
                        if cause == LOCK_TIMEOUT and on_lock_timeout is not None:
                            self._unblock(conn, on_lock_timeout)
                        self._sleep(delay * self._rng.uniform(0.5, 1.5))
                        self._count(cause, (time.monotonic() - attempted_at) * 1000.0)  # the lost attempt too
                        delay = min(delay * 2, RETRY_CAP_S)
                        continue
                    if sqlstate == STALE_STATEMENT and not renewed:
                        renewed = True  # see STALE_STATEMENT: the transaction failed whole, so it runs again
                        self._drop()
                        continue
                    if _is_lost(exc) or conn.broken or conn.closed:
                        self._drop()
                        self._count(CONNECTION_LOST, 0.0)
                        if idempotent and time.monotonic() - start < RECONNECT_DEADLINE_S:
                            self.lost_and_retried = True
                            continue  # connection() waits and gives up after its deadline
                        if idempotent:
                            raise UnreachableError(f"{self.where}: the connection keeps breaking "
                                                   f"({_first_line(exc)})") from None
                        raise UnreachableError(f"{self.where}: the connection was lost during a write; its outcome is "
                                               f"unknown ({_first_line(exc)})") from None
                    raise self.error(exc) from None
                except BaseException:
                    if self._rollback(conn):
                        self.rollbacks += 1
                    raise
                if write:
                    self.transactions += 1
                self._maybe_flush(conn)
                return result

    def _attempt(self, conn: psycopg.Connection, work: Callable[[psycopg.Connection], T], isolation: str | None,
                 pipeline: bool = True, after_commit: tuple[str, Any] | None = None) -> T:
        begin = "BEGIN" if isolation is None else f"BEGIN ISOLATION LEVEL {isolation.upper()}"
        commit: psycopg.Cursor | None = None
        role = session_role()
        try:
            if role != self._role:  # the process's role changed since the connection was named
                conn.execute("SELECT set_config('application_name', %s, false)", (application_name(self.schema, role),))
                self._role = role
            if not pipeline:
                conn.execute(begin)
                result = work(conn)
                commit = conn.execute("COMMIT")
                if after_commit is not None:
                    conn.execute(*after_commit, prepare=False)
                return result
            with conn.pipeline() as self._pipeline:
                try:
                    conn.execute(begin)
                    result = work(conn)
                    commit = conn.execute("COMMIT")
                    if after_commit is not None:
                        conn.execute(*after_commit, prepare=False)  # never a statement a failed pipeline left unprepared
                finally:
                    self._pipeline = None
        except psycopg.Error as exc:
            if after_commit is None or commit is None or commit.statusmessage != "COMMIT":
                raise
            if not self._after_commit_failed:  # the transaction committed: only what followed it failed
                _log.warning("%s: the statement after a commit failed (logged once): %s", self.where, _first_line(exc))
            self._after_commit_failed = True
            self._rollback(conn)
            self.rollbacks += 1  # its own (implicit) transaction
        return result

    def check_or_close(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run the schema check ``work(conn)`` (outside a pipeline, not counted as a write) that
        opens a store on this session, or the completion of its schema; its result. The session is
        closed when it raises."""
        try:
            return self.run(work, write=False, pipeline=False)
        except BaseException:
            self.close()
            raise

    def fetch_synced(self, conn: psycopg.Connection, *queries: tuple[str, Any]) -> list[list[tuple]]:
        """The rows of ``queries`` (``(query, params)``), sent mid-transaction with what is pending
        and ended with a Sync: while the client then thinks (or is stopped), the server waits "idle
        in transaction", which ``idle_in_transaction_session_timeout`` ends, rather than in the
        middle of a message sequence, where a stopped client would hold its row locks for ever."""
        cursors = [conn.execute(query, params) for query, params in queries]
        if self._pipeline is not None:
            self._pipeline.sync()
        return [cursor.fetchall() for cursor in cursors]

    def _unblock(self, conn: psycopg.Connection, action: Callable[[psycopg.Connection], None]) -> None:
        try:
            action(conn)
        except psycopg.Error as exc:
            self._rollback(conn)
            _log.warning("%s: could not end the sessions holding a lock: %s", self.where, _first_line(exc))

    @staticmethod
    def _rollback(conn: psycopg.Connection) -> bool:
        """Roll back the transaction ``conn`` is in, if any; whether it was in one."""
        try:
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
                return True
        except psycopg.Error:
            pass  # the original error is the one worth reporting
        return False

    def error(self, exc: psycopg.Error) -> StoreError:
        """The store error for a psycopg error (one line naming the shard and the server)."""
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate == FENCED:
            diag = exc.diag.message_primary if getattr(exc, "diag", None) else _first_line(exc)
            return FencingError(f"{self.where}: {diag}")
        if sqlstate in _MISSING:
            return CorruptShardError(f"{self.where}: the schema is missing or damaged ({_first_line(exc)})")
        return StoreError(f"{self.where}: {_first_line(exc)}")

    # -- counters --------------------------------------------------------------------------

    def _count(self, cause: str, wait_ms: float, *, retries: int = 1) -> None:
        self.retries[cause] = self.retries.get(cause, 0) + retries
        self.wait_ms[cause] = self.wait_ms.get(cause, 0.0) + wait_ms

    def count(self, cause: str, wait_ms: float) -> None:
        """Count a retry the caller made itself (a start tried elsewhere: ``lock_busy``, with the
        time its attempt took), persisted with the others."""
        with self._lock:
            self._count(cause, wait_ms)

    def _maybe_flush(self, conn: psycopg.Connection, force: bool = False) -> None:
        """Persist the counters (their own read-committed transaction) when due or ``force``."""
        if not self.counters or not (self.transactions or self.rollbacks or any(self.retries.values())):
            return
        if not force and time.monotonic() - self._flushed_at < FLUSH_EVERY_S:
            return
        retries, wait_ms, transactions, rollbacks = dict(self.retries), dict(self.wait_ms), self.transactions, self.rollbacks
        try:
            self._attempt(conn, lambda c: counters_flush(c, retries, wait_ms, transactions, rollbacks), "read committed")
        except psycopg.Error:
            self._rollback(conn)
            self.rollbacks += 1
            return  # kept in memory: the next flush persists them
        for cause, n in retries.items():
            self.retries[cause] -= n
        for cause, ms in wait_ms.items():
            self.wait_ms[cause] -= ms
        self.transactions -= transactions
        self.rollbacks -= rollbacks
        self._flushed_at = time.monotonic()

    def pending(self) -> tuple[dict[str, int], dict[str, float], int, int]:
        """The counters not yet persisted: retries and wait by cause, transactions, rollbacks."""
        with self._lock:
            return dict(self.retries), dict(self.wait_ms), self.transactions, self.rollbacks

    def close(self) -> None:
        """Persist pending counters (best effort), then close the connection."""
        with self._lock:
            conn = self._conn
            if conn is not None and not conn.closed and not conn.broken:
                self._maybe_flush(conn, force=True)
            self._drop()


def _is_lost(exc: psycopg.Error) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is None:
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate.startswith("08") or sqlstate in _LOST


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def counters_flush(conn: psycopg.Connection, retries: dict[str, int], wait_ms: dict[str, float],
                   transactions: int, rollbacks: int = 0) -> None:
    """Add counters to the shard's ``counters`` table (one statement, rows in name order)."""
    totals = {"transactions": transactions, "rollbacks": rollbacks}
    names = sorted(set(retries) | set(wait_ms) | set(totals))
    counts = [totals[n] if n in totals else retries.get(n, 0) for n in names]
    waits = [0.0 if n in totals else wait_ms.get(n, 0.0) for n in names]
    conn.execute("INSERT INTO counters (name, count, wait_ms) SELECT * FROM unnest(%s::text[], %s::bigint[],"
                 " %s::float8[]) ON CONFLICT (name) DO UPDATE SET count = counters.count + excluded.count,"
                 " wait_ms = counters.wait_ms + excluded.wait_ms", (names, counts, waits))
