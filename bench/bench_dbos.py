"""The DBOS Transact arm of the engine benchmark (bench/bench_engine.py --backend dbos).

The same workload as wfctl's: a workflow of three ``@DBOS.step`` functions equivalent to
``bench/workflows/bench-3step.json`` (set the variables, the condition, the output), with
DBOS's system database on a PostgreSQL server, in a fresh database per configuration
(``bench_dbos_<pid>_<n>``, created and dropped here) whose sessions run with ``synchronous_commit``
off by default: the same promise as wfctl's default durability ``normal`` on PostgreSQL (the
last commits may be lost on a crash of the server machine); ``on`` is DBOS's own default.

- Starts: client processes (``DBOSClient.enqueue`` on a queue no executor consumes, one durable
  ``ENQUEUED`` row per start) released together by a barrier, as wfctl's ``Engine.start``.
- Durable end-to-end: worker processes (each ``DBOS.launch()`` with its own executor id and the
  queue registered, polling every ``poll`` seconds with ``worker_concurrency`` workflows at
  once) run first; then client processes enqueue the runs while the workers drain them.
  Completed/s = workflows in ``SUCCESS`` / (last ``updated_at`` - first ``created_at``), read
  from DBOS's own ``dbos.workflow_status`` table.

Needs ``pip install 'dbos==3.4.0'`` (the project's ``bench`` extra); imported only by this arm.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from hdrh.histogram import HdrHistogram
from psycopg.conninfo import conninfo_to_dict

import pg_server
from clients import gather, report_failure

APP = "bench"
QUEUE = "bench"
WORKFLOW = "bench_3step"
THRESHOLD = 100  # the definition's config.threshold
LATENCY_MAX_US = 60_000_000  # 60 s

try:
    from dbos import DBOS, DBOSClient
except ImportError:  # the arm says so when chosen; the other arms need no DBOS
    DBOS = DBOSClient = None  # type: ignore[assignment,misc]
else:
    @DBOS.step()
    def set_variables(input: dict[str, Any]) -> dict[str, Any]:
        return {"total": input["amount"], "label": f"order {input['order']} from {input['country']}"}

    @DBOS.step()
    def is_big(variables: dict[str, Any], input: dict[str, Any]) -> bool:
        return variables["total"] > THRESHOLD and input["country"] == "DE"

    @DBOS.step()
    def output(variables: dict[str, Any], big: bool) -> dict[str, Any]:
        return {"label": variables["label"], "size": "big" if big else "small"}

    @DBOS.workflow(name=WORKFLOW)
    def bench_3step(input: dict[str, Any]) -> dict[str, Any]:
        variables = set_variables(input)
        return output(variables, is_big(variables, input))


def available() -> str | None:
    """None when DBOS Transact can be used, else why not (one line)."""
    if DBOS is None:
        return "the dbos arm needs DBOS Transact: pip install 'dbos==3.4.0' (or pip install -e '.[bench]')"
    return None


def url_for(dsn: str) -> str:
    """The SQLAlchemy URL (what DBOS takes) of ``dsn`` (a URL or key=value DSN)."""
    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    password = f":{parts['password']}" if parts.get("password") else ""
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    return f"postgresql://{user}{password}@{host}:{port}/{parts['dbname']}"


@contextmanager
def fresh_database(dsn: str, tag: str, synchronous_commit: str) -> Iterator[str]:
    """A fresh database ``bench_dbos_<pid>_<tag>`` on the server of ``dsn``, its sessions' ``synchronous_commit``
    set, dropped after; its SQLAlchemy URL."""
    with pg_server.fresh_database(dsn, f"bench_dbos_{os.getpid()}_{tag}",
                                  {"synchronous_commit": synchronous_commit}) as db:
        yield url_for(db)


def _config(url: str, executor: str) -> dict[str, Any]:
    return {"name": APP, "system_database_url": url, "executor_id": executor, "log_level": "WARNING",
            "console_log_level": "WARNING"}


def worker_main(url: str, executor: str, concurrency: int, poll: float, ready, stop) -> None:
    """One DBOS executor process: launch, register the queue (``concurrency`` 0: no limit), run until ``stop`` is set."""
    DBOS(config=_config(url, executor))
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=concurrency or None, polling_interval_sec=poll)
    ready.set()
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=0)


def client_main(url: str, count: int, input: dict[str, Any], barrier, results) -> None:
    """Enqueue ``count`` workflows with DBOSClient; report (first start, last end, encoded histogram)."""
    try:
        client = DBOSClient(system_database_url=url)
        options = {"queue_name": QUEUE, "workflow_name": WORKFLOW}
        enqueue = client.enqueue
        hist = HdrHistogram(1, LATENCY_MAX_US, 3)
        record = hist.record_value
        clock = time.perf_counter
        barrier.wait()
        began = clock()
        for _ in range(count):
            t0 = clock()
            enqueue(options, input)
            record(max(1, int((clock() - t0) * 1e6)))
        ended = clock()
        client.destroy()
    except Exception as exc:
        report_failure(results, exc)
        raise SystemExit(1)
    results.put((began, ended, hist.encode()))


def run_clients(url: str, processes: int, total: int, input: dict[str, Any]) -> list[tuple[float, float, bytes]]:
    """``processes`` client processes sharing ``total`` enqueues; their reports."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: DBOS keeps process-wide state
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=client_main, args=(url, total // processes, input, barrier, results))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    return gather(procs, results, barrier)


def prepare(url: str) -> None:
    """Create DBOS's system tables once (a short-lived launch), so that clients and workers
    started together do not race its migrations."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    stop.set()
    proc = ctx.Process(target=worker_main, args=(url, "bench-prepare", 1, 1.0, ready, stop))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"DBOS could not launch on its system database (exit code {proc.exitcode})")


def status_counts(url: str) -> tuple[int, int, int, float | None, float | None]:
    """(SUCCESS, ENQUEUED or PENDING, any other status, first created_at, last SUCCESS updated_at)
    from DBOS's ``workflow_status`` table, times in seconds."""
    with psycopg.connect(url) as conn:
        done, first, last = conn.execute(
            "SELECT COUNT(*), MIN(created_at), MAX(updated_at) FROM dbos.workflow_status"
            " WHERE status = 'SUCCESS'").fetchone()
        unfinished, other = conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status IN ('ENQUEUED', 'PENDING')),"
            " COUNT(*) FILTER (WHERE status NOT IN ('ENQUEUED', 'PENDING', 'SUCCESS'))"
            " FROM dbos.workflow_status").fetchone()
    return done, unfinished, other, (first / 1000 if first else None), (last / 1000 if last else None)


