"""tale's JEXL transforms (``value|name(args)``), reproduced on JS-like Python values.

Source: tale-project/tale ``services/platform/convex/lib/variables/jexl_instance.ts``
(lodash-based). Each transform receives the subject then the arguments; missing arguments
are :data:`UNDEFINED` and extra ones are ignored, as in JS.

Departures from tale, on purpose (tale's behaviour is a bug there):

* ``filter('x >= 5')`` / ``'x <= 5'``: tale's regex tries ``>`` before ``>=``, so these
  conditions never match anything; wfctl reads ``>=`` and ``<=`` as written.
* ``sort`` without a field path: tale sorts by ``get(item, undefined)`` (always undefined),
  i.e. leaves the order unchanged; wfctl sorts the items by their own value.
* ``isoDate`` of a timestamp outside JS's date range: tale throws ``RangeError``; wfctl
  returns ``''`` like any other invalid date.

Time-based transforms read the current time from :func:`now_ms`, which uses the clock set
by :func:`set_clock` (a function returning epoch seconds, like ``time.time``) or, for the
current thread/task only, :func:`use_clock`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_tz
from typing import Any

from .jsvalues import (
    INF,
    JS_WHITESPACE,
    NAN,
    U,
    get_member,
    is_array,
    is_object,
    js_gt,
    js_lt,
    js_parse_float,
    js_string,
    js_sub,
    json_parse,
    json_stringify,
    lodash_string,
    loose_equal,
    normalize_number,
    strict_equal,
    to_number,
    truthy,
    utf16_length,
)

Transform = Callable[..., Any]

# ---------------------------------------------------------------------------------------
# clock

_default_clock: Callable[[], float] = time.time
_clock_var: contextvars.ContextVar[Callable[[], float] | None] = contextvars.ContextVar(
    "wfctl_expressions_clock", default=None)


def set_clock(clock: Callable[[], float] | None) -> Callable[[], float]:
    """Set the process-wide clock (epoch seconds, like ``time.time``) used by daysAgo,
    hoursAgo and minutesAgo; ``None`` restores ``time.time``. Returns the previous clock."""
    global _default_clock
    previous = _default_clock
    _default_clock = clock if clock is not None else time.time
    return previous


@contextlib.contextmanager
def use_clock(clock: Callable[[], float]) -> Iterator[None]:
    """Use ``clock`` (epoch seconds) for time-based transforms in this thread/task only."""
    token = _clock_var.set(clock)
    try:
        yield
    finally:
        _clock_var.reset(token)


def now_ms() -> int:
    """``Date.now()``: the current time in integer milliseconds from the active clock."""
    clock = _clock_var.get() or _default_clock
    return math.floor(clock() * 1000)


# ---------------------------------------------------------------------------------------
# lodash get


_PROP_NAME_RE = re.compile(
    r"""[^.[\]]+|\[(?:(-?\d+(?:\.\d+)?)|(["'])((?:(?!\2)[^\\]|\\.)*?)\2)\]|(?=(?:\.|\[\])(?:\.|\[\]|$))""")
_ESCAPE_CHAR_RE = re.compile(r"\\(\\)?")
_IS_DEEP_PROP_RE = re.compile(r"""\.|\[(?:[^[\]]*|(["'])(?:(?!\1)[^\\]|\\.)*?\1)\]""")
_IS_PLAIN_PROP_RE = re.compile(r"\w*", re.ASCII)


@functools.lru_cache(maxsize=4096)
def _string_to_path(s: str) -> tuple[str, ...]:
    result: list[str] = []
    if s.startswith("."):
        result.append("")
    for m in _PROP_NAME_RE.finditer(s):
        number, quote, sub = m.group(1), m.group(2), m.group(3)
        if quote:
            result.append(_ESCAPE_CHAR_RE.sub(lambda e: e.group(1) or "", sub))
        else:
            result.append(number or m.group(0))
    return tuple(result)


@functools.lru_cache(maxsize=4096)
def _is_one_key(path: str) -> bool:
    """True when lodash reads ``path`` as one key (cached: ``map``/``sort``/... ask once per item)."""
    return bool(_IS_PLAIN_PROP_RE.fullmatch(path) or not _IS_DEEP_PROP_RE.search(path))


def _has_key(obj: Any, key: str) -> bool:
    """JS ``key in Object(obj)`` for own data (no prototype members)."""
    t = type(obj)
    if t is dict:
        return key in obj
    return get_member(obj, key) is not U


def lodash_get(obj: Any, path: Any) -> Any:
    """lodash ``get(obj, path)``: dotted/bracketed string paths, or an array of keys."""
    if obj is None or obj is U:
        return U
    if is_array(path):
        keys = [k if type(k) is str else js_string(k) for k in path]
    elif type(path) is str:
        if _is_one_key(path) or _has_key(obj, path):
            keys = [path]
        else:
            keys = list(_string_to_path(path))
    else:  # numbers, booleans, null, undefined: one key
        keys = [js_string(path)]
    if not keys:
        return U
    for k in keys:
        if obj is None or obj is U:
            return U
        obj = get_member(obj, k)
    return obj


# ---------------------------------------------------------------------------------------
# string and conversion transforms


def _upper(val: Any, *_: Any) -> str:
    return lodash_string(val).upper()


def _lower(val: Any, *_: Any) -> str:
    return lodash_string(val).lower()


def _trim(val: Any, *_: Any) -> str:
    return lodash_string(val).strip(JS_WHITESPACE)


def _length(val: Any, *_: Any) -> int:
    if type(val) is str:
        return utf16_length(val)
    if is_array(val):
        return len(val)
    return 0


def _first(arr: Any, *_: Any) -> Any:
    # lodash head: (array != null && array.length) ? array[0] : undefined
    if type(arr) is list:
        return arr[0] if arr else U
    if arr is None or arr is U:
        return U
    if truthy(get_member(arr, "length")):
        return get_member(arr, "0")
    return U


def _last(arr: Any, *_: Any) -> Any:
    if type(arr) is list:
        return arr[-1] if arr else U
    if arr is None or arr is U:
        return U
    length = get_member(arr, "length")
    if truthy(length):
        return get_member(arr, js_string(js_sub(length, 1)))
    return U


#: The longest string ``join`` and ``formatList`` build (their output can be the product of
#: two input sizes): 16 Mi characters, the default stored-payload limit.
MAX_RESULT_LENGTH = 16 * 1024 * 1024


def _check_length(name: str, length: int) -> None:
    if length > MAX_RESULT_LENGTH:
        raise ValueError(f"{name}: the result would be over {MAX_RESULT_LENGTH:,} characters")


def _join(arr: Any, separator: Any = U, *_: Any) -> str:
    if separator is U:
        separator = ","
    if not is_array(arr):
        return ""
    sep = lodash_string(separator)
    _check_length("join", len(sep) * (len(arr) - 1))
    parts = ["" if e is None or e is U else js_string(e) for e in arr]
    _check_length("join", len(sep) * (len(arr) - 1) + sum(map(len, parts)))
    return sep.join(parts)


def _string(val: Any, *_: Any) -> Any:
    if is_object(val):
        return json_stringify(val)
    return lodash_string(val)


def _number(val: Any, *_: Any) -> Any:
    # lodash toNumber == JS Number() here, except signed hex ('-0x1f'), which is NaN in both
    return to_number(val)


def _boolean(val: Any, *_: Any) -> bool:
    return truthy(val)


def _parse_json(s: Any, *_: Any) -> Any:
    try:
        return json_parse(lodash_string(s))
    except (ValueError, RecursionError):
        return None


# ---------------------------------------------------------------------------------------
# array transforms


def _map(arr: Any, field_path: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    out = []
    for item in arr:
        v = lodash_get(item, field_path)
        if v is not U:
            out.append(v)
    return out


# tale: /^(.+?)\s*(>|<|>=|<=|==|!=)\s*(.+)$/ -- with '>' tried before '>=', so '>=' and '<='
# never matched (the value became '=5', NaN). wfctl tries the two-character operators first, and
# matches in one pass instead of with the regex (which backtracks quadratically on long strings).
_FILTER_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_LINE_TERMINATORS = frozenset("\n\r\u2028\u2029")  # JS '.' stops at them


def split_filter_condition(condition: str) -> tuple[str, str, str] | None:
    """``(field path, operator, value)`` as tale's filter regex (two-character operators first)
    splits ``condition``, or None when it does not match. Linear in the length of ``condition``.

    The lazy field path ends at the first position from which optional whitespace, an
    operator and at least one more character follow.
    """
    n = len(condition)
    if n < 3 or not _LINE_TERMINATORS.isdisjoint(condition):
        return None
    after_space = [n] * (n + 1)  # after_space[i]: the first non-whitespace index >= i
    for i in range(n - 1, -1, -1):
        after_space[i] = after_space[i + 1] if condition[i] in JS_WHITESPACE else i
    for end in range(1, n):
        at = after_space[end]
        for op in _FILTER_OPERATORS:
            rest = at + len(op)
            if rest < n and condition.startswith(op, at):
                return condition[:end], op, condition[min(after_space[rest], n - 1):]
    return None


def _filter(arr: Any, condition: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    if type(condition) is not str:
        return []  # tale: condition.match throws inside try -> every item rejected
    parts = split_filter_condition(condition)
    if parts is None:
        return []
    field_path, op, value_str = parts
    compare = js_parse_float(value_str.strip(JS_WHITESPACE))
    path = field_path.strip(JS_WHITESPACE)
    out = []
    for item in arr:
        if not truthy(item) or not is_object(item):
            continue
        fv = lodash_get(item, path)
        if fv is None or fv is U:
            continue
        num = fv if type(fv) in (int, float) else js_parse_float(js_string(fv))
        if num != num or compare != compare:
            continue
        if op == ">":
            ok = num > compare
        elif op == "<":
            ok = num < compare
        elif op == ">=":
            ok = num >= compare
        elif op == "<=":
            ok = num <= compare
        elif op == "==":
            ok = num == compare
        else:
            ok = num != compare
        if ok:
            out.append(item)
    return out


def _flatten(arr: Any, *_: Any) -> list:
    if not is_array(arr):
        return []
    out: list = []
    for v in arr:
        if is_array(v):
            out.extend(v)
        else:
            out.append(v)
    return out


def _unique(arr: Any, *_: Any) -> list:
    # tale: [...new Set(arr.map(toString))] -- the result holds the *stringified* values
    if not is_array(arr):
        return []
    return list(dict.fromkeys(lodash_string(v) for v in arr))


def _concat(arr1: Any, arr2: Any = U, *_: Any) -> list:
    a = list(arr1) if is_array(arr1) else []
    if is_array(arr2):
        a.extend(arr2)
    return a


_PLACEHOLDER_RE = re.compile(r"\{([^}]+)\}")


def _format_list(arr: Any, template: Any = U, separator: Any = U, *_: Any) -> str:
    if separator is U:
        separator = "\n"
    if not is_array(arr):
        return ""
    parts = []
    sep = lodash_string(separator)
    length = 0
    for item in arr:
        if not truthy(item) or not is_object(item):
            part = lodash_string(item)
        elif type(template) is not str:
            raise TypeError("formatList: the template must be a string")
        else:
            def repl(m: re.Match, item=item) -> str:
                v = lodash_get(item, m.group(1))
                return "" if v is None or v is U else lodash_string(v)

            # A match ends at a '}': past the last one nothing matches, and the regex, which
            # rescans to the end from every '{' that has no '}' after it, is not run there.
            cut = template.rfind("}") + 1
            part = _PLACEHOLDER_RE.sub(repl, template[:cut]) + template[cut:]
        if part.strip(JS_WHITESPACE) != "":
            length += len(part) + (len(sep) if parts else 0)
            _check_length("formatList", length)
            parts.append(part)
    return sep.join(parts)


def _find(arr: Any, field_path: Any = U, value: Any = U, *_: Any) -> Any:
    if not is_array(arr):
        return None
    for item in arr:
        if truthy(item) and is_object(item) and strict_equal(lodash_get(item, field_path), value):
            return item
    return U  # Array.prototype.find: undefined when nothing matches


def _filter_by(arr: Any, field_path: Any = U, value: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    return [item for item in arr
            if truthy(item) and is_object(item) and strict_equal(lodash_get(item, field_path), value)]


def _has_overlap(arr1: Any, arr2: Any = U, *_: Any) -> bool:
    if not is_array(arr1) or not is_array(arr2):
        return False
    seen = {lodash_string(v) for v in arr1}
    return any(lodash_string(v) in seen for v in arr2)


def _compare_ascending(value: Any, other: Any) -> int:
    """lodash compareAscending (symbols aside): undefined last, then null, then NaN."""
    if strict_equal(value, other) or (value is other):
        return 0
    val_defined = value is not U
    val_null = value is None
    val_reflexive = not (type(value) is float and value != value)
    oth_defined = other is not U
    oth_null = other is None
    oth_reflexive = not (type(other) is float and other != other)
    if ((not oth_null and js_gt(value, other)) or (val_null and oth_defined and oth_reflexive)
            or (not val_defined and oth_reflexive) or not val_reflexive):
        return 1
    if ((not val_null and js_lt(value, other)) or (oth_null and val_defined and val_reflexive)
            or (not oth_defined and val_reflexive) or not oth_reflexive):
        return -1
    return 0


def _sort(arr: Any, field_path: Any = U, order: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    desc = loose_equal(order, "desc")
    if field_path is U or field_path is None:
        # departure: tale sorts by get(item, undefined) and so never reorders
        keyed = [(item, item) for item in arr]
    else:
        keyed = [(lodash_get(item, field_path), item) for item in arr]

    def cmp(a: tuple, b: tuple) -> int:
        r = _compare_ascending(a[0], b[0])
        return -r if desc else r

    keyed.sort(key=functools.cmp_to_key(cmp))  # stable, like lodash's index tie-break
    return [item for _, item in keyed]


def _reverse(arr: Any, *_: Any) -> list:
    if not is_array(arr):
        return []
    return list(reversed(arr))


def _to_integer(v: Any) -> int:
    """lodash toInteger: NaN -> 0, +-Infinity -> +-MAX_VALUE, truncation toward zero."""
    n = to_number(v)
    if n != n:
        return 0
    if n in (INF, -INF):
        return 2**1024 if n > 0 else -(2**1024)
    return int(n)


def _slice(arr: Any, start: Any = U, end: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    length = len(arr)
    if not length:
        return []
    s = 0 if start is None or start is U else _to_integer(start)
    e = length if end is U else _to_integer(end)
    if s < 0:
        s = 0 if -s > length else length + s
    if e > length:
        e = length
    if e < 0:
        e += length
    if s > e:
        return []
    return list(arr[s:e])


def _chunk(arr: Any, size: Any = U, *_: Any) -> list:
    if not is_array(arr):
        return []
    arr = list(arr)
    if type(size) in (int, float):
        if size != size:  # Math.max(1, NaN) is NaN: tale yields one empty chunk
            return [[]] if arr else []
        if size == INF:
            return [arr] if arr else []
        n = 1 if size == -INF else max(1, math.floor(size))
    else:
        n = 1
    return [arr[i:i + n] for i in range(0, len(arr), n)]


# ---------------------------------------------------------------------------------------
# dates

MS_PER_DAY = 86_400_000
_MAX_TIME = 8.64e15

_ISO_RE = re.compile(
    r"([+-]\d{6}|\d{4})(?:-(\d{2})(?:-(\d{2}))?)?"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE)


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def parse_date_string(s: str) -> Any:
    """``new Date(s).getTime()`` for ISO 8601 strings (and RFC 2822 dates); NaN otherwise.
    A date-time without an offset is read as UTC (tale's servers run in UTC)."""
    s = s.strip(JS_WHITESPACE)
    m = _ISO_RE.fullmatch(s)
    if m:
        ys, mo, d, hh, mi, ss, frac, tz = m.groups()
        if ys == "-000000":
            return NAN
        year = int(ys)
        month = int(mo) if mo else 1
        day = int(d) if d else 1
        hour = int(hh) if hh else 0
        minute = int(mi) if mi else 0
        sec = int(ss) if ss else 0
        ms = int((frac + "00")[:3]) if frac else 0
        if not (1 <= month <= 12 and 1 <= day <= 31 and minute <= 59 and sec <= 59):
            return NAN
        if hour > 24 or (hour == 24 and (minute or sec or ms)):
            return NAN
        offset = 0
        if tz and tz.upper() != "Z":
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            oh = int(digits[:2])
            om = int(digits[2:4]) if len(digits) >= 4 else 0
            if oh > 23 or om > 59:
                return NAN
            offset = sign * (oh * 60 + om) * 60_000
        days = _days_from_civil(year, month, 1) + day - 1
        t = days * MS_PER_DAY + ((hour * 60 + minute) * 60 + sec) * 1000 + ms - offset
        return t if abs(t) <= _MAX_TIME else NAN
    try:
        parsed = parsedate_tz(s) if any(c.isalpha() for c in s) else None
    except Exception:  # email.utils is lenient but not total
        parsed = None
    if parsed:
        y, mo, d, hh, mi, ss = parsed[:6]
        if not (1 <= mo <= 12 and 1 <= d <= 31):
            return NAN
        t = (_days_from_civil(y, mo, 1) + d - 1) * MS_PER_DAY + ((hh * 60 + mi) * 60 + ss) * 1000
        t -= (parsed[9] or 0) * 1000
        return t if abs(t) <= _MAX_TIME else NAN
    return NAN


def parse_date_value(val: Any) -> Any:
    """tale's parseDateValue: ms timestamp or NaN. Numbers in (0, 1e11) are seconds."""
    t = type(val)
    if t is int or t is float:
        ts = val
        if 0 < ts < 1e11:
            ts = ts * 1000
        return normalize_number(ts) if type(ts) is float else ts
    if t is str:
        return parse_date_string(val)
    return NAN


def _is_nan(x: Any) -> bool:
    return type(x) is float and x != x


def _ago(unit_ms: int) -> Transform:
    def ago(val: Any, *_: Any) -> Any:
        ts = parse_date_value(val)
        if _is_nan(ts):
            return -1
        diff = now_ms() - ts
        if type(diff) is float and diff in (INF, -INF):
            return diff
        return normalize_number(math.floor(diff / unit_ms))
    return ago


def _parse_date(val: Any, *_: Any) -> Any:
    ts = parse_date_value(val)
    return None if _is_nan(ts) else ts


def iso_string(ts: Any) -> str:
    """``new Date(ts).toISOString()``, or '' when the time is invalid."""
    if _is_nan(ts) or ts in (INF, -INF) or abs(ts) > _MAX_TIME:
        return ""
    ms = int(ts)  # TimeClip truncates toward zero
    days, rem = divmod(ms, MS_PER_DAY)
    y, mo, d = _civil_from_days(days)
    hh, rem = divmod(rem, 3_600_000)
    mi, rem = divmod(rem, 60_000)
    ss, msec = divmod(rem, 1000)
    year = f"{y:04d}" if 0 <= y <= 9999 else ("+" if y > 0 else "-") + f"{abs(y):06d}"
    return f"{year}-{mo:02d}-{d:02d}T{hh:02d}:{mi:02d}:{ss:02d}.{msec:03d}Z"


def _iso_date(val: Any, *_: Any) -> str:
    return iso_string(parse_date_value(val))


def _epoch_seconds(val: Any, *_: Any) -> Any:
    ts = parse_date_value(val)
    if _is_nan(ts):
        return ""
    if ts in (INF, -INF):
        return ts
    return normalize_number(math.floor(ts / 1000))


def _is_before(val: Any, other: Any = U, *_: Any) -> bool:
    a, b = parse_date_value(val), parse_date_value(other)
    if _is_nan(a) or _is_nan(b):
        return False
    return a < b


def _is_after(val: Any, other: Any = U, *_: Any) -> bool:
    a, b = parse_date_value(val), parse_date_value(other)
    if _is_nan(a) or _is_nan(b):
        return False
    return a > b


# ---------------------------------------------------------------------------------------
# registry

#: Transform name -> function(subject, *args). Add to it with :func:`register_transform`.
TRANSFORMS: dict[str, Transform] = {
    "upper": _upper,
    "lower": _lower,
    "trim": _trim,
    "length": _length,
    "first": _first,
    "last": _last,
    "join": _join,
    "string": _string,
    "number": _number,
    "boolean": _boolean,
    "map": _map,
    "filter": _filter,
    "flatten": _flatten,
    "unique": _unique,
    "concat": _concat,
    "parseJSON": _parse_json,
    "formatList": _format_list,
    "find": _find,
    "filterBy": _filter_by,
    "hasOverlap": _has_overlap,
    "sort": _sort,
    "reverse": _reverse,
    "slice": _slice,
    "chunk": _chunk,
    "daysAgo": _ago(MS_PER_DAY),
    "hoursAgo": _ago(3_600_000),
    "minutesAgo": _ago(60_000),
    "parseDate": _parse_date,
    "isoDate": _iso_date,
    "epochSeconds": _epoch_seconds,
    "isBefore": _is_before,
    "isAfter": _is_after,
}


def register_transform(name: str, fn: Transform) -> None:
    """Add or replace a transform. Compiled expressions bind transforms when compiled, so
    the expression and template caches are cleared."""
    TRANSFORMS[name] = fn
    from . import evaluator, templates

    evaluator.compile_expression.cache_clear()
    templates.compile_template.cache_clear()  # type: ignore[attr-defined]
