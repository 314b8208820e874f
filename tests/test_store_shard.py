"""One shard's operations on a real SQLite file: runs, queue, journal, leases, cleanup, payloads."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from wfctl.errors import InputError
from wfctl.store import (CANCELED, COMPLETED, FAILED, PENDING, RUNNING, DataDir, JournalRow, NewRun,
                         StepCommit)
from wfctl.store.errors import FencingError, PayloadTooLargeError, StoreBusyError
from wfctl.store.payload import content_hash

T0 = 1_790_000_000.0


def state(current="start", **variables):
    return {"variables": {"input": {}, **variables}, "current": current, "status": "running",
            "output": None, "error": None, "wake_at": None, "steps_run": 0}


@pytest.fixture
def datadir(tmp_path):
    return DataDir.init(tmp_path, shards=2, max_payload_bytes=20_000, spill_threshold_bytes=2_000)


@pytest.fixture
def store(datadir):
    with datadir.open_shard(0) as shard:
        yield shard


def raw(datadir, sql, params=()):
    conn = sqlite3.connect(datadir.shard_path(0))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def make_runs(store, n, definition_id="wf", now=T0, **kwargs):
    return [store.create_run(f"{definition_id}-{i}", definition_id, {"i": i}, state(), now=now, **kwargs)[0]
            for i in range(n)]


def leased(store, owner="w1", now=T0):
    generation = store.acquire_lease(owner, 30, now=now)
    assert generation is not None
    return generation


# -- creating and reading runs ---------------------------------------------------------------

def test_create_and_get_run(store, datadir):
    run, created = store.create_run("e1", "wf", {"order": 7, "name": "Zoë"}, state("a"), timeout_s=60, now=T0)
    assert created
    assert (run.status, run.shard, run.current_step, run.attempt, run.timeout_s) == (PENDING, 0, "a", 1, 60)
    stored = store.get_run("e1")
    assert stored == run
    assert stored.input == {"order": 7, "name": "Zoë"}
    assert raw(datadir, "SELECT execution_id, ready_at, claimed FROM queue") == [("e1", T0, None)]
    assert store.get_run("nope") is None
    assert store.journal("nope") == []


def test_json_is_compact_and_not_ascii_escaped(store, datadir):
    store.create_run("e1", "wf", {"name": "Zoë", "n": [1, 2]}, None, now=T0)
    assert raw(datadir, "SELECT input FROM runs") == [('{"name":"Zoë","n":[1,2]}',)]


def test_idempotency_key_returns_the_existing_run(store):
    first, created = store.create_run("e1", "wf", {"a": 1}, state(), idempotency_key="k1", now=T0)
    again, created_again = store.create_run("e2", "wf", {"a": 2}, state(), idempotency_key="k1", now=T0 + 1)
    assert created and not created_again
    assert again.execution_id == "e1" and again.input == {"a": 1}
    assert store.count_runs() == 1


def test_same_execution_id_returns_the_existing_run(store):
    store.create_run("e1", "wf", {"a": 1}, None, now=T0)
    run, created = store.create_run("e1", "wf", {"a": 2}, None, now=T0)
    assert not created and run.input == {"a": 1}


def test_create_runs_is_one_transaction(store):
    before = store.stats().transactions
    results = store.create_runs([NewRun(f"e{i}", "wf", {"i": i}, state()) for i in range(50)]
                                + [NewRun("dup", "wf", None, None, idempotency_key="k"),
                                   NewRun("dup2", "wf", None, None, idempotency_key="k")], now=T0)
    assert [created for _, created in results] == [True] * 51 + [False]
    assert results[-1][0].execution_id == "dup"
    assert store.stats().transactions == before + 1
    assert store.stats().queue_depth == 51


def test_not_json_serializable_input_is_an_input_error(store):
    with pytest.raises(InputError, match="input of run e1 is not JSON-serializable"):
        store.create_run("e1", "wf", {"when": object()}, None, now=T0)


def test_list_runs_newest_first_with_filters(store):
    for i in range(5):
        store.create_run(f"a{i}", "wf-a", None, None, now=T0 + i)
        store.create_run(f"b{i}", "wf-b", None, None, now=T0 + i + 0.5)
    store.cancel_runs(["a1", "b1"], now=T0 + 10)
    assert [r.execution_id for r in store.list_runs(limit=3)] == ["b4", "a4", "b3"]
    assert [r.execution_id for r in store.list_runs(definition_id="wf-a")] == ["a4", "a3", "a2", "a1", "a0"]
    assert [r.execution_id for r in store.list_runs(statuses=[CANCELED])] == ["b1", "a1"]
    assert [r.execution_id for r in store.list_runs(statuses=[PENDING], definition_id="wf-b", limit=2)] == ["b4", "b3"]
    assert all(r.state is None for r in store.list_runs())
    assert store.count_runs() == 10
    assert store.count_runs(statuses=[PENDING]) == 8
    assert store.count_runs(statuses=[CANCELED], definition_id="wf-a") == 1
    with pytest.raises(InputError, match="'done'"):
        store.list_runs(statuses=["done"])


def test_list_runs_pages_through_ties(store):
    store.create_runs([NewRun(f"e{i:02d}", "wf", None, None) for i in range(25)], now=T0)
    store.create_runs([NewRun(f"f{i:02d}", "wf", None, None) for i in range(5)], now=T0 + 1)
    seen, before = [], None
    while page := store.list_runs(limit=7, before=before):
        seen += [r.execution_id for r in page]
        before = (page[-1].created_at, page[-1].execution_id)
    assert seen[:5] == ["f04", "f03", "f02", "f01", "f00"]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 30


# -- leases and fencing ------------------------------------------------------------------------

def test_lease_fencing(store):
    g1 = store.acquire_lease("w1", 10, now=T0)
    assert g1 == 1
    assert store.acquire_lease("w2", 10, now=T0 + 5) is None
    assert store.renew_lease("w1", g1, 10, now=T0 + 5) == T0 + 15
    assert store.acquire_lease("w2", 10, now=T0 + 14) is None
    g2 = store.acquire_lease("w2", 10, now=T0 + 16)
    assert g2 == g1 + 1
    make_runs(store, 1)
    with pytest.raises(FencingError, match="generation 1"):
        store.renew_lease("w1", g1, 10, now=T0 + 17)
    with pytest.raises(FencingError):
        store.commit_steps(g1, [StepCommit("wf-0", RUNNING, state("b"), "b", ready_at=T0)], now=T0 + 17)
    with pytest.raises(FencingError):
        store.claim_ready(g1, now=T0 + 17, limit=10)
    with pytest.raises(FencingError):
        store.mark_step_started(g1, "wf-0", JournalRow("a", "action", "started"), now=T0 + 17)
    assert store.get_run("wf-0").current_step == "start"
    assert store.release_lease("w1", g1) is False
    assert store.stats().lease_owner == "w2"
    assert store.release_lease("w2", g2) is True
    with pytest.raises(FencingError, match="released"):
        store.claim_ready(g2, now=T0 + 17, limit=10)
    assert store.acquire_lease("w1", 10, now=T0 + 18) == g2 + 1
    stats = store.stats()
    assert (stats.lease_owner, stats.generation, stats.lease_expires_at) == ("w1", 3, T0 + 28)


def test_expired_lease_not_taken_over_can_be_renewed(store):
    g = store.acquire_lease("w1", 10, now=T0)
    assert store.renew_lease("w1", g, 10, now=T0 + 60) == T0 + 70


def test_reacquiring_own_lease_bumps_the_generation(store):
    g = store.acquire_lease("w1", 10, now=T0)
    assert store.acquire_lease("w1", 10, now=T0 + 1) == g + 1
    with pytest.raises(FencingError):
        store.renew_lease("w1", g, 10, now=T0 + 2)


# -- the ready queue and step commits ----------------------------------------------------------

def test_claim_ready_oldest_first_without_deleting(store, datadir):
    for i in range(5):
        store.create_run(f"e{i}", "wf", None, state(), now=T0 + 4 - i)
    g = leased(store)
    claimed = store.claim_ready(g, now=T0 + 10, limit=3)
    assert [r.execution_id for r in claimed] == ["e4", "e3", "e2"]
    assert claimed[0].state == state()
    assert [r.execution_id for r in store.claim_ready(g, now=T0 + 10, limit=10)] == ["e1", "e0"]
    assert store.claim_ready(g, now=T0 + 10, limit=10) == []
    assert store.stats().queue_depth == 5
    g2 = store.acquire_lease("w2", 30, now=T0 + 100)
    assert len(store.claim_ready(g2, now=T0 + 100, limit=10)) == 5


def test_claim_ready_skips_future_entries(store):
    make_runs(store, 2, now=T0 + 100)
    g = leased(store)
    assert store.claim_ready(g, now=T0, limit=10) == []
    assert len(store.claim_ready(g, now=T0 + 100, limit=10)) == 2


def test_commit_steps_advances_requeues_and_finishes(store, datadir):
    make_runs(store, 2)
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    skipped = store.commit_steps(g, [
        StepCommit("wf-0", RUNNING, state("b", x=1), "b", attempt=2, ready_at=T0 + 5, wake_at=T0 + 5,
                   journal=[JournalRow("a", "action", FAILED, 1, error="boom", started_at=T0, finished_at=T0 + 1),
                            JournalRow("a", "action", COMPLETED, 2, "success", {"ok": True}, None, T0 + 1, T0 + 2)]),
        StepCommit("wf-1", COMPLETED, state(None), None, output={"result": 42},
                   journal=[JournalRow("a", "output", COMPLETED, port="success", output={"result": 42})]),
    ], now=T0 + 2)
    assert skipped == []
    run = store.get_run("wf-0")
    assert (run.status, run.current_step, run.attempt, run.wake_at) == (RUNNING, "b", 2, T0 + 5)
    assert (run.started_at, run.updated_at, run.completed_at) == (T0 + 2, T0 + 2, None)
    assert run.state["variables"]["x"] == 1
    journal = store.journal("wf-0")
    assert [(j.seq, j.status, j.attempt, j.error) for j in journal] == [(1, FAILED, 1, "boom"), (2, COMPLETED, 2, None)]
    assert journal[1].output == {"ok": True} and journal[1].port == "success"
    done = store.get_run("wf-1")
    assert (done.status, done.output, done.completed_at, done.finished) == (COMPLETED, {"result": 42}, T0 + 2, True)
    assert raw(datadir, "SELECT execution_id, ready_at, claimed FROM queue") == [("wf-0", T0 + 5, None)]
    assert store.claim_ready(g, now=T0 + 4, limit=10) == []
    assert [r.execution_id for r in store.claim_ready(g, now=T0 + 5, limit=10)] == ["wf-0"]
    store.commit_steps(g, [StepCommit("wf-0", FAILED, state(None), None, error="gave up",
                                      journal=[JournalRow("b", "action", FAILED)])], now=T0 + 6)
    failed = store.get_run("wf-0")
    assert (failed.status, failed.error, failed.started_at, failed.completed_at) == (FAILED, "gave up", T0 + 2, T0 + 6)
    assert [j.seq for j in store.journal("wf-0")] == [1, 2, 3]
    assert store.stats().queue_depth == 0


def test_commit_steps_after_cancel_journals_but_does_not_advance(store):
    make_runs(store, 2)
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    assert store.cancel_runs(["wf-0"], now=T0 + 1) == ["wf-0"]
    skipped = store.commit_steps(g, [
        StepCommit("wf-0", RUNNING, state("b"), "b", ready_at=T0 + 2, journal=[JournalRow("a", "action", COMPLETED)]),
        StepCommit("wf-1", RUNNING, state("b"), "b", ready_at=T0 + 2, journal=[JournalRow("a", "action", COMPLETED)]),
        StepCommit("gone", RUNNING, state("b"), "b", ready_at=T0 + 2, journal=[JournalRow("a", "action", COMPLETED)]),
    ], now=T0 + 2)
    assert skipped == ["wf-0", "gone"]
    canceled = store.get_run("wf-0")
    assert (canceled.status, canceled.current_step, canceled.completed_at) == (CANCELED, "start", T0 + 1)
    assert [j.status for j in store.journal("wf-0")] == [COMPLETED]
    assert store.journal("gone") == []
    assert store.get_run("wf-1").current_step == "b"
    assert store.stats().queue_depth == 1


def test_commit_steps_rejects_impossible_transitions(store):
    g = leased(store)
    with pytest.raises(ValueError, match="cannot be re-queued"):
        store.commit_steps(g, [StepCommit("e", COMPLETED, None, None, ready_at=T0)], now=T0)
    with pytest.raises(ValueError, match="status"):
        store.commit_steps(g, [StepCommit("e", CANCELED, None, None)], now=T0)
    with pytest.raises(ValueError, match="journal status"):
        store.commit_steps(g, [StepCommit("e", RUNNING, None, None, journal=[JournalRow("a", "x", "done")])], now=T0)


def test_mark_step_started(store):
    make_runs(store, 2)
    g = leased(store)
    assert store.mark_step_started(g, "wf-0", JournalRow("call", "action", "started", 1, started_at=T0 + 1),
                                   now=T0 + 1)
    run = store.get_run("wf-0")
    assert (run.status, run.current_step, run.started_at) == (RUNNING, "call", T0 + 1)
    assert [(j.seq, j.status, j.step_slug) for j in store.journal("wf-0")] == [(1, "started", "call")]
    store.cancel_runs(["wf-1"], now=T0 + 1)
    assert not store.mark_step_started(g, "wf-1", JournalRow("call", "action", "started"), now=T0 + 2)
    assert not store.mark_step_started(g, "nope", JournalRow("call", "action", "started"), now=T0 + 2)
    assert store.journal("wf-1") == []


# -- cancel, delete, inactivity ------------------------------------------------------------------

def test_cancel_runs_only_unfinished(store):
    make_runs(store, 3)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-2", COMPLETED, None, None)], now=T0 + 1)
    assert store.cancel_runs(["wf-0", "wf-2", "nope", "wf-0"], now=T0 + 2) == ["wf-0"]
    assert store.get_run("wf-2").status == COMPLETED
    assert store.get_run("wf-0").status == CANCELED
    assert store.stats().queue_depth == 1


def test_cancel_matching(store):
    make_runs(store, 10, "wf-a")
    make_runs(store, 3, "wf-b")
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-a-0", RUNNING, state("b"), "b")], now=T0 + 1)
    assert store.cancel_matching("wf-a", [RUNNING], now=T0 + 2) == 1
    assert store.cancel_matching("wf-a", now=T0 + 2, batch=3) == 9
    assert store.count_runs(statuses=[CANCELED]) == 10
    assert store.count_runs(statuses=[PENDING], definition_id="wf-b") == 3
    assert store.cancel_matching(None, now=T0 + 3) == 3
    with pytest.raises(InputError, match="cannot cancel runs with status 'completed'"):
        store.cancel_matching("wf-a", [COMPLETED], now=T0)


def test_delete_runs_never_deletes_unfinished(store, datadir):
    make_runs(store, 3)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None, journal=[JournalRow("a", "x", COMPLETED)])],
                       now=T0 + 1)
    store.cancel_runs(["wf-1"], now=T0 + 1)
    assert store.delete_runs(["wf-0", "wf-1", "wf-2", "nope"]) == 2
    assert [r.execution_id for r in store.list_runs()] == ["wf-2"]
    assert raw(datadir, "SELECT COUNT(*) FROM journal") == [(0,)]
    assert raw(datadir, "SELECT execution_id FROM queue") == [("wf-2",)]


def test_delete_finished_by_age_and_status(store):
    make_runs(store, 250)
    g = leased(store)
    store.commit_steps(g, [StepCommit(f"wf-{i}", COMPLETED, None, None) for i in range(0, 200)], now=T0 + 10)
    store.commit_steps(g, [StepCommit(f"wf-{i}", FAILED, None, None) for i in range(200, 220)], now=T0 + 30)
    store.cancel_runs([f"wf-{i}" for i in range(220, 230)], now=T0 + 10)
    assert store.delete_finished(T0 + 20, [COMPLETED], batch=30) == 200
    assert store.delete_finished(T0 + 20) == 10
    assert store.delete_finished(T0 + 40, [FAILED]) == 20
    assert store.count_runs() == 20
    with pytest.raises(InputError, match="cannot delete runs with status 'pending'"):
        store.delete_finished(T0, [PENDING])


def test_inactive_runs(store):
    store.create_run("old", "wf", None, state(), now=T0)
    store.create_run("short", "wf", None, state(), timeout_s=5, now=T0 + 50)
    store.create_run("fresh", "wf", None, state(), now=T0 + 90)
    store.create_run("sleeping", "wf", None, state(), now=T0)
    store.create_run("done", "wf", None, state(), now=T0)
    g = leased(store)
    store.commit_steps(g, [StepCommit("sleeping", RUNNING, state("b"), "b", ready_at=T0 + 500, wake_at=T0 + 500),
                           StepCommit("done", COMPLETED, None, None)], now=T0)
    inactive = store.inactive_runs(T0 + 100, default_timeout_s=30)
    assert [r.execution_id for r in inactive] == ["old", "short"]
    assert inactive[0].state == state()
    assert [r.execution_id for r in store.inactive_runs(T0 + 600, 30, limit=10)] == \
        ["old", "short", "fresh", "sleeping"]


# -- payload limits and out-of-line values ------------------------------------------------------

def test_oversized_input_is_refused_before_writing(store):
    before = store.stats().transactions
    with pytest.raises(PayloadTooLargeError) as info:
        store.create_run("e1", "wf", {"blob": "x" * 25_000}, None, now=T0)
    assert "input of run e1" in str(info.value)
    assert str(info.value) == ("input of run e1 is 24.4 KiB (25011 bytes), over the limit of "
                              "19.5 KiB (20000 bytes)")
    assert isinstance(info.value, InputError)
    assert store.count_runs() == 0 and store.stats().transactions == before


def test_oversized_step_output_and_state_are_refused(store):
    make_runs(store, 1)
    g = leased(store)
    big = "é" * 11_000  # 22,000 bytes in UTF-8
    with pytest.raises(PayloadTooLargeError, match="output of step 'a' of run wf-0"):
        store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b"), "b",
                                          journal=[JournalRow("a", "x", COMPLETED, output=big)])], now=T0)
    with pytest.raises(PayloadTooLargeError, match="state of run wf-0"):
        store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b", big=big), "b")], now=T0)
    assert store.journal("wf-0") == [] and store.get_run("wf-0").current_step == "start"


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


# -- counters and lock waits ---------------------------------------------------------------------

def test_counters_are_persisted(datadir):
    with datadir.open_shard(1) as store:
        make_runs(store, 40)
        assert store.stats().transactions == 40
    with datadir.open_shard(1) as store:
        stats = store.stats()
        assert (stats.transactions, stats.retries, stats.runs_by_status) == (40, {"lock_busy": 0}, {PENDING: 40})
        assert stats.details["file_bytes"] > 0 and stats.details["wal_bytes"] >= 0
        assert stats.size_bytes == stats.details["file_bytes"] + stats.details["wal_bytes"]


def holder(datadir, seconds):
    """Hold shard 0's write lock for ``seconds`` in another thread; returns (thread, locked event)."""
    locked = threading.Event()

    def hold():
        conn = sqlite3.connect(datadir.shard_path(0), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


def test_lock_waits_are_retried_and_counted(datadir):
    with datadir.open_shard(0) as store:
        thread = holder(datadir, 0.1)
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


def test_busy_past_the_deadline_is_a_store_busy_error(datadir):
    with datadir.open_shard(0, busy_deadline_s=0.1) as store:
        thread = holder(datadir, 0.5)
        with pytest.raises(StoreBusyError) as info:
            store.create_run("e1", "wf", None, None, now=T0)
        thread.join()
        message = str(info.value)
        assert "shard-000.db" in message and "gave up waiting for the write lock" in message
        assert "database is locked" not in message
        assert store.create_run("e1", "wf", None, None, now=T0)[1]


# -- the catalog --------------------------------------------------------------------------------

def test_catalog(datadir):
    body = {"name": "Orders", "version": 2, "steps": [{"stepSlug": "a"}, {"stepSlug": "b"}]}
    with datadir.open_catalog() as catalog:
        assert catalog.put_definition("orders", body, now=T0)
        assert not catalog.put_definition("orders", body, now=T0 + 1)
        assert catalog.put_definition("alpha", {"name": "A", "steps": []}, now=T0 + 2)
        assert catalog.get_definition("orders") == body
        assert catalog.get_definition("nope") is None
        assert catalog.list_definitions() == [
            {"id": "alpha", "name": "A", "version": None, "updated_at": T0 + 2, "steps": 0,
             "hash": content_hash({"name": "A", "steps": []})},
            {"id": "orders", "name": "Orders", "version": "2", "updated_at": T0, "steps": 2, "hash": content_hash(body)},
        ]
        assert catalog.put_definition("orders", {**body, "name": "Orders v2"}, now=T0 + 3)
        assert catalog.list_definitions()[1]["updated_at"] == T0 + 3
        assert catalog.delete_definition("orders")
        assert not catalog.delete_definition("orders")
        with pytest.raises(PayloadTooLargeError):
            catalog.put_definition("huge", {"steps": [], "x": "y" * 30_000}, now=T0)
