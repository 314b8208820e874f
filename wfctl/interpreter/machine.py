"""The step-at-a-time interpreter: (definition, state) -> Transition. No storage inside."""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from ..definitions import DEFAULT_MAX_STEPS
from ..errors import WfctlError
from ..expressions import use_clock
from . import loops
from .retry import effective_policy, retry_delay
from .state import COMPLETED, FAILED, RunState
from .steps import HANDLERS, PURE_STEP_TYPES, UNCHANGED, Outcome

_log = logging.getLogger("wfctl.run")


@dataclass(frozen=True, slots=True)
class Transition:
    """What one step did.

    ``state`` is the run after the step. When the step failed and may be retried,
    ``retry_in`` is the backoff in seconds and ``state`` is the unchanged input state:
    the caller runs the same step again with ``attempt + 1``. ``wake_at`` is set after a
    sleep: the next step must not start before it. ``side_effects`` says whether the step
    touched the world outside the run (the engine commits such steps as started first).
    """

    state: RunState
    slug: str | None
    step_type: str | None
    attempt: int
    port: str | None = None
    output: Any = None
    error: str | None = None
    retry_in: float | None = None
    wake_at: float | None = None
    side_effects: bool = False

    @property
    def status(self) -> str:
        """The run's status after this step (running, completed or failed)."""
        return self.state.status


class StepContext:
    """What a step handler sees: its config, the run's variables, a template renderer.

    ``hidden`` are the plaintexts this step may see but must not store (secrets, unsealed loop
    values); ``decoys`` the variables that hold them, with decoys instead (see
    :mod:`wfctl.interpreter.taint`); ``derived`` collects the strings templates compute from them.
    """

    __slots__ = ("interpreter", "slug", "config", "variables", "attempt", "_tvars", "hidden", "decoys", "derived")

    def __init__(self, interpreter: "Interpreter", slug: str, config: Mapping, variables: Mapping, attempt: int,
                 hidden: tuple[str, ...] = (), decoys: Mapping[str, Any] | None = None):
        self.interpreter = interpreter
        self.slug = slug
        self.config = config
        self.variables = variables
        self.attempt = attempt
        self._tvars: dict | None = None
        self.hidden = hidden
        self.decoys = decoys or {}
        self.derived: set[str] = set()

    def template_variables(self) -> dict:
        """The variables templates see: the run's variables plus ``now`` and ``nowMs``."""
        if self._tvars is None:
            now = self.interpreter.clock()
            stamp = datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds")
            self._tvars = {**self.variables, "now": stamp.replace("+00:00", "Z"), "nowMs": int(now * 1000)}
        return self._tvars

    def render(self, value: Any) -> Any:
        """Render every ``{{ }}`` template inside ``value`` (a fresh value; input untouched)."""
        from ..expressions import render_value

        rendered = render_value(value, self.template_variables())
        self.note_derived(value)
        return rendered

    def note_derived(self, value: Any) -> None:
        """Add to ``derived`` the strings ``value``'s templates compute from hidden values."""
        if not self.decoys:
            return
        from .taint import derived_strings

        real = self.template_variables()
        tainted = self.decoys.keys()
        self.derived |= derived_strings(value, real, {**real, **self.decoys},
                                        lambda roots: not tainted.isdisjoint(roots))

    def redact(self, value: Any) -> Any:
        """``value`` with every hidden and derived string replaced by ``***``."""
        return _redact(value, self.hidden + tuple(self.derived))


