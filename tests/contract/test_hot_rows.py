"""The ``hot_rows`` deployment setting: every transaction that creates, finishes or cancels runs
also counts them in the shard's one shared row, which the shard's stats show as ``hot_row_count``."""

from __future__ import annotations

import pytest

from wfctl.store import CANCELED, COMPLETED, FAILED, RUNNING, JournalRow, NewRun, StepCommit
from wfctl.store.payload import encode

from .support import T0, leased, make_runs, state


def _start(store, execution_id, key=None):
    return store.start_run(execution_id, "wf", encode({"n": 1}, "input", 10**6), encode(state(), "state", 10**6),
                           current_step="start", idempotency_key=key, now=T0)


def _finish(execution_id, status):
    return StepCommit(execution_id, status, state(None), None, error="boom" if status == FAILED else None,
                      journal=[JournalRow("start", "noop", status)])


def _workload(store) -> None:
    """6 runs started (one by one, by the engine's path, and in batches) besides starts that created
    nothing; 3 finished by the worker (completed, failed) besides steps that finished nothing; 3 canceled."""
    make_runs(store, 2)  # wf-0, wf-1
    assert _start(store, "s-0", key="k") == ("s-0", True)
    assert _start(store, "s-1") == ("s-1", True)
    assert _start(store, "s-0") == ("s-0", False) and _start(store, "s-2", key="k") == ("s-0", False)
    created = store.create_runs([NewRun("b-0", "wf", None, state()), NewRun("b-1", "wf", None, state()),
                                 NewRun("s-1", "wf", None, state())], now=T0)
    assert [c for _, c in created] == [True, True, False]
    assert store.create_runs([NewRun("s-1", "wf", None, state())], now=T0)[0][1] is False
    g = leased(store)
    store.claim_ready(g, now=T0, limit=10)
    assert store.commit_steps(g, [_finish("wf-0", COMPLETED), _finish("wf-1", FAILED),
                                  StepCommit("s-0", RUNNING, state("b"), "b", ready_at=T0 + 1)], now=T0 + 1) == []
    assert store.commit_steps(g, [StepCommit("s-1", RUNNING, state("b"), "b", ready_at=T0 + 1)], now=T0 + 1) == []
    assert store.commit_steps(g, [_finish("s-0", COMPLETED)], now=T0 + 2) == []
    assert store.commit_steps(g, [_finish("wf-0", COMPLETED)], now=T0 + 3) == ["wf-0"]  # finished already
    assert store.cancel_runs(["s-1", "wf-1"], now=T0 + 4) == ["s-1"]
    assert store.cancel_matching("wf", now=T0 + 5) == 2  # b-0, b-1


@pytest.mark.parametrize("hot_rows", [True, False])
def test_hot_row_counts_starts_and_finishes_only_when_on(deploy, hot_rows):
    with deploy(shards=1, hot_rows=hot_rows).open_shard(0) as store:
        assert store.stats().details["hot_row_count"] == 0
        _workload(store)
        stats = store.stats()
        assert stats.runs_by_status == {COMPLETED: 2, FAILED: 1, CANCELED: 3}
        assert stats.details["hot_row_count"] == (6 + 3 + 3 if hot_rows else 0)
