"""The action registry: which callable runs an action step's ``config.type``.

An action is ``fn(params: dict, ctx: ActionContext) -> Any | ActionResult``: ``params`` is the
step's rendered ``config.parameters``; the return value is the step's output data (plain
JSON) or an :class:`ActionResult` that also asks the engine to sleep or to store secrets.

Lookup order in :meth:`ActionRegistry.get`: registered actions (built-ins, then plugins from
the ``wfctl.actions`` entry-point group), then a stub for the type when a stub set is given,
then ``module:function`` references the :class:`~.policy.ActionPolicy` allows (none unless the
operator allowed their module: see :mod:`wfctl.actions.policy`), then tale's platform types (an error that asks for
stubs), else ``Unknown action type: X``.

Every callable a spec hands out is guarded: whatever the action raises leaves it as a
:class:`~wfctl.errors.StepError` with a one-line message, and a result that is not JSON is
rejected, so an action call never lets another exception escape.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import ActionError, StepError, WfctlError
from .policy import ActionPolicy

if TYPE_CHECKING:  # pragma: no cover
    from .stubs import StubSet

_logger = logging.getLogger("wfctl.actions")

#: tale's action types that need tale's database or external services; wfctl runs them only from stubs.
TALE_PLATFORM_ACTIONS = frozenset({
    "approval", "conversation", "crawler", "customer", "document", "integration", "onedrive",
    "product", "rag", "website", "workflow_processing_records",
})

ENTRY_POINT_GROUP = "wfctl.actions"

_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _default_log(line: str) -> None:
    _logger.info(line)


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action sees besides its parameters.

    ``variables`` is the run's variables (read-only by convention; decrypted secrets are in
    ``variables['secrets']`` for this call only). ``now()`` returns epoch seconds; ``log(line)``
    receives the ``log`` action's lines. ``attempt`` counts from 1.
    """

    execution_id: str | None = None
    definition_id: str | None = None
    step_slug: str | None = None
    attempt: int = 1
    variables: Mapping[str, Any] = field(default_factory=dict)
    stubs: "StubSet | None" = None
    now: Callable[[], float] = time.time
    log: Callable[[str], None] = _default_log


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action's output ``data`` plus requests to the engine.

    ``wake_at`` (epoch seconds): do not run the next step before then (the ``sleep`` action).
    ``secrets``: plaintext values the engine stores encrypted under ``variables.secrets``.
    """

    data: Any
    wake_at: float | None = None
    secrets: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A resolved action: its type name, its guarded callable, and whether it is pure.

    ``pure`` actions have no effect outside the run state (safe to re-run after a crash).
    ``raw_params`` names parameters the interpreter must pass unrendered (the action renders
    them itself: ``set_variables``'s ``variables``).
    """

    name: str
    fn: Callable[[dict, ActionContext], Any]
    pure: bool = False
    raw_params: tuple[str, ...] = ()


def one_line(text: str, limit: int = 300) -> str:
    """``text`` collapsed to one line and cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _check_json(value: Any, name: str) -> Any:
    """``value`` as plain JSON (tuples become lists); ActionError for anything else."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ActionError(f"action '{name}' returned a non-JSON value: key {key!r} is not a string")
            out[key] = _check_json(item, name)
        return out
    if isinstance(value, (list, tuple)):
        return [_check_json(item, name) for item in value]
    raise ActionError(f"action '{name}' returned a non-JSON value of type {type(value).__name__}")


def _guard(name: str, fn: Callable[[dict, ActionContext], Any]) -> Callable[[dict, ActionContext], Any]:
    """Wrap ``fn`` so that it only ever raises StepError and only returns JSON or ActionResult."""

    def guarded(params: dict, ctx: ActionContext) -> Any:
        try:
            result = fn(params, ctx)
        except StepError:
            raise
        except WfctlError as exc:
            raise ActionError(f"action '{name}': {one_line(str(exc))}") from exc
        except Exception as exc:
            raise ActionError(f"action '{name}' failed: {type(exc).__name__}: {one_line(str(exc))}") from exc
        if isinstance(result, ActionResult):
            secrets = result.secrets
            if secrets is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()):
                raise ActionError(f"action '{name}' returned secrets that are not strings")
            return ActionResult(_check_json(result.data, name), result.wake_at, secrets)
        return _check_json(result, name)

    guarded.__name__ = getattr(fn, "__name__", name)
    guarded.__doc__ = getattr(fn, "__doc__", None)
    guarded.__wrapped__ = fn  # type: ignore[attr-defined]
    return guarded


def _broken(name: str, reason: str) -> Callable[[dict, ActionContext], Any]:
    def broken(params: dict, ctx: ActionContext) -> Any:
        raise ActionError(f"action '{name}' is unavailable: {reason}")

    return broken


