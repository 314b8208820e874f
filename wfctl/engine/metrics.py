"""Prometheus metrics of ``wfctl worker`` and ``wfctl scheduler`` (``--metrics-port``), with prometheus_client.

One endpoint per command: ``wfctl worker`` runs its workers in child processes, which count their
events (runs started, completed and failed per definition, step durations and retries by step
type) in prometheus_client's multiprocess mode: values in files of a private directory that
the endpoint, served by the command's own process, sums at each scrape. The same process counts
its scheduler's fires there, and reads each of its shards at scrape time
(:meth:`~wfctl.store.ShardStore.health`: queue, ready runs, lease, contention counters, through
stores of its own), so a scrape shows the shard's own figures and the workers' hot path makes no
extra database round trip. Labels are definition ids, step types, shard numbers and retry
causes: never execution ids. docs/engine.md lists every metric.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import InputError, WfctlError
from ..store import COMPLETED, FAILED, PENDING, DataDir, RunRecord, ShardHealth, StepCommit, impatient
from ..store.base import RETRYING
from .ids import parse_owner
from .runtime import Runtime

_log = logging.getLogger("wfctl.metrics")

#: prometheus_client's multiprocess directory; the endpoint sets it to a private one for itself and its workers.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DIRECTORY_PREFIX = "wfctl-metrics-"
"""The multiprocess directory is ``<temp dir>/wfctl-metrics-<pid of the command>-<random>``."""
#: Step durations: from a millisecond (a pure step) to minutes (an HTTP or LLM call).
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Schedule fire lag: a scheduler polling every second fires within one; catching up takes longer.
FIRE_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@functools.cache
def _counted() -> SimpleNamespace:
    """The event metrics, made in the process that counts (after the multiprocess directory is set)."""
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        started=Counter("wfctl_runs_started", "Pending runs the workers claimed: their first step begins.",
                        ["definition"], registry=None),
        completed=Counter("wfctl_runs_completed", "Runs the workers committed as completed.",
                          ["definition"], registry=None),
        failed=Counter("wfctl_runs_failed", "Runs the workers committed as failed.", ["definition"], registry=None),
        step_seconds=Histogram("wfctl_step_duration_seconds", "Step attempts the workers ran, by how long they took.",
                               ["step_type"], buckets=STEP_BUCKETS, registry=None),
        step_retries=Counter("wfctl_step_retries", "Failed step attempts the retry policy tries again.",
                             ["step_type"], registry=None),
        fire_lag=Histogram("wfctl_schedule_fire_lag_seconds",
                           "Runs the scheduler started for schedule slots, by how long after the slot time.",
                           ["definition"], buckets=FIRE_LAG_BUCKETS, registry=None))


class WorkerMetrics:
    """A worker's ``events`` hook (:class:`~wfctl.engine.worker.WorkerEvents`): counts claims and
    commits. Picklable: each worker process makes its own metrics on first use."""

    def claimed(self, record: RunRecord) -> None:
        if record.status == PENDING:
            _counted().started.labels(record.definition_id).inc()

    def committed(self, commits: Sequence[StepCommit], skipped: Collection[str], now: float) -> None:
        m = _counted()
        for commit in commits:
            for row in commit.journal:
                step_type = row.step_type or "unknown"
                if row.started_at is not None and row.finished_at is not None:
                    m.step_seconds.labels(step_type).observe(max(0.0, row.finished_at - row.started_at))
                if row.status == RETRYING:
                    m.step_retries.labels(step_type).inc()
            if commit.status in (COMPLETED, FAILED) and commit.execution_id not in skipped:
                ended = m.completed if commit.status == COMPLETED else m.failed
                ended.labels(commit.definition_id or "unknown").inc()


class SchedulerMetrics:
    """The scheduler's ``events`` hook (:class:`~wfctl.schedules.scheduler.SchedulerEvents`): fire lag."""

    def fired(self, definition_id: str, slot_time: float, fired_at: float) -> None:
        _counted().fire_lag.labels(definition_id).observe(max(0.0, fired_at - slot_time))


