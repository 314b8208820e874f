"""Reading JSON given by users: inline text, ``@file`` references and files, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError


def parse_json(text: str, what: str) -> Any:
    """Parse ``text`` as JSON; a syntax error names ``what``, the line and the column."""
    try:
        return json.loads(text)
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
