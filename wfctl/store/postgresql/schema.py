"""Schemas of a PostgreSQL deployment, their creation (advisory-locked) and their checks.

A deployment with prefix ``wfctl`` is the schema ``wfctl_catalog`` on the catalog's server
plus one schema per shard, ``wfctl_shard_000``..., each on the server the placement names::

    wfctl_catalog   meta (key PK, value): schema_version, shards, route, created_at, shared settings
                        (secret_key_fingerprint)
                    placement (shard PK, dsn): where each shard lives (DSNs hold no password)
                    definitions, definition_versions, schedules: as in the SQLite catalog
    wfctl_shard_N   shard_status (id=1): shard, schema_version, lease_owner, lease_expires_at
                        (server clock, epoch s), generation, heartbeat_at, created_at
                    counters (name PK): count, wait_ms  (retries by cause, 'transactions',
                        'deleted_runs'; added to now and then, never on the start path)
                    runs, queue, journal: as in the SQLite shard, values as JSON text (TOAST
                        keeps large ones out of line: no blobs table); journal.state is added
                        when a shard schema without it is opened (additive, same schema version)
                    fence(generation): checks the lease generation under FOR KEY SHARE, else
                        raises SQLSTATE WF001
                    hot_row (id=1): count  (runs started plus runs finished while the deployment's
                        hot_rows setting was on; created when a shard schema without it is opened:
                        additive, same schema version)

Creation and upgrades run in one transaction holding ``pg_advisory_xact_lock`` on the
deployment's name, so concurrent ``create`` calls serialize; every statement is idempotent,
so a creation cut short is completed by the next one.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from ...errors import InputError
from ..base import SCHEMA_VERSION
from ..errors import CorruptShardError
from ..roles import shard_of_schema

PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def catalog_schema(prefix: str) -> str:
    """``wfctl_catalog``."""
    return f"{prefix}_catalog"


def shard_schema(prefix: str, shard: int) -> str:
    """``wfctl_shard_003`` for shard 3."""
    return f"{prefix}_shard_{shard:03d}"


def listener_name(prefix: str) -> str:
    """``wfctl_listener``: what a worker's listening sessions name in place of a schema."""
    return f"{prefix}_listener"


def ready_channel(prefix: str, shard: int) -> str:
    """``wfctl_shard_003_ready``: the NOTIFY channel announcing ready runs on shard 3."""
    return f"{shard_schema(prefix, shard)}_ready"


def lock_deployment(conn: psycopg.Connection, prefix: str) -> None:
    """Serialize creation and upgrades of deployment ``prefix`` on this server (until the transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"wfctl deployment {prefix}",))


_SHARD_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.shard_status (
    id int PRIMARY KEY CHECK (id = 1), shard int NOT NULL, schema_version int NOT NULL,
    lease_owner text, lease_expires_at float8, generation bigint NOT NULL DEFAULT 0,
    heartbeat_at float8, created_at float8 NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.counters (
    name text PRIMARY KEY, count bigint NOT NULL DEFAULT 0, wait_ms float8 NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS {schema}.runs (
    execution_id text PRIMARY KEY, definition_id text NOT NULL, status text NOT NULL,
    current_step text, attempt int NOT NULL, idempotency_key text, timeout_s float8,
    created_at float8 NOT NULL, started_at float8, completed_at float8, updated_at float8 NOT NULL,
    wake_at float8, slot_time float8, definition_version text, error text,
    input text, state text, output text);
CREATE INDEX IF NOT EXISTS ix_runs_definition ON {schema}.runs (definition_id, created_at);
CREATE INDEX IF NOT EXISTS ix_runs_status ON {schema}.runs (status, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS ux_runs_idempotency_key ON {schema}.runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.queue (
    execution_id text PRIMARY KEY, ready_at float8 NOT NULL, claimed bigint);
CREATE INDEX IF NOT EXISTS ix_queue_ready ON {schema}.queue (ready_at);
CREATE TABLE IF NOT EXISTS {schema}.journal (
    execution_id text NOT NULL, seq int NOT NULL, step_slug text NOT NULL, step_type text,
    attempt int NOT NULL, status text NOT NULL, port text, error text, started_at float8,
    finished_at float8, output text, state text, PRIMARY KEY (execution_id, seq));
CREATE OR REPLACE FUNCTION {schema}.fence(expected bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    found bigint;
    holder text;
BEGIN
    SELECT generation, lease_owner INTO found, holder FROM {schema}.shard_status WHERE id = 1 FOR KEY SHARE;
    IF found IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'lease generation % is no longer valid (generation is now %)', expected, found
            USING ERRCODE = 'WF001';
    ELSIF holder IS NULL THEN
        RAISE EXCEPTION 'lease generation % is no longer valid (the lease was released)', expected
            USING ERRCODE = 'WF001';
    END IF;
END $$;
"""

