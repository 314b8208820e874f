"""The workflow definition model: tale's JSON schema as pydantic models.

Attributes are snake_case (``slug``, ``step_type``, ``next_steps``, ``retry_policy``); the
tale names (``stepSlug``, ``stepType``, ``nextSteps``, ``retryPolicy``) are the aliases used
for loading and by :meth:`Definition.to_tale`. The models check shapes and types only; the
semantic checks (ports, targets, reachability, templates, ...) live in
:mod:`wfctl.definitions.validation`.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    field_validator,
    model_validator,
)

#: The ports each step type emits. tale never emits failure/error ports: a failing step fails the run.
PORTS: dict[str, tuple[str, ...]] = {
    "start": ("success",),
    "trigger": ("success",),
    "llm": ("success",),
    "condition": ("true", "false"),
    "action": ("success",),
    "loop": ("loop", "done"),
    "output": ("success",),
}

#: The step types tale knows, in the order of :data:`PORTS`.
STEP_TYPES: tuple[str, ...] = tuple(PORTS)

#: A ``nextSteps`` target that ends the run (checked before any step lookup).
NOOP = "noop"

#: The default inactivity timeout of a run: 6 hours, in milliseconds.
DEFAULT_TIMEOUT_MS = 6 * 60 * 60 * 1000

#: The default most steps one run may execute (``config.maxSteps``, a wfctl extension).
DEFAULT_MAX_STEPS = 10_000


#: A definition id: 1 to 128 ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a
#: letter or a digit, without ``..`` (ids name files, appear in execution ids' routing and on
#: one output line).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ID_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'"


def definition_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid definition id (one line), or None when it is."""
    if not isinstance(value, str):
        return f"the id must be a string, got {type(value).__name__}"
    if ID_PATTERN.fullmatch(value) and ".." not in value:
        return None
    shown = repr(value[:40])[1:-1] + ("..." if len(value) > 40 else "")
    size = f" ({len(value)} characters)" if len(value) > 40 else ""
    return f"invalid definition id '{shown}'{size}: use {ID_RULE}"


def _integral(value: float) -> float | int:
    return int(value) if value.is_integer() else value


# A finite JSON number; integral values stay ints so a definition round-trips unchanged.
Number = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_integral), PlainSerializer(lambda v: v)]


def _absent(value: Any) -> bool:
    return value is None


def _optional(alias: str | None = None) -> Any:
    """An optional field: None when absent, and left out of ``to_tale()`` then."""
    return Field(None, alias=alias, exclude_if=_absent)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True, extra="ignore")


class RetryPolicy(_Model):
    """tale's ``retryPolicy``: ``maxRetries`` extra attempts, exponential backoff from ``backoffMs``."""

    max_retries: int = Field(0, alias="maxRetries", ge=0)
    backoff_ms: Number = Field(0, alias="backoffMs", ge=0)


class SecretRef(_Model):
    """A ``config.secrets`` entry: the environment variable that holds the secret's value."""

    env_var: str = Field(alias="envVar", min_length=1)


class WorkflowConfig(_Model):
    """The definition's ``config``. Unknown keys are kept (and dumped back by ``to_tale``)."""

    model_config = ConfigDict(extra="allow")

    timeout: Number = Field(DEFAULT_TIMEOUT_MS, gt=0)
    retry_policy: RetryPolicy | None = _optional("retryPolicy")
    variables: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    models: list[Any] | None = _optional()
    max_steps: int | None = Field(None, alias="maxSteps", gt=0, exclude_if=_absent)


class Step(_Model):
    """One step. ``order`` defaults to the step's index in the ``steps`` array."""

    slug: str = Field(alias="stepSlug")
    name: str
    step_type: str = Field(alias="stepType")
    description: str | None = _optional()
    order: Number = 0
    config: dict[str, Any] = Field(default_factory=dict)
    next_steps: dict[str, str] = Field(default_factory=dict, alias="nextSteps")


class Definition(_Model):
    """A workflow definition. Steps are sorted by ``order`` (stable); ``source`` is the file it came from.

    Unknown top-level keys (``enabled``, ``installed``, ...) are ignored.
    """

    id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = _optional()
    version: str = "1.0.0"
    config: WorkflowConfig = Field(default_factory=WorkflowConfig)
    metadata: dict[str, Any] | None = _optional()
    requires: dict[str, Any] | None = _optional()
    steps: list[Step]

    @model_validator(mode="before")
    @classmethod
    def _default_orders(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            steps = [
                {**s, "order": i} if isinstance(s, dict) and s.get("order") is None else s
                for i, s in enumerate(data["steps"])
            ]
            data = {**data, "steps": steps}
        return data

    @field_validator("steps")
    @classmethod
    def _sort_steps(cls, steps: list[Step]) -> list[Step]:
        return sorted(steps, key=lambda s: s.order)

    _source: str | None = PrivateAttr(None)
    _content_hash: str | None = PrivateAttr(None)

    @property
    def source(self) -> str | None:
        """The path the definition was loaded from, as given to the loader (None if unknown)."""
        return self._source

    @property
    def content_hash(self) -> str | None:
        """The catalog version this object stands for (its content hash), None outside the engine."""
        return self._content_hash

    def pin(self, content_hash: str) -> "Definition":
        """Record the catalog version this object stands for; returns the object."""
        self._content_hash = content_hash
        return self

    @cached_property
    def _index(self) -> dict[str, Step]:
        index: dict[str, Step] = {}
        for s in self.steps:
            index.setdefault(s.slug, s)
        return index

    @classmethod
    def from_tale(cls, data: Any, source: str | None = None) -> Definition:
        """Validate tale JSON data (raises pydantic's ValidationError) and record where it came from."""
        definition = cls.model_validate(data)
        definition._source = source
        return definition

    def step(self, slug: str) -> Step | None:
        """The step called ``slug`` (the first one, if slugs repeat), or None."""
        return self._index.get(slug)

    @cached_property
    def _first(self) -> Step | None:
        for s in self.steps:
            if s.step_type in ("start", "trigger"):
                return s
        return self.steps[0] if self.steps else None

    def first_step(self) -> Step | None:
        """Where a run starts: the first ``start`` or ``trigger`` step by order, else the first step."""
        return self._first

    def trigger(self) -> Step | None:
        """The first ``trigger`` step by order, or None."""
        return next((s for s in self.steps if s.step_type == "trigger"), None)

    def to_tale(self) -> dict[str, Any]:
        """The definition as tale JSON (by alias; absent optional fields left out), e.g. for storing."""
        return self.model_dump(by_alias=True)