class ShardCollector:
    """Each shard's figures, read when scraped (:meth:`ShardStore.health`) through stores of its own.

    A shard that cannot be read is ``wfctl_shard_up 0`` (its store is opened again at the next
    scrape). The lease is this command's when its owner (``host:pid:...``) is this process or
    one of the worker processes :meth:`workers_started` names, and it has not expired.
    """

    def __init__(self, datadir: DataDir, shards: Sequence[int] | None):
        self.runtime = Runtime(datadir)  # stores of its own: a scrape never waits for a worker's
        self._fixed = None if shards is None else list(shards)
        self._lock = threading.Lock()  # one scrape at a time reads the stores
        self._host = socket.gethostname()
        self._pids = {os.getpid()}

    def workers_started(self, pids: Collection[int]) -> None:
        """The worker processes whose leases are this command's (``run_workers(started=...)``)."""
        self._pids = self._pids | set(pids)

    def shards(self) -> list[int]:
        """The shards read at this scrape: those given, else every shard of the count recorded now
        (``wfctl shards add/remove`` while the command runs; the known count when it cannot be read)."""
        if self._fixed is not None:
            return self._fixed
        self.runtime.refresh_shards()
        return list(range(self.runtime.shard_count))

    def _health(self, shard: int, now: float) -> ShardHealth | None:
        try:
            return self.runtime.shard_store(shard).health(now=now)
        except WfctlError as exc:
            _log.warning("metrics: shard %d cannot be read: %s", shard, exc)
            self.runtime.reopen_shard(shard)  # a fresh connection at the next scrape (kept if it fails)
            return None

    def _ours(self, owner: str | None, expires_at: float | None, now: float) -> bool:
        holder = parse_owner(owner)
        return (holder is not None and holder[0] == self._host and holder[1] in self._pids
                and expires_at is not None and expires_at > now)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        now = time.time()
        with self._lock, impatient():
            readings = [(shard, self._health(shard, now)) for shard in self.shards()]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["shard"])

        up = gauge("wfctl_shard_up", "1 when the shard could be read at this scrape, else 0.")
        depth = gauge("wfctl_shard_queue_depth", "Queue entries: ready, being worked on, or waiting for a later time.")
        ready = gauge("wfctl_shard_ready_runs", "Runs ready now that the lease holder has not claimed.")
        oldest = gauge("wfctl_shard_oldest_ready_age_seconds", "How long the oldest ready run has waited (0: none).")
        held = gauge("wfctl_shard_lease_held", "1 when a worker of this command holds the shard's live lease.")
        generation = gauge("wfctl_shard_lease_generation", "The lease's fencing generation (one more per takeover).")
        beat = gauge("wfctl_shard_heartbeat_age_seconds", "Seconds since the lease holder's last heartbeat.")
        retries = CounterMetricFamily("wfctl_shard_retries", "Writes retried on the shard, every process's, by cause.",
                                      labels=["shard", "cause"])
        waited = CounterMetricFamily("wfctl_shard_wait_seconds",
                                     "Time writes on the shard waited and retried, by cause.", labels=["shard", "cause"])
        for shard, health in readings:
            label = [str(shard)]
            up.add_metric(label, 0 if health is None else 1)
            if health is None:
                continue
            depth.add_metric(label, health.queue_depth)
            ready.add_metric(label, health.ready)
            oldest.add_metric(label, 0.0 if health.oldest_ready_at is None else max(0.0, now - health.oldest_ready_at))
            # Lease times are on the lease's clock (the server's on PostgreSQL), not this machine's.
            held.add_metric(label, int(self._ours(health.lease_owner, health.lease_expires_at, health.lease_now)))
            generation.add_metric(label, health.generation)
            if health.heartbeat_at is not None:
                beat.add_metric(label, max(0.0, health.lease_now - health.heartbeat_at))
            for cause, count in sorted(health.retries.items()):
                retries.add_metric([*label, cause], count)
                waited.add_metric([*label, cause], health.wait_ms.get(cause, 0.0) / 1000.0)
        yield from (up, depth, ready, oldest, held, generation, beat, retries, waited)

    def close(self) -> None:
        with self._lock:
            self.runtime.close()


def _remove_stale_directories() -> None:
    """Remove the multiprocess directories of commands that ended without closing their endpoint
    (killed with kill -9): this user's ``wfctl-metrics-<pid>-*`` whose pid is no running process."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*-*"):
        pid = path.name[len(DIRECTORY_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile, or a live process of another user
            continue


class MetricsEndpoint:
    """The HTTP endpoint of one command (see the module docstring); :meth:`start` it, :meth:`close` it."""

    def __init__(self, directory: Path, collector: ShardCollector | None, server: Any, url: str):
        self.directory = directory
        self.collector = collector
        self.url = url
        self._server = server

    @classmethod
    def start(cls, host: str, port: int, *, datadir: DataDir | None = None,
              shards: Sequence[int] | None = None) -> MetricsEndpoint:
        """Serve on ``host:port`` (0: a free port), print ``metrics on URL`` on stderr, and set up
        the multiprocess directory the worker processes started after this count in; with
        ``datadir``, also read ``shards`` (None: every shard, following the count) at each scrape. A port that cannot be bound is an
        :class:`InputError` (one line), before anything else starts."""
        _remove_stale_directories()
        directory = Path(tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-"))
        try:
            os.environ[MULTIPROC_ENV] = str(directory)
            from prometheus_client import CollectorRegistry, start_http_server, values
            from prometheus_client.multiprocess import MultiProcessCollector

            if values.ValueClass is values.MutexValue:  # a library imported prometheus_client before: no files
                raise InputError("metrics: prometheus_client was imported before the metrics were set up")
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=str(directory))
            collector = None
            if datadir is not None:
                collector = ShardCollector(datadir, shards)
                registry.register(collector)
            try:
                server, _ = start_http_server(port, addr=host, registry=registry)
            except (OSError, ValueError) as exc:  # the port is taken, or the host is not this machine's
                port_taken = isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES)
                option = "--metrics-port" if port_taken else "--metrics-host"
                reason = getattr(exc, "strerror", None) or exc
                raise InputError(f"{option}: cannot serve metrics on {host!r} port {port}: {reason}") from None
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            del os.environ[MULTIPROC_ENV]
            raise
        bound = server.server_address[1]
        url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/metrics"
        print(f"metrics on {url}", file=sys.stderr, flush=True)
        return cls(directory, collector, server, url)

    def close(self) -> None:
        """Stop serving, close the shard stores, remove the multiprocess directory."""
        self._server.shutdown()
        self._server.server_close()
        if self.collector is not None:
            self.collector.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        if os.environ.get(MULTIPROC_ENV) == str(self.directory):
            del os.environ[MULTIPROC_ENV]