class Interpreter:
    """Executes tale workflow definitions one step at a time.

    Everything outside the run state comes in here: the action registry, stubs for tale's
    platform actions, the LLM provider, the secret box, the environment (for secrets), a
    clock (epoch seconds) and a random source (retry jitter). ``policy`` (an
    :class:`~wfctl.actions.ActionPolicy`) says which ``module:function`` actions may run;
    default: the modules ``$WFCTL_ALLOW_MODULES`` in ``env`` allows.
    """

    def __init__(
        self,
        registry=None,
        llm=None,
        secret_box=None,
        stubs=None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        log: Callable[[str], None] | None = None,
        policy=None,
    ):
        if registry is None:
            from ..actions import default_registry

            registry = default_registry()
        if llm is None:
            from ..llm import provider_from_env

            llm = provider_from_env(env if env is not None else os.environ)
        if secret_box is None:
            from ..secrets import SecretBox

            secret_box = SecretBox()
        self.registry = registry
        self.llm = llm
        self.secret_box = secret_box
        from .taint import Sealer

        self._sealer = Sealer(secret_box)
        self.stubs = stubs
        self.env = env if env is not None else os.environ
        if policy is None:
            from ..actions import ActionPolicy

            policy = ActionPolicy.resolve(env=self.env)
        self.policy = policy
        self.clock = clock or time.time
        self.rng = rng or random.Random()
        self.log = log or _log.info

    # -- runs ---------------------------------------------------------------------------
    def new_run(self, definition, input: Any = None, execution_id: str | None = None) -> RunState:
        """The state of a new run of ``definition``: tale's variable layout, first step chosen.

        Secrets declared in ``config.secrets`` are resolved from the environment here and
        stored encrypted; a missing variable raises SecretError before anything runs.
        """
        from ..secrets import resolve_secrets

        config = definition.config
        secrets = {}
        spec = _secret_spec(config)
        if spec:
            plain = resolve_secrets(spec, self.env)
            secrets = {name: self.secret_box.encrypt(value) for name, value in plain.items()}
        variables = {
            "input": input if isinstance(input, dict) else {},
            "config": dict(getattr(config, "variables", None) or {}),
            "variables": {},
            "steps": {},
            "secrets": secrets,
            "executionId": execution_id,
            "wfDefinitionId": definition.id,
            "rootWfDefinitionId": definition.id,
        }
        first = definition.first_step()
        if first is None:
            return RunState(variables, None, COMPLETED)
        return RunState(variables, first.slug)

    def is_pure(self, definition, slug: str) -> bool:
        """True when step ``slug`` is safe to re-run (no effect outside the run state)."""
        step = definition.step(slug)
        if step is None:
            return True
        if step.step_type in PURE_STEP_TYPES:
            return True
        if step.step_type == "action":
            action_type = step.config.get("type")
            return isinstance(action_type, str) and self.registry.is_pure(action_type)
        return False

    def step(self, definition, state: RunState, attempt: int = 1, max_steps: int | None = None) -> Transition:
        """Execute ``state.current`` and return the transition. ``attempt`` counts from 1.

        A run that already executed its step limit (``max_steps``, else :func:`step_limit`)
        fails instead, without running the step.
        """
        slug = state.current
        if state.finished or slug is None:
            return Transition(state, None, None, attempt)
        step = definition.step(slug)
        limit = max_steps or step_limit(definition)
        if state.steps_run >= limit:
            error = f"run exceeded its step limit of {limit} steps (config.maxSteps)"
            new = state.evolve(current=None, status=FAILED, error=error)
            return Transition(new, slug, step.step_type if step else None, attempt, error=error)
        if step is None:
            return self._fail(state, slug, None, attempt, f"Step not found: {slug}")
        pure = self.is_pure(definition, slug)
        variables, secret_values, decoys = self._reveal(state.variables)
        ctx = StepContext(self, slug, step.config, variables, attempt, secret_values, decoys)
        try:
            with use_clock(self.clock):  # daysAgo/hoursAgo/... read the interpreter's clock
                outcome = HANDLERS[step.step_type](ctx)
        except WfctlError as exc:
            message = f"step '{slug}': {exc}"
        except Exception as exc:  # an interpreter or plugin bug must not kill the worker
            message = f"step '{slug}': {type(exc).__name__}: {exc}"
        else:
            return self._advance(definition, state, step, attempt, outcome, secret_values + tuple(ctx.derived), pure)
        return self._step_failed(definition, state, step, attempt, ctx.redact(message), pure)

    def fail_step(self, definition, state: RunState, error: str, attempt: int = 1) -> Transition:
        """Give up on ``state.current`` with ``error`` (the engine calls this when it stops retrying,
        e.g. after an inactivity timeout): recovers in a ``continueOnError`` loop, else fails the run."""
        step = definition.step(state.current) if state.current else None
        if step is None:
            return self._fail(state, state.current, None, attempt, error)
        return self._give_up(definition, state, step, attempt, error, self.is_pure(definition, step.slug))

    # -- internals ------------------------------------------------------------------------
    def _reveal(self, variables: dict) -> tuple[dict, tuple[str, ...], dict]:
        """(variables with secrets decrypted and loop values unsealed, the hidden plaintexts,
        the variables holding hidden values, with decoys instead)."""
        sealed = variables.get("secrets")
        if not sealed:
            return variables, (), {}
        from .taint import decoy, is_sealed, loop_aliases

        plain = {name: self.secret_box.decrypt(token) for name, token in sealed.items()}
        hidden = list(plain.values())
        revealed = {**variables, "secrets": plain}
        decoys = {"secrets": {name: decoy(value) for name, value in plain.items()}}
        revealed["loop"], fake = self._sealer.unseal_frame(variables.get("loop"), hidden)
        if fake is not None:
            decoys["loop"] = fake
        for name in loop_aliases(variables):
            if is_sealed(variables.get(name)):
                revealed[name], decoys[name], tainted = self._sealer.unseal(variables[name])
                hidden.extend(tainted)
        if "loop" not in variables:
            del revealed["loop"]
        return revealed, tuple(hidden), decoys

    def _seal_loop(self, variables: dict, hidden) -> None:
        """Seal the hidden values in the loop variable and aliases of ``variables`` (a fresh dict, changed)."""
        from .taint import loop_aliases

        hidden = frozenset(h for h in hidden if isinstance(h, str) and h)
        if not hidden:
            return
        if "loop" in variables:
            variables["loop"] = self._sealer.seal_frame(variables["loop"], hidden)
        for name in loop_aliases(variables):
            if name in variables:
                variables[name] = self._sealer.seal(variables[name], hidden)

    def _advance(self, definition, state, step, attempt, outcome: Outcome, secret_values, pure) -> Transition:
        output = outcome.output
        merged = outcome.variables
        if secret_values or outcome.secrets:
            hidden = secret_values + tuple(outcome.secrets.values())
            output = _redact(output, hidden)
            merged = _redact(merged, hidden) if merged else merged
        old = state.variables
        variables = {**old, "steps": {**old["steps"], step.slug: {"output": output}}, "lastOutput": output}
        if merged:
            variables["variables"] = {**old["variables"], **merged}
        if outcome.secrets:
            sealed = {name: self.secret_box.encrypt(str(value)) for name, value in outcome.secrets.items()}
            variables["secrets"] = {**old.get("secrets", {}), **sealed}
        if outcome.loop is not UNCHANGED:
            variables["loop"] = outcome.loop
            loops.apply_loop_aliases(variables, old.get("loop"), outcome.loop)
            if secret_values or outcome.secrets:
                self._seal_loop(variables, secret_values + tuple(outcome.secrets.values()))
        next_slug, error = _route(definition, step, outcome.port)
        steps_run = state.steps_run + 1
        if error is not None:
            new = state.evolve(variables=variables, current=None, status=FAILED, error=error, steps_run=steps_run)
        elif next_slug is None:
            final = variables["variables"].get("__workflowOutput")
            new = state.evolve(variables=variables, current=None, status=COMPLETED, output=final, wake_at=None,
                               steps_run=steps_run)
        else:
            new = state.evolve(variables=variables, current=next_slug, wake_at=outcome.wake_at, steps_run=steps_run)
        return Transition(new, step.slug, step.step_type, attempt, outcome.port, output, error,
                          wake_at=outcome.wake_at, side_effects=not pure)

    def _step_failed(self, definition, state, step, attempt, error, pure) -> Transition:
        policy = effective_policy(step.config, getattr(definition.config, "retry_policy", None))
        delay = retry_delay(policy, attempt, self.rng)
        if delay is not None:
            return Transition(state, step.slug, step.step_type, attempt, error=error, retry_in=delay,
                              side_effects=not pure)
        return self._give_up(definition, state, step, attempt, error, pure)

    def _give_up(self, definition, state, step, attempt, error, pure) -> Transition:
        old = state.variables
        frame = None
        if step.step_type != "loop":  # as tale: a failing loop step itself is never recovered
            configs = {f.get("ownerStepSlug"): _step_config(definition, f.get("ownerStepSlug"))
                       for f in loops.enclosing_loops(old.get("loop"))}
            frame = loops.recovery_loop(old.get("loop"), configs)
        if frame is None:
            return self._fail(state, step.slug, step.step_type, attempt, error, pure)
        frame = loops.record_item_error(frame, step.slug, error)
        output = {"type": "error", "data": None, "error": error}
        variables = {**old, "steps": {**old["steps"], step.slug: {"output": output}}, "lastOutput": output,
                     "loop": frame}
        loops.apply_loop_aliases(variables, old.get("loop"), frame)
        new = state.evolve(variables=variables, current=frame["ownerStepSlug"], steps_run=state.steps_run + 1)
        return Transition(new, step.slug, step.step_type, attempt, output=output, error=error,
                          side_effects=not pure)

    def _fail(self, state, slug, step_type, attempt, error, pure=True) -> Transition:
        new = state.evolve(current=None, status=FAILED, error=error, steps_run=state.steps_run + 1)
        return Transition(new, slug, step_type, attempt, error=error, side_effects=not pure)


