"""The SQLite catalog store: workflow definitions in ``catalog.db``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import CatalogStore
from ..payload import DEFAULT_MAX_PAYLOAD_BYTES, decode, encode
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

    def put_definition(self, definition_id: str, body: dict[str, Any], *, now: float) -> bool:
        text, _ = encode(body, f"definition {definition_id}", self.max_payload_bytes)
        steps = body.get("steps")
        version = body.get("version")
        with self._db.write() as conn:
            row = conn.execute("SELECT body FROM definitions WHERE id = ?", (definition_id,)).fetchone()
            if row is not None and row[0] == text:
                return False
            conn.execute(
                "INSERT INTO definitions (id, name, version, steps, updated_at, body) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,"
                " steps = excluded.steps, updated_at = excluded.updated_at, body = excluded.body",
                (definition_id, body.get("name"), None if version is None else str(version),
                 len(steps) if isinstance(steps, list) else 0, now, text))
        return True

    def get_definition(self, definition_id: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT body FROM definitions WHERE id = ?", (definition_id,)).fetchone()
        return None if row is None else decode(row[0])

    def list_definitions(self) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT id, name, version, updated_at, steps FROM definitions ORDER BY id").fetchall()
        return [dict(zip(("id", "name", "version", "updated_at", "steps"), row)) for row in rows]

    def delete_definition(self, definition_id: str) -> bool:
        with self._db.write() as conn:
            deleted = conn.execute("DELETE FROM definitions WHERE id = ?", (definition_id,)).rowcount
        return deleted == 1

    def get_schedule_state(self, definition_id: str) -> dict[str, Any] | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT state FROM schedules WHERE definition_id = ?", (definition_id,)).fetchone()
        return None if row is None else decode(row[0])

    def put_schedule_state(self, definition_id: str, expected_version: int, state: dict[str, Any], *,
                           now: float) -> bool:
        text, _ = encode(state, f"schedule state of {definition_id}", self.max_payload_bytes)
        version = expected_version + 1
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
