"""JavaScript value semantics on plain Python values.

tale evaluates expressions with JEXL on JavaScript values; wfctl keeps JSON-like Python
values and reproduces JS behaviour here:

=============  ==========================================================
JS             Python
=============  ==========================================================
object         ``dict`` (any ``Mapping`` is read like one)
array          ``list`` (``tuple`` is read like one)
string         ``str`` (lengths and indexes count UTF-16 code units)
number         ``int`` for integers within +-2**53, else ``float`` (NaN, +-Infinity too)
boolean        ``bool`` (never confused with a number: ``True`` is not ``1``)
null           ``None``
undefined      :data:`UNDEFINED`
=============  ==========================================================

Number results are normalised: an integral float within the safe-integer range becomes an
``int`` (``10/5`` is ``2``, rendered ``2`` not ``2.0``). ``-0`` is not kept (it prints as ``0``
in JS anyway).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "UNDEFINED",
    "JSUndefined",
    "truthy",
    "to_number",
    "to_js_string",
    "to_json_value",
    "js_string",
    "lodash_string",
    "json_stringify",
    "format_number",
    "normalize_number",
    "loose_equal",
    "strict_equal",
]


class JSUndefined:
    """The type of :data:`UNDEFINED`, JavaScript's ``undefined`` (a falsy singleton)."""

    __slots__ = ()
    _instance: "JSUndefined | None" = None

    def __new__(cls) -> "JSUndefined":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (JSUndefined, ())

    def __copy__(self) -> "JSUndefined":
        return self

    def __deepcopy__(self, memo) -> "JSUndefined":
        return self


#: JavaScript ``undefined``: what a missing name or property evaluates to. Distinct from
#: ``None`` (JS ``null``); falsy; ``repr`` is ``undefined``.
UNDEFINED = JSUndefined()
U = UNDEFINED

NAN = float("nan")
INF = float("inf")
MAX_SAFE = 2**53
_MAX_INDEX = 2**32 - 2