def step_limit(definition) -> int:
    """The most steps a run of ``definition`` may execute: ``config.maxSteps``, else DEFAULT_MAX_STEPS."""
    return getattr(definition.config, "max_steps", None) or DEFAULT_MAX_STEPS


def _route(definition, step, port: str) -> tuple[str | None, str | None]:
    """(next slug or None to end the run, error or None), with tale's rules."""
    next_steps = step.next_steps
    if not next_steps:
        return None, None
    target = next_steps.get(port)
    if target == "noop":
        return None, None
    if target is None:
        return None, (f"No next step for port '{port}' on step '{step.slug}'. "
                      f"Available ports: {', '.join(next_steps)}")
    if definition.step(target) is None:
        return None, f"Next step '{target}' not found in workflow steps (from '{step.slug}')"
    return target, None


def _step_config(definition, slug) -> Mapping:
    step = definition.step(slug) if slug else None
    return step.config if step is not None else {}


def _secret_spec(config) -> dict[str, dict]:
    raw = getattr(config, "secrets", None) or {}
    spec = {}
    for name, entry in raw.items():
        if isinstance(entry, Mapping):
            spec[name] = dict(entry)
        else:
            spec[name] = {"envVar": getattr(entry, "env_var", None) or getattr(entry, "envVar", None)}
    return spec


def _redact(value: Any, secret_values) -> Any:
    if not secret_values:
        return value
    from ..secrets import redact

    return redact(value, secret_values)