def start_workers(url: str, workers: int, concurrency: int, poll: float):
    """Launch ``workers`` DBOS executor processes one after the other; (processes, stop event)."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = []
    for n in range(workers):
        ready = ctx.Event()
        proc = ctx.Process(target=worker_main, args=(url, f"bench-{n}", concurrency, poll, ready, stop))
        proc.start()
        procs.append(proc)
        deadline = time.monotonic() + 120
        while not ready.wait(0.2):
            if not proc.is_alive() or time.monotonic() > deadline:
                stop.set()
                raise SystemExit(f"DBOS worker {n} did not launch (exit code {proc.exitcode})")
    return procs, stop


def stop_workers(procs, stop) -> list[int | None]:
    stop.set()
    for proc in procs:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return [proc.exitcode for proc in procs]


def wait_done(url: str, total: int, timeout: float, workers) -> None:
    """Wait until ``total`` workflows exist and none is ENQUEUED or PENDING (while the workers live)."""
    deadline = time.monotonic() + timeout
    while (counts := status_counts(url))[1] or sum(counts[:3]) < total:
        if dead := next((p for p in workers if not p.is_alive()), None):
            raise SystemExit(f"bench_engine: a DBOS worker process exited (code {dead.exitcode})")
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_engine: the DBOS workers did not finish {total} workflows within {timeout:.0f} s")
        time.sleep(0.2)
