"""A simulated day: six minutely schedules driven by three schedulers at once over one shared store.

The store models what the real one must provide: one JSON row per schedule, written only by a
compare-and-set on the state's version. The engine models idempotent starts: a start with a
key that already has a run returns that run. Schedulers interleave step by step (read, plan,
compare-and-set, start each run, acknowledge), and sometimes die between committing a plan
and finishing its starts. Every slot of every schedule must be started at most once, and every
slot must be accounted for exactly once (started, skipped or still buffered).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

from wfctl.schedules import ScheduleSpec, ScheduleState, acknowledge, plan, slot_key, slots_between

DAY = 86400
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

SPECS = {
    "every-minute": ScheduleSpec("every-minute", "* * * * *", overlap="allow_all"),
    "skipper": ScheduleSpec("skipper", "* * * * *", "Europe/Berlin", overlap="skip"),
    "one-waits": ScheduleSpec("one-waits", "* * * * *", overlap="buffer_one"),
    "all-wait": ScheduleSpec("all-wait", "* * * * *", "America/New_York", overlap="buffer_all"),
    "newest-wins": ScheduleSpec("newest-wins", "* * * * *", overlap="cancel_other"),
    "jittery": ScheduleSpec("jittery", "* * * * *", overlap="skip", jitter_s=20),
}
# How long a run lasts, drawn per run: some outlast the one-minute interval.
DURATIONS = {"every-minute": (30, 200), "skipper": (20, 150), "one-waits": (20, 100), "all-wait": (10, 75),
             "newest-wins": (30, 120), "jittery": (10, 90)}


class Store:
    """Persisted schedule states, one JSON row each, written by compare-and-set on ``version``."""

    def __init__(self):
        self.rows: dict[str, str] = {}
        self.conflicts = 0

    def read(self, definition_id: str) -> ScheduleState:
        return ScheduleState.from_dict(json.loads(self.rows[definition_id]))

    def compare_and_set(self, definition_id: str, expected_version: int, state: ScheduleState) -> bool:
        if json.loads(self.rows[definition_id])["version"] != expected_version:
            self.conflicts += 1
            return False
        assert state.version == expected_version + 1
        self.rows[definition_id] = json.dumps(state.to_dict())
        return True


@dataclass
class Run:
    definition_id: str
    slot: float
    started_at: float
    ends_at: float
    canceled: bool = False


class Engine:
    """Runs keyed by idempotency key: starting a key twice gives the existing run."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.runs: dict[str, Run] = {}
        self.attempts: Counter = Counter()

    def start(self, definition_id: str, slot: float, key: str, now: float) -> Run:
        self.attempts[key] += 1
        if key not in self.runs:
            low, high = DURATIONS[definition_id]
            self.runs[key] = Run(definition_id, slot, now, now + self.rng.uniform(low, high))
        return self.runs[key]

    def unfinished(self, key: str, now: float) -> bool:
        run = self.runs.get(key)
        return run is not None and run.ends_at > now

    def cancel(self, key: str, now: float) -> None:
        run = self.runs.get(key)
        if run is not None and run.ends_at > now:
            run.canceled, run.ends_at = True, now


@dataclass
class Ledger:
    """What the committed plans decided (a plan counts only once its compare-and-set won)."""

    started: Counter = field(default_factory=Counter)
    skipped: dict[str, list[float]] = field(default_factory=dict)
    crashes: int = 0


class Clock:
    def __init__(self, now: float):
        self.now = now


