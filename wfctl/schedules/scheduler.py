"""The scheduler loop: fires the due slots of every scheduled definition through the engine.

Any number of schedulers may run at once (inside ``wfctl worker`` or as ``wfctl scheduler``).
Correctness does not depend on there being one: each schedule's state is written with a
compare-and-set on its version (a scheduler that loses the race plans again from the new
state), and each slot's run is started with a deterministic idempotency key, so a slot
starts at most one run; a slot started from a state that won the compare-and-set is
re-issued by the next plan until acknowledged, so it starts at least once.
"""

from __future__ import annotations

import logging
import threading
import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from ..errors import InputError, WfctlError
from ..store.roles import SCHEDULER, set_session_role
from .cron import utc_iso
from .policy import Action, decide
from .planner import ScheduleState, acknowledge, backfill_slots, plan, render_input, slot_key
from .spec import ScheduleSpec, schedule_of

_log = logging.getLogger("wfctl.scheduler")

IDLE_POLL_S = 1.0      # how often definitions are re-read when nothing is due sooner
BUFFERED_POLL_S = 0.2  # how often a schedule with buffered slots checks whether its previous run ended
DEFAULT_MAX_BACKFILL_SLOTS = 10_000  # the most slots one backfill starts unless told otherwise
MAX_BACKFILL_SLOTS = 1_000_000_000  # the most it may be told


@dataclass
class TickReport:
    """What one pass did: runs started, slots skipped (by reason), when to look again."""

    started: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    next_wake: float | None = None


@dataclass
class TriggerResult:
    """What ``schedules trigger`` did: ``action`` (start, skip, buffer, cancel_previous_and_start),
    why when it did not start, and the start (execution id, shard, created) when it did."""

    action: str
    reason: str | None = None
    started: Any = None


class SchedulerEvents(Protocol):
    """What the scheduler loop tells its ``events`` hook (:mod:`wfctl.engine.metrics` counts them)."""

    def fired(self, definition_id: str, slot_time: float, fired_at: float) -> None:
        """A slot's run was started (created) at ``fired_at``; quick, never raises."""


