"""JSON encoding of stored values, with the size limit checked before anything is written.

Every value a store writes is encoded here: by :func:`encode`, or, on the start path, by a
:class:`JsonTemplate` that splices a run's input and id into its initial state's JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .errors import CorruptShardError, PayloadTooLargeError

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

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


_VALUE_MARK = {"\x00wfctl-value\x00": 0}
_TEXT_MARK = "\x00wfctl-text\x00"


@dataclass(frozen=True, slots=True)
class JsonTemplate:
    """The JSON text of ``make(value, text)`` with ``value`` and ``text`` left as holes, so that
    encoding it for another value and text is two string joins (the start path's initial state,
    made of the run's input and id): ``parts[0] + value JSON + parts[1] + text + parts[2]``;
    ``size``: the parts' UTF-8 bytes."""

    parts: tuple[str, str, str]
    size: int

    @classmethod
    def build(cls, make: Callable[[Any, str], Any]) -> "JsonTemplate | None":
        """The template of ``make``, or None when its JSON is not the value and the text placed
        in fixed JSON (checked against ``make`` itself on a sample, twice: a ``make`` that does
        not give the same result for the same arguments is not templated)."""
        text, _ = encode(make(dict(_VALUE_MARK), _TEXT_MARK), "template", sys.maxsize)
        value_mark = dumps(_VALUE_MARK, separators=(",", ":"), ensure_ascii=False)
        text_mark = dumps(_TEXT_MARK, ensure_ascii=False)
        head, sep1, rest = text.partition(value_mark)
        middle, sep2, tail = rest.partition(text_mark)
        if not (sep1 and sep2) or any(mark in head + middle + tail for mark in (value_mark, text_mark)):
            return None
        parts = (head, middle + '"', '"' + tail)
        template = cls(parts, sum(len(p.encode("utf-8", "surrogatepass")) for p in parts))
        sample, sample_text = {"a": [1, "é"]}, "00-" + "0" * 32
        expected = make(sample, sample_text)
        built, _ = template.fill(encode(sample, "sample", sys.maxsize), sample_text)
        if json.loads(built) != json.loads(dumps(expected)) or make(sample, sample_text) != expected:
            return None
        return template

    def fill(self, value_json: tuple[str | None, int], text: str) -> tuple[str, int]:
        """``(JSON text, UTF-8 size)`` of ``make(value, text)``, from ``value``'s :func:`encode`
        result (None: ``{}``); ``text`` goes in as it is, so it must be ASCII needing no JSON
        escape (an execution id)."""
        value, size = value_json
        if value is None:
            value, size = "{}", 2
        head, middle, tail = self.parts
        return f"{head}{value}{middle}{text}{tail}", self.size + size + len(text)


#: Hex digits of a definition version's content hash.
HASH_DIGITS = 12


def content_hash(value: Any) -> str:
    """The version id of a definition body: the first :data:`HASH_DIGITS` hex digits of the
    SHA-256 of its canonical JSON (keys sorted, no spaces, UTF-8), so equal content, whatever
    its key order or formatting, is one version."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_DIGITS]
