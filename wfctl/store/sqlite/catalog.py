"""The SQLite catalog store: workflow definitions in ``catalog.db``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import CatalogStore, DefinitionVersion
from ..catalog_rules import SUMMARY_FIELDS, applied_body, schedule_write, summaries, version_record
from ..payload import DEFAULT_MAX_PAYLOAD_BYTES, decode
from .connection import DEFAULT_BUSY_DEADLINE_S, Connection
from .schema import (CATALOG_APP_ID, add_catalog_tables, check_schema, create_catalog_schema, is_initialized,
                     upgrade_catalog)


def create_catalog_file(path: Path, *, durability: str) -> None:
    """Create (or complete) the catalog file ``path``."""
    db = Connection(path, durability=durability, create=True)
    try:
        with db.write() as conn:
            if not is_initialized(conn):
                create_catalog_schema(conn)
    finally:
        db.close()


class SQLiteCatalogStore(CatalogStore):
    """:class:`~wfctl.store.base.CatalogStore` on one SQLite file."""

    def __init__(self, path: Path, *, durability: str = "normal",
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 busy_deadline_s: float = DEFAULT_BUSY_DEADLINE_S):
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self._db = Connection(self.path, durability=durability, busy_deadline_s=busy_deadline_s)
        try:
            with self._db.read() as conn:
                check_schema(conn, self.path, CATALOG_APP_ID)
                missing = upgrade_catalog(conn)
            if missing:
                with self._db.write() as conn:
                    add_catalog_tables(conn)
        except BaseException:
            self._db.conn.close()
            raise

    def put_definition(self, definition_id: str, body: dict[str, Any], *, now: float,
                       source: str | None = None, replace: bool = True) -> bool:
        applied = applied_body(definition_id, body, self.max_payload_bytes)
        text, digest, fields = applied.text, applied.digest, applied.fields
        with self._db.write() as conn:
            row = conn.execute("SELECT hash FROM definitions WHERE id = ?", (definition_id,)).fetchone()
            if applied.unchanged(None if row is None else row[0], replace):
                return False
            stored = conn.execute("SELECT body FROM definition_versions WHERE definition_id = ? AND hash = ?",
                                  (definition_id, digest)).fetchone()
            if stored is None:
                conn.execute("INSERT INTO definition_versions (definition_id, hash, applied_at, name, version, steps,"
                             " source, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (definition_id, digest, now, *fields,
                                                                                 source, text))
            else:  # an older version made current again (unless the hash collides)
                applied.check_stored(stored[0])
                conn.execute("UPDATE definition_versions SET applied_at = ?, source = COALESCE(?, source)"
                             " WHERE definition_id = ? AND hash = ?", (now, source, definition_id, digest))
            conn.execute(
                "INSERT INTO definitions (id, name, version, steps, updated_at, body, hash, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " version = excluded.version, steps = excluded.steps, updated_at = excluded.updated_at,"
                " body = excluded.body, hash = excluded.hash, source = excluded.source",
                (definition_id, *fields, now, text, digest, source))
        return True

    def get_definition(self, definition_id: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT body FROM definitions WHERE id = ?", (definition_id,)).fetchone()
        return None if row is None else decode(row[0])

    def get_version(self, definition_id: str, content_hash: str | None = None) -> DefinitionVersion | None:
        with self._db.read() as conn:
            if content_hash is None:
                row = conn.execute("SELECT hash, updated_at, name, version, steps, source, body FROM definitions"
                                   " WHERE id = ?", (definition_id,)).fetchone()
                current = True
            else:
                row = conn.execute("SELECT v.hash, v.applied_at, v.name, v.version, v.steps, v.source, v.body"
                                   " FROM definition_versions v WHERE v.definition_id = ? AND v.hash = ?",
                                   (definition_id, content_hash)).fetchone()
                current = row is not None and conn.execute(
                    "SELECT 1 FROM definitions WHERE id = ? AND hash = ?", (definition_id, content_hash)).fetchone() is not None
        return None if row is None else version_record(definition_id, row, current, decode(row[6]))

    def definition_history(self, definition_id: str) -> list[DefinitionVersion]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT v.hash, v.applied_at, v.name, v.version, v.steps, v.source, v.hash = d.hash"
                " FROM definition_versions v LEFT JOIN definitions d ON d.id = v.definition_id"
                " WHERE v.definition_id = ? ORDER BY v.applied_at DESC, v.hash", (definition_id,)).fetchall()
        return [version_record(definition_id, row, bool(row[6])) for row in rows]

    def list_definitions(self) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT {', '.join(SUMMARY_FIELDS)} FROM definitions ORDER BY id").fetchall()
        return summaries(rows)

    def delete_definition(self, definition_id: str) -> bool:
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM definitions WHERE id = ?", (definition_id,)).rowcount
            conn.execute("DELETE FROM definition_versions WHERE definition_id = ?", (definition_id,))
        return deleted == 1

    def get_schedule_state(self, definition_id: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT state FROM schedules WHERE definition_id = ?", (definition_id,)).fetchone()
        return None if row is None else decode(row[0])

    def put_schedule_state(self, definition_id: str, expected_version: int, state: dict[str, Any], *,
                           now: float) -> bool:
        text, version = schedule_write(definition_id, expected_version, state, self.max_payload_bytes)
        with self._db.write() as conn:
            if expected_version == 0:
                cur = conn.execute("INSERT INTO schedules (definition_id, state, version, updated_at)"
                                   " VALUES (?, ?, ?, ?) ON CONFLICT (definition_id) DO NOTHING",
                                   (definition_id, text, version, now))
            else:
                cur = conn.execute("UPDATE schedules SET state = ?, version = ?, updated_at = ?"
                                   " WHERE definition_id = ? AND version = ?",
                                   (text, version, now, definition_id, expected_version))
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()
