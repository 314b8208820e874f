"""JSON encoding of stored values, with the size limit checked before anything is written."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from .errors import PayloadTooLargeError

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
DEFAULT_SPILL_THRESHOLD_BYTES = 256 * 1024

_MiB = 1024 * 1024


def encode(value: Any, what: str, limit: int) -> tuple[str | None, int]:
    """``(json text, size in UTF-8 bytes)``; None encodes as ``(None, 0)``.

    Raises :class:`PayloadTooLargeError` when the text is over ``limit`` bytes, and
    :class:`InputError` when the value is not JSON-serializable. ``what`` names the value.
    """
    if value is None:
        return None, 0
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"{what} is not JSON-serializable: {exc}") from None
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates: keep them as JSON escapes
            text = json.dumps(value, separators=(",", ":"))
            size = len(text)
    check_size(size, what, limit)
    return text, size


def check_size(size: int, what: str, limit: int) -> None:
    """Raise :class:`PayloadTooLargeError` when ``size`` bytes of ``what`` are over ``limit``."""
    if size > limit:
        raise PayloadTooLargeError(f"{what} is {_human(size)} ({size} bytes), over the limit of "
                                   f"{_human(limit)} ({limit} bytes)")


def _human(size: int) -> str:
    if size >= _MiB:
        return f"{size / _MiB:.1f} MiB"
    return f"{size / 1024:.1f} KiB"


def decode(text: str | None) -> Any:
    """The value stored by :func:`encode` (None for NULL)."""
    return None if text is None else json.loads(text)
