"""What ``wfctl retry`` asks of a store: the state a side-effecting step's ``started`` row keeps
(``step_state``) and ``retry_run``, which puts a finished run back to work only while it is as the
retry saw it (also when real processes race to retry the same run, or to retry and delete it)."""

from __future__ import annotations

import time

import pytest

from wfctl.store import CANCELED, COMPLETED, FAILED, RUNNING, JournalRow, StepCommit
from wfctl.store.base import STARTED

from helpers import report, run_processes

from .support import T0, ids, leased, make_runs, state

DEADLINE_S = 120.0


def _failed_run(store, eid="wf-0", **variables):
    """Run ``eid`` (made by make_runs) through a committed step ``a``, a side effect ``b`` marked started
    with the state ``state("b", **variables)``, and a failure of ``b``; the lease generation."""
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    store.commit_steps(g, [StepCommit(eid, RUNNING, state("b", **variables), "b", ready_at=T0 + 1,
                                      journal=[JournalRow("a", "start", COMPLETED, 1, "success", {"ok": 1})])],
                       now=T0 + 1)
    assert store.mark_step_started(g, eid, JournalRow("b", "action", STARTED, 1, started_at=T0 + 2), now=T0 + 2)
    store.commit_steps(g, [StepCommit(eid, FAILED, state(None, **variables), None, 1, error="boom",
                                      journal=[JournalRow("b", "action", FAILED, 1, error="boom")])], now=T0 + 3)
    return g


@pytest.mark.parametrize("size", [10, 5_000])  # 5,000 bytes: out of line on SQLite (see backends.py)
def test_a_started_row_keeps_the_state_before_its_step(store, size):
    make_runs(store, 1)
    _failed_run(store, x="v" * size)
    rows = store.journal("wf-0")
    assert [(r.seq, r.step_slug, r.status) for r in rows] == [(1, "a", COMPLETED), (2, "b", STARTED), (3, "b", FAILED)]
    assert store.journal_of_step("wf-0", "b") == rows[1:] and store.journal_of_step("wf-0", "a") == rows[:1]
    assert store.journal_of_step("wf-0", "c") == [] and store.journal_of_step("nope", "a") == []
    assert store.step_state("wf-0", 2) == state("b", x="v" * size)
    assert store.step_state("wf-0", 1) is None and store.step_state("wf-0", 3) is None
    assert store.step_state("wf-0", 9) is None and store.step_state("nope", 1) is None
    run = store.get_run("wf-0")
    kept = store.step_state("wf-0", 2)
    assert store.retry_run(StepCommit("wf-0", RUNNING, kept, "b", 1, ready_at=T0 + 4),
                           expected=(FAILED, run.updated_at), now=T0 + 4)
    assert store.get_run("wf-0").state == kept


def test_retry_run_puts_a_finished_run_back_in_the_queue(store):
    make_runs(store, 2)
    g = _failed_run(store)
    run = store.get_run("wf-0")
    assert store.retry_run(StepCommit("wf-0", RUNNING, state("b", y=2), "b", 1, ready_at=T0 + 10),
                           expected=(FAILED, run.updated_at), now=T0 + 9)
    again = store.get_run("wf-0")
    assert (again.status, again.current_step, again.attempt, again.error, again.output) == (RUNNING, "b", 1, None, None)
    assert (again.started_at, again.completed_at, again.updated_at) == (run.started_at, None, T0 + 9)
    assert again.state == state("b", y=2) and not again.finished
    assert [r.seq for r in store.journal("wf-0")] == [1, 2, 3]  # the journal stays as it was
    assert "wf-0" not in ids(store.claim_ready(g, now=T0 + 9.5, limit=10))  # ready at T0 + 10, not before
    assert "wf-0" in ids(store.claim_ready(g, now=T0 + 10, limit=10))


