"""Run a definition to its end in memory: the interpreter driven by a simple loop, no durability.

Used by ``wfctl run`` (authoring and debugging definitions) and by tests. Retries wait their
backoff and ``sleep`` steps wait until their wake-up time, through an injectable ``sleep``.
The durable, sharded engine drives the same interpreter with every transition journaled.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .interpreter import Interpreter, RunState, Transition


@dataclass
class JournalEntry:
    """One executed attempt of one step, as ``wfctl run`` and ``wfctl status`` show it."""

    slug: str
    step_type: str | None
    attempt: int
    port: str | None
    output: Any
    error: str | None
    started_at: float
    finished_at: float
    retry_in: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return {
            "slug": self.slug, "type": self.step_type, "attempt": self.attempt, "port": self.port,
            "output": self.output, "error": self.error, "retry_in_s": self.retry_in,
            "duration_ms": round((self.finished_at - self.started_at) * 1000, 3),
        }


@dataclass
class RunResult:
    """The final state of an in-memory run and every attempt it made."""

    state: RunState
    journal: list[JournalEntry] = field(default_factory=list)

    @property
    def path(self) -> list[str]:
        """The slugs of the steps taken, in order (an attempt that was retried is left out)."""
        return [e.slug for e in self.journal if e.retry_in is None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary: status, output, error, steps."""
        return {
            "execution_id": self.state.variables.get("executionId"),
            "definition_id": self.state.variables.get("wfDefinitionId"),
            "status": self.state.status,
            "output": self.state.output,
            "error": self.state.error,
            "variables": self.state.variables.get("variables"),
            "steps": [e.to_dict() for e in self.journal],
        }


def run_to_end(
    definition,
    input: Any = None,
    interpreter: Interpreter | None = None,
    *,
    execution_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_steps: int | None = None,
    on_transition: Callable[[Transition], None] | None = None,
) -> RunResult:
    """Run ``definition`` with ``input`` until it completes or fails.

    A run fails once it executed its step limit: ``max_steps`` if given, else the
    definition's (``config.maxSteps``, default 10,000).
    """
    interpreter = interpreter or Interpreter()
    state = interpreter.new_run(definition, input, execution_id or f"run_{uuid.uuid4().hex[:16]}")
    result = RunResult(state)
    attempt = 1
    while not state.finished:
        started = interpreter.clock()
        t = interpreter.step(definition, state, attempt, max_steps)
        result.journal.append(JournalEntry(t.slug or "", t.step_type, attempt, t.port, t.output, t.error,
                                           started, interpreter.clock(), t.retry_in))
        if on_transition:
            on_transition(t)
        if t.retry_in is not None:
            sleep(t.retry_in)
            attempt += 1
            continue
        attempt = 1
        state = result.state = t.state
        if state.wake_at is not None and not state.finished:
            delay = state.wake_at - interpreter.clock()
            if delay > 0:
                sleep(delay)
            state = result.state = state.evolve(wake_at=None)
    return result

