"""The lease holder's writes: commit_steps (group commit) and mark_step_started, including the rules
for a run canceled, finished or deleted while the worker had it."""

from __future__ import annotations

import pytest

from wfctl.store import CANCELED, COMPLETED, FAILED, RUNNING, JournalRow, StepCommit
from wfctl.store.base import STARTED

from .support import T0, ids, leased, make_runs, state


def test_commit_steps_advances_requeues_and_finishes(store):
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
    assert (journal[0].step_type, journal[0].started_at, journal[0].finished_at) == ("action", T0, T0 + 1)
    done = store.get_run("wf-1")
    assert (done.status, done.output, done.completed_at, done.finished) == (COMPLETED, {"result": 42}, T0 + 2, True)
    assert store.stats().queue_depth == 1
    assert store.claim_ready(g, now=T0 + 4, limit=10) == []
    assert ids(store.claim_ready(g, now=T0 + 5, limit=10)) == ["wf-0"]
    store.commit_steps(g, [StepCommit("wf-0", FAILED, state(None), None, error="gave up",
                                      journal=[JournalRow("b", "action", FAILED)])], now=T0 + 6)
    failed = store.get_run("wf-0")
    assert (failed.status, failed.error, failed.started_at, failed.completed_at) == (FAILED, "gave up", T0 + 2, T0 + 6)
    assert [j.seq for j in store.journal("wf-0")] == [1, 2, 3]
    assert store.stats().queue_depth == 0
    assert store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("z"), "z", ready_at=T0 + 7)], now=T0 + 7) == \
        ["wf-0"]  # finished: not reopened
    assert store.get_run("wf-0").status == FAILED and store.stats().queue_depth == 0


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
    assert [j.status for j in store.journal("wf-0")] == [COMPLETED]  # no times: kept
    assert store.journal("gone") == [] and store.get_run("gone") is None
    assert store.get_run("wf-1").current_step == "b"
    assert store.stats().queue_depth == 1
    assert ids(store.claim_ready(g, now=T0 + 2, limit=10)) == ["wf-1"]


def test_a_run_canceled_meanwhile_keeps_the_steps_done_before_and_the_step_in_flight(store):
    """The store's rule for a worker's commit that finds its run canceled: the rows of steps done
    by the cancel and the result of the side-effecting step journaled as started before it are
    recorded; rows of steps computed after the cancel are not."""
    make_runs(store, 2)
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    assert store.mark_step_started(g, "wf-1", JournalRow("call", "action", STARTED, 1, started_at=T0 + 1),
                                   now=T0 + 1)
    assert sorted(store.cancel_runs(["wf-0", "wf-1"], now=lambda: T0 + 2)) == ["wf-0", "wf-1"]
    pure = [JournalRow("a", "action", COMPLETED, 1, started_at=T0 + 1.5, finished_at=T0 + 1.6),
            JournalRow("b", "action", COMPLETED, 1, started_at=T0 + 1.9, finished_at=T0 + 2.1),
            JournalRow("c", "action", COMPLETED, 1, started_at=T0 + 2.2, finished_at=T0 + 2.3)]
    result = JournalRow("call", "action", COMPLETED, 1, output={"ok": 1}, started_at=T0 + 1, finished_at=T0 + 5)
    skipped = store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("d"), "d", journal=pure, ready_at=T0 + 3),
                                     StepCommit("wf-1", RUNNING, state("e"), "e", journal=[result],
                                                ready_at=T0 + 5)], now=T0 + 5)
    assert skipped == ["wf-0", "wf-1"]
    assert [j.step_slug for j in store.journal("wf-0")] == ["a"]  # b ended, c started, after the cancel
    assert [(j.step_slug, j.status, j.finished_at) for j in store.journal("wf-1")] == [
        ("call", STARTED, None), ("call", COMPLETED, T0 + 5)]  # in flight at the cancel: recorded
    assert store.get_run("wf-1").completed_at == T0 + 2
    assert (store.get_run("wf-1").status, store.get_run("wf-1").current_step) == (CANCELED, "call")
    assert store.stats().queue_depth == 0


def test_commit_steps_rejects_impossible_transitions(store):
    make_runs(store, 1)
    g = leased(store)
    with pytest.raises(ValueError, match="cannot be re-queued"):
        store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None, ready_at=T0)], now=T0)
    with pytest.raises(ValueError, match="status"):
        store.commit_steps(g, [StepCommit("wf-0", CANCELED, None, None)], now=T0)
    with pytest.raises(ValueError, match="journal status"):
        store.commit_steps(g, [StepCommit("wf-0", RUNNING, None, None, journal=[JournalRow("a", "x", "done")])],
                           now=T0)
    with pytest.raises(ValueError, match="journal status"):
        store.mark_step_started(g, "wf-0", JournalRow("a", "x", "done"), now=T0)
    assert store.journal("wf-0") == [] and store.get_run("wf-0").status == "pending"


def test_a_batch_is_all_or_nothing(store):
    make_runs(store, 2)
    g = leased(store)
    with pytest.raises(ValueError):
        store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None, journal=[JournalRow("a", "x", COMPLETED)]),
                               StepCommit("wf-1", COMPLETED, None, None, ready_at=T0)], now=T0)
    assert store.get_run("wf-0").status == "pending" and store.journal("wf-0") == []


def test_mark_step_started(store):
    make_runs(store, 3)
    g = leased(store)
    assert store.mark_step_started(g, "wf-0", JournalRow("call", "action", STARTED, 1, started_at=T0 + 1),
                                   now=T0 + 1)
    run = store.get_run("wf-0")
    assert (run.status, run.current_step, run.started_at, run.updated_at) == (RUNNING, "call", T0 + 1, T0 + 1)
    assert [(j.seq, j.status, j.step_slug, j.started_at) for j in store.journal("wf-0")] == \
        [(1, STARTED, "call", T0 + 1)]
    assert store.mark_step_started(g, "wf-0", JournalRow("call", "action", STARTED, 2), now=T0 + 3)
    again = store.get_run("wf-0")
    assert (again.attempt, again.started_at, again.updated_at) == (2, T0 + 1, T0 + 3)
    store.cancel_runs(["wf-1"], now=T0 + 1)
    store.commit_steps(g, [StepCommit("wf-2", COMPLETED, None, None)], now=T0 + 1)
    for eid in ("wf-1", "wf-2", "nope"):  # canceled, finished, gone: do not run it
        assert not store.mark_step_started(g, eid, JournalRow("call", "action", STARTED), now=T0 + 2)
        assert store.journal(eid) == []
    assert (store.get_run("wf-1").status, store.get_run("wf-2").status) == (CANCELED, COMPLETED)
