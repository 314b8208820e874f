"""Overlap policies: what a due slot does while the previous scheduled run is unfinished.

The five policies are Temporal's (``ScheduleOverlapPolicy``) less TerminateOther, which wfctl
has no equivalent of (a run can be canceled, not terminated):

=============== ===============================================================================
``skip``        (default) the slot is skipped and counted; the next slot due after the run
                ends starts normally.
``buffer_one``  the first overlapping slot is kept and starts as soon as the previous run
                ends; further ones while one is buffered are skipped.
``buffer_all``  every overlapping slot is kept (up to :data:`MAX_BUFFERED`); they start one
                at a time, in order, each when the run before it ends.
``cancel_other`` the previous run is canceled and the slot starts. Among several slots due
                at once only the last one starts (the earlier ones are *superseded*), as in
                Temporal, where a start that has not begun is replaced by the newer one.
``allow_all``   the slot starts anyway; runs may overlap without limit.
=============== ===============================================================================

When no scheduled run is unfinished and nothing is buffered every policy starts the slot.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["MAX_BUFFERED", "Action", "Decision", "Overlap", "decide", "parse_overlap"]

#: At most this many slots are kept buffered (Temporal's limit too); further ones are skipped.
MAX_BUFFERED = 1000


class Overlap(enum.StrEnum):
    """An overlap policy (its value is how a definition writes it)."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    ALLOW_ALL = "allow_all"


class Action(enum.StrEnum):
    """What to do with one due slot."""

    START = "start"
    SKIP = "skip"
    BUFFER = "buffer"
    CANCEL_PREVIOUS_AND_START = "cancel_previous_and_start"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None  # for SKIP: why


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


_NAMES = {_squash(p.value): p for p in Overlap}
_TEMPORAL_PREFIX = "scheduleoverlappolicy"


def parse_overlap(value: str | Overlap) -> Overlap:
    """The policy ``value`` names: ``buffer_one``, ``bufferOne``, ``BUFFER_ONE``, ``buffer-one`` and
    Temporal's ``SCHEDULE_OVERLAP_POLICY_BUFFER_ONE`` all name the same one. ValueError otherwise."""
    if isinstance(value, Overlap):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    key = _squash(value)
    if key.startswith(_TEMPORAL_PREFIX):
        key = key[len(_TEMPORAL_PREFIX):]
    if key in _NAMES:
        return _NAMES[key]
    expected = ", ".join(p.value for p in Overlap)
    if key == "terminateother":
        raise ValueError(f"'{value}' is not supported: wfctl cancels runs but cannot terminate them; "
                         f"use cancel_other (expected one of {expected})")
    raise ValueError(f"unknown overlap policy '{value}' (expected one of {expected})")


def decide(policy: Overlap | str, *, previous_unfinished: bool, buffered: int) -> Decision:
    """What one due slot does under ``policy``.

    ``previous_unfinished``: the schedule's most recent run (including one started for an
    earlier slot of the same planning pass) has not finished. ``buffered``: how many slots
    are already waiting in the buffer ahead of this one; a slot never overtakes them, so a
    non-empty buffer counts as an overlap even when the previous run has finished.
    """
    policy = parse_overlap(policy)
    if policy is Overlap.ALLOW_ALL:
        return Decision(Action.START)
    if not previous_unfinished and buffered == 0:
        return Decision(Action.START)
    if policy is Overlap.SKIP:
        return Decision(Action.SKIP, "overlap: the previous run is unfinished")
    if policy is Overlap.BUFFER_ONE:
        if buffered == 0:
            return Decision(Action.BUFFER)
        return Decision(Action.SKIP, "overlap: a slot is already buffered")
    if policy is Overlap.BUFFER_ALL:
        if buffered < MAX_BUFFERED:
            return Decision(Action.BUFFER)
        return Decision(Action.SKIP, f"overlap: the buffer is full ({MAX_BUFFERED} slots)")
    return Decision(Action.CANCEL_PREVIOUS_AND_START)
