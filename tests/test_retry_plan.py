"""Where ``plan_retry`` sends a retried run and with which state: the stored state where the run
stopped, the state a ``started`` row kept, a refusal anywhere else (never a guess)."""

from __future__ import annotations

import pytest

from wfctl.engine.retry import plan_retry
from wfctl.errors import InputError
from wfctl.store import CANCELED, COMPLETED, FAILED, RUNNING, JournalRecord, RunRecord
from wfctl.store.base import RETRYING, STARTED

from helpers import definition, step

T0 = 1_790_000_000.0
DEF = definition([step("start", "start", None, {"success": "call"}),
                  step("call", "action", {"type": "http_request", "parameters": {"url": "http://x"}},
                       {"success": "check"}),
                  step("check", "condition", {"expression": "true"}, {"true": "done", "false": "done"}),
                  step("done", "output", {"mapping": {"ok": True}})], id="d")


def _state(current, status=RUNNING, **variables):
    return {"variables": {"input": {}, "steps": {}, **variables}, "current": current, "status": status,
            "output": None, "error": None, "wake_at": None, "steps_run": 3}


def _run(status, state, current_step=None):
    return RunRecord("00-r", "d", 0, status, {}, None, "boom" if status == FAILED else None, state, current_step, 1,
                     None, None, T0, T0, T0 + 5, T0 + 5, None, None, "v1")


def _rows(*rows):
    return [JournalRecord("00-r", seq, slug, None, attempt, status, port, None, None, None, None)
            for seq, (slug, status, attempt, port) in enumerate(rows, 1)]


class _Journal:
    """A run's journal held in memory, read as the engine reads a shard's (counting full reads)."""

    def __init__(self, rows, kept):
        self.rows, self.kept, self.full_reads = rows, kept or {}, 0

    def last(self):
        return self.rows[-1] if self.rows else None

    def of_step(self, step):
        return [r for r in self.rows if r.step_slug == step]

    def everything(self):
        self.full_reads += 1
        return self.rows

    def state(self, seq):
        return self.kept.get(seq)


def _plan(run, journal, from_step=None, kept=None):
    read = _Journal(journal, kept)
    plan = plan_retry(run, read, DEF, from_step, T0 + 10)
    assert read.full_reads == 0  # a retry that goes ahead reads the last row and one step's rows only
    return plan


def test_a_failed_side_effect_goes_on_with_the_state_its_started_row_kept_and_attempts_numbered_on():
    journal = _rows(("start", COMPLETED, 1, "success"), ("call", STARTED, 1, None), ("call", RETRYING, 1, None),
                    ("call", STARTED, 2, None), ("call", FAILED, 2, None))
    kept = {2: _state("call", x=1), 4: _state("call", x=2)}
    plan = _plan(_run(FAILED, _state(None, FAILED, x=9)), journal, kept=kept)
    assert (plan.step, plan.attempt, plan.expected) == ("call", 3, (FAILED, T0 + 5))
    commit = plan.commit
    assert (commit.status, commit.current_step, commit.attempt, commit.ready_at) == (RUNNING, "call", 2, T0 + 10)
    assert commit.state == _state("call", x=2)  # the last time it reached the step


def test_a_failed_pure_step_goes_on_with_the_stored_state():
    journal = _rows(("start", COMPLETED, 1, "success"), ("call", STARTED, 1, None), ("call", COMPLETED, 1, "success"),
                    ("check", FAILED, 1, None))
    plan = _plan(_run(FAILED, {**_state(None, FAILED, x=1), "error": "boom"}), journal)
    assert plan.step == "check" and plan.attempt == 2
    assert plan.commit.state == _state("check", x=1)  # current restored, status and error cleared


def test_a_step_whose_port_led_nowhere_needs_a_kept_state():
    journal = _rows(("start", COMPLETED, 1, "success"), ("check", FAILED, 1, "maybe"))
    with pytest.raises(InputError, match="before step 'check' was not kept .*: none of its steps kept one"):
        _plan(_run(FAILED, _state(None, FAILED)), journal)


def test_a_canceled_run_goes_on_from_the_step_it_was_on_and_sleeps_on():
    journal = _rows(("start", COMPLETED, 1, "success"))
    asleep = {**_state("call"), "wake_at": T0 + 60}
    plan = _plan(_run(CANCELED, asleep, "call"), journal)
    assert (plan.step, plan.attempt, plan.commit.ready_at, plan.commit.wake_at) == ("call", 1, T0 + 60, T0 + 60)


def test_from_an_earlier_step_and_the_refusals():
    journal = _rows(("start", COMPLETED, 1, "success"), ("call", STARTED, 1, None), ("call", COMPLETED, 1, "success"),
                    ("check", COMPLETED, 1, "true"), ("done", COMPLETED, 1, "success"))
    completed = _run(COMPLETED, _state(None, COMPLETED))
    plan = _plan(completed, journal, "call", {2: _state("call", x=1)})
    assert (plan.step, plan.attempt, plan.commit.state) == ("call", 2, _state("call", x=1))
    for run, from_step, message in [
        (completed, None, "run 00-r completed: give --from STEP"),
        (_run(RUNNING, _state("call")), None, "run 00-r is running: only a failed or canceled run"),
        (completed, "nope", "--from: 'nope' is not a step of run 00-r's definition d .version v1: start, call"),
        (completed, "check", "--from: the state of run 00-r before step 'check' was not kept .*: it can go on from call"),
    ]:
        with pytest.raises(InputError, match=message):
            _plan(run, journal, from_step, {2: _state("call")})
    with pytest.raises(InputError, match="never reached step 'check' .its path: start, call."):
        _plan(_run(FAILED, _state(None, FAILED)), journal[:3], "check")
