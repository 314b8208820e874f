"""Cron expressions and the slots they give in a time zone, through cronsim and zoneinfo.

A schedule's **slots** are the instants its cron expression names, as epoch seconds (floats
with no fractional part). Every function takes the time window as a parameter; nothing here
reads the system clock.

Expressions
-----------
- 5 fields: ``minute hour day-of-month month day-of-week`` (Vixie/Debian cron).
- 6 fields: ``second minute hour day-of-month month day-of-week``: the **seconds field comes
  first** (cronsim's order, as in Quartz and Spring; croniter puts it last, so ``0 30 2 * * *``
  means 02:30:00 here, not "second 0 of ...").
- Each field: ``*``, a number, ``a-b``, ``a,b,c``, ``*/n``, ``a-b/n``, ``a/n``; month names
  ``JAN``-``DEC`` and weekday names ``SUN``-``SAT`` (either case); day-of-week ``0``-``7``
  (0 and 7 are Sunday), ``5L`` (last Friday of the month), ``1#2`` (second Monday);
  day-of-month ``L`` (last day) and ``LW`` (last weekday). When both day fields are
  restricted (neither starts with ``*``) a day matching either one matches (cron's OR rule).
- Macros: ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
  ``@hourly``.

Daylight-saving time (Vixie cron's rules, which cronsim implements)
-------------------------------------------------------------------
A **fixed-time** job is one whose minute and hour fields both do not start with ``*``
(``30 2 * * *``, ``0 9-17 * * *``, ``15,45 1 * * *``); any other job is a **wildcard** job
(``0 * * * *``, ``*/30 * * * *``, ``30 */2 * * *``).

- Spring forward (a wall-clock hour does not exist): a fixed-time job whose time falls in the
  gap fires once, at the first instant after the gap (Europe/Berlin, last Sunday of March:
  ``30 2 * * *`` fires at 03:00 CEST = 01:00 UTC); times that the gap merges fire once, not
  twice (``0,30 2 * * *`` fires once, at 03:00). A wildcard job follows the clock: the times
  that do not exist have no slot (``0 * * * *`` has 23 slots that day, ``*/30 * * * *`` 46,
  ``30 */2 * * *`` has no 02:30 slot).
- Fall back (a wall-clock hour occurs twice): a fixed-time job fires once, at the first
  occurrence (Berlin, last Sunday of October: ``30 2 * * *`` fires at 02:30 CEST = 00:30
  UTC, not again at 02:30 CET); a wildcard job fires in both occurrences, since each is a
  real hour (``0 * * * *`` has 25 slots that day, ``*/30 * * * *`` 50).
- 6-field expressions follow the same rules: the slots are those of the 5 minute-and-larger
  fields, each at the seconds the seconds field lists (cronsim itself applies no DST rules
  to 6-field expressions; wfctl composes them so both forms behave alike).

Slots are always distinct and strictly increasing, whatever window they are asked for:
``slots_between(s, a, c) == slots_between(s, a, b) + slots_between(s, b, c)``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from .spec import ScheduleSpec

__all__ = [
    "MACROS", "CronExpr", "CronError", "iter_slots", "local_time", "next_slots", "parse_cron",
    "slots_between", "utc_iso",
]

#: Named expressions accepted besides 5- and 6-field ones.
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

_FIELDS5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ALLOWED = {
    "second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31, L, LW",
    "month": "1-12 or JAN-DEC", "day-of-week": "0-7 or SUN-SAT, 5L, 1#2",
}
# cronsim validates a datetime it is given but does not use it for parsing.
_PROBE = datetime(2000, 1, 1, tzinfo=timezone.utc)


class CronError(ValueError):
    """An invalid cron expression; ``str()`` says why (without the expression itself)."""


@dataclass(frozen=True)
class CronExpr:
    """A parsed expression: ``minutes`` (the 5-field part cronsim iterates) and the ``seconds``
    each of its slots fires at (``(0,)`` for a 5-field expression)."""

    text: str
    minutes: str
    seconds: tuple[int, ...]


@functools.lru_cache(maxsize=1024)
def parse_cron(text: str) -> CronExpr:
    """Parse and check ``text``; raises CronError saying which field is wrong."""
    if not isinstance(text, str):
        raise CronError(f"must be a string, got {type(text).__name__}")
    stripped = " ".join(text.split())
    if stripped.startswith("@"):
        macro = MACROS.get(stripped.lower())
        if macro is None:
            raise CronError(f"unknown macro '{stripped}' (known: {', '.join(MACROS)})")
        return CronExpr(text, macro, (0,))
    parts = stripped.split(" ") if stripped else []
    if len(parts) not in (5, 6):
        raise CronError(f"expected 5 fields ({' '.join(_FIELDS5)}) or 6 with the seconds first, "
                        f"got {len(parts)}")
    names = (("second",) if len(parts) == 6 else ()) + _FIELDS5
    written, parts = parts, [_one_element_ranges(p) for p in parts]
    stripped = " ".join(parts)
    try:
        sim = CronSim(stripped, _PROBE)
    except CronSimError as exc:
        raise CronError(_field_message(str(exc), written, names)) from None
    except (ValueError, TypeError, IndexError) as exc:  # pragma: no cover - cronsim raises CronSimError only
        raise CronError(f"cannot be parsed: {exc}") from None
    minutes = " ".join(parts[-5:])
    try:  # an expression cronsim accepts but that never matches (e.g. "0 0 * 2 MON#5" would, rarely)
        next(CronSim(minutes, _PROBE))
    except StopIteration:
        raise CronError("never matches (no slot within 50 years)") from None
    return CronExpr(text, minutes, tuple(sorted(sim.seconds)))


_RANGE_STEP = re.compile(r"^(\w+)-(\w+)/(\d+)$")


def _one_element_ranges(field: str) -> str:
    """``5-5/2`` as ``5``: cronsim reads a stepped range of one value as ``5/2`` (5, 7, ... to the
    field's end), cron as just 5."""
    terms = field.split(",")
    for i, term in enumerate(terms):
        m = _RANGE_STEP.match(term)
        if m and (m[1].upper() == m[2].upper() or (m[1].isdigit() and m[2].isdigit() and int(m[1]) == int(m[2]))):
            terms[i] = m[1]
    return ",".join(terms)


def _field_message(message: str, parts: list[str], names: tuple[str, ...]) -> str:
    if message.startswith("Bad "):
        name = message[4:]
        if name in names:
            value = parts[names.index(name)]
            return f"bad {name} field '{value}' (allowed: {_ALLOWED[name]}, with *, lists, ranges and /steps)"
    return message[:1].lower() + message[1:]


def _zone(spec: ScheduleSpec) -> ZoneInfo:
    return ZoneInfo(spec.timezone)


#: The first instant every time zone can represent (0001-01-02T00:00:00Z): slots start here at the earliest.
FIRST_INSTANT = -62135510400


def _minute_slots(minutes: str, zone: ZoneInfo, start: int) -> Iterator[float]:
    """The instants the 5-field expression ``minutes`` names after ``start`` (whole seconds), in
    order, up to the end of year 9999."""
    try:
        it = CronSim(minutes, datetime.fromtimestamp(max(start, FIRST_INSTANT), zone))
    except (OverflowError, ValueError):  # after year 9999
        return
    while True:
        try:
            moment = next(it)
        except (StopIteration, OverflowError):  # no match within 50 years, or past year 9999
            return
        yield moment.timestamp()


def iter_slots(spec: ScheduleSpec, after: float) -> Iterator[float]:
    """The slots after ``after`` (exclusive), in strictly increasing order, without end."""
    expr = parse_cron(spec.cron)
    zone = _zone(spec)
    last = after
    if expr.seconds == (0,):
        candidates: Iterator[float] = _minute_slots(expr.minutes, zone, math.floor(after))
    else:
        # a minute slot m gives m + s for each listed second s: start a minute early
        candidates = (m + s for m in _minute_slots(expr.minutes, zone, math.floor(after) - 60)
                      for s in expr.seconds)
    for slot in candidates:
        # In fixed-time mode cronsim iterates wall-clock time; started inside a repeated hour
        # it can name an instant already past. Keeping only increasing values makes every
        # window agree with one long iteration.
        if slot > last:
            last = slot
            yield float(slot)


def slots_between(spec: ScheduleSpec, after: float, until: float) -> list[float]:
    """The slots in ``(after, until]``, in increasing order."""
    out = []
    for slot in iter_slots(spec, after):
        if slot > until:
            break
        out.append(slot)
    return out


def next_slots(spec: ScheduleSpec, after: float, count: int) -> list[float]:
    """The first ``count`` slots after ``after`` (fewer if the expression stops matching)."""
    out: list[float] = []
    if count <= 0:
        return out
    for slot in iter_slots(spec, after):
        out.append(slot)
        if len(out) == count:
            break
    return out


def utc_iso(epoch: float) -> str:
    """``2025-03-30T01:00:00Z`` (milliseconds added only when the time has a fraction)."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    if moment.microsecond:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def local_time(spec: ScheduleSpec, epoch: float) -> datetime:
    """``epoch`` as an aware datetime in the schedule's time zone."""
    return datetime.fromtimestamp(epoch, _zone(spec))
