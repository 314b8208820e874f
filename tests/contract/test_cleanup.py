"""Clients' bulk operations (cancel, delete, inactivity) and what a shard reports (scans, counts, stats)."""

from __future__ import annotations

import base64
import itertools
import os

import pytest

from wfctl.errors import InputError
from wfctl.store import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, JournalRow, RunTimes, StepCommit

from .support import T0, ids, leased, make_runs, state


def test_cancel_runs_only_unfinished(store):
    make_runs(store, 3)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-2", COMPLETED, None, None)], now=T0 + 1)
    store.commit_steps(g, [StepCommit("wf-1", RUNNING, state("b"), "b", ready_at=T0 + 1)], now=T0 + 1)
    assert sorted(store.cancel_runs(["wf-0", "wf-1", "wf-2", "nope", "wf-0"], now=T0 + 2)) == ["wf-0", "wf-1"]
    assert store.get_run("wf-2").status == COMPLETED and store.get_run("wf-2").completed_at == T0 + 1
    canceled = store.get_run("wf-0")
    assert (canceled.status, canceled.completed_at, canceled.finished) == (CANCELED, T0 + 2, True)
    assert store.stats().queue_depth == 0 and store.claim_ready(g, now=T0 + 5, limit=10) == []
    assert store.cancel_runs(["wf-0"], now=T0 + 3) == [] and store.get_run("wf-0").completed_at == T0 + 2
    assert store.cancel_runs([], now=T0) == []


def test_cancel_reads_a_clock_once_per_transaction(store):
    """``now`` may be a clock: it is read inside each write transaction, and the canceled runs'
    ``completed_at`` is what it returned."""
    make_runs(store, 7)
    ticks = itertools.count(1)
    returned = []

    def clock():
        returned.append(T0 + 10 + next(ticks))
        return returned[-1]

    assert store.cancel_matching("wf", now=clock, batch=3) == 7
    times = {store.get_run(f"wf-{i}").completed_at for i in range(7)}
    assert times <= set(returned) and len(times) >= 3  # 3 transactions at least: one reading per batch
    store.create_run("x", "wf", None, None, now=T0)
    returned.clear()
    assert store.cancel_runs(["x"], now=clock) == ["x"]
    assert store.get_run("x").completed_at in returned


def test_cancel_matching(store):
    make_runs(store, 10, "wf-a")
    make_runs(store, 3, "wf-b")
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-a-0", RUNNING, state("b"), "b")], now=T0 + 1)
    assert store.cancel_matching("wf-a", [RUNNING], now=T0 + 2) == 1
    assert store.cancel_matching("wf-a", now=T0 + 2, batch=3) == 9
    assert store.count_runs(statuses=[CANCELED]) == 10
    assert store.count_runs(statuses=[PENDING], definition_id="wf-b") == 3
    assert store.cancel_matching("wf-a", now=T0 + 3) == 0
    assert store.cancel_matching(None, now=T0 + 3) == 3
    assert store.progress().unfinished == 0 and store.progress().queue_depth == 0
    with pytest.raises(InputError, match="cannot cancel runs with status 'completed'"):
        store.cancel_matching("wf-a", [COMPLETED], now=T0)


def test_delete_runs_never_deletes_unfinished(store):
    make_runs(store, 4)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None, journal=[JournalRow("a", "x", COMPLETED)])],
                       now=T0 + 1)
    store.commit_steps(g, [StepCommit("wf-3", RUNNING, state("b"), "b", ready_at=T0 + 1,
                                      journal=[JournalRow("a", "x", COMPLETED)])], now=T0 + 1)
    store.cancel_runs(["wf-1"], now=T0 + 1)
    assert store.delete_runs(["wf-0", "wf-1", "wf-2", "wf-3", "nope", "wf-0"]) == 2
    assert sorted(ids(store.list_runs())) == ["wf-2", "wf-3"]
    assert store.get_run("wf-0") is None and store.journal("wf-0") == [] and store.journal_count("wf-0") == 0
    assert store.journal_count("wf-3") == 1
    assert sorted(ids(store.claim_ready(g, now=T0 + 1, limit=10))) == ["wf-2", "wf-3"]
    assert store.progress().runs == 4  # runs ever created, deleted ones included
    assert store.delete_runs([]) == 0


