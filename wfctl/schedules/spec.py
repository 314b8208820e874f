"""A definition's schedule: the ``config`` of its trigger step with ``type: scheduled``.

.. code-block:: yaml

    - stepSlug: every_night
      stepType: trigger
      config:
        type: scheduled
        schedule: "30 2 * * *"        # required: cron, 5 fields or 6 with the seconds first
        timezone: Europe/Berlin       # IANA name; default UTC
        overlap: skip                 # skip | buffer_one | buffer_all | cancel_other | allow_all
        catchupWindow: 1h             # default 1 h
        jitter: 5m                    # default 0
        input: { day: "{{slot}}" }    # the run input; default {}

Fields and defaults
-------------------
``schedule``
    A cron expression (see :mod:`wfctl.schedules.cron` for the syntax and the daylight-saving
    rules) or a macro such as ``@daily``.
``timezone``
    The IANA time zone the expression is read in (``Europe/Berlin``). Default ``UTC``.
``overlap``
    What a due slot does while the previous scheduled run is unfinished (see
    :mod:`wfctl.schedules.policy`). Default ``skip``, Temporal's default.
``catchupWindow``
    After downtime, a missed slot still starts if it is at most this late; older ones are
    skipped and counted. Default **1 hour**. Temporal's default is one year, which suits a
    cluster that is rarely down; wfctl usually runs on one machine, where downtime is a
    stopped laptop or server, and firing yesterday's runs when it comes back (under
    ``allow_all`` or ``buffer_all``: every one of them) surprises more than it helps. Set
    ``365d`` for Temporal's behaviour. Values under 10 s act as 10 s (Temporal's minimum):
    a scheduler never acts at the exact second, and a smaller window would skip on-time slots.
``jitter``
    Each slot starts up to this much later than its time; the delay is derived from
    (definition id, slot) so every scheduler computes the same one, and is kept below the gap
    to the next slot so slots stay in order. Default 0.
``input``
    The run input: a JSON object whose strings are templates that may read ``slot`` (the
    slot as an ISO 8601 UTC string), ``slotMs`` (epoch milliseconds), ``slotLocal`` (ISO 8601
    in the schedule's time zone, with its offset) and ``wfDefinitionId``. Default ``{}``.

Durations (``catchupWindow``, ``jitter``): a number is **milliseconds**, as everywhere in the
tale format (``config.timeout``, ``backoffMs``); a string needs a unit: ``500ms``, ``30s``,
``10m``, ``2h``, ``7d``, ``1w``, ``1h30m``. A unitless string (``"90"``) is rejected as
ambiguous; a negative duration is an error.

Errors are :class:`ScheduleSpecError` (a :class:`~wfctl.errors.DefinitionError`), one line
naming the field: ``config.timezone: unknown time zone 'Mars/Olympus'``.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..durations import parse_duration
from ..errors import DefinitionError, ExpressionError, InputError
from .cron import CronError, parse_cron
from .policy import Overlap, parse_overlap

if TYPE_CHECKING:
    from ..definitions.model import Definition

__all__ = [
    "DEFAULT_CATCHUP_WINDOW_S", "DEFAULT_JITTER_S", "DEFAULT_OVERLAP", "DEFAULT_TIMEZONE", "FIELDS",
    "MIN_CATCHUP_WINDOW_S", "SLOT_VARIABLES", "ScheduleSpec", "ScheduleSpecError", "is_scheduled_trigger",
    "schedule_of", "trigger_warnings",
]

DEFAULT_TIMEZONE = "UTC"
DEFAULT_OVERLAP = Overlap.SKIP
DEFAULT_CATCHUP_WINDOW_S = 3600.0
DEFAULT_JITTER_S = 0.0
#: The planner never uses a catch-up window smaller than this (Temporal's minimum).
MIN_CATCHUP_WINDOW_S = 10.0
#: The names an ``input`` template may read.
SLOT_VARIABLES = ("slot", "slotMs", "slotLocal", "wfDefinitionId")
#: The trigger config keys a scheduled trigger uses.
FIELDS = ("type", "schedule", "timezone", "overlap", "catchupWindow", "jitter", "input")


class ScheduleSpecError(DefinitionError):
    """An invalid scheduled trigger. ``issues`` lists every ``(field, message)`` found;
    ``str()`` is the first as ``field: message``."""

    def __init__(self, issues: list[tuple[str, str]]):
        self.issues = list(issues)
        self.field, self.reason = self.issues[0]
        super().__init__(f"{self.field}: {self.reason}")


def is_scheduled_trigger(step_type: str, config: Any) -> bool:
    """Whether a step is a trigger with ``type: scheduled``."""
    return step_type == "trigger" and isinstance(config, Mapping) and config.get("type") == "scheduled"


@dataclass(frozen=True)
class ScheduleSpec:
    """One definition's schedule, checked. Durations are seconds; ``input`` is the raw template."""

    definition_id: str
    cron: str
    timezone: str = DEFAULT_TIMEZONE
    overlap: Overlap = DEFAULT_OVERLAP
    catchup_window_s: float = DEFAULT_CATCHUP_WINDOW_S
    jitter_s: float = DEFAULT_JITTER_S
    input: Any = field(default=None, hash=False)

    def __post_init__(self) -> None:
        # Built directly (tests, the scheduler loop): check like from_trigger does.
        problems = _check_cron(self.cron) + _check_timezone(self.timezone)
        if self.catchup_window_s < 0 or not math.isfinite(self.catchup_window_s):
            problems.append(("config.catchupWindow", "must not be negative"))
        if self.jitter_s < 0 or not math.isfinite(self.jitter_s):
            problems.append(("config.jitter", "must not be negative"))
        if problems:
            raise ScheduleSpecError(problems)
        object.__setattr__(self, "overlap", parse_overlap(self.overlap))

    @property
    def effective_catchup_window_s(self) -> float:
        """The window the planner uses: ``catchup_window_s``, at least :data:`MIN_CATCHUP_WINDOW_S`."""
        return max(self.catchup_window_s, MIN_CATCHUP_WINDOW_S)

    @classmethod
    def from_trigger(cls, definition_id: str, config: Mapping[str, Any]) -> ScheduleSpec:
        """The schedule a scheduled trigger step's ``config`` describes.

        Raises ScheduleSpecError naming the field (``config.schedule``, ``config.timezone``,
        ``config.overlap``, ``config.catchupWindow``, ``config.jitter``, ``config.input``).
        """
        if not isinstance(config, Mapping):
            raise ScheduleSpecError([("config", f"must be an object, got {type(config).__name__}")])
        problems: list[tuple[str, str]] = []
        if config.get("type") != "scheduled":
            problems.append(("config.type", f"must be 'scheduled' for a schedule, got {config.get('type')!r}"))

        cron = config.get("schedule")
        if cron is None or cron == "":
            problems.append(("config.schedule", "is required: a cron expression (5 fields: minute hour "
                                                "day-of-month month day-of-week; or 6 with the seconds first)"))
        else:
            problems += _check_cron(cron)

        tz = config.get("timezone")
        if tz is None or tz == "":
            tz = DEFAULT_TIMEZONE
        else:
            problems += _check_timezone(tz)

        overlap: Overlap = DEFAULT_OVERLAP
        if config.get("overlap") is not None:
            try:
                overlap = parse_overlap(config["overlap"])
            except ValueError as exc:
                problems.append(("config.overlap", str(exc)))

        catchup = _duration(config, "catchupWindow", DEFAULT_CATCHUP_WINDOW_S, problems)
        jitter = _duration(config, "jitter", DEFAULT_JITTER_S, problems)
        template = config.get("input")
        problems += _check_input(template)
        if problems:
            raise ScheduleSpecError(problems)
        return cls(definition_id, cron.strip(), tz, overlap, catchup, jitter, template)


