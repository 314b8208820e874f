"""The SQLite shard store's own behaviour, below the interface (which tests/contract covers on every
backend): the rows it writes, values out of line, counters, lock waits, leases on the caller's clock."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from helpers import report, run_processes, wait_until, wfctl, wfctl_env

from wfctl.store import COMPLETED, PENDING, RUNNING, DataDir, JournalRow, NewRun, StepCommit
from wfctl.store.errors import FencingError, PayloadTooLargeError, StoreBusyError

T0 = 1_790_000_000.0


def state(current="start", **variables):
    return {"variables": {"input": {}, **variables}, "current": current, "status": "running",
            "output": None, "error": None, "wake_at": None, "steps_run": 0}


@pytest.fixture
def datadir(tmp_path):
    return DataDir.init(tmp_path, shards=2, max_payload_bytes=20_000, options={"spill_threshold_bytes": 2_000})


@pytest.fixture
def store(datadir):
    with datadir.open_shard(0) as shard:
        yield shard


def raw(datadir, sql, params=()):
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def make_runs(store, n, definition_id="wf", now=T0):
    return [store.create_run(f"{definition_id}-{i}", definition_id, {"i": i}, state(), now=now)[0]
            for i in range(n)]


def leased(store, owner="w1", now=T0):
    generation = store.acquire_lease(owner, 30, now=now)
    assert generation is not None
    return generation


# -- the rows written --------------------------------------------------------------------------

def test_queue_and_journal_rows(store, datadir):
    """A queue row per unfinished run (``claimed``: the generation that holds it), journal rows per run."""
    make_runs(store, 3)
    assert raw(datadir, "SELECT execution_id, ready_at, claimed FROM queue ORDER BY execution_id") == [
        ("wf-0", T0, None), ("wf-1", T0, None), ("wf-2", T0, None)]
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    assert raw(datadir, "SELECT DISTINCT claimed FROM queue") == [(g,)]
    store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b"), "b", ready_at=T0 + 5),
                           StepCommit("wf-1", COMPLETED, None, None, journal=[JournalRow("a", "x", COMPLETED)]),
                           StepCommit("wf-2", RUNNING, state("b"), "b")], now=T0 + 2)
    assert raw(datadir, "SELECT execution_id, ready_at, claimed FROM queue") == [("wf-0", T0 + 5, None)]
    assert raw(datadir, "SELECT execution_id, seq FROM journal") == [("wf-1", 1)]
    store.delete_runs(["wf-1"])
    assert raw(datadir, "SELECT COUNT(*) FROM journal") == [(0,)]


def test_json_is_compact_and_not_ascii_escaped(store, datadir):
    store.create_run("e1", "wf", {"name": "Zoë", "n": [1, 2]}, None, now=T0)
    assert raw(datadir, "SELECT input FROM runs") == [('{"name":"Zoë","n":[1,2]}',)]


def test_create_runs_is_one_transaction(store):
    before = store.stats().transactions
    store.create_runs([NewRun(f"e{i}", "wf", {"i": i}, state()) for i in range(50)]
                      + [NewRun("dup", "wf", None, None, idempotency_key="k")], now=T0)
    assert store.stats().transactions == before + 1
    with pytest.raises(PayloadTooLargeError):  # refused before any transaction
        store.create_run("big", "wf", {"blob": "x" * 25_000}, None, now=T0)
    assert store.stats().transactions == before + 1


def test_large_state_goes_out_of_line_and_stays_there(store, datadir):
    big = state(payload="y" * 3_000)
    store.create_run("e1", "wf", {"small": True}, big, now=T0)
    store.create_run("e2", "wf", {"big": "z" * 3_000}, state(), now=T0)
    row = raw(datadir, "SELECT state, state_blob, input, input_blob FROM runs WHERE execution_id = 'e1'")[0]
    assert row[0] is None and row[1] is not None and row[2] == '{"small":true}' and row[3] is None
    assert store.get_run("e1").state == big
    row2 = raw(datadir, "SELECT input, input_blob, state FROM runs WHERE execution_id = 'e2'")[0]
    assert row2[0] is None and row2[1] is not None and row2[2] is not None
    assert store.get_run("e2").input == {"big": "z" * 3_000}
    assert len(store.list_runs()[0].input["big"]) == 3_000

    g = leased(store)
    assert store.claim_ready(g, now=T0, limit=10)[0].state == big
    store.commit_steps(g, [StepCommit("e1", RUNNING, state("b"), "b", ready_at=T0)], now=T0 + 1)
    blob_id = row[1]
    assert raw(datadir, "SELECT state, state_blob FROM runs WHERE execution_id = 'e1'") == [(None, blob_id)]
    assert store.get_run("e1").state == state("b")
    store.commit_steps(g, [StepCommit("e2", COMPLETED, big, None, output={"o": "w" * 3_000})], now=T0 + 1)
    assert raw(datadir, "SELECT state, output FROM runs WHERE execution_id = 'e2'") == [(None, None)]
    assert store.get_run("e2").output == {"o": "w" * 3_000}
    assert raw(datadir, "SELECT COUNT(*) FROM blobs") == [(4,)]
    store.delete_runs(["e2"])
    assert raw(datadir, "SELECT COUNT(*) FROM blobs") == [(1,)]


# -- leases on the caller's clock (SQLite only: PostgreSQL takes lease times from the server) --------

def test_lease_times_follow_the_callers_clock(store):
    g1 = store.acquire_lease("w1", 10, now=T0)
    assert g1 == 1
    assert store.acquire_lease("w2", 10, now=T0 + 5) is None
    assert store.renew_lease("w1", g1, 10, now=T0 + 5) == T0 + 15
    assert store.acquire_lease("w2", 10, now=T0 + 14) is None
    g2 = store.acquire_lease("w2", 10, now=T0 + 16)
    assert g2 == g1 + 1
    with pytest.raises(FencingError, match="generation 1"):
        store.renew_lease("w1", g1, 10, now=T0 + 17)
    assert store.release_lease("w2", g2) is True
    with pytest.raises(FencingError, match="released"):
        store.claim_ready(g2, now=T0 + 17, limit=10)
    assert store.acquire_lease("w1", 10, now=T0 + 18) == g2 + 1
    stats = store.stats()
    assert (stats.lease_owner, stats.generation, stats.lease_expires_at, stats.heartbeat_at) == \
        ("w1", 3, T0 + 28, T0 + 18)
    assert store.renew_lease("w1", 3, 10, now=T0 + 60) == T0 + 70  # expired, not taken over: renewable


# -- counters and lock waits -------------------------------------------------------------------

def test_counters_are_persisted(datadir):
    with datadir.open_shard(1) as store:
        make_runs(store, 40)
        assert store.stats().transactions == 40
    with datadir.open_shard(1) as store:
        stats = store.stats()
        assert (stats.transactions, stats.retries, stats.runs_by_status) == (40, {"lock_busy": 0}, {PENDING: 40})
        assert stats.details["file_bytes"] > 0 and stats.details["wal_bytes"] >= 0
        assert stats.size_bytes == stats.details["file_bytes"] + stats.details["wal_bytes"]


def test_hot_rows_cost_one_statement_where_runs_start_finish_or_are_canceled(tmp_path, monkeypatch):
    from wfctl.store.payload import encode
    from wfctl.store.sqlite import connection

    monkeypatch.setattr(connection, "FLUSH_EVERY_TX", 10**9)  # no counters written inside these transactions
    monkeypatch.setattr(connection, "FLUSH_EVERY_S", 3600.0)
    statements: dict[bool, list[int]] = {}
    for hot_rows in (False, True):
        with DataDir.init(tmp_path / str(hot_rows), shards=1, hot_rows=hot_rows).open_shard(0) as store:
            sent: list[str] = []
            store._db.conn.set_trace_callback(sent.append)

            def cost(action) -> int:
                sent.clear()
                action()
                return len(sent)

            def begin(eid):
                return store.start_run(eid, "wf", encode({}, "input", 100), encode(state(), "state", 10**6),
                                       current_step="start", now=T0)

            g = leased(store)
            statements[hot_rows] = [
                cost(lambda: begin("a")), cost(lambda: begin("a")),  # a start, then one of a taken id
                cost(lambda: store.create_runs([NewRun("b", "wf", None, state()), NewRun("c", "wf", None, state())],
                                               now=T0)),
                cost(lambda: store.commit_steps(g, [StepCommit("a", RUNNING, state("x"), "x", ready_at=T0)], now=T0)),
                cost(lambda: store.commit_steps(g, [StepCommit("a", COMPLETED, state(None), None)], now=T0)),
                cost(lambda: store.cancel_runs(["b"], now=T0)), cost(lambda: store.cancel_runs(["b"], now=T0))]
            assert store.stats().details["hot_row_count"] == (3 + 2 if hot_rows else 0)
    assert [on - off for off, on in zip(statements[False], statements[True])] == [1, 0, 1, 0, 1, 1, 0]


def holder(datadir, until):
    """Hold shard 0's write lock in another thread until ``until()`` is true (60 s at most);
    returns the thread, once the lock is held."""
    locked = threading.Event()

    def hold():
        conn = sqlite3.connect(datadir.backend.shard_path(0), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        wait_until(until, timeout=60, interval=0.01)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


def test_lock_waits_are_retried_and_counted(datadir):
    with datadir.open_shard(0) as store:
        release_at = time.monotonic() + 0.1  # the workload: the lock is busy for 0.1 s (the store counts
        thread = holder(datadir, lambda: time.monotonic() >= release_at)  # its waits only once it has the lock)
        store.create_run("e1", "wf", None, None, now=T0)
        thread.join()
        stats = store.stats()
        assert set(stats.retries) == set(stats.wait_ms) == {"lock_busy"}  # SQLite's only cause
        assert stats.retries["lock_busy"] > 0 and stats.wait_ms["lock_busy"] >= 50
        assert (stats.total_retries, stats.total_wait_ms) == (stats.retries["lock_busy"], stats.wait_ms["lock_busy"])
        progress = store.progress()
        assert (progress.retries, progress.total_retries) == (stats.retries, stats.total_retries)
    with datadir.open_shard(0) as store:
        assert store.stats().retries == stats.retries


def test_busy_past_the_deadline_is_a_store_busy_error(tmp_path):
    datadir = DataDir.init(tmp_path / "short", shards=1, options={"busy_deadline_s": 0.1})  # the sqlite option
    with datadir.open_shard(0) as store:
        gave_up = threading.Event()
        thread = holder(datadir, gave_up.is_set)
        try:
            with pytest.raises(StoreBusyError) as info:
                store.create_run("e1", "wf", None, None, now=T0)
        finally:
            gave_up.set()
            thread.join()
        message = str(info.value)
        assert "shard-000.db" in message and "gave up waiting for the write lock" in message
        assert "database is locked" not in message
        assert store.create_run("e1", "wf", None, None, now=T0)[1]


PER_PROCESS = 500


def _create_many(path, prefix, barrier, results):
    def work():
        with DataDir.open(path, create=False).open_shard(0) as store:
            barrier.wait()
            return sum(store.create_run(f"{prefix}-{i}", "wf", {"i": i}, None, now=time.time())[1]
                       for i in range(PER_PROCESS))
    report(results, prefix, work)


def test_four_processes_wait_for_one_shards_write_lock(tmp_path):
    """Writers of one file take turns on its write lock: the waits are retried and counted, every
    process's transactions summed in the file."""
    DataDir.init(tmp_path, shards=1)
    out = run_processes([(_create_many, tmp_path, f"p{n}") for n in range(4)], 60, method="fork")
    assert sorted(out.values()) == [PER_PROCESS] * 4
    with DataDir.open(tmp_path).open_shard(0) as store:
        stats = store.stats()
    assert stats.runs_by_status == {"pending": 4 * PER_PROCESS} and stats.queue_depth == 4 * PER_PROCESS
    assert stats.transactions == 4 * PER_PROCESS
    assert stats.retries["lock_busy"] > 0 and stats.wait_ms["lock_busy"] > 0
    # the same figures, by cause, reach `wfctl shards --json` and its table
    proc = wfctl(tmp_path, "shards", "--json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["retries"] == stats.retries and row["wait_ms"] == pytest.approx(stats.wait_ms)
    table = wfctl(tmp_path, "shards", env=wfctl_env(COLUMNS="100")).stdout
    assert "(lock busy)" in table and f" {stats.retries['lock_busy']} " in table