class ActionRegistry:
    """Action types by name. Thread-safe for lookups; register at start-up."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}
        self._refs: dict[str, ActionSpec] = {}
        self._lock = threading.Lock()

    def register(self, name: str, fn: Callable[[dict, ActionContext], Any], *, pure: bool = False,
                 raw_params: tuple[str, ...] = ()) -> ActionSpec:
        """Register ``fn`` as action type ``name`` (replacing any earlier one) and return its spec."""
        if not isinstance(name, str) or not name:
            raise ActionError(f"invalid action name: {name!r}")
        if not callable(fn):
            raise ActionError(f"action '{name}': {fn!r} is not callable")
        spec = ActionSpec(name, _guard(name, fn), pure, tuple(raw_params))
        self._specs[name] = spec
        return spec

    def get(self, name: str, stubs: "StubSet | None" = None, policy: ActionPolicy | None = None) -> ActionSpec:
        """The spec for action type ``name``; ``stubs`` supplies tale's platform types.

        Raises ActionError for an unknown type, a platform type without a stub, or a
        ``module:function`` reference that cannot be imported; ActionNotAllowed for a reference
        ``policy`` does not allow (None allows none), checked before anything is imported.
        """
        if not isinstance(name, str):
            raise ActionError(f"Unknown action type: {name}")
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if stubs is not None and stubs.has(name):
            return ActionSpec(name, _guard(name, stubs.action(name)), False)
        if ":" in name:
            (policy or ActionPolicy()).check(name)
            return self.resolve(name)
        if name in TALE_PLATFORM_ACTIONS:
            raise ActionError(
                f"action type '{name}' is provided by the tale platform; supply a stub with --stubs FILE")
        raise ActionError(f"Unknown action type: {name}")

    def names(self) -> list[str]:
        """The registered action types, sorted."""
        return sorted(self._specs)

    def is_pure(self, name: str) -> bool:
        """True when ``name`` is a registered pure action (stubs, plugins and references are not)."""
        spec = self._specs.get(name)
        return spec is not None and spec.pure

    def resolve(self, ref: str) -> ActionSpec:
        """The action for a ``module:function`` reference (imported once, then cached).

        The function part may be a dotted attribute path (``pkg.mod:Class.method``) that does
        not pass through another module (``mypkg:os.system`` is refused). No policy check here:
        :meth:`get` checks the policy first.
        """
        spec = self._refs.get(ref)
        if spec is not None:
            return spec
        if not isinstance(ref, str) or not _REF.match(ref):
            raise ActionError(f"invalid action reference {ref!r}: expected module:function")
        module_name, _, attr_path = ref.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                target = getattr(target, attr)
                if isinstance(target, ModuleType):
                    raise ActionError(f"cannot load action '{ref}': {attr} is a module; name a function "
                                      f"of {module_name} itself")
        except ActionError:
            raise
        except Exception as exc:
            raise ActionError(f"cannot load action '{ref}': {type(exc).__name__}: {one_line(str(exc))}") from exc
        if not callable(target):
            raise ActionError(f"cannot load action '{ref}': {attr_path} is not callable")
        spec = ActionSpec(ref, _guard(ref, target), False)
        with self._lock:
            self._refs.setdefault(ref, spec)
        return self._refs[ref]

    def load_entry_points(self) -> list[str]:
        """Register the actions of installed plugins (entry-point group ``wfctl.actions``).

        Each entry point's name is the action type and its value a callable. A plugin that
        fails to load, is not callable, or tries to replace a built-in does not stop wfctl:
        it is skipped with a warning (logged and returned); a broken one is registered so
        that using it fails the step with a clear ActionError.
        """
        warnings: list[str] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._specs:
                warnings.append(f"plugin action '{ep.name}' ({ep.value}) ignored: the name is already taken")
                continue
            try:
                fn = ep.load()
                if not callable(fn):
                    raise TypeError(f"{ep.value} is not callable")
            except Exception as exc:
                reason = f"plugin {ep.value} failed to load: {type(exc).__name__}: {one_line(str(exc))}"
                warnings.append(f"action '{ep.name}': {reason}")
                self._specs[ep.name] = ActionSpec(ep.name, _broken(ep.name, reason), False)
                continue
            self.register(ep.name, fn)
        for line in warnings:
            _logger.warning(line)
        return warnings


def default_registry(*, plugins: bool = True) -> ActionRegistry:
    """A fresh registry with the built-in actions and (unless ``plugins=False``) installed plugins."""
    from .builtin import fail, log, set_variables, sleep
    from .http import http_request

    registry = ActionRegistry()
    registry.register("set_variables", set_variables, pure=True, raw_params=("variables",))
    registry.register("log", log, pure=True)
    registry.register("sleep", sleep, pure=True)
    registry.register("fail", fail, pure=True)
    registry.register("http_request", http_request)
    if plugins:
        registry.load_entry_points()
    return registry
