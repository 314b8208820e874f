"""The step-at-a-time interpreter for tale workflow definitions."""

from .machine import Interpreter, StepContext, Transition
from .retry import RetryPolicy, effective_policy, retry_delay
from .state import COMPLETED, FAILED, RUNNING, RunState
from .steps import PURE_STEP_TYPES

__all__ = [
    "Interpreter", "StepContext", "Transition", "RetryPolicy", "effective_policy", "retry_delay",
    "RunState", "RUNNING", "COMPLETED", "FAILED", "PURE_STEP_TYPES",
]
