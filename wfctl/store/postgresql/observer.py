"""Watching a PostgreSQL deployment's servers: its sessions' waits, the servers' counters.

A session of the deployment names its schema and its process's role in ``application_name``
(see :mod:`.connection`), so ``pg_stat_activity`` attributes every wait to a shard and a role;
``pg_locks`` says which sessions wait for a lock not granted. ``pg_stat_database`` (rollbacks,
deadlocks, recovery conflicts) and ``pg_stat_wal`` (PostgreSQL 14+) count for the whole
database: sessions of other applications on it are counted as ``others``.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import StoreError
from ..observer import ServerCounters, ServerObserver, SessionSample
from ..roles import parse_application_name, shard_of_schema
from .connection import Session, server_name
from .schema import catalog_schema, listener_name

_SESSIONS = (
    "SELECT a.pid, a.application_name, a.state, a.wait_event_type, a.wait_event, l.pid IS NOT NULL"
    " FROM pg_stat_activity a LEFT JOIN (SELECT DISTINCT pid FROM pg_locks WHERE NOT granted) l ON l.pid = a.pid"
    " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'")
_DATABASE = ("SELECT xact_commit, xact_rollback, deadlocks, conflicts FROM pg_stat_database"
             " WHERE datname = current_database()")
_WAL = "SELECT wal_records, wal_bytes::bigint, wal_fpi FROM pg_stat_wal"  # ServerCounters order
POLL_S = 0.05


class PostgresObserver(ServerObserver):
    """Observes deployment ``prefix`` on servers ``dsns`` (one session each, role ``observer``)."""

    def __init__(self, prefix: str, dsns: list[str]):
        self.prefix = prefix
        self._sessions = {dsn: Session(dsn, schema="public", label="observer", durability="full") for dsn in dsns}
        self._others: dict[str, set[int]] = {dsn: set() for dsn in dsns}
        self._has_wal: dict[str, bool] = {}  # pg_stat_wal exists (PostgreSQL 14+), read once per server

    def _read(self, dsn: str, query: str) -> list[tuple]:
        return self._sessions[dsn].run(lambda conn: conn.execute(query).fetchall(), write=False, pipeline=False)

    def _shard_of(self, application_name: str) -> tuple[bool, int | None, str]:
        """(of this deployment, its shard or None for the catalog, role)."""
        parsed = parse_application_name(application_name)
        if parsed is None:
            return False, None, ""
        schema, role = parsed
        shard = shard_of_schema(schema)
        if shard is not None and shard[0] == self.prefix:
            return True, shard[1], role
        return schema in (catalog_schema(self.prefix), listener_name(self.prefix)), None, role

    def sessions(self) -> list[SessionSample]:
        out = []
        for dsn in self._sessions:
            for pid, name, state, wait_type, wait_event, not_granted in self._read(dsn, _SESSIONS):
                ours, shard, role = self._shard_of(name or "")
                if not ours:
                    self._others[dsn].add(pid)
                    continue
                if state == "idle":
                    wait = None
                elif wait_type is None:
                    wait = "CPU"
                else:
                    wait = f"{wait_type}:{wait_event}"
                out.append(SessionSample(shard, role, pid, wait, bool(not_granted)))
        return out

    def counters(self) -> list[ServerCounters]:
        out = []
        for dsn in self._sessions:
            commits, rollbacks, deadlocks, conflicts = self._read(dsn, _DATABASE)[0]
            if dsn not in self._has_wal:
                self._has_wal[dsn] = int(self._read(dsn, "SHOW server_version_num")[0][0]) >= 140000
            wal: tuple[Any, ...] = self._read(dsn, _WAL)[0] if self._has_wal[dsn] else (None, None, None)
            out.append(ServerCounters(server_name(dsn), int(commits), int(rollbacks), int(deadlocks), int(conflicts),
                                      *(None if v is None else int(v) for v in wal), others=len(self._others[dsn])))
        return out

    def wait_sessions_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if not self.sessions():
                    return True
            except StoreError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