def schedule_of(definition: Definition) -> ScheduleSpec | None:
    """The schedule of the first trigger step with ``type: scheduled`` (None when there is none).

    Raises ScheduleSpecError when that step's config is invalid (validation reports it first).
    """
    for s in definition.steps:
        if is_scheduled_trigger(s.step_type, s.config):
            return ScheduleSpec.from_trigger(definition.id, s.config)
    return None


def trigger_warnings(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Warnings about a scheduled trigger's config: keys wfctl does not read (likely typos)."""
    out = []
    for key in config:
        if key not in FIELDS:
            match = difflib.get_close_matches(str(key), FIELDS, n=1, cutoff=0.6)
            hint = f"; did you mean '{match[0]}'?" if match else f" (known: {', '.join(FIELDS)})"
            out.append((f"config.{key}", f"not a scheduled-trigger field; ignored{hint}"))
    return out


# --- checks ----------------------------------------------------------------------------------------

def _check_cron(cron: Any) -> list[tuple[str, str]]:
    if not isinstance(cron, str):
        return [("config.schedule", f"must be a cron expression string, got {_kind(cron)}")]
    try:
        parse_cron(cron.strip())
    except CronError as exc:
        return [("config.schedule", f"invalid cron expression '{cron}': {exc}")]
    return []


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _check_timezone(tz: Any) -> list[tuple[str, str]]:
    if not isinstance(tz, str):
        return [("config.timezone", f"must be an IANA time zone name such as 'Europe/Berlin', got {_kind(tz)}")]
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        match = difflib.get_close_matches(tz, _zone_names(), n=1)
        hint = f"; did you mean '{match[0]}'?" if match else " (an IANA name such as 'Europe/Berlin' or 'UTC')"
        return [("config.timezone", f"unknown time zone '{tz}'{hint}")]
    return []


def _duration(config: Mapping[str, Any], key: str, default: float, problems: list) -> float:
    where, value = f"config.{key}", config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        problems.append((where, f"must be a duration (milliseconds as a number, or a string such as "
                                f"'30s', '10m', '1h'), got {_kind(value)}"))
        return default
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            problems.append((where, f"must be a finite number of milliseconds, got {value}"))
            return default
        if value < 0:
            problems.append((where, "must not be negative"))
            return default
        return value / 1000.0
    text = value.strip()
    if text.startswith("-"):
        problems.append((where, "must not be negative"))
        return default
    try:
        float(text)
    except ValueError:
        pass
    else:
        problems.append((where, f"'{value}' has no unit: write a number of milliseconds ({text}) "
                                f"or a duration with a unit such as '{text}s' or '{text}m'"))
        return default
    try:
        return parse_duration(text, where)
    except InputError:
        problems.append((where, f"'{value}' is not a duration (examples: 500ms, 30s, 10m, 2h, 7d, 1h30m)"))
        return default


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield path, key
            yield from _strings(item, f"{path}.{key}" if str(key).isidentifier() else f"{path}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _check_input(template: Any) -> list[tuple[str, str]]:
    if template is None:
        return []
    if not isinstance(template, dict):
        return [("config.input", f"must be an object (the run input), got {_kind(template)}")]
    from ..expressions import compile_template

    problems = []
    for path, text in _strings(template, "config.input"):
        if "{{" not in text:
            continue
        try:
            roots = compile_template(text).roots
        except ExpressionError as exc:
            problems.append((path, str(exc)))
            continue
        for root in sorted(roots):
            if root not in SLOT_VARIABLES:
                problems.append((path, f"'{root}' is not available in a schedule's input "
                                       f"(its templates can read {', '.join(SLOT_VARIABLES)})"))
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return {"list": "an array", "dict": "an object"}.get(type(value).__name__, type(value).__name__)