def test_delete_finished_by_age_and_status(store):
    make_runs(store, 250)
    g = leased(store)
    store.commit_steps(g, [StepCommit(f"wf-{i}", COMPLETED, None, None) for i in range(0, 200)], now=T0 + 10)
    store.commit_steps(g, [StepCommit(f"wf-{i}", FAILED, None, None) for i in range(200, 220)], now=T0 + 30)
    store.cancel_runs([f"wf-{i}" for i in range(220, 230)], now=T0 + 10)
    assert store.delete_finished(T0 + 10, [COMPLETED]) == 0  # finished *before*
    assert store.delete_finished(T0 + 20, [COMPLETED], batch=30) == 200
    assert store.delete_finished(T0 + 20) == 10
    assert store.delete_finished(T0 + 40, [FAILED]) == 20
    assert store.count_runs() == 20 and store.count_runs(statuses=[PENDING]) == 20
    assert store.delete_finished(T0 + 10_000) == 0
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
    assert ids(inactive) == ["old", "short"]
    assert inactive[0].state == state()
    assert ids(store.inactive_runs(T0 + 100, 30, limit=1)) == ["old"]
    assert ids(store.inactive_runs(T0 + 600, 30, limit=10)) == ["old", "short", "fresh", "sleeping"]
    assert ids(store.inactive_runs(T0 + 529, 30)) == ["old", "short", "fresh"]  # asleep till T0 + 500


def test_scan_runs_streams_every_run(store):
    make_runs(store, 7, "a")
    store.create_run("slot", "b", None, None, now=T0 + 1, slot_time=T0 - 60)
    g = leased(store)
    store.commit_steps(g, [StepCommit("a-0", FAILED, None, None, error="boom")], now=T0 + 5)
    scanned = list(store.scan_runs(batch=3))
    assert len(scanned) == 8 and all(isinstance(r, RunTimes) for r in scanned)
    assert sorted((r.definition_id, r.status) for r in scanned) == \
        [("a", FAILED)] + [("a", PENDING)] * 6 + [("b", PENDING)]
    assert {(r.created_at, r.completed_at, r.error) for r in scanned if r.status == FAILED} == {(T0, T0 + 5, "boom")}
    assert {r.slot_time for r in scanned} == {None, T0 - 60}
    assert len(list(store.scan_runs())) == 8


def test_version_counts(store):
    store.create_run("old", "wf", None, None, now=T0)
    for i in range(3):
        store.create_run(f"v1-{i}", "wf", None, None, now=T0, definition_version="v1")
    store.create_run("v2", "wf", None, None, now=T0, definition_version="v2")
    store.create_run("other", "other", None, None, now=T0, definition_version="v1")
    assert store.version_counts("wf") == {None: 1, "v1": 3, "v2": 1}
    assert store.version_counts("nope") == {}


def test_stored_bytes_follow_the_values(store):
    empty = store.stored_bytes()
    value = base64.b64encode(os.urandom(9_000)).decode()  # 12,000 bytes no compression shrinks much
    store.create_run("e1", "wf", {"blob": value}, state(), now=T0)
    holding = store.stored_bytes()
    assert holding > empty + 6_000
    g = leased(store)
    store.commit_steps(g, [StepCommit("e1", COMPLETED, None, None, output={"again": value})], now=T0 + 1)
    assert store.stored_bytes() > holding + 6_000
    assert store.delete_runs(["e1"]) == 1
    assert store.stored_bytes() == empty


def test_stats_and_progress(backend):
    with backend.open_shard(1) as store:
        empty = store.stats()
        assert (empty.shard, empty.runs_by_status, empty.queue_depth, empty.lease_owner) == (1, {}, 0, None)
        assert (empty.waiting, empty.waiting_error) == (0, None)
        first = store.progress()
        assert (first.shard, first.runs, first.unfinished, first.queue_depth) == (1, 0, 0, 0)
        make_runs(store, 6)
        g = leased(store, "w1")
        store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None),
                               StepCommit("wf-1", FAILED, None, None, error="x"),
                               StepCommit("wf-2", RUNNING, state("b"), "b")], now=T0 + 1)
        store.cancel_runs(["wf-3"], now=T0 + 1)
        stats = store.stats()
        assert stats.runs_by_status == {COMPLETED: 1, FAILED: 1, RUNNING: 1, CANCELED: 1, PENDING: 2}
        assert stats.queue_depth == 2
        assert (stats.lease_owner, stats.generation) == ("w1", g) and stats.lease_expires_at is not None
        assert stats.transactions > 0
        progress = store.progress()
        assert (progress.runs, progress.unfinished, progress.queue_depth) == (6, 3, 2)
        assert progress.transactions > 0
        store.delete_runs(["wf-0", "wf-1"])
        assert (store.progress().runs, store.progress().unfinished) == (6, 3)
    with backend.open_shard(1) as reopened:  # what a shard reports outlives the store that wrote it
        again = reopened.stats()
        assert again.runs_by_status == {RUNNING: 1, CANCELED: 1, PENDING: 2}
        assert (again.lease_owner, again.generation, again.transactions > 0) == ("w1", g, True)
    with backend.open_shard(0) as other:
        assert other.stats().runs_by_status == {} and other.progress().runs == 0


def test_unfinished_runs_with_an_error_count_as_waiting(store):
    make_runs(store, 3)
    g = leased(store)
    store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b"), "b", error="cannot decrypt: wrong key"),
                           StepCommit("wf-1", FAILED, None, None, error="failed for good")], now=T0 + 1)
    stats = store.stats()
    assert (stats.waiting, stats.waiting_error) == (1, "cannot decrypt: wrong key")
