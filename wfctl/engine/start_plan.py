"""What every start of a definition shares, computed once per definition (:class:`StartPlan`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..store.payload import JsonTemplate, encode

if TYPE_CHECKING:  # the definition model (pydantic) is imported on first use: status/list never need it
    from ..definitions import Definition


@dataclass(frozen=True, slots=True)
class StartPlan:
    """A definition's start plan: the run timeout, the version every run of the plan is pinned
    to (the definition's content hash) and, when the initial state is a pure function of the
    input and the execution id, its JSON template (:class:`~wfctl.store.payload.JsonTemplate`,
    checked against the interpreter's own ``new_run``) with ``current``, its first step. Without
    a template (the definition declares secrets, which are resolved and encrypted per run), each
    start's state is built by ``new_run``.
    """

    definition: Definition
    timeout_s: float
    version: str | None
    template: JsonTemplate | None = None
    current: str | None = None

    @classmethod
    def build(cls, d: Definition, interpreter: Any) -> "StartPlan":
        plan = cls(d, d.config.timeout / 1000.0, d.content_hash)
        if getattr(d.config, "secrets", None):
            return plan

        def make(input: Any, execution_id: str) -> dict[str, Any]:
            return interpreter.new_run(d, input, execution_id).to_dict()

        template = JsonTemplate.build(make)
        if template is None:  # not a pure function of (input, id): build it per start
            return plan
        return replace(plan, template=template, current=make({}, "00-" + "0" * 32).get("current"))

    def initial(self, interpreter: Any, input: Any, input_json: tuple[str | None, int],
                execution_id: str) -> tuple[tuple[str | None, int], str | None]:
        """The initial state of run ``execution_id`` as ``(JSON text, UTF-8 size)``, and its first step."""
        if self.template is None:
            state = interpreter.new_run(self.definition, input, execution_id).to_dict()
            return encode(state, f"state of run {execution_id}", sys.maxsize), state.get("current")
        return self.template.fill(input_json, execution_id), self.current