def test_retry_run_applies_only_to_the_run_as_it_was_seen(store):
    make_runs(store, 3)
    _failed_run(store)
    run = store.get_run("wf-0")
    commit = StepCommit("wf-0", RUNNING, state("b"), "b", 1, ready_at=T0 + 10)
    assert not store.retry_run(commit, expected=(FAILED, run.updated_at + 1), now=T0 + 9)  # changed since
    assert not store.retry_run(commit, expected=(CANCELED, run.updated_at), now=T0 + 9)
    assert store.get_run("wf-0") == run
    assert store.retry_run(commit, expected=(FAILED, run.updated_at), now=T0 + 9)
    assert not store.retry_run(commit, expected=(FAILED, run.updated_at), now=T0 + 9)  # retried already
    unfinished = store.get_run("wf-1")
    assert not store.retry_run(StepCommit("wf-1", RUNNING, state("b"), "b", 1, ready_at=T0 + 10),
                               expected=(unfinished.status, unfinished.updated_at), now=T0 + 9)
    assert not store.retry_run(StepCommit("gone", RUNNING, state("b"), "b", 1, ready_at=T0 + 10),
                               expected=(FAILED, T0), now=T0 + 9)
    with pytest.raises(ValueError):  # a retry leaves the run running and queued
        store.retry_run(StepCommit("wf-0", COMPLETED, state(None), None), expected=(FAILED, T0), now=T0)


def test_retry_run_appends_its_journal_rows_numbered_on(store):
    make_runs(store, 1)
    _failed_run(store)
    run = store.get_run("wf-0")
    assert store.retry_run(StepCommit("wf-0", RUNNING, state("b"), "b", 1, ready_at=T0 + 10,
                                      journal=[JournalRow("b", "action", COMPLETED, 2, "success")]),
                           expected=(FAILED, run.updated_at), now=T0 + 9)
    assert [(r.seq, r.attempt) for r in store.journal("wf-0")][-2:] == [(3, 1), (4, 2)]


# -- racing processes ----------------------------------------------------------------------------

def _retry(deployment, name, expected, barrier, results):
    def work():
        with deployment.open_shard(0) as store:
            barrier.wait()
            return store.retry_run(StepCommit("wf-0", RUNNING, state("b", by=name), "b", 1, ready_at=time.time()),
                                   expected=expected, now=time.time())
    report(results, name, work)


def _delete(deployment, name, barrier, results):
    def work():
        with deployment.open_shard(0) as store:
            barrier.wait()
            return store.delete_runs(["wf-0"])
    report(results, name, work)


def test_processes_retrying_the_same_run_retry_it_once(deploy):
    deployment = deploy(shards=1)
    with deployment.open_shard(0) as store:
        make_runs(store, 1)
        _failed_run(store)
        expected = (FAILED, store.get_run("wf-0").updated_at)
    out = run_processes([(_retry, deployment, f"p{n}", expected) for n in range(4)], DEADLINE_S)
    assert sorted(out.values()) == [False, False, False, True]
    winner = next(name for name, won in out.items() if won)
    with deployment.open_shard(0) as store:
        run = store.get_run("wf-0")
        assert run.status == RUNNING and run.state["variables"]["by"] == winner
        assert store.progress().queue_depth == 1


def test_a_retry_racing_a_cleanup_never_brings_a_deleted_run_back(deploy):
    deployment = deploy(shards=1)
    with deployment.open_shard(0) as store:
        make_runs(store, 1)
        _failed_run(store)
        expected = (FAILED, store.get_run("wf-0").updated_at)
    out = run_processes([(_retry, deployment, "retry", expected), (_delete, deployment, "cleanup")], DEADLINE_S)
    with deployment.open_shard(0) as store:
        run = store.get_run("wf-0")
        if out["retry"]:  # the retry came first: the run is unfinished, and a cleanup leaves it alone
            assert out["cleanup"] == 0 and run.status == RUNNING and store.progress().queue_depth == 1
        else:  # the cleanup came first: gone for good, journal and queue entry too
            assert out["cleanup"] == 1 and run is None
            assert store.journal("wf-0") == [] and store.progress().queue_depth == 0
