"""The rules every catalog store follows whatever its database (each backend keeps its own SQL).

A stored version row is read as ``hash, applied_at, name, version, steps, source`` then, when
loaded, ``body`` (:func:`version_record`); definition summaries as :data:`SUMMARY_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .base import DefinitionVersion
from .payload import content_hash, decode, encode

SUMMARY_FIELDS = ("id", "name", "version", "updated_at", "steps", "hash")
"""The columns of a definition summary, in the order a backend selects them."""


@dataclass(frozen=True, slots=True)
class AppliedBody:
    """A definition body to apply, checked before any write: its JSON ``text``, its content hash
    (``digest``) and the ``(name, version, steps)`` the catalog lists (``steps`` a count)."""

    definition_id: str
    text: str
    digest: str
    fields: tuple[str | None, str | None, int]

    def unchanged(self, current_hash: str | None, replace: bool) -> bool:
        """Whether applying writes nothing, the definition's current version being ``current_hash``
        (None: it has none): it is this body already, or ``replace`` is off."""
        return current_hash is not None and (current_hash == self.digest or not replace)

    def check_stored(self, stored_text: str) -> None:
        """InputError when the version of this hash is stored with other content (a hash collision)."""
        if decode(stored_text) != decode(self.text):
            raise InputError(f"definition {self.definition_id}: version {self.digest} is already stored with other "
                             "content (a hash collision); change the definition slightly and apply it again")


def applied_body(definition_id: str, body: dict[str, Any], max_payload_bytes: int) -> AppliedBody:
    """``body`` encoded (PayloadTooLargeError over ``max_payload_bytes``), hashed and summarized."""
    text, _ = encode(body, f"definition {definition_id}", max_payload_bytes)
    steps = body.get("steps")
    version = body.get("version")
    fields = (body.get("name"), None if version is None else str(version), len(steps) if isinstance(steps, list) else 0)
    return AppliedBody(definition_id, text, content_hash(body), fields)


def version_record(definition_id: str, row: Sequence[Any], current: bool, body: Any = None) -> DefinitionVersion:
    """The stored version of a row (see the module), ``current`` or not, with ``body`` (decoded) or without."""
    return DefinitionVersion(definition_id, *row[:6], current, body)


def summaries(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Definition summaries (:data:`SUMMARY_FIELDS`) of the rows."""
    return [dict(zip(SUMMARY_FIELDS, row)) for row in rows]


def schedule_write(definition_id: str, expected_version: int, state: dict[str, Any],
                   max_payload_bytes: int) -> tuple[str, int]:
    """A schedule state to compare-and-set, checked before any write: its JSON text and the version it gets."""
    text, _ = encode(state, f"schedule state of {definition_id}", max_payload_bytes)
    return text, expected_version + 1