class Scheduler:
    """Fires scheduled definitions' slots. ``clock`` gives epoch seconds (a simulated clock in tests);
    ``events``, if given, is told of every run the loop's slots created."""

    def __init__(self, engine, *, clock: Callable[[], float] | None = None, events: SchedulerEvents | None = None):
        self.engine = engine
        self.clock = clock or engine.clock
        self.events = events
        self._specs: dict[str, tuple[object, ScheduleSpec | None]] = {}  # id -> (updated_at, spec)

    # -- one pass -------------------------------------------------------------------------
    def specs(self) -> list[ScheduleSpec]:
        """The schedules of every registered definition (invalid ones are logged and left out).

        A definition applied again (by any process) is read again: its catalog ``updated_at``
        changed."""
        specs = []
        seen = {}
        for row in self.engine.definitions():
            cached = self._specs.get(row["id"])
            if cached is not None and cached[0] == row["updated_at"]:
                spec = cached[1]
            else:
                try:
                    spec = schedule_of(self.engine.definition(row["id"], reload=cached is not None))
                except WfctlError as exc:
                    _log.warning("definition '%s': schedule ignored: %s", row["id"], exc)
                    spec = None
            seen[row["id"]] = (row["updated_at"], spec)
            if spec is not None:
                specs.append(spec)
        self._specs = seen
        return specs

    def tick(self, now: float | None = None) -> TickReport:
        """Plan and fire every schedule once at ``now`` (default: the clock)."""
        now = self.clock() if now is None else now
        report = TickReport()
        for spec in self.specs():
            try:
                self._fire(spec, now, report)
            except WfctlError as exc:  # one schedule's failure (a bad input template, ...) must not stop the others
                _log.warning("schedule of '%s': %s", spec.definition_id, exc)
        return report

    def _fire(self, spec: ScheduleSpec, now: float, report: TickReport) -> None:
        while True:
            state = self.state(spec.definition_id)
            p = plan(spec, state, now, self._previous_unfinished(spec.definition_id, state))
            if p.changed and not self.engine.put_schedule_state(spec.definition_id, state.version, p.state.to_dict()):
                report.conflicts += 1
                continue  # another scheduler moved the schedule on: plan again from its state
            if p.cancel_key:
                self.engine.cancel_key(spec.definition_id, p.cancel_key)
            for start in p.starts:
                result = self.engine.start(spec.definition_id, render_input(spec, start.slot),
                                           idempotency_key=start.key, slot_time=start.slot)
                if result.created:
                    report.started.append(result.execution_id)
                    if self.events is not None:
                        self.events.fired(spec.definition_id, start.slot, self.clock())
            for skip in p.skipped:
                report.skipped[str(skip.reason)] = report.skipped.get(str(skip.reason), 0) + 1
            acked = acknowledge(p.state)
            if acked is not p.state and not self.engine.put_schedule_state(
                    spec.definition_id, p.state.version, acked.to_dict()):
                report.conflicts += 1  # someone else acknowledged (or moved on): their state wins
            if p.more:
                continue
            wake = p.next_due
            if p.state.buffered:
                wake = min(wake, now + BUFFERED_POLL_S) if wake is not None else now + BUFFERED_POLL_S
            if wake is not None:
                report.next_wake = wake if report.next_wake is None else min(report.next_wake, wake)
            return

    # -- state ----------------------------------------------------------------------------
    def state(self, definition_id: str) -> ScheduleState:
        """The schedule's persisted state (a fresh one before its first plan)."""
        raw = self.engine.schedule_state(definition_id)
        return ScheduleState.from_dict(raw) if raw is not None else ScheduleState()

    def _previous_unfinished(self, definition_id: str, state: ScheduleState) -> bool:
        """Whether the run of the schedule's most recent start is still pending or running."""
        previous = state.last_started
        return previous is not None and self.engine.key_unfinished(definition_id, slot_key(definition_id, previous))

    def set_paused(self, definition_id: str, paused: bool) -> ScheduleState:
        """Pause or resume a schedule (compare-and-set, retried on conflict)."""
        while True:
            state = self.state(definition_id)
            new = state.with_paused(paused)
            if self.engine.put_schedule_state(definition_id, state.version, new.to_dict()):
                return new

    def trigger(self, spec: ScheduleSpec, now: float | None = None) -> TriggerResult:
        """Fire an extra slot at ``now`` under the schedule's overlap policy, as Temporal's
        "trigger immediately" does: it starts, is skipped, is buffered behind the previous run,
        or cancels the previous run and starts. The slot has its own idempotency key."""
        now = self.clock() if now is None else now
        definition_id = spec.definition_id
        while True:
            state = self.state(definition_id)
            previous = state.last_started
            decision = decide(spec.overlap, previous_unfinished=self._previous_unfinished(definition_id, state),
                              buffered=len(state.buffered))
            if decision.action is Action.SKIP:
                return TriggerResult(str(decision.action), decision.reason)
            if decision.action is Action.BUFFER:
                new = dataclasses.replace(state, buffered=state.buffered + (now,), version=state.version + 1)
            else:
                new = dataclasses.replace(state, last_started=now, started=state.started + 1,
                                          version=state.version + 1)
            if not self.engine.put_schedule_state(definition_id, state.version, new.to_dict()):
                continue  # a scheduler moved the schedule on meanwhile: decide again
            if decision.action is Action.BUFFER:
                return TriggerResult(str(decision.action), "the previous run is unfinished: starts when it ends")
            if decision.action is Action.CANCEL_PREVIOUS_AND_START:
                self.engine.cancel_key(definition_id, slot_key(definition_id, previous))
            started = self.engine.start(definition_id, render_input(spec, now),
                                        idempotency_key=slot_key(definition_id, now), slot_time=now)
            return TriggerResult(str(decision.action), None, started)

    def backfill(self, spec: ScheduleSpec, start: float, end: float,
                 max_slots: int = DEFAULT_MAX_BACKFILL_SLOTS) -> Iterator:
        """Start the slots in ``[start, end]``, at most once each (slots that already ran are not
        doubled), yielding each start's result as it is made: the slots are never all in memory.

        InputError before anything starts when the range is invalid or holds more than
        ``max_slots`` slots (counted up to ``max_slots + 1``, so a huge range is refused at once).
        """
        if isinstance(max_slots, bool) or not isinstance(max_slots, int) or not 1 <= max_slots <= MAX_BACKFILL_SLOTS:
            raise InputError(f"--max-slots: expected a whole number from 1 to {MAX_BACKFILL_SLOTS}, got {max_slots!r}")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InputError("backfill: --from and --to must be finite times")
        if end < start:
            raise InputError("backfill: --to is before --from")
        if sum(1 for _ in itertools.islice(backfill_slots(spec, start, end), max_slots + 1)) > max_slots:
            raise InputError(f"backfill of '{spec.definition_id}' from {utc_iso(start)} to {utc_iso(end)}: more than "
                             f"{max_slots} slots, nothing started (give --max-slots with a larger cap, "
                             "or a shorter range)")
        return (self.engine.start(spec.definition_id, render_input(spec, slot),
                                  idempotency_key=slot_key(spec.definition_id, slot), slot_time=slot)
                for slot in backfill_slots(spec, start, end))

    # -- loop -----------------------------------------------------------------------------
    def run(self, stop_event: threading.Event | None = None, sleep: Callable[[float], None] | None = None) -> None:
        """Tick until ``stop_event`` is set, sleeping until the next slot is due (at most IDLE_POLL_S).
        Names the process's database sessions ``scheduler`` (:mod:`wfctl.store.roles`)."""
        set_session_role(SCHEDULER)
        stop_event = stop_event or threading.Event()
        while not stop_event.is_set():
            try:
                report = self.tick()
            except WfctlError as exc:  # a damaged shard or a busy store must not stop the scheduler
                _log.warning("scheduler pass failed: %s", exc)
                report = TickReport()
            now = self.clock()
            delay = IDLE_POLL_S if report.next_wake is None else min(max(report.next_wake - now, 0.0), IDLE_POLL_S)
            if sleep is not None:
                sleep(delay)
            else:
                stop_event.wait(delay)