_HOT_ROW_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.hot_row (id int PRIMARY KEY CHECK (id = 1), count bigint NOT NULL DEFAULT 0);
INSERT INTO {schema}.hot_row (id, count) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

_ADDED_COLUMNS_DDL = """
ALTER TABLE {schema}.journal ADD COLUMN IF NOT EXISTS state text;
"""

_CATALOG_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.placement (shard int PRIMARY KEY, dsn text NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.definitions (
    id text PRIMARY KEY, name text, version text, steps int NOT NULL, updated_at float8 NOT NULL,
    body text NOT NULL, hash text NOT NULL, source text);
CREATE TABLE IF NOT EXISTS {schema}.definition_versions (
    definition_id text NOT NULL, hash text NOT NULL, applied_at float8 NOT NULL, name text,
    version text, steps int NOT NULL, source text, body text NOT NULL, PRIMARY KEY (definition_id, hash));
CREATE TABLE IF NOT EXISTS {schema}.schedules (
    definition_id text PRIMARY KEY, state text NOT NULL, version int NOT NULL, updated_at float8 NOT NULL);
"""

SHARD_TABLES = ("shard_status", "counters", "runs", "queue", "journal")
ADDED_SHARD_TABLES = ("hot_row",)
"""Shard tables added since the first layout: a shard schema without them is completed when opened."""
ADDED_SHARD_COLUMNS = (("journal", "state"),)
"""Shard columns added since the first layout (``(table, column)``): completed like :data:`ADDED_SHARD_TABLES`."""
CATALOG_TABLES = ("meta", "placement", "definitions", "definition_versions", "schedules")


def _ddl(conn: psycopg.Connection, template: str, schema: str) -> None:
    conn.execute(sql.SQL(template).format(schema=sql.Identifier(schema)))


def create_catalog(conn: psycopg.Connection, prefix: str, *, shards: int, route: str, placement: dict[int, str],
                   created_at: str) -> dict[int, str]:
    """Create (or complete) the catalog schema and record the placement; the placement in force
    (an existing one is kept: InputError when ``placement``, ``shards`` or ``route`` differs from
    what it records). In the caller's transaction, after :func:`lock_deployment`."""
    schema = catalog_schema(prefix)
    found = stored_version(conn, schema)
    if found is not None and found > SCHEMA_VERSION:
        raise InputError(f"schema {schema} was written by a newer wfctl (schema {found} > {SCHEMA_VERSION})")
    _ddl(conn, _CATALOG_DDL, schema)
    name = sql.Identifier(schema)
    meta = {"schema_version": str(SCHEMA_VERSION), "shards": str(shards), "route": route, "created_at": created_at}
    for key, value in meta.items():
        conn.execute(sql.SQL("INSERT INTO {}.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING").format(name),
                     (key, value))
    (stored_shards,) = conn.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'shards'").format(name)).fetchone()
    if int(stored_shards) != shards:
        raise InputError(f"schema {schema} holds a deployment of {stored_shards} shard(s), not {shards}")
    (stored_route,) = conn.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'route'").format(name)).fetchone()
    if stored_route != route:
        raise InputError(f"schema {schema} holds a deployment that routes runs by {stored_route}, not by {route}")
    existing = dict(conn.execute(sql.SQL("SELECT shard, dsn FROM {}.placement").format(name)).fetchall())
    if existing and existing != placement:
        changed = sorted(s for s in set(existing) | set(placement) if existing.get(s) != placement.get(s))
        raise InputError(f"schema {schema} already places shard {changed[0]} elsewhere; the placement of an "
                         "existing deployment cannot be changed")
    for shard, dsn in sorted(placement.items()):
        conn.execute(sql.SQL("INSERT INTO {}.placement (shard, dsn) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(name),
                     (shard, dsn))
    return placement


def create_shard(conn: psycopg.Connection, prefix: str, shard: int, now: float) -> None:
    """Create (or complete) shard ``shard``'s schema, in the caller's transaction after :func:`lock_deployment`."""
    schema = shard_schema(prefix, shard)
    _ddl(conn, _SHARD_DDL + _HOT_ROW_DDL, schema)
    conn.execute(sql.SQL("INSERT INTO {}.shard_status (id, shard, schema_version, created_at) VALUES (1, %s, %s, %s)"
                         " ON CONFLICT (id) DO NOTHING").format(sql.Identifier(schema)), (shard, SCHEMA_VERSION, now))


def complete_shard(conn: psycopg.Connection, schema: str) -> None:
    """Add the :data:`ADDED_SHARD_TABLES` and :data:`ADDED_SHARD_COLUMNS` a shard schema lacks (in the
    caller's transaction, holding the deployment's lock; idempotent)."""
    prefix, _ = shard_of_schema(schema)
    lock_deployment(conn, prefix)
    _ddl(conn, _HOT_ROW_DDL + _ADDED_COLUMNS_DDL, schema)


def missing_columns(conn: psycopg.Connection, schema: str) -> list[str]:
    """The :data:`ADDED_SHARD_COLUMNS` that ``schema`` lacks, as ``table.column``."""
    wanted = [f"{t}.{c}" for t, c in ADDED_SHARD_COLUMNS]
    rows = conn.execute(  # the catalog directly: information_schema's views are slow on a server with many schemas
        "SELECT w FROM unnest(%s::text[]) AS w WHERE NOT EXISTS (SELECT 1 FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s || '.' || split_part(w, '.', 1)) AND attname = split_part(w, '.', 2)"
        " AND NOT attisdropped)", (wanted, schema)).fetchall()
    return [r[0] for r in rows]


def stored_version(conn: psycopg.Connection, schema: str) -> int | None:
    """The schema version a catalog schema records (None when the schema or its meta table is missing)."""
    if conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()[0] is None:
        return None
    row = conn.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(sql.Identifier(schema))).fetchone()
    return None if row is None else int(row[0])


def missing_tables(conn: psycopg.Connection, schema: str, tables: tuple[str, ...]) -> list[str]:
    """The tables of ``tables`` that ``schema`` lacks (all of them when the schema is missing)."""
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)).fetchall()
    present = {r[0] for r in rows}
    return [t for t in tables if t not in present]


def check_shard_schema(conn: psycopg.Connection, schema: str, shard: int, where: str) -> None:
    """CorruptShardError when the shard schema is missing or malformed; InputError when newer."""
    missing = missing_tables(conn, schema, SHARD_TABLES)
    if missing:
        what = "is missing" if len(missing) == len(SHARD_TABLES) else f"lacks table {missing[0]}"
        raise CorruptShardError(f"{where}: schema {schema} {what}")
    row = conn.execute(sql.SQL("SELECT shard, schema_version FROM {}.shard_status WHERE id = 1").format(
        sql.Identifier(schema))).fetchone()
    if row is None:
        raise CorruptShardError(f"{where}: schema {schema} has no status row")
    if row[1] > SCHEMA_VERSION:
        raise InputError(f"{where}: schema {schema} was written by a newer wfctl (schema {row[1]} > {SCHEMA_VERSION})")
    if row[0] != shard:
        raise CorruptShardError(f"{where}: schema {schema} holds shard {row[0]}, not shard {shard}")
    if conn.execute("SELECT to_regprocedure(%s)", (f"{schema}.fence(bigint)",)).fetchone()[0] is None:
        raise CorruptShardError(f"{where}: schema {schema} lacks its fence() function")
