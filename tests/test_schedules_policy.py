"""Overlap policies: the per-slot decision, and each policy over slots whose runs outlast their interval."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfctl.schedules import (
    MAX_BUFFERED,
    Action,
    Overlap,
    ScheduleSpec,
    ScheduleState,
    acknowledge,
    decide,
    plan,
)

T = 1_750_000_000 - 1_750_000_000 % 3600  # a whole hour: minute slots are T + 60 k
MIN = 60


@pytest.mark.parametrize("policy", list(Overlap))
def test_nothing_running_and_nothing_buffered_starts(policy):
    assert decide(policy, previous_unfinished=False, buffered=0).action is Action.START


@pytest.mark.parametrize("policy, buffered, action", [
    ("skip", 0, Action.SKIP), ("skip", 3, Action.SKIP),
    ("buffer_one", 0, Action.BUFFER), ("buffer_one", 1, Action.SKIP),
    ("buffer_all", 0, Action.BUFFER), ("buffer_all", 7, Action.BUFFER), ("buffer_all", MAX_BUFFERED, Action.SKIP),
    ("cancel_other", 0, Action.CANCEL_PREVIOUS_AND_START),
    ("allow_all", 0, Action.START), ("allow_all", 5, Action.START),
])
def test_overlapping_slot(policy, buffered, action):
    decision = decide(policy, previous_unfinished=True, buffered=buffered)
    assert decision.action is action
    assert (decision.reason is not None) == (action is Action.SKIP)


def test_a_buffered_slot_is_never_overtaken():
    assert decide("buffer_all", previous_unfinished=False, buffered=2).action is Action.BUFFER
    assert decide("buffer_one", previous_unfinished=False, buffered=1).action is Action.SKIP


def minutes(slots):
    return [int((s - T) // MIN) for s in slots]


def drive(policy: str, unfinished: list[bool]):
    """Plan at each minute slot k = 1.. with the previous run unfinished as given; collect the outcome."""
    spec = ScheduleSpec("d", "* * * * *", overlap=policy)
    state = ScheduleState(last_slot=T)
    started, skipped, cancels, buffers = [], [], [], []
    for k, flag in enumerate(unfinished, 1):
        p = plan(spec, state, T + k * MIN, flag)
        assert p.changed and p.state.pending == tuple(s.slot for s in p.starts)
        started.append(minutes(s.slot for s in p.starts))
        skipped += [(m, s.reason.value) for m, s in zip(minutes(s.slot for s in p.skipped), p.skipped)]
        if p.cancel_slot is not None:
            cancels.append(minutes([p.cancel_slot])[0])
        buffers.append(minutes(p.buffered))
        state = acknowledge(p.state)
    return started, skipped, cancels, buffers, state


# The previous run is unfinished at slots 2, 3 and 5 (runs outlast their one-minute interval).
FLAGS = [False, True, True, False, True, False]


def test_skip():
    started, skipped, cancels, buffers, state = drive("skip", FLAGS)
    assert started == [[1], [], [], [4], [], [6]]
    assert skipped == [(2, "overlap"), (3, "overlap"), (5, "overlap")]
    assert cancels == [] and buffers == [[]] * 6
    assert (state.started, state.skipped_overlap, state.last_started) == (3, 3, T + 6 * MIN)


def test_buffer_one():
    started, skipped, cancels, buffers, state = drive("buffer_one", FLAGS)
    # 2 waits; 3 is skipped (one already waits); at 4 the run ended: 2 starts, 4 waits; ...
    assert started == [[1], [], [], [2], [], [4]]
    assert buffers == [[], [2], [2], [4], [4], [6]]
    assert skipped == [(3, "overlap"), (5, "overlap")]
    assert (state.started, state.skipped_overlap, state.buffered) == (3, 2, (T + 6 * MIN,))


def test_buffer_all():
    started, skipped, cancels, buffers, state = drive("buffer_all", FLAGS)
    assert started == [[1], [], [], [2], [], [3]]
    assert buffers == [[], [2], [2, 3], [3, 4], [3, 4, 5], [4, 5, 6]]
    assert skipped == [] and state.skipped_overlap == 0


def test_cancel_other():
    started, skipped, cancels, buffers, state = drive("cancel_other", FLAGS)
    assert started == [[1], [2], [3], [4], [5], [6]]
    assert cancels == [1, 2, 4]  # the run of the previous slot, each time it was unfinished
    assert skipped == [] and state.canceled == 3


def test_allow_all():
    started, skipped, cancels, buffers, state = drive("allow_all", FLAGS)
    assert started == [[1], [2], [3], [4], [5], [6]]
    assert skipped == [] and cancels == [] and state.started == 6


def simulate_runs(policy: str, run_seconds: float, slots: int):
    """Plan at every minute slot; each run lasts ``run_seconds`` (canceled runs end when canceled).

    Returns the started slots and the runs as (slot, start, end).
    """
    spec = ScheduleSpec("d", "* * * * *", overlap=policy)
    state = ScheduleState(last_slot=T)
    runs: dict[float, list[float]] = {}
    for k in range(1, slots + 1):
        now = T + k * MIN
        last = runs.get(state.last_started)
        p = plan(spec, state, now, last is not None and last[1] > now)
        if p.cancel_slot is not None:
            runs[p.cancel_slot][1] = now
        for s in p.starts:
            runs[s.slot] = [now, now + run_seconds]
        state = acknowledge(p.state)
    return state, {minutes([slot])[0]: (int(a - T), int(b - T)) for slot, (a, b) in runs.items()}


def test_runs_outlasting_their_interval_skip():
    state, runs = simulate_runs("skip", 150, 12)  # a run spans 2.5 slots
    assert sorted(runs) == [1, 4, 7, 10]
    assert state.skipped_overlap == 8


def test_runs_outlasting_their_interval_buffer_one():
    state, runs = simulate_runs("buffer_one", 150, 12)
    # slot 2 waits for run 1 (ends at 210 s) and starts at the 240 s tick; 3 is skipped; ...
    assert sorted(runs) == [1, 2, 4, 7]
    assert runs[2] == (240, 390) and runs[4] == (420, 570) and runs[7] == (600, 750)
    assert state.buffered == (T + 10 * MIN,) and state.skipped_overlap == 7  # 3, 5, 6, 8, 9, 11, 12


def test_runs_outlasting_their_interval_buffer_all_never_overlap():
    state, runs = simulate_runs("buffer_all", 90, 12)
    assert sorted(runs) == [1, 2, 3, 4, 5, 6]
    spans = [runs[k] for k in sorted(runs)]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # one at a time, in slot order
    assert len(state.buffered) == 6


def test_runs_outlasting_their_interval_cancel_other_and_allow_all():
    state, runs = simulate_runs("cancel_other", 150, 6)
    assert sorted(runs) == [1, 2, 3, 4, 5, 6]
    assert [runs[k] for k in (1, 2, 6)] == [(60, 120), (120, 180), (360, 510)]  # each canceled by the next
    assert state.canceled == 5
    state, runs = simulate_runs("allow_all", 150, 6)
    assert runs[1] == (60, 210) and runs[2] == (120, 270)  # overlapping


@settings(max_examples=200, deadline=None, database=None)
@given(policy=st.sampled_from(list(Overlap)),
       ticks=st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=30))
def test_every_slot_is_started_skipped_or_buffered_exactly_once(policy, ticks):
    spec = ScheduleSpec("d", "* * * * *", overlap=policy, catchup_window_s=10 * MIN)
    state = ScheduleState(last_slot=T)
    now = T
    started, skipped = [], []
    for advance, flag in ticks:
        now += advance * MIN
        p = plan(spec, state, now, flag)
        if policy is not Overlap.ALLOW_ALL:
            assert len(p.starts) <= 1
            if flag and p.starts:
                assert policy is Overlap.CANCEL_OTHER and p.cancel_slot == state.last_started
        if policy is Overlap.SKIP:
            assert p.buffered == ()
        if policy is Overlap.BUFFER_ONE:
            assert len(p.buffered) <= 1
        started += [s.slot for s in p.starts]
        skipped += [s.slot for s in p.skipped]
        state = acknowledge(p.state)
    all_slots = [T + k * MIN for k in range(1, int((now - T) // MIN) + 1)]
    assert started == sorted(started) and len(set(started)) == len(started)
    assert sorted(started + skipped + list(state.buffered)) == all_slots
    assert state.started == len(started)
    assert state.skipped_overlap + state.skipped_catchup == len(skipped)
