"""What each step type does. A handler gets the step and its context and returns an Outcome.

Handlers never touch storage or the run state: the machine merges their outcome into a new state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import StepError
from . import loops

if TYPE_CHECKING:  # pragma: no cover
    from .machine import StepContext

UNCHANGED = object()

# Step types that are safe to re-run: no effect outside the run state.
PURE_STEP_TYPES = frozenset({"start", "trigger", "condition", "output", "loop"})


@dataclass(slots=True)
class Outcome:
    """A step's result before it is merged into the run state."""

    port: str
    output: dict
    variables: Mapping[str, Any] | None = None  # merged into the `variables` namespace
    loop: Any = UNCHANGED  # the new loop variable, when the step changed it
    wake_at: float | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)  # new secure values (plaintext)


def run_start(ctx: "StepContext") -> Outcome:
    """start and trigger: tale emits the same output for both."""
    return Outcome("success", {"type": "start", "data": "Workflow started"})


def run_condition(ctx: "StepContext") -> Outcome:
    """Evaluate ``config.expression`` (templated first) with JS truthiness; port true/false."""
    from ..expressions import compile_expression, truthy

    raw = ctx.config.get("expression")
    expression = ctx.render(raw) if isinstance(raw, str) and "{{" in raw else raw
    if expression is None or expression == "":
        expression = "false"
    if not isinstance(expression, str):
        expression = "true" if truthy(expression) else "false"
    passed = truthy(compile_expression(expression).evaluate(ctx.variables))
    description = f"Expression: {expression}"
    data = {
        "passed": passed,
        "description": description,
        "expression": raw if raw is not None else None,
        "message": f"Condition {'passed' if passed else 'failed'}: {description}",
    }
    return Outcome("true" if passed else "false", {"type": "condition", "data": data})


def run_output(ctx: "StepContext") -> Outcome:
    """Render ``config.mapping`` (or the deprecated ``outputMapping``): the run's output."""
    mapping = ctx.config.get("mapping")
    if mapping is None:
        mapping = ctx.config.get("outputMapping")
    data = ctx.render(mapping) if isinstance(mapping, Mapping) and mapping else None
    return Outcome("success", {"type": "output", "data": data}, variables={"__workflowOutput": data})


def run_loop(ctx: "StepContext") -> Outcome:
    """Enter, advance or leave a loop (see :mod:`wfctl.interpreter.loops`)."""
    current = ctx.variables.get("loop")
    starting = not (loops.in_progress(current) and current.get("ownerStepSlug") == ctx.slug)
    items = None
    if starting:
        if "items" not in ctx.config:
            raise StepError(f"loop '{ctx.slug}': config.items is required")
        items = ctx.config["items"]
        if isinstance(items, str):
            items = ctx.render(items)
    config = ctx.config
    if "maxIterations" in config and isinstance(config["maxIterations"], str):
        config = {**config, "maxIterations": ctx.render(config["maxIterations"])}
    port, frame, data = loops.run_loop(ctx.slug, config, items, current)
    return Outcome(port, {"type": "loop", "data": data}, loop=frame)


def run_action(ctx: "StepContext") -> Outcome:
    """Run the action named by ``config.type`` through the registry (or a stub)."""
    from ..actions import ActionContext, ActionResult

    action_type = ctx.config.get("type")
    if not isinstance(action_type, str) or not action_type:
        raise StepError(f"action step '{ctx.slug}': config.type is required")
    spec = ctx.interpreter.registry.get(action_type, ctx.interpreter.stubs, ctx.interpreter.policy)
    params = ctx.config.get("parameters")
    if params is None:
        params = {}
    if action_type != "set_variables":  # set_variables renders its entries one by one itself
        params = ctx.render(params)
    else:
        ctx.note_derived(params)
    if not isinstance(params, Mapping):
        kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
        kind = "null" if params is None else kinds.get(type(params), type(params).__name__)
        raise StepError(f"config.parameters must be an object, got {kind}")
    action_ctx = ActionContext(
        execution_id=ctx.variables.get("executionId"),
        definition_id=ctx.variables.get("wfDefinitionId"),
        step_slug=ctx.slug,
        attempt=ctx.attempt,
        variables=ctx.template_variables(),
        stubs=ctx.interpreter.stubs,
        now=ctx.interpreter.clock,
        log=(lambda line: ctx.interpreter.log(ctx.redact(line))) if ctx.hidden else ctx.interpreter.log,
    )
    result = spec.fn(params, action_ctx)
    wake_at = None
    secrets: Mapping[str, str] = {}
    if isinstance(result, ActionResult):
        wake_at, secrets, result = result.wake_at, result.secrets or {}, result.data
    merged = None
    if isinstance(result, Mapping) and isinstance(result.get("variables"), Mapping):
        merged = result["variables"]
        if action_type != "set_variables":
            # tale's sanitizeActionResultForOutput: merged variables leave the output data.
            result = {k: v for k, v in result.items() if k != "variables"}
    return Outcome("success", {"type": "action", "data": result}, variables=merged, wake_at=wake_at, secrets=secrets)


def run_llm(ctx: "StepContext") -> Outcome:
    """Call the configured LLM provider (offline by default) with the rendered prompts."""
    from ..llm import run_llm as call

    data = call(ctx.render(ctx.config), ctx.interpreter.llm)
    return Outcome("success", {"type": "llm", "data": data})


HANDLERS: dict[str, Callable[["StepContext"], Outcome]] = {
    "start": run_start,
    "trigger": run_start,
    "condition": run_condition,
    "output": run_output,
    "loop": run_loop,
    "action": run_action,
    "llm": run_llm,
}