# JS WhiteSpace + LineTerminator (what String.prototype.trim and Number() strip).
JS_WHITESPACE = (
    "\t\n\u000b\u000c\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# ---------------------------------------------------------------------------------------
# numbers


def normalize_number(x: Any) -> Any:
    """Return ``x`` as wfctl's canonical number: an integral float within +-2**53 -> ``int``."""
    if type(x) is float:
        if x.is_integer() and -MAX_SAFE <= x <= MAX_SAFE:
            return int(x)
        return x
    if type(x) is int and not -MAX_SAFE <= x <= MAX_SAFE:
        return int_to_float(x)
    return x


def int_to_float(x: int) -> float:
    """A huge Python int as the JS double it stands for (+-Infinity past the double range)."""
    try:
        return float(x)
    except OverflowError:
        return INF if x > 0 else -INF


# One way to split each numeral (no '[0-9]+[0-9]*'): fullmatch backtracks linearly on long strings.
_DECIMAL_RE = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX_RE = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def string_to_number(s: str) -> Any:
    """JS ``Number(string)``: trims JS whitespace; '' -> 0; hex/octal/binary; else NaN."""
    s = s.strip(JS_WHITESPACE)
    if not s:
        return 0
    if _DECIMAL_RE.fullmatch(s):
        body = s.lstrip("+-")
        if body == "Infinity":
            return -INF if s[0] == "-" else INF
        return normalize_number(float(s))
    if _RADIX_RE.fullmatch(s):
        base = {"x": 16, "o": 8, "b": 2}[s[1].lower()]
        if len(s) > 4000:  # beyond any double's precision anyway
            return INF
        return normalize_number(int(s[2:], base))
    return NAN


_PARSE_FLOAT_RE = _DECIMAL_RE


def js_parse_float(value: Any) -> Any:
    """JS global ``parseFloat``: the longest numeric prefix of ``String(value)``, else NaN."""
    s = js_string(value).lstrip(JS_WHITESPACE)
    m = _PARSE_FLOAT_RE.match(s)
    if not m:
        return NAN
    text = m.group(0)
    if text.lstrip("+-") == "Infinity":
        return -INF if text[0] == "-" else INF
    # "1e" or "1e+" are not part of the number: the regex requires digits after e.
    return normalize_number(float(text))


def to_number(v: Any) -> Any:
    """JS ``ToNumber`` (what ``Number(v)`` and arithmetic operators do)."""
    t = type(v)
    if t is int:
        return v if -MAX_SAFE <= v <= MAX_SAFE else int_to_float(v)
    if t is float:
        return v
    if v is None or v is False:
        return 0
    if v is True:
        return 1
    if v is U:
        return NAN
    if t is str:
        return string_to_number(v)
    if t is list or t is dict or isinstance(v, (Mapping, list, tuple)):
        return to_number(to_primitive(v))
    return NAN


def format_number(x: Any) -> str:
    """JS ``Number.prototype.toString()``: ``1`` not ``1.0``, ``1e+21``, ``1.5e-7``, ``NaN``."""
    if type(x) is int:
        if -MAX_SAFE <= x <= MAX_SAFE:
            return str(x)
        x = int_to_float(x)
    if x != x:
        return "NaN"
    if x == INF:
        return "Infinity"
    if x == -INF:
        return "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits, n = _shortest_digits(abs(x))
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = ("e+" if e >= 0 else "e-") + str(abs(e))
        body = digits + exp if k == 1 else digits[0] + "." + digits[1:] + exp
    return sign + body


def _shortest_digits(x: float) -> tuple[str, int]:
    """(digits, n) with x = 0.digits * 10**n, digits the shortest round-trip form."""
    r = repr(x)
    if "e" in r:
        mant, exp_s = r.split("e")
        exp = int(exp_s)
    else:
        mant, exp = r, 0
    if "." in mant:
        int_part, frac = mant.split(".")
    else:
        int_part, frac = mant, ""
    if frac == "0":
        frac = ""
    digits = int_part + frac
    n = len(int_part) + exp
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    return digits, n


# ---------------------------------------------------------------------------------------
# strings


def js_string(v: Any) -> str:
    """JS ``String(v)``: arrays join with ``,`` (null/undefined elements empty), objects are
    ``[object Object]``. Used by ``+``, ``in``, property keys."""
    t = type(v)
    if t is str:
        return v
    if t is int or t is float:
        return format_number(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if v is U:
        return "undefined"
    if t is list or isinstance(v, (list, tuple)):
        return ",".join("" if e is None or e is U else js_string(e) for e in v)
    if t is dict or isinstance(v, Mapping):
        return "[object Object]"
    return str(v)


def lodash_string(v: Any) -> str:
    """lodash ``toString``: like ``String()`` but null/undefined give ``''``."""
    if v is None or v is U:
        return ""
    return js_string(v)


def to_js_string(value: Any) -> str:
    """How a template interpolates a value: JS ``String()`` for primitives (``1``, not
    ``1.0``; ``true``; ``null``; ``undefined``), compact JSON for objects and arrays."""
    t = type(value)
    if t is str:
        return value
    if t is dict or t is list or isinstance(value, (Mapping, list, tuple)):
        return json_stringify(value)
    return js_string(value)


def utf16_length(s: str) -> int:
    """JS ``string.length``: UTF-16 code units."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _has_astral(s: str) -> bool:
    return not s.isascii() and any(ord(ch) > 0xFFFF for ch in s)


def utf16_char_at(s: str, i: int) -> Any:
    """JS ``s[i]``: one UTF-16 code unit as a string, or undefined when out of range."""
    if i < 0:
        return U
    if not _has_astral(s):
        return s[i] if i < len(s) else U
    units = s.encode("utf-16-le", "surrogatepass")
    if 2 * i + 2 > len(units):
        return U
    return units[2 * i: 2 * i + 2].decode("utf-16-le", "surrogatepass")


def utf16_less(a: str, b: str) -> bool:
    """JS ``a < b`` on strings: compares UTF-16 code units."""
    if a.isascii() or b.isascii():
        return a < b
    return a.encode("utf-16-be", "surrogatepass") < b.encode("utf-16-be", "surrogatepass")


# ---------------------------------------------------------------------------------------
# truthiness, primitives, equality, comparison


def truthy(value: Any) -> bool:
    """JS truthiness: ``[]`` and ``{}`` are true; ``0``, ``''``, ``NaN``, null, undefined false."""
    if value is True:
        return True
    if value is False or value is None or value is U:
        return False
    t = type(value)
    if t is str:
        return value != ""
    if t is int:
        return value != 0
    if t is float:
        return value == value and value != 0.0
    return True


def is_array(v: Any) -> bool:
    return type(v) is list or isinstance(v, (list, tuple))


def is_object(v: Any) -> bool:
    """JS ``typeof v === 'object' && v !== null`` (arrays included)."""
    t = type(v)
    if t is dict or t is list:
        return True
    if v is None or v is U or t is str or t is int or t is float or t is bool:
        return False
    return True


def to_primitive(v: Any) -> Any:
    """JS ``ToPrimitive`` for plain objects/arrays: arrays -> joined string, objects ->
    ``[object Object]``; primitives unchanged."""
    t = type(v)
    if t is list or t is dict or (is_object(v) and t is not str):
        return js_string(v)
    return v


def strict_equal(a: Any, b: Any) -> bool:
    """JS ``===``: no coercion; objects by identity; ``NaN`` unequal to itself."""
    if a is b:
        return not (type(a) is float and a != a)
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    if ta is str and tb is str:
        return a == b
    return False


def loose_equal(a: Any, b: Any) -> bool:
    """JS ``==`` (abstract equality): ``1 == '1'``, ``null == undefined``, ``0 == ''``,
    ``[1] == 1`` are true; objects compare by identity."""
    if a is b:
        return not (type(a) is float and a != a)
    ta, tb = type(a), type(b)
    a_nullish = a is None or a is U
    b_nullish = b is None or b is U
    if a_nullish or b_nullish:
        return a_nullish and b_nullish
    a_num = ta is int or ta is float
    b_num = tb is int or tb is float
    if a_num and b_num:
        return a == b
    if ta is str and tb is str:
        return a == b
    if ta is bool and tb is bool:
        return False  # identity already checked
    a_obj = is_object(a)
    b_obj = is_object(b)
    if a_obj and b_obj:
        return False
    if ta is bool:
        return loose_equal(1 if a else 0, b)
    if tb is bool:
        return loose_equal(a, 1 if b else 0)
    if a_num and tb is str:
        return a == string_to_number(b)
    if ta is str and b_num:
        return string_to_number(a) == b
    if a_obj:
        return loose_equal(to_primitive(a), b)
    if b_obj:
        return loose_equal(a, to_primitive(b))
    return False


def js_less(a: Any, b: Any) -> Any:
    """JS abstract relational comparison ``a < b``: True, False, or None when undefined
    (a NaN was involved)."""
    pa = to_primitive(a)
    pb = to_primitive(b)
    if type(pa) is str and type(pb) is str:
        return utf16_less(pa, pb)
    x = to_number(pa)
    y = to_number(pb)
    if x != x or y != y:
        return None
    return x < y


def js_lt(a: Any, b: Any) -> bool:
    return js_less(a, b) is True


def js_gt(a: Any, b: Any) -> bool:
    return js_less(b, a) is True


def js_le(a: Any, b: Any) -> bool:
    r = js_less(b, a)
    return r is False


def js_ge(a: Any, b: Any) -> bool:
    r = js_less(a, b)
    return r is False


# ---------------------------------------------------------------------------------------
# arithmetic


def _int_result(r: int) -> Any:
    return r if -MAX_SAFE <= r <= MAX_SAFE else normalize_number(int_to_float(r))


def num_add(x: Any, y: Any) -> Any:
    if type(x) is int and type(y) is int:
        return _int_result(x + y)
    return normalize_number(x + y)


def js_add(a: Any, b: Any) -> Any:
    """JS ``+``: string concatenation when either primitive is a string, else numeric."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _int_result(a + b)
    if ta is str and tb is str:
        return a + b
    pa = to_primitive(a)
    pb = to_primitive(b)
    if type(pa) is str or type(pb) is str:
        return js_string(pa) + js_string(pb)
    return num_add(to_number(pa), to_number(pb))


def js_sub(a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    if type(x) is int and type(y) is int:
        return _int_result(x - y)
    return normalize_number(x - y)


def js_mul(a: Any, b: Any) -> Any:
    x, y = to_number(a), to_number(b)
    if type(x) is int and type(y) is int:
        return _int_result(x * y)
    r = x * y
    return normalize_number(r)


def js_div(a: Any, b: Any) -> Any:
    """JS ``/``: division by zero gives +-Infinity (NaN for 0/0)."""
    x, y = to_number(a), to_number(b)
    if y == 0:
        if x != x or x == 0:
            return NAN
        neg = (x < 0) != (math.copysign(1.0, y) < 0)
        return -INF if neg else INF
    return normalize_number(x / y)


def js_floordiv(a: Any, b: Any) -> Any:
    """JEXL ``//``: ``Math.floor(a / b)``."""
    q = js_div(a, b)
    if type(q) is int:
        return q
    if q != q or q in (INF, -INF):
        return q
    return normalize_number(float(math.floor(q)))


def js_mod(a: Any, b: Any) -> Any:
    """JS ``%``: the remainder takes the sign of the dividend."""
    x, y = to_number(a), to_number(b)
    if type(x) is int and type(y) is int:
        if y == 0:
            return NAN
        r = abs(x) % abs(y)
        return -r if x < 0 else r
    try:
        return normalize_number(math.fmod(x, y))
    except ValueError:
        return NAN


def js_pow(a: Any, b: Any) -> Any:
    """JS ``Math.pow`` (JEXL ``^``)."""
    x, y = to_number(a), to_number(b)
    if y != y:
        return NAN
    if y == 0:
        return 1
    if x != x:
        return NAN
    if (x == 1 or x == -1) and y in (INF, -INF):
        return NAN
    try:
        return normalize_number(math.pow(x, y))
    except OverflowError:
        odd = float(y).is_integer() and abs(y) < 2**63 and int(y) % 2 == 1
        return -INF if (x < 0 and odd) else INF
    except (ValueError, ZeroDivisionError):
        if x == 0 and y < 0:
            odd = float(y).is_integer() and abs(y) < 2**63 and int(y) % 2 == 1
            return -INF if (odd and math.copysign(1.0, x) < 0) else INF
        return NAN


def js_neg(a: Any) -> Any:
    x = to_number(a)
    if type(x) is int:
        return -x
    return normalize_number(-x)


# ---------------------------------------------------------------------------------------
# property access


def _array_index(key: str) -> int | None:
    """The array index a property key stands for ('0', '12'; not '01', '-1', '1.0')."""
    if not key or len(key) > 10 or not key.isascii() or not key.isdigit():
        return None
    if key[0] == "0" and key != "0":
        return None
    i = int(key)
    return i if i <= _MAX_INDEX else None


def get_member(obj: Any, key: str) -> Any:
    """Plain JS property read ``obj[key]`` with a string key (undefined when absent)."""
    t = type(obj)
    if t is dict:
        return obj.get(key, U)
    if t is list or t is tuple:
        if key == "length":
            return len(obj)
        i = _array_index(key)
        if i is not None and i < len(obj):
            return obj[i]
        return U
    if t is str:
        if key == "length":
            return utf16_length(obj)
        i = _array_index(key)
        if i is not None:
            return utf16_char_at(obj, i)
        return U
    if isinstance(obj, Mapping):
        try:
            return obj.get(key, U)
        except Exception:  # an exotic mapping that cannot take a str key
            return U
    if isinstance(obj, (list, tuple)):
        return get_member(list(obj), key)
    return U


def property_key(v: Any) -> str:
    """JS ``ToPropertyKey``."""
    return v if type(v) is str else js_string(v)


def index_value(obj: Any, key: Any) -> Any:
    """JS ``obj[key]`` for a non-null ``obj`` (bracket access)."""
    if type(key) is int and type(obj) is list:
        return obj[key] if 0 <= key < len(obj) else U
    return get_member(obj, property_key(key))


def dot_value(obj: Any, name: str) -> Any:
    """JEXL ``obj.name``: undefined through null/undefined; on an array, reads element 0's
    property (JEXL behaviour)."""
    t = type(obj)
    if t is dict:
        return obj.get(name, U)
    if obj is None or obj is U:
        return U
    if t is list or t is tuple:
        if not obj:
            # JEXL 2.3 throws here ("Cannot read properties of undefined"); wfctl keeps
            # access through missing values null-safe and yields undefined.
            return U
        obj = obj[0]
        if obj is None or obj is U:
            return U
    return get_member(obj, name)


# ---------------------------------------------------------------------------------------
# JSON


try:  # the C implementation when available
    from json.encoder import c_encode_basestring as _enc_str  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _enc_str = None
if _enc_str is None:  # pragma: no cover
    from json.encoder import py_encode_basestring as _enc_str

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _json_str(s: str) -> str:
    out = _enc_str(s)
    if not s.isascii() and _SURROGATE_RE.search(s):
        out = _SURROGATE_RE.sub(lambda m: "\\u%04x" % ord(m.group(0)), out)
    return out


def _js_key_order(keys: list) -> list:
    """JS own-key order: array-index keys ascending first, then the rest in insertion order."""
    idx = []
    rest = []
    for k in keys:
        i = _array_index(k) if type(k) is str else None
        if i is None:
            rest.append(k)
        else:
            idx.append((i, k))
    if not idx:
        return keys
    idx.sort()
    return [k for _, k in idx] + rest


def _json_parts(v: Any, out: list, in_array: bool) -> None:
    t = type(v)
    if t is str:
        out.append(_json_str(v))
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif v is None:
        out.append("null")
    elif t is int or t is float:
        if t is float and (v != v or v in (INF, -INF)):
            out.append("null")
        else:
            out.append(format_number(v))
    elif t is dict or isinstance(v, Mapping):
        out.append("{")
        first = True
        keys = [k if type(k) is str else js_string(k) for k in v.keys()]
        items = dict(zip(keys, v.values()))
        for k in _js_key_order(list(items)):
            val = items[k]
            if val is U:
                continue
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(k))
            out.append(":")
            _json_parts(val, out, False)
        out.append("}")
    elif t is list or isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _json_parts(e, out, True)
        out.append("]")
    elif v is U:
        out.append("null")  # only reachable inside arrays
    else:
        out.append(_json_str(str(v)))


def json_stringify(v: Any) -> Any:
    """JS ``JSON.stringify(v)`` (compact): NaN/Infinity -> null, undefined object members
    dropped, undefined array elements -> null, integer-like keys first. Returns
    :data:`UNDEFINED` for a top-level undefined, like JS."""
    if v is U:
        return U
    out: list[str] = []
    _json_parts(v, out, False)
    return "".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _parse_int(s: str) -> Any:
    try:
        return normalize_number(int(s))
    except ValueError:  # more digits than int() accepts
        return normalize_number(float(s))


def _parse_float(s: str) -> Any:
    return normalize_number(float(s))


def json_parse(text: str) -> Any:
    """JS ``JSON.parse``; raises ValueError (or RecursionError) on invalid input."""
    return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int,
                      parse_float=_parse_float)


def to_json_value(value: Any) -> Any:
    """A copy of ``value`` that JSON can hold: undefined -> None (dropped as an object member,
    like ``JSON.stringify``), NaN/Infinity -> None, integral floats -> int, tuples -> lists."""
    t = type(value)
    if t is str or t is bool or value is None or t is int:
        return value
    if value is U:
        return None
    if t is float:
        if value != value or value in (INF, -INF):
            return None
        return normalize_number(value)
    if t is dict or isinstance(value, Mapping):
        return {(k if type(k) is str else js_string(k)): to_json_value(v)
                for k, v in value.items() if v is not U}
    if t is list or isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value
