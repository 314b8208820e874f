"""SQLite connections: pragmas, BEGIN IMMEDIATE writes with counted lock-wait retries, error mapping.

SQLite's own busy handler (``busy_timeout``) polls unfairly, so it is off: a write starts
with ``BEGIN IMMEDIATE`` (a read transaction is never upgraded to a write) and, while the
file's write lock is held elsewhere, retries after short jittered sleeps that double from
:data:`RETRY_START_S` up to :data:`RETRY_CAP_S`, until a deadline. A writer that has waited
longer than :data:`STARVING_AFTER_S` polls every :data:`STARVING_DELAY_S` instead, so newcomers
polling fast do not starve it (the lock is not queued). Retries and the time waited are
counted; a shard store persists them inside a later write transaction.

Every ``sqlite3`` error is mapped to a one-line store error naming the file: a corrupt file
to :class:`CorruptShardError`, a lock held past the deadline to :class:`StoreBusyError`.

A file this process may not write (or in a directory it may not write) is opened read-only
(``mode=ro``); when SQLite cannot read a WAL database that way (no ``-shm`` file, and none can
be created), it is opened ``immutable`` (commits still only in the ``-wal`` file are then not seen).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import InputError
from ..errors import CorruptShardError, StoreBusyError, StoreError

RETRY_START_S = 0.0002
RETRY_CAP_S = 0.02
RETRY_GROWTH = 2.0
STARVING_AFTER_S = 0.05
STARVING_DELAY_S = 0.0005
DEFAULT_BUSY_DEADLINE_S = 30.0
FLUSH_EVERY_TX = 32
FLUSH_EVERY_S = 0.5
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


class Connection:
    """One SQLite connection to one file, safe to share between threads.

    ``create`` allows the file to be created; ``readonly`` (default: when this process may not
    write the file or its directory) opens it read-only. ``counters_sql``, when given, persists the
    counters ``(lock_retries, lock_wait_ms, transactions)`` not yet persisted (this
    transaction included): it runs inside a write transaction once :data:`FLUSH_EVERY_TX`
    transactions or :data:`FLUSH_EVERY_S` seconds have passed since the last time, and on
    :meth:`close`, so persisting them costs neither an extra transaction nor a page write per
    transaction. ``rng``, ``sleep`` and ``clock`` drive the retry loop.
    """

    def __init__(self, path: Path, *, durability: str = "normal", create: bool = False, readonly: bool | None = None,
                 busy_deadline_s: float = DEFAULT_BUSY_DEADLINE_S, counters_sql: str | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        if durability not in SYNCHRONOUS:
            raise InputError(f"durability must be one of {', '.join(SYNCHRONOUS)}, got {durability!r}")
        self.path = Path(path)
        self.busy_deadline_s = busy_deadline_s
        self.lock_retries = 0
        self.lock_wait_s = 0.0
        self.transactions = 0
        self._counters_sql = counters_sql
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._flushed_at = clock()
        self._pending: tuple[int, tuple | None] = (0, None)
        self._lock = threading.RLock()
        if readonly is None:
            readonly = not create and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))
        self.readonly = readonly
        base = self.path.resolve().as_uri()
        uri = base + ("?mode=ro" if readonly else "?mode=rwc" if create else "?mode=rw")
        self.conn = self._connect(uri)
        try:
            if readonly:
                self._open_readonly(base + "?mode=ro&immutable=1")
            else:
                self._retry(self._configure, durability)
        except sqlite3.Error as exc:
            self.conn.close()
            raise self.error(exc) from exc
        except BaseException:
            self.conn.close()
            raise

    def _connect(self, uri: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None,
                                   check_same_thread=False, cached_statements=256)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def _open_readonly(self, immutable_uri: str) -> None:
        """Check the read-only connection can read; else reopen it ``immutable``."""
        try:
            self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if _code(exc) not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
                raise
            self.conn.close()
            self.conn = self._connect(immutable_uri)

    def _configure(self, durability: str) -> None:
        (mode,) = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL mode (journal mode is {mode})")
        self.conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[durability]}")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA busy_timeout=0")
        self.conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")

    def error(self, exc: sqlite3.Error) -> StoreError | InputError:
        """The store error to raise for a ``sqlite3`` error on this file."""
        code = _code(exc)
        if code in _CORRUPT:
            return CorruptShardError(f"{self.path} is corrupt or not a wfctl database ({exc})")
        if str(exc).startswith("Could not decode to UTF-8"):  # damaged bytes inside a stored text
            return CorruptShardError(f"{self.path} is corrupt (a stored text is not valid UTF-8)")
        if code in _BUSY:
            return StoreBusyError(f"{self.path} was busy; try again")
        if code == sqlite3.SQLITE_CANTOPEN and not self.path.exists():
            return InputError(f"{self.path} does not exist")
        return StoreError(f"{self.path}: {exc}")

    def _retry(self, fn: Callable, *args: object):
        """Call ``fn`` until it does not fail with busy/locked, sleeping between attempts."""
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if _code(exc) not in _BUSY:
                raise
        start = self._clock()
        delay = RETRY_START_S
        retries = 0
        try:
            while True:
                waited = self._clock() - start
                if waited >= self.busy_deadline_s:
                    raise StoreBusyError(
                        f"{self.path}: gave up waiting for the write lock after {waited:.1f} s "
                        f"({retries} retries)")
                self._sleep(delay * self._rng.uniform(0.5, 1.5))
                delay = STARVING_DELAY_S if waited > STARVING_AFTER_S else min(delay * RETRY_GROWTH, RETRY_CAP_S)
                retries += 1
                try:
                    return fn(*args)
                except sqlite3.OperationalError as exc:
                    if _code(exc) not in _BUSY:
                        raise
        finally:
            self.lock_retries += retries
            self.lock_wait_s += self._clock() - start

    def begin(self, *, wait: bool = True, persist_only: bool = False) -> bool:
        """Start a ``BEGIN IMMEDIATE`` transaction, holding this connection's thread lock until
        :meth:`commit` or :meth:`rollback` (the hot paths' form of :meth:`write`).

        With ``wait`` False, a write lock held elsewhere is not waited for: the attempt is
        counted as one lock retry and False is returned (no transaction, thread lock released).
        ``persist_only``: a transaction that only persists the counters (not counted itself).
        """
        self._lock.acquire()
        conn = self.conn
        try:
            if wait:
                self._retry(conn.execute, "BEGIN IMMEDIATE")
            else:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if _code(exc) not in _BUSY:
                        raise
                    self.lock_retries += 1
                    self._lock.release()
                    return False
            counted = 0 if persist_only else 1
            flushed = (self.lock_retries, self.lock_wait_s, self.transactions + counted)
            flush = self._counters_sql is not None and (
                persist_only or flushed[2] >= FLUSH_EVERY_TX or self._clock() - self._flushed_at >= FLUSH_EVERY_S)
            if flush:
                conn.execute(self._counters_sql, (flushed[0], flushed[1] * 1000.0, flushed[2]))
        except BaseException as exc:
            raise self.abandon(exc)
        self._pending = (counted, flushed if flush else None)
        return True

    def commit(self) -> None:
        """Commit the transaction :meth:`begin` started (rolled back, and mapped, on an error)."""
        try:
            self.conn.execute("COMMIT")
        except BaseException as exc:
            raise self.abandon(exc)
        counted, flushed = self._pending
        self.transactions += counted
        if flushed is not None:
            self.lock_retries -= flushed[0]
            self.lock_wait_s -= flushed[1]
            self.transactions -= flushed[2]
            self._flushed_at = self._clock()
        self._lock.release()

    def rollback(self) -> None:
        """Roll back the transaction :meth:`begin` started."""
        self._rollback()
        self._lock.release()

    def abandon(self, exc: BaseException) -> BaseException:
        """Roll back after ``exc`` broke a transaction; returns the exception to raise (an
        SQLite error mapped to a wfctl error, chained to it; anything else unchanged)."""
        self.rollback()
        if not isinstance(exc, sqlite3.Error):
            return exc
        mapped = self.error(exc)
        mapped.__cause__ = exc
        return mapped

    @contextmanager
    def write(self, *, persist_only: bool = False) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed when the block ends without error.

        ``persist_only``: a transaction that only persists the counters (not counted itself).
        """
        self.begin(persist_only=persist_only)
        try:
            yield self.conn
        except BaseException as exc:
            raise self.abandon(exc)
        self.commit()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction (one consistent snapshot); never upgraded to a write."""
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self.error(exc) from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting

    def close(self) -> None:
        """Persist pending counters (when there is somewhere to), then close."""
        with self._lock:
            try:
                if self._counters_sql and (self.lock_retries or self.lock_wait_s or self.transactions):
                    with self.write(persist_only=True):
                        pass
            finally:
                self.conn.close()
