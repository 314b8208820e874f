"""Watching a deployment's database servers from outside: the capability a backend may add.

A backend whose shards live on database servers can return a :class:`ServerObserver` from
:meth:`~wfctl.store.backend.Backend.observer`: the stress harness samples it while a variant runs
(which of the deployment's sessions wait, on what, per shard and role) and reads the servers'
cumulative counters before and after (transactions rolled back, deadlocks, WAL written). SQLite
has no server and no observer (None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionSample:
    """One session of the deployment at one instant.

    ``shard``: the shard it serves (None: the catalog); ``role``: the process's role (``worker``,
    ``client``, ``scheduler``, ``harness``, ``cli``); ``pid``: the server process; ``wait``:
    ``Type:Event`` of what it waits for (``Lock:transactionid``), ``CPU`` when it runs, ``Client``
    when it is inside a transaction waiting for its client, None when it is idle;
    ``lock_not_granted``: it waits for a lock the server has not granted."""

    shard: int | None
    role: str
    pid: int
    wait: str | None
    lock_not_granted: bool


@dataclass(frozen=True)
class ServerCounters:
    """A server's cumulative counters for the deployment's database (``pg_stat_database``,
    ``pg_stat_wal``; None where the server has none). ``others``: sessions of other
    applications seen on that database (its counters then include their work)."""

    server: str
    xact_commit: int
    xact_rollback: int
    deadlocks: int
    conflicts: int
    wal_records: int | None
    wal_bytes: int | None
    wal_fpi: int | None
    others: int = 0


class ServerObserver(ABC):
    """Samples a deployment's sessions on its servers; one connection per server, its own."""

    @abstractmethod
    def sessions(self) -> list[SessionSample]:
        """The deployment's sessions on every server now (the observer's own excluded)."""

    @abstractmethod
    def counters(self) -> list[ServerCounters]:
        """Every server's counters now."""

    @abstractmethod
    def wait_sessions_gone(self, timeout_s: float) -> bool:
        """Wait until the deployment has no session left on any server (a session flushes its
        statistics as it ends), at most ``timeout_s``; whether none is left."""

    @abstractmethod
    def close(self) -> None:
        """Close the observer's connections."""

    def __enter__(self) -> "ServerObserver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
