"""Size limits: an input, a state, a step output or a definition over the limit is refused before
anything is written (the suite's deployments allow 20,000 bytes)."""

from __future__ import annotations

import pytest

from wfctl.errors import InputError
from wfctl.store import COMPLETED, RUNNING, JournalRow, NewRun, StepCommit
from wfctl.store.errors import PayloadTooLargeError
from wfctl.store.payload import encode

from .support import T0, leased, make_runs, state

BIG = "é" * 11_000  # 22,000 bytes in UTF-8


def test_oversized_input_is_refused_before_writing(store):
    with pytest.raises(PayloadTooLargeError) as info:
        store.create_run("e1", "wf", {"blob": "x" * 25_000}, None, now=T0)
    assert str(info.value) == ("input of run e1 is 24.4 KiB (25011 bytes), over the limit of "
                              "19.5 KiB (20000 bytes)")
    assert isinstance(info.value, InputError)
    with pytest.raises(PayloadTooLargeError, match="state of run e2"):
        store.create_run("e2", "wf", None, state(big=BIG), now=T0)
    assert store.count_runs() == 0 and store.progress().runs == 0 and store.progress().queue_depth == 0


def test_one_oversized_run_in_a_batch_writes_none_of_it(store):
    with pytest.raises(PayloadTooLargeError, match="input of run e3"):
        store.create_runs([NewRun(f"e{i}", "wf", {"i": i}, None) for i in range(3)]
                          + [NewRun("e3", "wf", {"big": BIG}, None)], now=T0)
    assert store.count_runs() == 0 and store.get_run("e0") is None


def test_the_start_path_checks_the_encoded_sizes(store):
    with pytest.raises(PayloadTooLargeError, match="input of run e1"):
        store.start_run("e1", "wf", encode({"big": BIG}, "input", 10**6), encode(None, "state", 10**6),
                        current_step=None, now=T0)
    with pytest.raises(PayloadTooLargeError, match="state of run e1"):
        store.start_run("e1", "wf", encode(None, "input", 10**6), encode(state(big=BIG), "state", 10**6),
                        current_step="start", now=T0)
    assert store.count_runs() == 0


def test_oversized_step_output_and_state_are_refused(store):
    make_runs(store, 2)
    g = leased(store)
    with pytest.raises(PayloadTooLargeError, match="output of step 'a' of run wf-0"):
        store.commit_steps(g, [StepCommit("wf-1", RUNNING, state("b"), "b", journal=[JournalRow("a", "x", COMPLETED)]),
                               StepCommit("wf-0", RUNNING, state("b"), "b",
                                          journal=[JournalRow("a", "x", COMPLETED, output=BIG)])], now=T0)
    with pytest.raises(PayloadTooLargeError, match="state of run wf-0"):
        store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b", big=BIG), "b")], now=T0)
    with pytest.raises(PayloadTooLargeError, match="output of run wf-0"):
        store.commit_steps(g, [StepCommit("wf-0", COMPLETED, None, None, output=BIG)], now=T0)
    with pytest.raises(PayloadTooLargeError, match="output of step 'call' of run wf-0"):
        store.mark_step_started(g, "wf-0", JournalRow("call", "x", "started", output=BIG), now=T0)
    for eid in ("wf-0", "wf-1"):
        assert store.journal(eid) == [] and store.get_run(eid).current_step == "start"


def test_oversized_definition_and_schedule_state_are_refused(catalog):
    with pytest.raises(PayloadTooLargeError, match="definition huge"):
        catalog.put_definition("huge", {"steps": [], "x": "y" * 30_000}, now=T0)
    with pytest.raises(PayloadTooLargeError, match="schedule state of d"):
        catalog.put_schedule_state("d", 0, {"version": 1, "big": BIG}, now=T0)
    assert catalog.get_definition("huge") is None and catalog.list_definitions() == []
    assert catalog.get_schedule_state("d") is None
