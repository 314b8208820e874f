"""Retry policy: which policy applies to a step and how long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """tale's retry policy: ``maxRetries`` extra attempts, exponential backoff from ``backoffMs``."""

    max_retries: int = 0
    backoff_ms: float = 0

    @property
    def max_attempts(self) -> int:
        """Total attempts allowed: ``maxRetries + 1`` (1 when retries are off)."""
        return self.max_retries + 1 if self.max_retries > 0 else 1

    @classmethod
    def from_config(cls, raw: Any) -> "RetryPolicy | None":
        """Build a policy from a tale ``retryPolicy`` mapping (or a model with the same fields)."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raw = {"maxRetries": getattr(raw, "max_retries", 0), "backoffMs": getattr(raw, "backoff_ms", 0)}
        retries = raw.get("maxRetries", 0)
        backoff = raw.get("backoffMs", 0)
        retries = retries if isinstance(retries, int) and not isinstance(retries, bool) else 0
        backoff = backoff if isinstance(backoff, (int, float)) and not isinstance(backoff, bool) else 0
        return cls(max(retries, 0), max(backoff, 0))


NO_RETRY = RetryPolicy()


def effective_policy(step_config: Mapping[str, Any], workflow_policy: Any) -> RetryPolicy:
    """The step's ``config.retryPolicy`` if it has one, else the workflow's, else no retries."""
    own = step_config.get("retryPolicy") if isinstance(step_config, Mapping) else None
    if isinstance(own, Mapping):
        return RetryPolicy.from_config(own) or NO_RETRY
    return RetryPolicy.from_config(workflow_policy) or NO_RETRY


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when ``attempt`` was the last one.

    delay = backoffMs * 2^(attempt-1) * jitter, jitter uniform in [0.5, 1.5) as the workpool does.
    """
    if attempt >= policy.max_attempts:
        return None
    jitter = 0.5 + rng.random()
    return policy.backoff_ms * (2 ** (attempt - 1)) * jitter / 1000.0
