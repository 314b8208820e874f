"""Planning a schedule: which slots start now, which are skipped, and the schedule's next state.

:func:`plan` is pure: the schedule's persisted :class:`ScheduleState`, the time ``now`` and
whether its previous run is unfinished go in; a :class:`Plan` comes out. The scheduler loop
around it (one or several processes at once) does the I/O:

1. read the state and its ``version``; learn whether the run of ``state.last_started`` (the
   execution id follows from :func:`slot_key`) is unfinished;
2. ``p = plan(spec, state, now, previous_unfinished)``; when ``p.changed``, write ``p.state``
   **only if the stored version is still** ``state.version`` (compare-and-set); a scheduler
   that loses the race drops its plan and plans again from the new state;
3. carry the plan out: cancel the run of ``p.cancel_slot`` (if any), start one run per
   ``p.starts`` entry with ``idempotency_key=start.key`` and ``render_input(spec, start.slot)``;
4. write ``acknowledge(p.state)`` (compare-and-set again);
5. plan again at once when ``p.more``; else sleep until ``p.next_due`` (the earliest over all
   schedules), waking sooner while a schedule has ``buffered`` slots, which start when the
   previous run ends. ``previous_unfinished`` only looks at scheduled runs: a run started by
   hand does not hold a schedule back.

The state written in step 2 keeps the plan's starts in ``pending`` until step 4: a scheduler
that dies in between leaves them there, and the next plan (by any scheduler) returns them
again instead of planning new slots. Starting them twice is harmless because the key is
deterministic per (definition, slot), so each slot starts at most one run; and since a slot
is only ever started from a state that won the compare-and-set, it starts at least once.

Semantics
---------
- **First plan**: a state with no ``last_slot`` plans nothing and sets ``last_slot = now``:
  enabling a schedule (or applying a scheduled definition for the first time) does not
  backfill history; use :func:`backfill_slots` for that.
- **Due slots** are those after ``last_slot`` whose start time (slot + jitter) is ``<= now``.
  A slot more than the catch-up window late (``now - start time > window``, at least 10 s)
  is skipped (reason ``catchup_window``); the rest go, in order and after the buffered
  slots, through the overlap policy (:func:`wfctl.schedules.policy.decide`).
- **Paused** (:meth:`ScheduleState.with_paused`): due slots are skipped (reason ``paused``),
  as Temporal does, and buffered ones wait for the schedule to resume.
- **Overlap within one plan**: a start makes the previous run unfinished for the slots after
  it, so without ``allow_all`` at most one slot starts per plan; under ``cancel_other`` the
  last due slot starts and earlier ones in the same plan are skipped as ``superseded``
  (Temporal replaces a start that has not begun), and only a run from an earlier plan is
  canceled.
- At most ``max_slots`` slots are considered per call (a long downtime of a minutely
  schedule is worked through in bounded steps); ``Plan.more`` says to plan again at once.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .cron import iter_slots, local_time, utc_iso
from .policy import Action, decide
from .spec import ScheduleSpec

__all__ = [
    "MAX_SLOTS_PER_PLAN", "Plan", "ScheduleState", "SkipReason", "SlotSkip", "SlotStart", "acknowledge",
    "backfill_slots", "jitter_delay", "plan", "render_input", "slot_key",
]

#: How many slots one :func:`plan` call considers at most.
MAX_SLOTS_PER_PLAN = 1000


class SkipReason(enum.StrEnum):
    CATCHUP_WINDOW = "catchup_window"  # later than the catch-up window (after downtime)
    OVERLAP = "overlap"                # the overlap policy skipped it (previous run unfinished)
    SUPERSEDED = "superseded"          # cancel_other: a later slot due at the same time replaced it
    PAUSED = "paused"                  # the schedule was paused


@dataclass(frozen=True)
class ScheduleState:
    """What the store persists per scheduled definition (JSON via :meth:`to_dict`).

    ``last_slot``: every slot at or before it has been handled (started, buffered or
    skipped); None before the first plan. ``buffered``: slots waiting for the previous run to
    end, oldest first. ``pending``: slots a committed plan started, not yet acknowledged
    (see the module docstring); ``cancel_slot``: the slot whose run that plan cancels.
    ``last_started``: the slot of the most recent start, whose run is "the previous run".
    The counters only grow (``canceled`` counts cancel requests: the run may have ended by
    itself before the request reached it). ``version`` is the compare-and-set token: every
    new state a function here returns has ``version + 1``.
    """

    last_slot: float | None = None
    paused: bool = False
    buffered: tuple[float, ...] = ()
    pending: tuple[float, ...] = ()
    cancel_slot: float | None = None
    last_started: float | None = None
    started: int = 0
    skipped_overlap: int = 0
    skipped_catchup: int = 0
    skipped_paused: int = 0
    canceled: int = 0
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in _STATE_FIELDS}
        data["buffered"], data["pending"] = list(self.buffered), list(self.pending)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleState:
        names = {f.name for f in _STATE_FIELDS}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("buffered", "pending"):
            if key in values:
                values[key] = tuple(float(x) for x in values[key])
        return cls(**values)

    def with_paused(self, paused: bool) -> ScheduleState:
        """The state paused or resumed (a compare-and-set write like any other)."""
        return dataclasses.replace(self, paused=paused, version=self.version + 1)


_STATE_FIELDS = dataclasses.fields(ScheduleState)


@dataclass(frozen=True)
class SlotStart:
    """Start one run for ``slot`` with idempotency ``key``. ``due``: when it became due (slot +
    jitter; the slot itself for a buffered or re-issued start)."""

    slot: float
    due: float
    key: str
    from_buffer: bool = False
    retry: bool = False  # re-issued from ``pending`` (a scheduler died before acknowledging)


@dataclass(frozen=True)
class SlotSkip:
    slot: float
    reason: SkipReason


@dataclass(frozen=True)
class Plan:
    """The outcome of :func:`plan`. Start ``starts`` in order (after canceling the run of
    ``cancel_slot``/``cancel_key`` when set); persist ``state`` when ``changed``."""

    starts: tuple[SlotStart, ...]
    skipped: tuple[SlotSkip, ...]
    state: ScheduleState
    cancel_slot: float | None = None
    cancel_key: str | None = None
    changed: bool = True
    more: bool = False             # plan again right away (max_slots reached, or a re-issue to acknowledge)
    next_due: float | None = None  # when the next slot becomes due (None with ``more``, or never)

    @property
    def buffered(self) -> tuple[float, ...]:
        return self.state.buffered


def slot_key(definition_id: str, slot: float) -> str:
    """The idempotency key of a slot's run: ``schedule:<definition_id>:<slot ISO 8601 UTC>``."""
    return f"schedule:{definition_id}:{utc_iso(slot)}"


