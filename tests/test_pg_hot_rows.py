"""``hot_rows`` on PostgreSQL: the shared row costs a start no statement and a group commit one, its
row lock queues the shard's writers under read committed, and under serializable concurrent starts
fail with 40001, are retried and counted, and still make each run once; a tried start skips a
shard whose row is held, so the engine starts the run on another. The contract suite
(tests/contract/test_hot_rows.py) checks the count on every backend."""

from __future__ import annotations

import dataclasses
import threading

import psycopg
import pytest

from helpers import EXAMPLES, report, run_processes, wait_until
from pg import pg_backend_or_skip, pg_dsn, pg_project, traced

from wfctl.store import COMPLETED, RUNNING, DataDir, JournalRow, StepCommit

STATE = ('{"current": "s1"}', 17)


@pytest.fixture
def backend():
    with pg_backend_or_skip(1, tag="pghot") as created:
        yield created


def hot(backend):
    """The same deployment opened by a process whose settings have ``hot_rows`` on."""
    from wfctl.store.postgresql import PostgresBackend

    return PostgresBackend(backend.project, dataclasses.replace(backend.settings, hot_rows=True))


def start(store, execution_id):
    return store.start_run(execution_id, "d", ('{"n": 1}', 8), STATE, current_step="s1", now=100.0)


def hot_row_count(store) -> int:
    return store.stats().details["hot_row_count"]


def test_a_start_updates_the_row_in_its_own_statement_and_a_group_commit_in_one_more(backend, monkeypatch):
    from wfctl.store.postgresql import connection

    monkeypatch.setattr(connection, "FLUSH_EVERY_S", 3600.0)  # the counters' own transaction every few seconds
    with backend.open_shard(0) as off, hot(backend).open_shard(0) as on:
        assert traced([off._db.connection()], lambda: start(off, "a")) == (1, 4)  # BEGIN, insert, COMMIT, NOTIFY
        assert traced([on._db.connection()], lambda: start(on, "b")) == (1, 4)
        assert hot_row_count(on) == 1
        costs = {}
        for name, store in (("off", off), ("on", on)):
            generation = store.acquire_lease(name, 60, now=0)
            [run] = store.claim_ready(generation, now=1000, limit=1)
            step = StepCommit(run.execution_id, RUNNING, {"current": "s2"}, "s2", ready_at=1000.0,
                              journal=[JournalRow("s1", "noop", "completed")])
            done = StepCommit(run.execution_id, COMPLETED, {"current": None}, None, output={"ok": True},
                              journal=[JournalRow("s2", "noop", "completed")])
            costs[name] = [traced([store._db.connection()], lambda: store.commit_steps(generation, [c], now=1000.0))
                           for c in (step, done)]
            store.release_lease(name, generation)
        assert costs["on"][0] == costs["off"][0]  # nothing finished: nothing more
        assert costs["on"][1] == (costs["off"][1][0], costs["off"][1][1] + 1)  # one statement more, no round trip
        assert hot_row_count(on) == 2  # the start of "b", the finish of the run the "on" store claimed


