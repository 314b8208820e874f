"""The planner: catch-up after downtime, the first plan, jitter, pausing, the pending outbox, keys and input."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from wfctl.errors import TemplateError
from wfctl.schedules import (
    MAX_SLOTS_PER_PLAN,
    ScheduleSpec,
    ScheduleState,
    SkipReason,
    acknowledge,
    backfill_slots,
    jitter_delay,
    next_slots,
    plan,
    render_input,
    slot_key,
    utc_iso,
)

T = datetime(2025, 6, 2, tzinfo=timezone.utc).timestamp()
MIN, HOUR = 60, 3600


def every(minutes: int, **kw) -> ScheduleSpec:
    return ScheduleSpec("report", f"*/{minutes} * * * *", **kw)


def mins(slots):
    return [int((s - T) // MIN) for s in slots]


# --- catch-up -------------------------------------------------------------------------------------

def test_after_downtime_slots_within_the_window_fire_in_order_older_ones_are_skipped_and_counted():
    spec = every(10, overlap="allow_all")  # default window: 1 hour
    state = ScheduleState(last_slot=T, started=4, version=7)
    now = T + 5 * HOUR + 5 * MIN  # down for five hours: 30 slots missed
    p = plan(spec, state, now, previous_unfinished=False)
    assert mins(s.slot for s in p.skipped) == list(range(10, 245, 10))  # more than 1 h late
    assert {s.reason for s in p.skipped} == {SkipReason.CATCHUP_WINDOW}
    assert mins(s.slot for s in p.starts) == [250, 260, 270, 280, 290, 300]  # within the hour, in order
    assert [s.key for s in p.starts][0] == "schedule:report:2025-06-02T04:10:00Z"
    assert p.state.skipped_catchup == 24 and p.state.started == 4 + 6
    assert p.state.last_slot == T + 300 * MIN and p.state.version == 8
    assert p.next_due == T + 310 * MIN


def test_catch_up_goes_through_the_overlap_policy():
    now = T + 45 * MIN  # 4 missed slots within the hour, the previous run long finished
    expected = {
        "skip": ([10], [(20, "overlap"), (30, "overlap"), (40, "overlap")], []),
        "buffer_one": ([10], [(30, "overlap"), (40, "overlap")], [20]),
        "buffer_all": ([10], [], [20, 30, 40]),
        "cancel_other": ([40], [(10, "superseded"), (20, "superseded"), (30, "superseded")], []),
        "allow_all": ([10, 20, 30, 40], [], []),
    }
    for policy, (started, skipped, buffered) in expected.items():
        p = plan(every(10, overlap=policy), ScheduleState(last_slot=T), now, previous_unfinished=False)
        assert mins(s.slot for s in p.starts) == started, policy
        assert [(m, s.reason.value) for m, s in zip(mins(s.slot for s in p.skipped), p.skipped)] == skipped, policy
        assert mins(p.buffered) == buffered, policy
        assert p.cancel_slot is None


def test_catch_up_with_cancel_other_cancels_the_unfinished_previous_run_once():
    state = ScheduleState(last_slot=T, last_started=T - 10 * MIN)
    p = plan(every(10, overlap="cancel_other"), state, T + 35 * MIN, previous_unfinished=True)
    assert mins(s.slot for s in p.starts) == [30]
    assert p.cancel_slot == T - 10 * MIN and p.cancel_key == slot_key("report", T - 10 * MIN)
    assert p.state.canceled == 1 and p.state.cancel_slot == T - 10 * MIN
    assert p.state.skipped_overlap == 2  # 10 and 20 superseded


def test_window_boundary_and_floor():
    spec = every(10, catchup_window_s=5 * MIN)
    assert mins(s.slot for s in plan(spec, ScheduleState(last_slot=T), T + 15 * MIN, False).starts) == [10]
    p = plan(spec, ScheduleState(last_slot=T), T + 15 * MIN + 1, False)  # 5 min and 1 s late
    assert p.starts == () and p.state.skipped_catchup == 1
    zero = every(10, catchup_window_s=0)  # acts as 10 s
    assert len(plan(zero, ScheduleState(last_slot=T), T + 10 * MIN + 10, False).starts) == 1
    assert plan(zero, ScheduleState(last_slot=T), T + 10 * MIN + 11, False).state.skipped_catchup == 1


def test_buffered_slots_do_not_expire():
    state = ScheduleState(last_slot=T + 10 * MIN, buffered=(T + 10 * MIN,), last_started=T)
    p = plan(every(10, overlap="buffer_one"), state, T + 5 * HOUR + MIN, previous_unfinished=False)
    assert mins(s.slot for s in p.starts) == [10] and p.starts[0].from_buffer
    assert mins(p.buffered) == [250]  # the first slot within the window waits behind it
    assert p.state.skipped_catchup == 23 and p.state.skipped_overlap == 5  # 260..300


def test_a_long_downtime_is_worked_through_in_bounded_steps():
    spec = ScheduleSpec("report", "* * * * *", overlap="allow_all")
    state = ScheduleState(last_slot=T)
    now = T + 2500 * MIN
    p = plan(spec, state, now, False, max_slots=1000)
    assert p.more and len(p.skipped) == 1000 and p.state.last_slot == T + 1000 * MIN and p.next_due is None
    total_skipped, total_started, calls = len(p.skipped), 0, 1
    state = acknowledge(p.state)
    while True:
        p = plan(spec, state, now, False, max_slots=1000)
        calls += 1
        total_skipped += len(p.skipped)
        total_started += len(p.starts)
        state = acknowledge(p.state)
        if not p.more:
            break
    assert calls == 3 and total_started == 61 and total_skipped == 2439  # 2440..2500 are within the hour
    assert state.skipped_catchup == 2439 and state.last_slot == now
    assert MAX_SLOTS_PER_PLAN == 1000


# --- first plan, nothing due, pause ---------------------------------------------------------------

def test_the_first_plan_starts_from_now_and_does_not_backfill():
    p = plan(every(10), ScheduleState(), T + 25 * MIN, previous_unfinished=False)
    assert p.starts == () and p.skipped == () and p.changed
    assert p.state.last_slot == T + 25 * MIN and p.state.version == 1
    assert p.next_due == T + 30 * MIN
    p2 = plan(every(10), p.state, T + 30 * MIN, False)
    assert mins(s.slot for s in p2.starts) == [30]


def test_nothing_due_changes_nothing():
    state = ScheduleState(last_slot=T, version=3)
    p = plan(every(10), state, T + 9 * MIN, False)
    assert p.starts == () and not p.changed and p.state is state and p.next_due == T + 10 * MIN


def test_paused_schedules_skip_due_slots_and_keep_the_buffer():
    state = ScheduleState(last_slot=T, buffered=(T,)).with_paused(True)
    p = plan(every(10, overlap="buffer_all"), state, T + 30 * MIN, previous_unfinished=False)
    assert p.starts == () and [s.reason for s in p.skipped] == [SkipReason.PAUSED] * 3
    assert p.state.buffered == (T,) and p.state.skipped_paused == 3 and p.state.last_slot == T + 30 * MIN
    resumed = p.state.with_paused(False)
    assert resumed.version == p.state.version + 1
    p = plan(every(10, overlap="buffer_all"), resumed, T + 40 * MIN, previous_unfinished=False)
    assert [s.slot for s in p.starts] == [T] and mins(p.buffered) == [40]


# --- the pending outbox ---------------------------------------------------------------------------

def test_starts_stay_pending_until_acknowledged_and_are_reissued_meanwhile():
    spec = every(10, overlap="cancel_other")
    state = ScheduleState(last_slot=T, last_started=T - 10 * MIN, version=5)
    p = plan(spec, state, T + 10 * MIN, previous_unfinished=True)
    assert p.state.pending == (T + 10 * MIN,) and p.state.cancel_slot == T - 10 * MIN
    # the scheduler died before starting: the next plan, however late, re-issues the same work only
    again = plan(spec, p.state, T + 45 * MIN, previous_unfinished=True)
    assert not again.changed and again.state is p.state
    assert [(s.slot, s.key, s.retry) for s in again.starts] == [(T + 10 * MIN, slot_key("report", T + 10 * MIN), True)]
    assert again.cancel_slot == T - 10 * MIN and again.skipped == () and again.more
    done = acknowledge(again.state)
    assert done.pending == () and done.cancel_slot is None and done.version == p.state.version + 1
    assert acknowledge(done) is done
    later = plan(spec, done, T + 45 * MIN, previous_unfinished=False)
    assert mins(s.slot for s in later.starts) == [40] and later.state.skipped_overlap == 2


# --- jitter ---------------------------------------------------------------------------------------

def test_jitter_is_deterministic_bounded_and_keeps_slots_in_order():
    spec = ScheduleSpec("report", "* * * * *", jitter_s=45)
    slots = next_slots(spec, T, 200)
    delays = [jitter_delay(spec, s, n) for s, n in zip(slots, slots[1:])]
    assert delays == [jitter_delay(ScheduleSpec("report", "* * * * *", jitter_s=45), s, n)
                      for s, n in zip(slots, slots[1:])]
    assert all(0 <= d < 45 for d in delays) and len(set(delays)) > 150
    assert delays != [jitter_delay(ScheduleSpec("other", "* * * * *", jitter_s=45), s, n)
                      for s, n in zip(slots, slots[1:])]
    big = ScheduleSpec("report", "* * * * *", jitter_s=HOUR)  # capped below the next slot
    assert all(jitter_delay(big, s, n) < 60 for s, n in zip(slots, slots[1:]))
    assert jitter_delay(every(1), T, T + 60) == 0.0


def test_a_jittered_slot_is_due_at_slot_plus_delay():
    spec = ScheduleSpec("report", "0 * * * *", jitter_s=30 * MIN)
    slot = T + HOUR
    delay = jitter_delay(spec, slot, slot + HOUR)
    assert 0 < delay < 30 * MIN
    p = plan(spec, ScheduleState(last_slot=T), slot, False)
    assert p.starts == () and p.next_due == slot + delay and not p.changed
    p = plan(spec, ScheduleState(last_slot=T), slot + delay, False)
    assert [(s.slot, s.due) for s in p.starts] == [(slot, slot + delay)]


# --- keys, input, backfill, state -----------------------------------------------------------------

def test_slot_key():
    assert slot_key("nightly", datetime(2025, 3, 30, 1, tzinfo=timezone.utc).timestamp()) == \
        "schedule:nightly:2025-03-30T01:00:00Z"
    assert slot_key("d", T + 0.25) == "schedule:d:2025-06-02T00:00:00.250Z"
    assert utc_iso(T) == "2025-06-02T00:00:00Z"


def test_render_input():
    spec = ScheduleSpec.from_trigger("nightly", {
        "type": "scheduled", "schedule": "30 2 * * *", "timezone": "Europe/Berlin",
        "input": {"day": "{{slot}}", "ms": "{{slotMs}}", "local": "{{slotLocal}}", "label": "run of {{wfDefinitionId}}",
                  "fixed": [1, {"n": True}], "{{slotMs}}": "key too"}})
    slot = datetime(2025, 3, 30, 1, tzinfo=timezone.utc).timestamp()
    assert render_input(spec, slot) == {
        "day": "2025-03-30T01:00:00Z", "ms": 1743296400000, "local": "2025-03-30T03:00:00+02:00",
        "label": "run of nightly", "fixed": [1, {"n": True}], "1743296400000": "key too"}
    assert render_input(ScheduleSpec("d", "* * * * *"), slot) == {}
    with pytest.raises(TemplateError):
        render_input(ScheduleSpec("d", "* * * * *", input={"x": "{{nothing}}"}), slot)


def test_backfill_slots_include_both_ends():
    spec = every(30)
    assert mins(backfill_slots(spec, T, T + 2 * HOUR)) == [0, 30, 60, 90, 120]
    assert mins(backfill_slots(spec, T + 1, T + 2 * HOUR - 1)) == [30, 60, 90]
    assert list(backfill_slots(spec, T + 2 * HOUR, T)) == []


def test_state_round_trips_through_json():
    state = ScheduleState(last_slot=T, paused=True, buffered=(T + 60, T + 120), pending=(T,), cancel_slot=T - 60,
                          last_started=T, started=3, skipped_overlap=2, skipped_catchup=1, skipped_paused=4,
                          canceled=1, version=9)
    assert ScheduleState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert ScheduleState.from_dict({"last_slot": T, "unknown": 1}) == ScheduleState(last_slot=T)