def jitter_delay(spec: ScheduleSpec, slot: float, next_slot: float | None) -> float:
    """The slot's start delay in seconds: in ``[0, jitter)``, also below ``next_slot - slot``
    so jittered slots keep their order; a hash of (definition id, slot), not a random draw,
    so every scheduler computes the same. Rounded down to milliseconds."""
    if spec.jitter_s <= 0:
        return 0.0
    bound = spec.jitter_s if next_slot is None else min(spec.jitter_s, next_slot - slot)
    digest = hashlib.sha256(f"{spec.definition_id}\0{utc_iso(slot)}".encode("utf-8", "surrogatepass")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return int(fraction * bound * 1000) / 1000.0


def _with_due(spec: ScheduleSpec, after: float) -> Iterator[tuple[float, float]]:
    """``(slot, start time)`` for the slots after ``after``, in order."""
    it = iter_slots(spec, after)
    if spec.jitter_s <= 0:
        for slot in it:
            yield slot, slot
        return
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        yield current, current + jitter_delay(spec, current, following)
        current = following


def plan(spec: ScheduleSpec, state: ScheduleState, now: float, previous_unfinished: bool, *,
         max_slots: int = MAX_SLOTS_PER_PLAN) -> Plan:
    """What the schedule does at ``now`` (see the module docstring)."""
    did = spec.definition_id
    if state.pending:
        # A committed plan was not acknowledged: carry it out (again) before anything new.
        starts = tuple(SlotStart(s, s, slot_key(did, s), retry=True) for s in state.pending)
        cancel = state.cancel_slot
        return Plan(starts, (), state, cancel, None if cancel is None else slot_key(did, cancel),
                    changed=False, more=True)

    if state.last_slot is None:
        new = dataclasses.replace(state, last_slot=now, version=state.version + 1)
        return Plan((), (), new, next_due=_next_due(spec, now))

    due: list[tuple[float, float]] = []
    cursor, more, next_due = state.last_slot, False, None
    for slot, start_at in _with_due(spec, state.last_slot):
        if start_at > now:
            next_due = start_at
            break
        if len(due) >= max_slots:
            more = True
            break
        due.append((slot, start_at))
        cursor = slot

    skipped: list[SlotSkip] = []
    starts: list[SlotStart] = []
    buffer: list[float] = []
    cancel_slot = None
    counts = {"started": 0, "skipped_overlap": 0, "skipped_catchup": 0, "skipped_paused": 0, "canceled": 0}

    if state.paused:
        skipped = [SlotSkip(slot, SkipReason.PAUSED) for slot, _ in due]
        counts["skipped_paused"] = len(skipped)
        buffer = list(state.buffered)
    else:
        window = spec.effective_catchup_window_s
        queue: list[tuple[float, float, bool]] = [(b, b, True) for b in state.buffered]
        for slot, start_at in due:
            if now - start_at > window:
                skipped.append(SlotSkip(slot, SkipReason.CATCHUP_WINDOW))
                counts["skipped_catchup"] += 1
            else:
                queue.append((slot, start_at, False))
        running = previous_unfinished
        started_here = False  # a later cancel_other slot supersedes a start of this same plan
        for slot, start_at, from_buffer in queue:
            decision = decide(spec.overlap, previous_unfinished=running, buffered=len(buffer))
            if decision.action is Action.START:
                starts.append(SlotStart(slot, start_at, slot_key(did, slot), from_buffer))
                started_here = running = True
            elif decision.action is Action.SKIP:
                skipped.append(SlotSkip(slot, SkipReason.OVERLAP))
                counts["skipped_overlap"] += 1
            elif decision.action is Action.BUFFER:
                buffer.append(slot)
            else:  # CANCEL_PREVIOUS_AND_START
                if started_here:
                    replaced = starts.pop()
                    skipped.append(SlotSkip(replaced.slot, SkipReason.SUPERSEDED))
                    counts["skipped_overlap"] += 1
                else:
                    cancel_slot = state.last_started
                starts.append(SlotStart(slot, start_at, slot_key(did, slot), from_buffer))
                started_here = running = True
        counts["started"] = len(starts)
        counts["canceled"] = int(cancel_slot is not None)

    new_state = dataclasses.replace(
        state,
        last_slot=cursor,
        buffered=tuple(buffer),
        pending=tuple(s.slot for s in starts),
        cancel_slot=cancel_slot,
        last_started=starts[-1].slot if starts else state.last_started,
        started=state.started + counts["started"],
        skipped_overlap=state.skipped_overlap + counts["skipped_overlap"],
        skipped_catchup=state.skipped_catchup + counts["skipped_catchup"],
        skipped_paused=state.skipped_paused + counts["skipped_paused"],
        canceled=state.canceled + counts["canceled"],
        version=state.version + 1,
    )
    changed = new_state != dataclasses.replace(state, version=state.version + 1)
    if not changed:
        new_state = state
    return Plan(tuple(starts), tuple(skipped), new_state, cancel_slot,
                None if cancel_slot is None else slot_key(did, cancel_slot), changed, more, next_due)


def _next_due(spec: ScheduleSpec, after: float) -> float | None:
    return next((start_at for _, start_at in _with_due(spec, after)), None)


def acknowledge(state: ScheduleState) -> ScheduleState:
    """The state once the runs of ``state.pending`` are started (and ``cancel_slot``'s canceled)."""
    if not state.pending and state.cancel_slot is None:
        return state
    return dataclasses.replace(state, pending=(), cancel_slot=None, version=state.version + 1)


def backfill_slots(spec: ScheduleSpec, start: float, end: float) -> Iterator[float]:
    """The slots in ``[start, end]`` (both included), oldest first, one at a time, for a
    backfill. Started with their :func:`slot_key` keys they never double a slot that already ran."""
    for slot in iter_slots(spec, math.nextafter(start, -math.inf)):  # start itself included
        if slot > end:
            return
        if slot >= start:
            yield slot


def render_input(spec: ScheduleSpec, slot: float) -> dict[str, Any]:
    """The run input for ``slot``: ``spec.input`` rendered with ``slot`` (ISO 8601 UTC),
    ``slotMs``, ``slotLocal`` (ISO 8601 with the zone's offset) and ``wfDefinitionId``;
    ``{}`` when the schedule has no input. Raises TemplateError like any template."""
    if spec.input is None:
        return {}
    from ..expressions import render_value

    context = {
        "slot": utc_iso(slot),
        "slotMs": int(round(slot * 1000)),
        "slotLocal": local_time(spec, slot).isoformat(),
        "wfDefinitionId": spec.definition_id,
    }
    return render_value(spec.input, context)
