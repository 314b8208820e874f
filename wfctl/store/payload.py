"""JSON encoding of stored values, with the size limit checked before anything is written."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from ..errors import InputError
from .errors import CorruptShardError, PayloadTooLargeError

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
DEFAULT_SPILL_THRESHOLD_BYTES = 256 * 1024

_MiB = 1024 * 1024


def encode(value: Any, what: str, limit: int) -> tuple[str | None, int]:
    """``(json text, size in UTF-8 bytes)``; None encodes as ``(None, 0)``. NaN and +-Infinity
    are stored as null (:func:`dumps`).

    Raises :class:`PayloadTooLargeError` when the text is over ``limit`` bytes, and
    :class:`InputError` when the value is not JSON-serializable. ``what`` names the value.
    """
    if value is None:
        return None, 0
    try:
        text = dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"{what} is not JSON-serializable: {exc}") from None
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates: keep them as JSON escapes
            text = dumps(value, separators=(",", ":"))
            size = len(text)
    check_size(size, what, limit)
    return text, size


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` that writes NaN and +-Infinity as ``null``, as JavaScript's ``JSON.stringify``
    does (Python would write bare ``NaN``/``Infinity``, which is not JSON)."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)


def finite(value: Any) -> Any:
    """``value`` with every NaN and +-Infinity replaced by None (copied only where one is found)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        items = {key: finite(item) for key, item in value.items()}
        return value if all(items[key] is item for key, item in value.items()) else items
    if isinstance(value, (list, tuple)):
        items = [finite(item) for item in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


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
    """The value stored by :func:`encode` (None for NULL); CorruptShardError when it is not JSON."""
    try:
        return None if text is None else json.loads(text)
    except ValueError as exc:
        raise CorruptShardError(f"a stored value is not valid JSON (damaged file?): {exc}") from None


#: Hex digits of a definition version's content hash.
HASH_DIGITS = 12


def content_hash(value: Any) -> str:
    """The version id of a definition body: the first :data:`HASH_DIGITS` hex digits of the
    SHA-256 of its canonical JSON (keys sorted, no spaces, UTF-8), so equal content, whatever
    its key order or formatting, is one version."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]
