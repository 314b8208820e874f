"""Reading JSON given by users: inline text, ``@file`` references and files, with one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import InputError

#: How deeply arrays and objects may nest in JSON given on the command line.
MAX_JSON_DEPTH = 100


class _NonFinite(ValueError):
    """A NaN, Infinity or out-of-range number in JSON text (Python's json would accept it)."""


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFinite(text)
    return value


def _finite_int(text: str) -> int:
    if len(text) > 300 and math.isinf(float(text)):  # past the double range: Infinity in JavaScript
        raise _NonFinite(text)
    return int(text)


def parse_json(text: str, what: str) -> Any:
    """Parse ``text`` as strict JSON; a syntax error names ``what``, the line and the column, and so
    does nesting deeper than :data:`MAX_JSON_DEPTH`.

    NaN, Infinity and numbers beyond the double range (``1e400``) are refused: JSON has no
    non-finite numbers.
    """
    too_deep = InputError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_finite_int)
    except _NonFinite as exc:
        token = str(exc) if len(str(exc)) <= 40 else f"{str(exc)[:20]}... ({len(str(exc))} characters)"
        raise InputError(f"{what}: {token} is not a finite number; JSON has no NaN or Infinity") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # deeper than the parser goes
        raise too_deep from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                stack.extend((child, depth) for child in children)
    return deepest


def load_json_file(path: str | Path, what: str | None = None) -> Any:
    """Read and parse a JSON file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 text, or an unusable name
        raise InputError(f"{path}: cannot read: {exc}") from None
    return parse_json(text, what or str(path))


def json_argument(value: str | None, what: str) -> Any:
    """A command-line JSON value: inline JSON, or ``@path`` to read it from a file. None stays None."""
    if value is None:
        return None
    if value.startswith("@"):
        return load_json_file(value[1:], f"{what} ({value[1:]})")
    return parse_json(value, what)


def reject_non_finite(value: Any, what: str) -> None:
    """Raise InputError naming ``what`` when ``value`` (parsed JSON or YAML) holds NaN or +-Infinity."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise InputError(f"{what}: {item!r} is not a finite number; JSON has no NaN or Infinity")
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
