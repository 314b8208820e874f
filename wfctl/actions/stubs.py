"""Stubs: canned results for action types wfctl cannot run itself (tale's platform actions).

Stub file format (YAML or JSON; ``--stubs FILE``)::

    # action type -> operation (the call's parameters.operation) -> result
    customer:
      create:                          # 1. a literal result: any JSON value. Its strings are
        _id: "cust_{{params.externalId}}"  #    templates, rendered against the run's variables
        created: true                  #    plus `params` (the rendered call parameters).
      query:                           # 2. cases: the first whose `when` (a JEXL expression over
        - when: "params.externalId == 'c-1'"   # the variables plus `params`) is truthy wins;
          result: {items: [{_id: cust_1}]}     # a case without `when` always matches.
        - when: "params.externalId == 'boom'"  # a case with `error` (a template string)
          error: "customer {{params.externalId}} is locked"  # fails the call instead
        - result: {items: []}
    integration:
      list_customers:                  # 3. a sequence: the next result on each call, counted per
        sequence:                      #    (execution, type, operation); the last one repeats.
          - {data: [{id: 1}], pagination: {hasNextPage: true}}
          - {data: [{id: 2}], pagination: {hasNextPage: false}}
      "*": {ok: true}                  # `*`: any other operation of this type

A result is a *cases* list only when every element is a mapping with exactly one of
``result`` or ``error`` and no keys other than ``when``, ``result`` and ``error``; it is a
*sequence* only when it is a mapping whose single key is ``sequence`` (a non-empty list);
anything else is a literal. Case results and sequence elements are literals (not nested
cases or sequences); to return a literal that looks like cases or a sequence, wrap it as one
case: ``[{result: <literal>}]``. A matching ``error`` case fails the call with that message
(the step is then retried under its retry policy, like a real platform failure).

A duplicate key or a YAML alias (``*name``) in a stub file is an error naming it.

A call with no ``operation`` parameter uses ``*``. A stubbed type with no matching operation
fails the step, naming the type, the operation and the stub file. Sequence counters live in
memory (per :class:`StubSet`), so they restart when the process restarts. Stubs are never
pure: the engine treats a stubbed call as a side effect, like the real platform call.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ..errors import ActionError, InputError, WfctlError
from ..jsoninput import reject_non_finite
from ..strictload import load_json, load_yaml
from .registry import ActionContext, one_line

ANY_OPERATION = "*"
_CASE_KEYS = frozenset({"when", "result", "error"})


def _is_cases(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(c, dict) and ("result" in c) != ("error" in c) and set(c) <= _CASE_KEYS
                    for c in value))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"sequence"}


class StubSet:
    """Canned action results by action type and operation (see the module docstring)."""

    def __init__(self, stubs: dict[str, dict[str, Any]], source: str):
        self._stubs = stubs
        self.source = source
        self._positions: dict[tuple[Any, str, str], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> "StubSet":
        """Read a stub file (YAML, or JSON for ``.json``); InputError naming the file when malformed."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read stub file: {one_line(str(exc))}") from None
        try:
            data = load_json(text) if path.suffix.lower() == ".json" else load_yaml(text, dates=False)
        except (ValueError, yaml.YAMLError, RecursionError) as exc:
            raise InputError(f"{path}: invalid stub file: {one_line(str(exc), 200)}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<stubs>") -> "StubSet":
        """Build a stub set from parsed data; InputError naming ``source`` when malformed."""
        if not isinstance(data, dict):
            raise InputError(f"{source}: a stub file must map action types to operations")
        stubs: dict[str, dict[str, Any]] = {}
        for action_type, operations in data.items():
            if not isinstance(action_type, str) or not isinstance(operations, dict):
                raise InputError(f"{source}: stubs for {action_type!r} must map operations to results")
            for operation, result in operations.items():
                _validate(result, f"{source}: {action_type}.{operation}")
                reject_non_finite(result, f"{source}: {action_type}.{operation}")
            stubs[action_type] = {str(op): result for op, result in operations.items()}
        return cls(stubs, source)

    def has(self, action_type: str) -> bool:
        """True when the stub set has results for ``action_type``."""
        return action_type in self._stubs

    def types(self) -> list[str]:
        """The stubbed action types, sorted."""
        return sorted(self._stubs)

    def covered(self) -> set[tuple[str, str]]:
        """The (action type, operation) pairs this file answers; operation ``*`` covers all."""
        return {(t, op) for t, ops in self._stubs.items() for op in ops}

    def action(self, action_type: str) -> Callable[[dict, ActionContext], Any]:
        """The action function that answers calls of ``action_type`` from this stub set."""

        def stub(params: dict, ctx: ActionContext) -> Any:
            return self.call(action_type, params, ctx)

        stub.__name__ = f"stub_{action_type}"
        return stub

    def call(self, action_type: str, params: Mapping[str, Any], ctx: ActionContext) -> Any:
        """The stubbed result of one call (rendered); ActionError when nothing matches."""
        operations = self._stubs.get(action_type)
        if operations is None:
            raise ActionError(f"no stubs for action type '{action_type}' in {self.source}")
        operation = params.get("operation")
        key = operation if isinstance(operation, str) and operation in operations else ANY_OPERATION
        if key not in operations:
            label = operation if operation is not None else "(none)"
            raise ActionError(f"no stub for action '{action_type}' operation '{label}' in {self.source}")
        spec = operations[key]
        context = {**ctx.variables, "params": dict(params)}
        where = f"stub {action_type}.{key} in {self.source}"
        if _is_sequence(spec):
            items = spec["sequence"]
            slot = (ctx.execution_id, action_type, key)
            with self._lock:
                index = self._positions.get(slot, 0)
                self._positions[slot] = index + 1
            result = items[min(index, len(items) - 1)]
        elif _is_cases(spec):
            case = self._match(spec, context, where, operation)
            if "error" in case:
                raise ActionError(one_line(str(_render(case["error"], context, where))))
            result = case["result"]
        else:
            result = spec
        return _render(result, context, where)

    def _match(self, cases: list, context: dict, where: str, operation: Any) -> dict:
        from ..expressions import evaluate, truthy

        for index, case in enumerate(cases):
            if "when" not in case:
                return case
            try:
                if truthy(evaluate(case["when"], context)):
                    return case
            except WfctlError as exc:
                raise ActionError(f"{where}: case {index + 1}: {one_line(str(exc))}") from exc
        raise ActionError(f"{where}: no case matches operation '{operation}'")


def _validate(result: Any, where: str) -> None:
    if _is_sequence(result):
        items = result["sequence"]
        if not isinstance(items, list) or not items:
            raise InputError(f"{where}: sequence must be a non-empty list of results")
    elif _is_cases(result):
        from ..expressions import compile_expression

        for index, case in enumerate(result):
            when = case.get("when")
            if "when" in case and not isinstance(when, str):
                raise InputError(f"{where}: case {index + 1}: when must be a JEXL expression string")
            if "error" in case and not isinstance(case["error"], str):
                raise InputError(f"{where}: case {index + 1}: error must be a message string")
            if isinstance(when, str):
                try:
                    compile_expression(when)
                except WfctlError as exc:
                    raise InputError(f"{where}: case {index + 1}: {one_line(str(exc))}") from None


def _render(result: Any, context: dict, where: str) -> Any:
    from ..expressions import render_value, to_json_value

    try:
        return to_json_value(render_value(copy.deepcopy(result), context))
    except WfctlError as exc:
        raise ActionError(f"{where}: {one_line(str(exc))}") from exc
