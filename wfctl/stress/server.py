"""The database server's view of a variant: sampled waits per shard, counters, the cross-check.

While a variant runs, :class:`ServerSampler` asks the backend's
:class:`~wfctl.store.observer.ServerObserver` every :data:`SAMPLE_EVERY_S` which of the
deployment's sessions wait and on what. Each sample stands for the time since the previous one,
so a session seen waiting on ``Lock:transactionid`` in 10 samples 50 ms apart waited about
0.5 s (*session-seconds*). A *lock wait* is a session entering a wait on a heavyweight lock
(``Lock:*``: a row, tuple or transaction lock) between two samples; waits shorter than the
interval can be missed, so the count is a lower bound. The servers' counters
(``pg_stat_database``, ``pg_stat_wal``) are read before the go signal and after every process
of the variant ended (an ending session flushes its statistics).

The cross-check compares what the clients counted with what the servers counted: the
transactions the shards' stores rolled back (a serialization failure, a deadlock or a lock timeout
retried, a statement the connection had lost, an error) against the servers' rolled-back
transactions, and the deadlocks the stores retried against the servers' deadlocks. They must
agree within :func:`tolerance`; when other applications used the same database during the run,
the server's counts include theirs and only a server count below the client's is a disagreement.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store.base import DEADLOCK
from ..store.errors import StoreError
from ..store.observer import ServerCounters, ServerObserver

SAMPLE_EVERY_S = 0.05
#: Timeline buckets: the smallest of these that keeps a run within MAX_BUCKETS.
BUCKET_SIZES_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_BUCKETS = 120
#: Samples kept for the timeline at most (thinned by half beyond).
MAX_TIMELINE_SAMPLES = 20_000
#: How long the deployment's sessions may take to end after the processes stopped.
SESSIONS_GONE_S = 30.0


def tolerance(count: int, floor: int) -> int:
    """How far a client and a server count may differ: 5 % of the larger, at least ``floor``
    (work outside the stores' retry loop, such as a lease takeover timing out once)."""
    return max(floor, math.ceil(0.05 * count))


@dataclass
class _Shard:
    waits: dict[str, float] = field(default_factory=dict)  # wait -> session-seconds
    lock_waits: int = 0
    lock_wait_s: float = 0.0
    not_granted_max: int = 0
    not_granted_sum: int = 0


class ServerSampler:
    """Samples ``observer`` in a thread from :meth:`start` to :meth:`stop`; times relative to ``origin``."""

    def __init__(self, observer: ServerObserver, interval_s: float = SAMPLE_EVERY_S):
        self.observer = observer
        self.interval_s = interval_s
        self.origin = 0.0
        self.samples = 0
        self.shards: dict[int | None, _Shard] = {}
        self.timeline: list[tuple[float, dict[int | None, dict[str, int]]]] = []
        self.failures = 0
        self._before: list[ServerCounters] = []
        self._in_lock: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, origin: float) -> "ServerSampler":
        """Read the counters, then sample every ``interval_s`` until :meth:`stop`."""
        self.origin = origin
        self._before = self.observer.counters()
        self._thread = threading.Thread(target=self._loop, name="wfctl-server-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            try:
                self._take(time.time() - self.origin, now - last)
            except StoreError:
                self.failures += 1  # a sample lost (the server busy or restarting) is a gap, not an error
            last = now

    def _take(self, t: float, dt: float) -> None:
        sessions = self.observer.sessions()
        self.samples += 1
        counts: dict[int | None, dict[str, int]] = {}
        not_granted: dict[int | None, int] = {}
        in_lock = set()
        for s in sessions:
            shard = self.shards.setdefault(s.shard, _Shard())
            not_granted[s.shard] = not_granted.get(s.shard, 0) + s.lock_not_granted
            if s.wait is None:
                continue
            shard.waits[s.wait] = shard.waits.get(s.wait, 0.0) + dt
            counts.setdefault(s.shard, {})[s.wait] = counts.setdefault(s.shard, {}).get(s.wait, 0) + 1
            if s.wait.startswith("Lock:"):
                in_lock.add(s.pid)
                shard.lock_wait_s += dt
                if s.pid not in self._in_lock:
                    shard.lock_waits += 1
        self._in_lock = in_lock
        for key, n in not_granted.items():
            shard = self.shards[key]
            shard.not_granted_max = max(shard.not_granted_max, n)
            shard.not_granted_sum += n
        self.timeline.append((t, counts))
        if len(self.timeline) > MAX_TIMELINE_SAMPLES:
            self.timeline = self.timeline[::2]

    def stop(self) -> None:
        """Stop sampling (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def finish(self, started: int, retries: Mapping[str, int], rolled_back: int, duration_s: float) -> dict[str, Any]:
        """After the variant's processes ended: the counters' deltas and the result's parts.

        ``started``: runs started; ``retries``: the stores' retries by cause (every shard);
        ``rolled_back``: the transactions the shards' stores rolled back, whatever the cause;
        ``duration_s``: how long the variant ran (for the timeline's buckets). Returns
        ``{"server": ..., "metrics": ..., "shards": {shard: ...}, "differences": [...]}``.
        """
        self.stop()
        gone = self.observer.wait_sessions_gone(SESSIONS_GONE_S)
        after = self.observer.counters()
        database, wal = [], []
        for b, a in zip(self._before, after):
            database.append({"server": a.server, "xact_commit": a.xact_commit - b.xact_commit,
                             "xact_rollback": a.xact_rollback - b.xact_rollback,
                             "deadlocks": a.deadlocks - b.deadlocks, "conflicts": a.conflicts - b.conflicts,
                             "shared": a.others > 0})
            if a.wal_bytes is not None and b.wal_bytes is not None:
                wal.append({"server": a.server, "wal_records": a.wal_records - b.wal_records,
                            "wal_bytes": a.wal_bytes - b.wal_bytes, "wal_fpi": a.wal_fpi - b.wal_fpi})
        shared = any(d["shared"] for d in database)
        checks = [
            _check("rolled-back transactions", rolled_back, sum(d["xact_rollback"] for d in database), 5, shared),
            _check("deadlocks", retries.get(DEADLOCK, 0), sum(d["deadlocks"] for d in database), 1, shared),
        ]
        if not gone:
            for check in checks:
                check["note"] = (check["note"] + " " if check["note"] else "") + \
                    "(some sessions had not ended: the server may not have counted their last work)"
        lock_waits = sum(s.lock_waits for s in self.shards.values())
        lock_wait_s = sum(s.lock_wait_s for s in self.shards.values())
        metrics = {
            "server.samples": self.samples,
            "server.lock_waits": lock_waits,
            "server.lock_wait_s": round(lock_wait_s, 3),
            "server.lock_waits_per_1000": lock_waits * 1000.0 / started if started else 0.0,
            "server.rollbacks": sum(d["xact_rollback"] for d in database),
            "server.deadlocks": sum(d["deadlocks"] for d in database),
            "server.wal_bytes": sum(w["wal_bytes"] for w in wal) if wal else None,
        }
        shards = {key: {"lock_waits": s.lock_waits, "lock_wait_s": round(s.lock_wait_s, 3),
                        "waits": {w: round(v, 3) for w, v in sorted(s.waits.items(), key=lambda kv: -kv[1])}}
                  for key, s in self.shards.items() if key is not None}
        bucket = next((b for b in BUCKET_SIZES_S if duration_s / b <= MAX_BUCKETS), BUCKET_SIZES_S[-1])
        server = {
            "interval_s": self.interval_s, "samples": self.samples, "failed_samples": self.failures,
            "bucket_s": bucket, "timeline": self._buckets(bucket, duration_s),
            "not_granted": {str(key): {"max": s.not_granted_max,
                                       "mean": round(s.not_granted_sum / self.samples, 3) if self.samples else 0.0}
                            for key, s in sorted(self.shards.items(), key=_shard_order) if key is not None},
            "database": database, "wal": wal, "cross_check": checks,
        }
        differences = [f"{c['what']}: the clients counted {c['client']}, the servers {c['server']} "
                       f"(tolerance {c['tolerance']})" for c in checks if not c["agrees"]]
        return {"server": server, "metrics": metrics, "shards": shards, "differences": differences}

    def _buckets(self, bucket: float, duration_s: float) -> dict[str, dict[str, list[float]]]:
        """Per shard, per wait: the mean number of sessions in it per bucket (from the origin)."""
        n = max(1, math.ceil(duration_s / bucket))
        samples = [0] * n
        sums: dict[int | None, dict[str, list[float]]] = {}
        for t, counts in self.timeline:
            k = int(t // bucket)
            if not 0 <= k < n:
                continue
            samples[k] += 1
            for shard, waits in counts.items():
                for wait, c in waits.items():
                    sums.setdefault(shard, {}).setdefault(wait, [0.0] * n)[k] += c
        return {str(shard): {wait: [round(v / samples[k], 3) if samples[k] else 0.0 for k, v in enumerate(series)]
                             for wait, series in sorted(waits.items())}
                for shard, waits in sorted(sums.items(), key=_shard_order) if shard is not None}


def _shard_order(item: tuple[int | None, Any]) -> int:
    return -1 if item[0] is None else item[0]


def _check(what: str, client: int, server: int, floor: int, shared: bool) -> dict[str, Any]:
    """One line of the cross-check (see the module)."""
    tol = tolerance(max(client, server), floor)
    if shared:
        agrees = server >= client - tol
        note = "other applications used the database: the server's count includes theirs"
    else:
        agrees = abs(server - client) <= tol
        note = ""
    return {"what": what, "client": client, "server": server, "tolerance": tol, "agrees": agrees, "note": note}
