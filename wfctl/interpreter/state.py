"""The state of one run: tale's variable layout plus where the run is. JSON-serializable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunState:
    """A run between two steps.

    ``variables`` follows tale's layout (input, config, variables, steps, lastOutput, loop,
    secrets (encrypted), executionId, wfDefinitionId). ``current`` is the step to run next
    (None once the run ended); ``wake_at`` (epoch seconds) holds the run back after a sleep.
    States are never mutated: every transition returns a new one sharing unchanged parts.
    """

    variables: dict[str, Any]
    current: str | None
    status: str = RUNNING
    output: Any = None
    error: str | None = None
    wake_at: float | None = None
    steps_run: int = 0

    @property
    def finished(self) -> bool:
        """True once the run completed or failed."""
        return self.status != RUNNING

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (the engine stores it)."""
        return {
            "variables": self.variables,
            "current": self.current,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "wake_at": self.wake_at,
            "steps_run": self.steps_run,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunState":
        """Rebuild a state stored with :meth:`to_dict`."""
        return cls(
            variables=data["variables"],
            current=data.get("current"),
            status=data.get("status", RUNNING),
            output=data.get("output"),
            error=data.get("error"),
            wake_at=data.get("wake_at"),
            steps_run=data.get("steps_run", 0),
        )

    def evolve(self, **changes: Any) -> "RunState":
        """A copy with ``changes`` applied (``dataclasses.replace`` without its per-call field scan)."""
        fields = {"variables": self.variables, "current": self.current, "status": self.status,
                  "output": self.output, "error": self.error, "wake_at": self.wake_at, "steps_run": self.steps_run}
        fields.update(changes)
        return RunState(**fields)
