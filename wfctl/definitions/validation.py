"""Semantic checks of a parsed definition: errors (the definition cannot run as written) and warnings.

Every finding is an :class:`Issue` that prints on one line as
``file: step 'slug': field: message`` (without the step part for definition-level issues).
Schema errors from pydantic are translated into the same shape by :func:`schema_issues`.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field as dataclass_field
from pathlib import PurePath
from typing import Any, Collection, Iterator

from pydantic import ValidationError

from ..errors import ExpressionError
from .model import NOOP, PORTS, STEP_TYPES, Definition, RetryPolicy, Step

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

#: Names every template and condition can read (besides loop ``itemVariable``/``indexVariable`` aliases).
KNOWN_ROOTS: tuple[str, ...] = (
    "input", "config", "variables", "steps", "lastOutput", "loop", "secrets", "now", "nowMs",
    "executionId", "wfDefinitionId", "rootWfDefinitionId", "organizationId", "userId",
)
#: Only templates have these; in a condition expression they are undefined.
TEMPLATE_ONLY_ROOTS = frozenset({"now", "nowMs"})

#: Used when :mod:`wfctl.actions` cannot be imported.
FALLBACK_ACTIONS = frozenset({"set_variables", "http_request", "log", "sleep", "fail"})
FALLBACK_PLATFORM_ACTIONS = frozenset({
    "customer", "product", "conversation", "document", "integration", "rag", "workflow_processing_records",
    "approval", "onedrive", "crawler", "website",
})

# Ports people write expecting a fallback or failure handling; tale only emits the ports in PORTS.
_FAILURE_PORTS = frozenset({"default", "failure", "error", "fail", "failed", "catch"})
_ACTION_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*$")
_ARTICLE = {"action": "an", "output": "an", "llm": "an"}
# A stub file's operation wildcard (wfctl.actions.stubs.ANY_OPERATION), like None.
_ANY_OPERATION = "*"


def one_line(text: str) -> str:
    """``text`` with its line breaks replaced by spaces."""
    return " ".join(text.splitlines()) if text else text


@dataclass(frozen=True)
class Issue:
    """One finding about a definition; ``str()`` is ``file: step 'slug': field: message`` on one line.

    ``source`` is the path as given (the printed line uses its base name); ``step`` and
    ``field`` are None for definition-level and file-level issues.
    """

    source: str | None
    step: str | None
    field: str | None
    message: str
    severity: str = "error"

    def __post_init__(self) -> None:
        for name in ("step", "field", "message"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, one_line(value))

    def __str__(self) -> str:
        return self.format(PurePath(self.source).name if self.source else None)

    def format(self, file_label: str | None) -> str:
        """The one-line text with ``file_label`` naming the file (e.g. a path relative to a folder)."""
        parts = [file_label] if file_label else []
        if self.step is not None:
            parts.append(f"step '{self.step}'")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return one_line(": ".join(parts))


@dataclass
class ValidationReport:
    """The result of validating one file: ``definition`` is None when it could not be loaded."""

    source: str | None
    definition_id: str | None
    definition: Definition | None
    errors: list[Issue] = dataclass_field(default_factory=list)
    warnings: list[Issue] = dataclass_field(default_factory=list)


def field_path(parts: Collection[Any]) -> str:
    """A location as ``config.parameters.items[0]`` (odd keys quoted: ``headers["X-Id"]``)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


# --- schema errors --------------------------------------------------------------------------------