def scheduler(store: Store, engine: Engine, clock: Clock, ledger: Ledger, rng: random.Random, crash_rate: float):
    """One scheduler process as a generator: each ``yield`` lets another one (or the clock) move.

    Like the real loop it sleeps until a schedule's next slot is due (``Plan.next_due``), and
    polls while slots are buffered (they start when the previous run ends).
    """
    wake: dict[str, float] = {}
    while True:
        yield
        for definition_id in rng.sample(sorted(SPECS), len(SPECS)):
            if clock.now < wake.get(definition_id, 0):
                continue
            spec = SPECS[definition_id]
            state = store.read(definition_id)
            yield
            previous = state.last_started is not None and engine.unfinished(
                slot_key(definition_id, state.last_started), clock.now)
            p = plan(spec, state, clock.now, previous)
            if p.next_due is not None and not p.state.buffered and not p.state.pending and not p.more:
                wake[definition_id] = p.next_due
            if p.changed:
                if not store.compare_and_set(definition_id, state.version, p.state):
                    yield
                    continue
                for s in p.starts:
                    ledger.started[s.key] += 1
                ledger.skipped.setdefault(definition_id, []).extend(s.slot for s in p.skipped)
                yield
            if not p.starts and p.cancel_key is None:
                continue
            if p.cancel_key is not None:
                engine.cancel(p.cancel_key, clock.now)
            died = False
            for s in p.starts:
                if rng.random() < crash_rate:  # dies before (or between) its starts: pending stays
                    died = True
                    break
                run = engine.start(definition_id, s.slot, s.key, clock.now)
                assert run.slot == s.slot
                yield
            if died or rng.random() < crash_rate:  # ... or after them, before acknowledging
                ledger.crashes += 1
                continue
            store.compare_and_set(definition_id, p.state.version, acknowledge(p.state))
            yield


def test_three_schedulers_one_day_every_slot_fires_exactly_once(seed=1):
    rng = random.Random(seed)
    store, engine, clock, ledger = Store(), Engine(random.Random(seed + 100)), Clock(START), Ledger()
    for definition_id in SPECS:
        store.rows[definition_id] = json.dumps(ScheduleState(last_slot=START).to_dict())
    schedulers = [scheduler(store, engine, clock, ledger, random.Random(seed * 10 + i), crash_rate=0.02)
                  for i in range(3)]
    end = START + DAY
    while clock.now < end + 40:  # the last slot (at `end`, jitter < 20 s) is due by then
        for sched in rng.sample(schedulers, len(schedulers)):
            for _ in range(rng.randint(0, 8)):
                next(sched)
        clock.now = min(clock.now + rng.uniform(1, 25), end + 40)
    for _ in range(300):  # let the outboxes drain at the final time
        for sched in schedulers:
            next(sched)

    day = slots_between(SPECS["skipper"], START, end)
    assert len(day) == 1440

    # one run per key, only for keys a committed plan started, and every committed start ran
    assert all(count == 1 for count in ledger.started.values())
    assert set(engine.runs) == set(ledger.started)
    assert ledger.crashes > 0 and store.conflicts > 0
    assert sum(engine.attempts.values()) > len(engine.runs)  # re-issued starts were deduplicated

    for definition_id, spec in SPECS.items():
        state = store.read(definition_id)
        assert state.pending == () and state.last_slot == end
        runs = sorted((r for r in engine.runs.values() if r.definition_id == definition_id), key=lambda r: r.slot)
        started = [r.slot for r in runs]
        skipped = ledger.skipped.get(definition_id, [])
        # every slot exactly once: started, skipped or still buffered
        assert sorted(started + skipped + list(state.buffered)) == day, definition_id
        assert len(set(started)) == len(started) and not set(started) & set(skipped)
        assert (state.started, state.skipped_overlap + state.skipped_catchup) == (len(started), len(skipped))
        assert state.skipped_catchup == 0  # the schedulers never fell an hour behind
        assert all(key == slot_key(definition_id, r.slot) for key, r in engine.runs.items()
                   if r.definition_id == definition_id)
        if spec.overlap == "allow_all":
            assert started == day
        else:  # one run at a time, in slot order
            assert all(a.ends_at <= b.started_at for a, b in zip(runs, runs[1:])), definition_id
        if spec.overlap == "cancel_other":
            # cancel requests; a run may end by itself before its cancel arrives
            assert state.canceled >= sum(r.canceled for r in runs) > 0
        if spec.jitter_s:
            lateness = [r.started_at - r.slot for r in runs]
            assert max(lateness) > 5 and min(lateness) >= 0
