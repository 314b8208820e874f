"""Wake-ups by LISTEN/NOTIFY on PostgreSQL: an idle worker waits for its servers' announcements
(with polling as the fallback) instead of querying every shard every ``poll_interval``."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import psycopg
import pytest

from helpers import step, wait_until
from pg import pg_dsn, unique_prefix

from wfctl.engine import Engine, Worker
from wfctl.engine.runtime import Runtime
from wfctl.store import DataDir
from wfctl.store.postgresql import PostgresShardStore
from wfctl.store.postgresql.waker import PostgresWaker

LONG = 120.0  # an idle poll far longer than any deadline below: only a wake-up can finish in time
PROMPT = 45.0  # generous on a loaded machine, well before LONG


@pytest.fixture
def project(tmp_path):
    prefix = unique_prefix("notify")
    datadir = DataDir.init(tmp_path / "p", shards=2, backend="postgresql",
                           options={"dsn": pg_dsn(), "schema_prefix": prefix})
    steps = [step("start", "start", next_steps={"success": "nap"}),
             step("nap", "action", {"type": "sleep", "parameters": {"seconds": "{{input.nap || 0}}"}},
                  {"success": "out"}),
             step("out", "output", {"mapping": {"done": True}})]
    (tmp_path / "napper.json").write_text(json.dumps({"id": "napper", "name": "napper", "steps": steps}))
    with Engine(datadir.path) as engine:
        engine.apply([tmp_path / "napper.json"])
    try:
        yield datadir.path, prefix
    finally:
        datadir.backend.drop()


class Running:
    """A worker running in a thread of this process (stopped, and checked, on exit)."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.thread = threading.Thread(target=lambda: self.codes.append(worker.run(stop_event=self.stop)),
                                       daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        assert wait_until(lambda: len(self.worker.leases) == len(self.worker.shards), timeout=60)
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.codes == [0]


def finished(engine: Engine, execution_id: str) -> bool:
    return engine.status(execution_id, steps=1)["status"] == "completed"


def listener_pid(prefix: str) -> int | None:
    """The backend pid of the worker's listening connection (named ``wfctl <prefix>_listener <role>``;
    its last statement names our channels)."""
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s AND query LIKE %s",
                           (f"wfctl {prefix}\\_listener %", f'LISTEN "{prefix}%')).fetchone()
    return None if row is None else row[0]


def terminate(pid: int) -> None:
    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def run_and_wait(engine: Engine, timeout: float, nap: float = 0) -> bool:
    run = engine.start("napper", {"nap": nap})
    return wait_until(lambda: finished(engine, run.execution_id), timeout=timeout)


def test_a_start_wakes_an_idle_worker_long_before_its_idle_poll(project):
    path, _ = project
    with Engine(path) as engine, Running(Worker(path, idle_poll=LONG)) as worker:
        assert wait_until(lambda: worker._waker.listening, timeout=60)
        assert isinstance(worker._waker, PostgresWaker)
        assert run_and_wait(engine, timeout=60)  # the worker has polled since it listens, and is idle now
        started = time.monotonic()
        assert run_and_wait(engine, timeout=PROMPT), "the notification did not wake the worker"
        assert run_and_wait(engine, timeout=PROMPT)
        assert time.monotonic() - started < LONG


def test_a_sleeping_run_wakes_the_worker_at_its_wake_time(project):
    path, _ = project
    with Engine(path) as engine, Running(Worker(path, idle_poll=LONG)) as worker:
        assert wait_until(lambda: worker._waker.listening, timeout=60)
        assert run_and_wait(engine, timeout=PROMPT, nap=1.5), "the worker did not wake for the sleep's end"


def test_a_killed_listener_reconnects_and_wakes_the_worker_again(project):
    path, prefix = project
    with Engine(path) as engine, Running(Worker(path, idle_poll=LONG)) as worker:
        assert wait_until(lambda: worker._waker.listening and listener_pid(prefix), timeout=60)
        first = listener_pid(prefix)
        terminate(first)
        assert wait_until(lambda: worker._waker.listening and listener_pid(prefix) not in (None, first), timeout=60)
        assert run_and_wait(engine, timeout=60)
        assert run_and_wait(engine, timeout=PROMPT), "no wake-up after the listener reconnected"