def _waiting_on_lock(pid: int, dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_under_read_committed_hot_starts_queue_on_the_row_and_others_do_not(backend):
    with backend.open_shard(0) as off, hot(backend).open_shard(0) as on, \
            psycopg.connect(backend.dsn, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute(f"UPDATE {backend.prefix}_shard_000.hot_row SET count = count + 100 WHERE id = 1")
        done = threading.Event()
        thread = threading.Thread(target=lambda: (start(on, "queued"), done.set()))
        thread.start()
        assert wait_until(lambda: _waiting_on_lock(on._db.connection().info.backend_pid, backend.dsn))
        assert start(off, "free") == ("free", True)  # without hot rows nothing is shared
        assert not done.is_set()
        holder.execute("COMMIT")
        thread.join(60)
        assert done.is_set() and on.get_run("queued") is not None
        assert hot_row_count(off) == 101


STARTERS = 6
STARTS = 100


def _starter(project, index, barrier, results):
    def work():
        with DataDir.open(project, create=False).open_shard(0) as store:
            barrier.wait(60)
            return [start(store, f"p{index}-{i}") for i in range(STARTS)]
    report(results, index, work)


def test_serializable_hot_starts_from_processes_conflict_are_retried_and_make_each_run_once(tmp_path):
    with pg_project(tmp_path / "d", shards=1, tag="pghot", isolation="serializable", hot_rows=True) as project:
        outcomes = run_processes([(_starter, project, i) for i in range(STARTERS)], timeout=300)
        assert all(outcomes[i] == [(f"p{i}-{n}", True) for n in range(STARTS)] for i in range(STARTERS))
        with DataDir.open(project, create=False).open_shard(0) as store:
            stats = store.stats()
            assert store.count_runs() == STARTERS * STARTS == stats.queue_depth
            assert stats.details["hot_row_count"] == STARTERS * STARTS
            assert stats.retries["serialization_failure"] > 0  # persisted by each process when it closed


def test_a_tried_start_writes_nothing_while_the_row_is_held_and_starts_once_it_is_free(backend):
    with backend.open_shard(0) as off, hot(backend).open_shard(0) as on, \
            psycopg.connect(backend.dsn, autocommit=True) as holder:
        assert on.can_try_start and not off.can_try_start  # without hot rows no start waits for another
        holder.execute("BEGIN")
        holder.execute(f"SELECT 1 FROM {backend.prefix}_shard_000.hot_row WHERE id = 1 FOR UPDATE")
        assert on.try_start("t1", "d", ('{"n": 1}', 8), STATE, current_step="s1", now=100.0) is None
        stats = on.stats()
        assert on.get_run("t1") is None and stats.retries["lock_busy"] == 1 and stats.wait_ms["lock_busy"] > 0
        holder.execute("COMMIT")
        assert on.try_start("t1", "d", ('{"n": 1}', 8), STATE, current_step="s1", now=100.0) == ("t1", True)
        assert on.try_start("t1", "d", ('{"n": 2}', 8), STATE, current_step="s1", now=101.0) == ("t1", False)
        assert on.get_run("t1").input == {"n": 1} and hot_row_count(on) == 1 and on.stats().queue_depth == 1


def test_a_start_goes_to_a_shard_whose_hot_row_is_free(tmp_path):
    from wfctl.engine import Engine

    with pg_project(tmp_path / "d", shards=4, tag="pghot", route="execution", isolation="serializable",
                    hot_rows=True) as project, Engine(project) as engine:
        engine.apply([EXAMPLES / "hello.json"])
        engine.start("hello")
        held = (engine._home + 1) % 4
        schema = engine.shard_store(held).where.split("schema ")[1].rstrip(")")
        with psycopg.connect(pg_dsn(), autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute(f"SELECT 1 FROM {schema}.hot_row WHERE id = 1 FOR UPDATE")
            started = engine.start("hello")
            assert started.shard == (held + 1) % 4 and started.created
            assert [engine.start("hello").shard for _ in range(3)] == [started.shard] * 3  # stays there
            holder.execute("COMMIT")
        shards = {s["shard"]: s for s in engine.shards()}
        assert shards[held]["retries"]["lock_busy"] == 1 and shards[held]["retries"]["serialization_failure"] == 0
        assert engine.count() == 5 == sum(engine.shard_store(n).stats().details["hot_row_count"] for n in range(4))


def test_a_shard_schema_made_before_the_hot_row_gets_it_when_opened(backend):
    with psycopg.connect(backend.dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {backend.prefix}_shard_000.hot_row")
    backend.verify()  # an older shard is not damaged
    with hot(backend).open_shard(0) as store:
        assert hot_row_count(store) == 0
        start(store, "r1")
        assert hot_row_count(store) == 1
