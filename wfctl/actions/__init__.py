"""Actions: the registry, the built-ins, ``http_request``, plugins and stubs for tale's platform types."""

from .builtin import fail, log, set_variables, sleep
from .http import http_request
from .policy import ActionNotAllowed, ActionPolicy
from .registry import (
    TALE_PLATFORM_ACTIONS,
    ActionContext,
    ActionRegistry,
    ActionResult,
    ActionSpec,
    default_registry,
)
from .stubs import StubSet

__all__ = [
    "ActionNotAllowed",
    "ActionPolicy",
    "TALE_PLATFORM_ACTIONS",
    "ActionContext",
    "ActionRegistry",
    "ActionResult",
    "ActionSpec",
    "StubSet",
    "default_registry",
    "fail",
    "http_request",
    "log",
    "set_variables",
    "sleep",
]