def value_kind(value: Any) -> str:
    """A short description of a JSON value for messages: ``number 3``, ``string 'x'``, ``array``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _describe(error: dict) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    expected = {
        "string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
        "float_type": "a number", "bool_type": "a boolean", "dict_type": "an object",
        "model_type": "an object", "model_attributes_type": "an object", "list_type": "an array",
    }.get(kind)
    if expected:
        return f"must be {expected}, got {value_kind(value)}"
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        minimum = ctx.get("min_length")
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters (got {len(value)})"
    if kind == "greater_than":
        return f"must be greater than {_number(ctx.get('gt'))}, got {value_kind(value)}"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx.get('ge'))}, got {value_kind(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {value_kind(value)}"
    return str(error.get("msg", kind))


def schema_issues(exc: ValidationError, data: Any, source: str | None, prefix: tuple = (),
                  step: str | None = None) -> list[Issue]:
    """Translate pydantic errors into one-line issues.

    ``data`` is the validated input: a ``steps[i]`` location is reported as that step's slug
    when it has one. ``prefix`` and ``step`` place errors of a nested value (a step's
    ``config.retryPolicy``).
    """
    issues = []
    for error in exc.errors(include_url=False):
        loc, where = tuple(error["loc"]), step
        if not prefix and len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            raw = data["steps"][loc[1]]
            slug = raw.get("stepSlug") if isinstance(raw, dict) else None
            if isinstance(slug, str) and slug:
                where, loc = slug, loc[2:]
        issues.append(Issue(source, where, field_path(prefix + loc) or None, _describe(error)))
    return issues


# --- semantic checks ------------------------------------------------------------------------------

@functools.cache
def _default_actions() -> tuple[frozenset[str], frozenset[str]]:
    try:
        from ..actions import TALE_PLATFORM_ACTIONS, default_registry
    except ImportError:
        return FALLBACK_ACTIONS, FALLBACK_PLATFORM_ACTIONS
    return frozenset(default_registry().names()), frozenset(TALE_PLATFORM_ACTIONS)


def _strings(value: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    """Every string in a JSON value (dict keys included) with its location."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield path + (key,), key
            yield from _strings(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, path + (i,))


