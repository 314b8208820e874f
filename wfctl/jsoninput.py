"""Reading JSON given by users: inline text, ``@file`` references and files, with one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import InputError


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
    """Parse ``text`` as strict JSON; a syntax error names ``what``, the line and the column.

    NaN, Infinity and numbers beyond the double range (``1e400``) are refused: JSON has no
    non-finite numbers.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_finite_int)
    except _NonFinite as exc:
        token = str(exc) if len(str(exc)) <= 40 else f"{str(exc)[:20]}... ({len(str(exc))} characters)"
        raise InputError(f"{what}: {token} is not a finite number; JSON has no NaN or Infinity") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def load_json_file(path: str | Path, what: str | None = None) -> Any:
    """Read and parse a JSON file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
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
