"""Shard routing: tale's FNV-1a hash (``getShardIndex``) and a defensive shard-index reader."""

from __future__ import annotations

import sys
from typing import Any

from ..errors import InputError

FNV_OFFSET_BASIS = 2166136261
FNV_PRIME = 16777619
_MASK = 0xFFFFFFFF
_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def fnv1a_32(key: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``key`` (JS ``charCodeAt`` semantics).

    Equals tale's ``getShardIndex`` before its modulo: a character outside the BMP
    contributes its two surrogate units, and a lone surrogate its own unit.
    """
    units = key.encode("ascii") if key.isascii() else memoryview(
        key.encode(_UTF16, "surrogatepass")).cast("H")
    h = FNV_OFFSET_BASIS
    for unit in units:
        h = ((h ^ unit) * FNV_PRIME) & _MASK
    return h


def shard_for(key: str, shard_count: int) -> int:
    """The shard (``0 .. shard_count-1``) that ``key`` routes to."""
    if shard_count < 1:
        raise InputError(f"shard count must be at least 1, got {shard_count}")
    return fnv1a_32(key) % shard_count


def safe_shard_index(value: Any, shard_count: int) -> tuple[int, str | None]:
    """Read a stored shard index defensively: ``(index, warning or None)``.

    None (a run written before sharding) belongs to shard 0 without a warning. A negative,
    out-of-range or non-integer value also falls back to shard 0, with a warning text.
    Integral floats (JSON numbers such as ``2.0``) count as integers, as in JS.
    """
    if value is None:
        return 0, None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return 0, f"shard index {value!r} is not an integer; using shard 0"
    if not 0 <= value < shard_count:
        return 0, f"shard index {value} is out of range 0..{shard_count - 1}; using shard 0"
    return value, None
