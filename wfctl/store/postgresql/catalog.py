"""The PostgreSQL catalog store: definitions, their versions, schedules and the shard placement."""

from __future__ import annotations

from typing import Any

import psycopg

from ...errors import InputError
from ..base import SCHEMA_VERSION, CatalogStore, DefinitionVersion
from ..catalog_rules import SUMMARY_FIELDS, applied_body, schedule_write, summaries, version_record
from ..errors import CorruptShardError
from ..payload import DEFAULT_MAX_PAYLOAD_BYTES, decode
from .connection import Session
from .schema import CATALOG_TABLES, missing_tables, stored_version


class PostgresCatalogStore(CatalogStore):
    """:class:`~wfctl.store.base.CatalogStore` on the deployment's catalog schema; also reads the
    placement map (shard -> DSN) every process uses to find the shards."""

    def __init__(self, dsn: str, schema: str, *, durability: str = "normal", isolation: str = "read committed",
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES):
        self.max_payload_bytes = max_payload_bytes
        self._db = Session(dsn, schema=schema, label="catalog", isolation=isolation, durability=durability)
        self._db.check_or_close(self._check)

    @property
    def where(self) -> str:
        """``catalog (host:port/dbname schema wfctl_catalog)``."""
        return self._db.where

    def _check(self, conn: psycopg.Connection) -> None:
        missing = missing_tables(conn, self._db.schema, CATALOG_TABLES)
        if missing:
            what = "is missing" if len(missing) == len(CATALOG_TABLES) else f"lacks table {missing[0]}"
            raise CorruptShardError(f"{self.where}: schema {self._db.schema} {what}")
        version = stored_version(conn, self._db.schema)
        if version is None:
            raise CorruptShardError(f"{self.where}: schema {self._db.schema} records no schema version")
        if version > SCHEMA_VERSION:
            raise InputError(f"{self.where}: schema {self._db.schema} was written by a newer wfctl "
                             f"(schema {version} > {SCHEMA_VERSION})")

    def _fetch(self, query: str, params: tuple = ()) -> list[tuple]:
        return self._db.run(lambda conn: conn.execute(query, params), write=False).fetchall()

    def placement(self) -> dict[int, str]:
        """Shard number -> the DSN of the server that holds it."""
        return dict(self._fetch("SELECT shard, dsn FROM placement ORDER BY shard"))

    def meta(self) -> dict[str, str]:
        """What the catalog records about the deployment: schema_version, shards, route, created_at, and
        the shared settings (secret_key_fingerprint)."""
        return dict(self._fetch("SELECT key, value FROM meta"))

    def record_meta(self, key: str, value: str) -> str:
        """Record ``key`` as ``value`` unless the catalog records it already; the recorded value."""
        def put(conn: psycopg.Connection) -> str:
            conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()[0]

        return self._db.run(put, pipeline=False)

    def put_definition(self, definition_id: str, body: dict[str, Any], *, now: float,
                       source: str | None = None, replace: bool = True) -> bool:
        applied = applied_body(definition_id, body, self.max_payload_bytes)
        text, digest, fields = applied.text, applied.digest, applied.fields

        def put(conn: psycopg.Connection) -> bool:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                         (f"wfctl definition {self._db.schema} {definition_id}",))
            row = conn.execute("SELECT hash FROM definitions WHERE id = %s", (definition_id,)).fetchone()
            if applied.unchanged(None if row is None else row[0], replace):
                return False
            stored = conn.execute("SELECT body FROM definition_versions WHERE definition_id = %s AND hash = %s",
                                  (definition_id, digest)).fetchone()
            if stored is None:
                conn.execute("INSERT INTO definition_versions (definition_id, hash, applied_at, name, version, steps,"
                             " source, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                             (definition_id, digest, now, *fields, source, text))
            else:  # an older version made current again (unless the hash collides)
                applied.check_stored(stored[0])
                conn.execute("UPDATE definition_versions SET applied_at = %s, source = COALESCE(%s, source)"
                             " WHERE definition_id = %s AND hash = %s", (now, source, definition_id, digest))
            conn.execute(
                "INSERT INTO definitions (id, name, version, steps, updated_at, body, hash, source)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " version = excluded.version, steps = excluded.steps, updated_at = excluded.updated_at,"
                " body = excluded.body, hash = excluded.hash, source = excluded.source",
                (definition_id, *fields, now, text, digest, source))
            return True

        return self._db.run(put, pipeline=False)

    def get_definition(self, definition_id: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT body FROM definitions WHERE id = %s", (definition_id,))
        return decode(rows[0][0]) if rows else None

    def get_version(self, definition_id: str, content_hash: str | None = None) -> DefinitionVersion | None:
        if content_hash is None:
            rows = self._fetch("SELECT hash, updated_at, name, version, steps, source, body, true FROM definitions"
                               " WHERE id = %s", (definition_id,))
        else:
            rows = self._fetch("SELECT v.hash, v.applied_at, v.name, v.version, v.steps, v.source, v.body,"
                               " COALESCE(d.hash = v.hash, false) FROM definition_versions v"
                               " LEFT JOIN definitions d ON d.id = v.definition_id"
                               " WHERE v.definition_id = %s AND v.hash = %s", (definition_id, content_hash))
        if not rows:
            return None
        return version_record(definition_id, rows[0], rows[0][7], decode(rows[0][6]))

    def definition_history(self, definition_id: str) -> list[DefinitionVersion]:
        rows = self._fetch("SELECT v.hash, v.applied_at, v.name, v.version, v.steps, v.source,"
                           " COALESCE(v.hash = d.hash, false) FROM definition_versions v"
                           " LEFT JOIN definitions d ON d.id = v.definition_id"
                           " WHERE v.definition_id = %s ORDER BY v.applied_at DESC, v.hash", (definition_id,))
        return [version_record(definition_id, row, row[6]) for row in rows]

    def list_definitions(self) -> list[dict[str, Any]]:
        return summaries(self._fetch(f"SELECT {', '.join(SUMMARY_FIELDS)} FROM definitions ORDER BY id"))

    def delete_definition(self, definition_id: str) -> bool:
        def delete(conn: psycopg.Connection) -> psycopg.Cursor:
            cursor = conn.execute("DELETE FROM definitions WHERE id = %s", (definition_id,))
            conn.execute("DELETE FROM definition_versions WHERE definition_id = %s", (definition_id,))
            return cursor

        return self._db.run(delete).rowcount == 1

    def get_schedule_state(self, definition_id: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT state FROM schedules WHERE definition_id = %s", (definition_id,))
        return decode(rows[0][0]) if rows else None

    def put_schedule_state(self, definition_id: str, expected_version: int, state: dict[str, Any], *,
                           now: float) -> bool:
        text, version = schedule_write(definition_id, expected_version, state, self.max_payload_bytes)
        if expected_version == 0:
            query = ("INSERT INTO schedules (definition_id, state, version, updated_at) VALUES (%s, %s, %s, %s)"
                     " ON CONFLICT (definition_id) DO NOTHING")
            params: tuple = (definition_id, text, version, now)
        else:
            query = ("UPDATE schedules SET state = %s, version = %s, updated_at = %s"
                     " WHERE definition_id = %s AND version = %s")
            params = (text, version, now, definition_id, expected_version)
        # Not retried after a lost connection: a retry of a write that committed would report a lost race.
        return self._db.run(lambda conn: conn.execute(query, params), idempotent=False).rowcount == 1

    def close(self) -> None:
        self._db.close()
