"""Where a retried run goes on from, and with which state (``wfctl retry``).

A retry puts a finished run back to work on the definition version it is pinned to, from a step
S, with the state it had just before S ran; its journal is kept and new attempts are appended,
numbered on from S's attempts. That state is known exactly in two places only, and a retry from
anywhere else is refused (never guessed):

- where the run stopped: a failed step leaves the run's variables as they were before it (the
  stored state), and a canceled run's stored state is the one before the step it was on;
- before a side-effecting step (an action, an LLM call): its ``started`` journal row keeps the
  state (:meth:`~wfctl.store.ShardStore.mark_step_started`). Pure steps (start, condition, loop,
  output, pure actions) run in memory between commits, and the state before them is not kept.

``--from S`` takes the last time the run reached S. Planning reads a few rows of the journal
(its last row, the rows of one step, through :class:`RunJournal`), never the whole of a long
journal, except to word a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InputError
from ..store import CANCELED, COMPLETED, FAILED, RUNNING, JournalRecord, RunRecord, ShardStore, StepCommit
from ..store.base import STARTED

RETRYABLE = (FAILED, CANCELED)
"""Statuses a run may be retried from where it stopped (a completed run: with ``--from`` only)."""


class RunJournal(Protocol):
    """What planning reads of one run's journal."""

    def last(self) -> JournalRecord | None:
        """The last row (None: an empty journal)."""

    def of_step(self, step: str) -> Sequence[JournalRecord]:
        """The rows of ``step``, oldest first."""

    def everything(self) -> Sequence[JournalRecord]:
        """Every row, oldest first (read only to word a refusal)."""

    def state(self, seq: int) -> dict[str, Any] | None:
        """The state row ``seq`` kept (None: none)."""


@dataclass(frozen=True, slots=True)
class StoredJournal:
    """A run's journal as its shard holds it."""

    store: ShardStore
    execution_id: str

    def last(self) -> JournalRecord | None:
        count = self.store.journal_count(self.execution_id)  # seq counts 1..count
        return next(iter(self.store.journal_page(self.execution_id, after_seq=count - 1, limit=1)), None)

    def of_step(self, step: str) -> Sequence[JournalRecord]:
        return self.store.journal_of_step(self.execution_id, step)

    def everything(self) -> Sequence[JournalRecord]:
        return self.store.journal(self.execution_id)

    def state(self, seq: int) -> dict[str, Any] | None:
        return self.store.step_state(self.execution_id, seq)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """A retry to apply: the commit that puts the run back to work, and the ``(status,
    updated_at)`` it was planned on (the store applies it only while the run still has them)."""

    commit: StepCommit
    expected: tuple[str, float]
    step: str

    @property
    def attempt(self) -> int:
        """The attempt the step runs with next."""
        return self.commit.attempt + 1


def plan_retry(run: RunRecord, journal: RunJournal, definition, from_step: str | None, now: float) -> RetryPlan:
    """The retry of ``run`` (its ``journal``; ``definition``: its pinned version) from ``from_step``
    (None: where it stopped). InputError, one line, when the run cannot be retried from there."""
    eid = run.execution_id
    if run.status not in (*RETRYABLE, COMPLETED):
        raise InputError(f"run {eid} is {run.status}: only a failed or canceled run can be retried")
    if run.status == COMPLETED and from_step is None:
        raise InputError(f"run {eid} completed: give --from STEP to run it again from a step")
    last = journal.last()
    stopped = _stopped_at(run, last)
    step = stopped if from_step is None else from_step
    if step is None:
        raise InputError(f"run {eid} stopped at no step: nothing to retry (give --from STEP)")
    if from_step is not None and definition.step(from_step) is None:
        steps = ", ".join(s.slug for s in definition.steps)
        raise InputError(f"--from: '{from_step}' is not a step of run {eid}'s definition "
                         f"{run.definition_id} (version {run.definition_version or 'current'}: {steps})")
    rows = journal.of_step(step)
    if not rows and step != stopped:
        path = ", ".join(dict.fromkeys(r.step_slug for r in journal.everything())) or "no step yet"
        raise InputError(f"--from: run {eid} never reached step '{from_step}' (its path: {path})")
    state = _kept_state(rows, journal.state)
    if state is None and step == stopped:
        state = _stopped_state(run, last)
    if state is None:
        kept = [r.step_slug for r in journal.everything() if r.status == STARTED]
        if stopped is not None and run.status != COMPLETED and _stopped_state(run, last) is not None:
            kept.append(stopped)
        where = f"it can go on from {', '.join(dict.fromkeys(kept))}" if kept else "none of its steps kept one"
        raise InputError(f"--from: the state of run {eid} before step '{step}' was not kept (only before "
                         f"side-effecting steps and where a run stopped): {where}")
    from ..interpreter.state import RunState  # not at import: the engine's status/list paths stay light

    made = max((r.attempt for r in rows), default=0)
    restored = RunState.from_dict(state).evolve(current=step, status=RUNNING, output=None, error=None)
    ready_at = max(now, restored.wake_at or now)  # a run canceled while asleep sleeps on
    commit = StepCommit(eid, RUNNING, restored.to_dict(), step, made, ready_at=ready_at, wake_at=restored.wake_at)
    return RetryPlan(commit, (run.status, run.updated_at), step)


def _stopped_at(run: RunRecord, last: JournalRecord | None) -> str | None:
    """The step the run stopped at (``last``: its last journal row): the one it was on
    (canceled), or the step that failed."""
    if run.state is not None and run.state.get("current"):
        return run.state["current"]
    if run.status == FAILED and last is not None and last.status == FAILED:
        return last.step_slug
    return run.current_step if run.status != COMPLETED else None


def _kept_state(rows: Sequence[JournalRecord],
                step_state: Callable[[int], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The state the last ``started`` row among a step's ``rows`` keeps (None: none kept)."""
    for row in reversed(rows):
        if row.status == STARTED:
            return step_state(row.seq)
    return None


def _stopped_state(run: RunRecord, last: JournalRecord | None) -> dict[str, Any] | None:
    """The stored state, when it is the one before the step the run stopped at: a canceled run's,
    or a failed run's whose step failed (not one that ran and then found no next step)."""
    if run.state is None:
        return None
    if run.status == FAILED and last is not None and last.status == FAILED and last.port is not None:
        return None  # the step ran (its output is in the state) but its port leads nowhere
    return run.state