def _non_finite(value: Any, path: tuple) -> Iterator[tuple[tuple, float]]:
    """Every NaN or +-Infinity in a JSON value, with its location."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, path + (i,))


def _close(word: str, candidates: Collection[str]) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


class _Checker:
    def __init__(self, definition: Definition, known_actions: Collection[str], platform_actions: Collection[str],
                 stubbed: Collection[tuple[str, str | None]] | None, policy: Any = None):
        self.definition = definition
        self.policy = policy
        self.source = definition.source
        self.known_actions = known_actions
        self.platform_actions = platform_actions
        self.stubbed = stubbed
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self._warned: set[tuple] = set()
        self.config_names = set(definition.config.variables)
        self.set_names = self._set_variable_names()
        self.roots = set(KNOWN_ROOTS)
        for s in definition.steps:
            if s.step_type == "loop":
                for key in ("itemVariable", "indexVariable"):
                    name = s.config.get(key)
                    if isinstance(name, str) and name:
                        self.roots.add(name)

    def error(self, step: str | None, field: str | None, message: str) -> None:
        self.errors.append(Issue(self.source, step, field, message, "error"))

    def warn(self, step: str | None, field: str | None, message: str) -> None:
        if (step, field, message) not in self._warned:
            self._warned.add((step, field, message))
            self.warnings.append(Issue(self.source, step, field, message, "warning"))

    def _set_variable_names(self) -> dict[str, set[str]]:
        """The names set_variables steps write: plain ones under ``variables``, secure ones under ``secrets``."""
        names: dict[str, set[str]] = {"variables": set(), "secrets": set()}
        for s in self.definition.steps:
            if s.step_type == "action" and s.config.get("type") == "set_variables":
                params = s.config.get("parameters")
                entries = params.get("variables") if isinstance(params, dict) else None
                for entry in entries if isinstance(entries, list) else ():
                    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                        names["secrets" if entry.get("secure") else "variables"].add(entry["name"])
        return names

    def run(self) -> None:
        steps = self.definition.steps
        if not steps:
            self.warn(None, "steps", "no steps: a run completes at once")
            return
        for slug, count in Counter(s.slug for s in steps).items():
            if count > 1:
                self.error(slug, "stepSlug", f"'{slug}' is used by {count} steps; step slugs must be unique")
        for s in steps:
            self.check_step(s)
        self.check_graph()
        self.check_finite()

    # per step

    def check_step(self, s: Step) -> None:
        if not SLUG_PATTERN.match(s.slug):
            self.error(s.slug, "stepSlug",
                       f"must match {SLUG_PATTERN.pattern} (lowercase letters, digits, '_' and '-')")
        ports = PORTS.get(s.step_type)
        if ports is None:
            self.error(s.slug, "stepType", f"unknown step type '{s.step_type}' (expected one of "
                                           f"{', '.join(STEP_TYPES)}){_close(s.step_type, STEP_TYPES)}")
        self.check_next_steps(s, ports)
        if "retryPolicy" in s.config:
            self.check_retry_policy(s)
        self.check_templates(s)
        check = {"condition": self.check_condition, "loop": self.check_loop, "action": self.check_action,
                 "output": self.check_output, "trigger": self.check_trigger}.get(s.step_type)
        if check is not None:
            check(s)

    def check_next_steps(self, s: Step, ports: tuple[str, ...] | None) -> None:
        for port, target in s.next_steps.items():
            if ports is not None and port not in ports:
                message = (f"nextSteps port '{port}' is not valid for {_ARTICLE.get(s.step_type, 'a')} {s.step_type} "
                           f"step (expected {', '.join(ports)})")
                if port in _FAILURE_PORTS:
                    message += "; tale never emits this port; the step's failure fails the run"
                self.error(s.slug, None, message)
            if target != NOOP and self.definition.step(target) is None:
                slugs = [x.slug for x in self.definition.steps]
                self.error(s.slug, None,
                           f"nextSteps port '{port}' points to unknown step '{target}'{_close(target, slugs)}")
        if s.step_type == "loop" and "loop" not in s.next_steps:
            self.error(s.slug, None, "nextSteps has no 'loop' port; a loop step needs one (the first step of its body)")
        if ports is None or not s.next_steps:
            return  # empty nextSteps: the run ends after the step
        for port in ports:
            if port not in s.next_steps and port != "loop":
                self.warn(s.slug, None, f"nextSteps has no '{port}' port; the run fails when the step emits it")

    def check_retry_policy(self, s: Step) -> None:
        raw = s.config["retryPolicy"]
        try:
            RetryPolicy.model_validate(raw)
        except ValidationError as exc:
            self.errors.extend(schema_issues(exc, raw, self.source, ("config", "retryPolicy"), s.slug))

    def check_templates(self, s: Step) -> None:
        from ..expressions import compile_template

        scheduled = s.step_type == "trigger" and s.config.get("type") == "scheduled"
        for path, text in _strings(s.config, ("config",)):
            if "{{" not in text or (scheduled and path[1:2] == ("input",)):
                continue  # a schedule's input templates read slot variables: check_trigger checks them
            try:
                roots = compile_template(text).roots
            except ExpressionError as exc:
                self.error(s.slug, field_path(path), str(exc))
                continue
            for root in sorted(roots):
                if root not in self.roots:
                    self.warn(s.slug, field_path(path), self.undefined(f"'{{{{{root}}}}}'", root))

    def undefined(self, what: str, name: str) -> str:
        """The warning for a name outside every namespace, with the likeliest fix."""
        namespaces = (("config", self.config_names), *self.set_names.items())
        guesses = [f"{ns}.{name}" for ns, names in namespaces if name in names]
        if guesses:
            return f"{what} resolves to undefined; did you mean {' or '.join(guesses)}?"
        return f"{what} resolves to undefined; known names: {', '.join(sorted(self.roots, key=str.lower))}"

    def check_condition(self, s: Step) -> None:
        from ..expressions import compile_expression

        expression = s.config.get("expression")
        if expression is None or expression == "":
            self.warn(s.slug, "config.expression", "missing: the condition is always false")
            return
        if not isinstance(expression, str) or "{{" in expression:
            return  # a template: rendered (and checked as one) before it is evaluated
        try:
            roots = compile_expression(expression).roots
        except ExpressionError as exc:
            self.error(s.slug, "config.expression", str(exc))
            return
        for root in sorted(roots):
            if root in TEMPLATE_ONLY_ROOTS:
                self.warn(s.slug, "config.expression", f"'{root}' is only available in templates, "
                                                       f"not in condition expressions; write {{{{{root}}}}}")
            elif root not in self.roots:
                self.warn(s.slug, "config.expression", self.undefined(f"'{root}'", root))

    def check_loop(self, s: Step) -> None:
        if "items" not in s.config:
            self.error(s.slug, "config.items", "is required: the array (or a template resolving to one) to loop over")
        limit = s.config.get("maxIterations")
        if "maxIterations" in s.config and not (
            (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0)
            or (isinstance(limit, str) and "{{" in limit)
        ):
            self.error(s.slug, "config.maxIterations", f"must be a positive integer, got {value_kind(limit)}")

    def check_action(self, s: Step) -> None:
        params = s.config.get("parameters")
        if params is not None and not isinstance(params, dict) and not (isinstance(params, str) and "{{" in params):
            self.error(s.slug, "config.parameters", f"must be an object, got {value_kind(params)}")
        kind = s.config.get("type")
        if kind is None or kind == "":
            self.error(s.slug, "config.type", "is required: an action type (built-in or plugin), "
                                              "a module:function reference or a tale platform type")
        elif not isinstance(kind, str):
            self.error(s.slug, "config.type", f"must be a string, got {value_kind(kind)}")
        elif kind in self.known_actions:
            return
        elif ":" in kind:
            if not _ACTION_REF.match(kind):
                self.error(s.slug, "config.type", f"invalid action reference '{kind}': expected module:function")
            elif not (self.policy.allows(kind) or any(t == kind for t, _ in self.stubbed or ())):
                from ..actions.policy import not_allowed_message

                self.error(s.slug, "config.type", not_allowed_message(kind))
        elif kind in self.platform_actions:
            self.check_stub(s, kind)
        else:
            known, platform = sorted(self.known_actions), sorted(self.platform_actions)
            self.error(s.slug, "config.type",
                       f"unknown action type '{kind}'{_close(kind, known + platform)} (actions: {', '.join(known)}; "
                       f"tale platform types: {', '.join(platform)}; or a module:function reference)")

    def check_stub(self, s: Step, kind: str) -> None:
        if self.stubbed is None:
            return
        params = s.config.get("parameters")
        operation = params.get("operation") if isinstance(params, dict) else None
        if not isinstance(operation, str):
            operation = None
        if {(kind, None), (kind, _ANY_OPERATION), (kind, operation)} & set(self.stubbed):
            return
        what = f"'{kind}' operation '{operation}'" if operation else f"'{kind}'"
        self.warn(s.slug, "config.type", f"tale platform action {what} has no stub; the step fails when it runs")

    def check_trigger(self, s: Step) -> None:
        from ..schedules.spec import ScheduleSpec, ScheduleSpecError, is_scheduled_trigger, trigger_warnings

        if not is_scheduled_trigger(s.step_type, s.config):
            return
        try:
            ScheduleSpec.from_trigger(self.definition.id, s.config)
        except ScheduleSpecError as exc:
            for field, message in exc.issues:
                self.error(s.slug, field, message)
        for field, message in trigger_warnings(s.config):
            self.warn(s.slug, field, message)
        first = next(x for x in self.definition.steps if is_scheduled_trigger(x.step_type, x.config))
        if first is not s:
            self.warn(s.slug, "config.type", f"only the first scheduled trigger ('{first.slug}') sets the "
                                             "definition's schedule; this one is ignored")

    def check_output(self, s: Step) -> None:
        if "outputMapping" in s.config:
            self.warn(s.slug, "config.outputMapping", "deprecated; use mapping")
        mapping = s.config.get("mapping")
        if "mapping" in s.config and not isinstance(mapping, dict):
            self.error(s.slug, "config.mapping",
                       f"must be an object whose values are templates, got {value_kind(mapping)}")

    def check_finite(self) -> None:
        """NaN and +-Infinity (YAML's ``.nan``/``.inf``, Python-lenient JSON) are not JSON values."""
        places = [(None, ("config", "variables"), self.definition.config.variables)]
        places += [(s.slug, ("config",), s.config) for s in self.definition.steps]
        for step, path, value in places:
            for where, number in _non_finite(value, path):
                text = "NaN" if number != number else "Infinity" if number > 0 else "-Infinity"
                self.error(step, field_path(where), f"{text} is not a finite number; JSON has no NaN or Infinity")

    # the step graph

    def edges(self, s: Step) -> list[str]:
        """The targets the ports a step can emit lead to (all ports for an unknown step type)."""
        ports = PORTS.get(s.step_type)
        return [t for p, t in s.next_steps.items() if ports is None or p in ports]

    def reachable(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for target in self.edges(self.definition.step(todo.pop())):
                if target not in seen and self.definition.step(target) is not None:
                    seen.add(target)
                    todo.append(target)
        return seen

    def check_graph(self) -> None:
        first = self.definition.first_step()
        reached = self.reachable(first.slug)
        steps = [self.definition.step(slug) for slug in reached]
        dangling = any(t != NOOP and self.definition.step(t) is None for s in steps for t in self.edges(s))
        if not dangling and not any(not s.next_steps or NOOP in self.edges(s) for s in steps):
            self.error(None, "steps", f"no path from the first step '{first.slug}' reaches an end (a 'noop' target "
                                      "or a step with empty nextSteps): every run loops forever or fails")
        else:
            self.check_closed_cycles(reached)
        for s in self.definition.steps:
            if s.slug == NOOP and s is not first:
                self.warn(s.slug, "stepSlug", "a step named 'noop' never runs: a nextSteps target 'noop' ends the run")
            elif s.slug not in reached:
                self.warn(s.slug, None, f"unreachable: no path from the first step '{first.slug}' leads here")
            if s.step_type == "loop" and "loop" in s.next_steps:
                self.check_loop_body(s, s.next_steps["loop"])

    def check_closed_cycles(self, reached: set[str]) -> None:
        """Warn about each cycle (strongly connected steps) that no port leaves and nothing in it ends."""
        order = {s.slug: i for i, s in enumerate(self.definition.steps)}
        for component in _cycles({slug: [t for t in self.edges(self.definition.step(slug)) if t in reached]
                                  for slug in reached}):
            if not any(self.leaves(self.definition.step(slug), component) for slug in component):
                slugs = sorted(component, key=order.__getitem__)
                self.warn(slugs[0], "nextSteps", f"steps {', '.join(repr(x) for x in slugs)} form a cycle that no "
                                                 "port leaves: a run that gets here never ends and fails at its "
                                                 "step limit (config.maxSteps)")

    def leaves(self, s: Step, component: set[str]) -> bool:
        """True when a port of ``s`` ends the run or leads out of ``component`` (a missing port fails the run)."""
        ports = PORTS.get(s.step_type)
        if ports is None or any(p not in s.next_steps for p in ports):
            return True
        return any(t not in component for t in self.edges(s))

    def check_loop_body(self, s: Step, body: str) -> None:
        if body == NOOP:
            self.error(s.slug, None, "nextSteps port 'loop' targets 'noop': the run ends at the first item")
        elif self.definition.step(body) is not None and s.slug not in self.reachable(body):
            self.error(s.slug, None, f"loop body starting at '{body}' never returns to loop '{s.slug}'")


def _cycles(graph: dict[str, list[str]]) -> list[set[str]]:
    """The strongly connected components of ``graph`` that hold a cycle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(component)
    return found


def validate_definition(
    definition: Definition,
    *,
    known_actions: Collection[str] | None = None,
    platform_actions: Collection[str] | None = None,
    stubbed: Collection[tuple[str, str | None]] | None = None,
    policy: Any = None,
) -> tuple[list[Issue], list[Issue]]:
    """Check a parsed definition; returns ``(errors, warnings)``.

    ``known_actions`` are the action types that run locally (built-ins and plugins) and
    ``platform_actions`` tale's platform types; both default to what :mod:`wfctl.actions`
    provides. With ``stubbed`` ((type, operation) pairs a stub file covers; operation None =
    any), platform actions without a stub are warned about. ``policy`` (an
    :class:`~wfctl.actions.ActionPolicy`; default: the one ``$WFCTL_ALLOW_MODULES`` gives) says
    which ``module:function`` references are allowed; any other is an error.
    """
    if policy is None:
        from ..actions.policy import ActionPolicy

        policy = ActionPolicy.resolve()
    if known_actions is None or platform_actions is None:
        default_known, default_platform = _default_actions()
        known_actions = default_known if known_actions is None else known_actions
        platform_actions = default_platform if platform_actions is None else platform_actions
    checker = _Checker(definition, known_actions, platform_actions, stubbed, policy)
    checker.run()
    return checker.errors, checker.warnings