def test_without_notifications_the_worker_polls_and_runs_complete(project, monkeypatch):
    path, prefix = project
    with Engine(path) as engine, Running(Worker(path, idle_poll=LONG)) as worker:
        assert wait_until(lambda: worker._waker.listening and listener_pid(prefix), timeout=60)

        def refuse(*args, **kwargs):
            raise psycopg.OperationalError("test: notifications are unavailable")

        monkeypatch.setattr(PostgresWaker, "_connect", refuse)
        terminate(listener_pid(prefix))
        assert wait_until(lambda: not worker._waker.listening, timeout=60)
        for _ in range(3):
            assert run_and_wait(engine, timeout=PROMPT), "the fallback poll did not pick the run up"
        assert not worker._waker.listening


class CountingRuntime(Runtime):
    """A runtime whose shard stores count the calls made to them (the worker's store traffic)."""

    def __init__(self, datadir: DataDir, listen: bool):
        super().__init__(datadir)
        self.calls: Counter = Counter()
        if not listen:
            datadir.backend.waker = lambda shards: None  # the polling baseline (what SQLite does)

    def shard_store(self, shard: int):
        store = super().shard_store(shard)
        calls = self.calls

        class Counting:
            def __getattr__(self, name):
                attr = getattr(store, name)
                if not callable(attr):
                    return attr

                def counted(*args, **kwargs):
                    calls[name] += 1
                    return attr(*args, **kwargs)
                return counted
        return Counting()


def idle_calls(path, listen: bool, window: float = 2.0) -> Counter:
    runtime = CountingRuntime(DataDir.open(path, create=False), listen)
    with Engine(path) as engine, Running(Worker(runtime)) as worker:
        assert wait_until(lambda: worker._waker.listening == listen, timeout=60)
        assert run_and_wait(engine, timeout=60)  # up, polled, and idle again
        before = Counter(runtime.calls)
        time.sleep(window)  # a measurement window, not a synchronization
        spent = runtime.calls - before
    runtime.close()
    return spent


def test_an_idle_listening_worker_queries_its_shards_far_less_than_a_polling_one(project):
    path, _ = project
    polling = idle_calls(path, listen=False)
    listening = idle_calls(path, listen=True)
    # Listening, 2 shards for 2 s: a fallback poll per second, the timeout sweep, the lease renewals.
    assert sum(listening.values()) <= 30, listening
    assert listening["claim_ready"] <= 8, listening
    assert sum(polling.values()) >= 5 * sum(listening.values()), (polling, listening)


def test_a_start_notifies_after_its_commit_and_a_failed_notification_does_not_fail_it(project):
    path, prefix = project
    datadir = DataDir.open(path, create=False)
    store = datadir.open_shard(1)
    try:
        with psycopg.connect(pg_dsn(), autocommit=True) as listener:
            listener.execute(f'LISTEN "{prefix}_shard_001_ready"')
            assert store.start_run("r1", "napper", (None, 0), (None, 0), current_step=None, now=1.0) == ("r1", True)
            assert [n.channel for n in listener.notifies(timeout=30, stop_after=1)] == [f"{prefix}_shard_001_ready"]
    finally:
        store.close()
    refused = PostgresShardStore(pg_dsn(), f"{prefix}_shard_001", 1, ready_channel="")  # pg_notify refuses ''
    try:
        assert refused.start_run("r2", "napper", (None, 0), (None, 0), current_step=None, now=1.0) == ("r2", True)
        assert refused.get_run("r2").status == "pending"
        assert refused.start_run("r2", "napper", (None, 0), (None, 0), current_step=None, now=1.0) == ("r2", False)
    finally:
        refused.close()
