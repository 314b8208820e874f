"""Tables and indexes of shard and catalog files (created with sqlite-utils), and their checks.

A file is stamped with ``PRAGMA application_id`` (which kind of wfctl file it is) and
``PRAGMA user_version`` (its schema version), both written in the creating transaction.

Shard file::

    shard_status  id=1 | shard, lease_owner, lease_expires_at, generation, heartbeat_at,
                  lock_retries, lock_wait_ms, transactions, created_at
                  (the lock counters are the stats' retries / wait_ms of cause lock_busy)
    runs          execution_id PK | definition_id, status, current_step, attempt,
                  idempotency_key (unique when set), timeout_s, created_at, started_at, completed_at,
                  updated_at, wake_at, input_blob, state_blob, output_blob, error,
                  output, input, state,  (large JSON last; *_blob -> blobs.id when out of line)
                  slot_time              (the schedule slot a run was started for; NULL by hand;
                                          added by ALTER TABLE to older files when opened)
                  definition_version     (the content hash of the definition version the run is
                                          pinned to; NULL for runs of older files: they use the
                                          current version; added like slot_time)
                  indexes: (definition_id, created_at), (status, created_at)
    queue         execution_id PK | ready_at (indexed), claimed (the lease generation that claimed it)
                  (WITHOUT ROWID: its rows are small, and the primary key is then the table itself)

Every b-tree a start writes costs it a page in the write-ahead log, so a start writes the
fewest: the runs row, its primary key, two indexes, and the queue entry with its index.
Runs newest first without a filter are merged from the status index, one range per status.
Files created before this layout (with an ``ix_runs_created`` index and a rowid queue) work
unchanged: every query reads both.
    journal       (execution_id, seq) PK | step_slug, step_type, attempt, status, port, error,
                  started_at, finished_at, output,
                  state  (a side-effecting step's ``started`` row: the run's state just before the
                          step, for ``wfctl retry --from``; NULL elsewhere; added like slot_time)
    blobs         id PK | execution_id (indexed), body
    hot_row       id=1 | count  (runs started plus runs finished while the deployment's
                  ``hot_rows`` setting was on; created when a shard file without it is opened
                  for writing: additive, same schema version)

Catalog file::

    definitions   id PK | name, version, steps, updated_at, body, hash, source
                  (the current version of each definition; hash and source added by ALTER
                  TABLE to older catalogs when opened)
    definition_versions  (definition_id, hash) PK | applied_at, name, version, steps, source, body
                  (every version ever applied, immutable but for applied_at, which a re-apply
                  moves; a definition's rows go with it)
    schedules     definition_id PK | state (JSON), version, updated_at
                  (schedules and definition_versions are created when a catalog without them
                  is opened, and the current definitions recorded as versions: additive, same
                  schema version)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...errors import InputError
from ..base import SCHEMA_VERSION
from ..errors import CorruptShardError

SHARD_APP_ID = 0x77667368  # "wfsh"
CATALOG_APP_ID = 0x77666361  # "wfca"
_KINDS = {SHARD_APP_ID: "shard", CATALOG_APP_ID: "catalog"}


def create_shard_schema(conn: sqlite3.Connection, shard: int, now: float) -> None:
    """Create a shard file's tables, indexes and status row (inside the caller's transaction)."""
    from sqlite_utils import Database  # only when a file is created: opening one must stay cheap

    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    db.create_table("shard_status", {
        "id": int, "shard": int, "lease_owner": str, "lease_expires_at": float, "generation": int,
        "heartbeat_at": float, "lock_retries": int, "lock_wait_ms": float, "transactions": int,
        "created_at": float,
    }, pk="id", not_null={"shard", "generation", "lock_retries", "lock_wait_ms", "transactions"},
        defaults={"generation": 0, "lock_retries": 0, "lock_wait_ms": 0.0, "transactions": 0})
    runs = db.create_table("runs", {
        "execution_id": str, "definition_id": str, "status": str, "current_step": str,
        "attempt": int, "idempotency_key": str, "timeout_s": float, "created_at": float,
        "started_at": float, "completed_at": float, "updated_at": float, "wake_at": float,
        "input_blob": int, "state_blob": int, "output_blob": int, "error": str,
        "output": str, "input": str, "state": str, "slot_time": float, "definition_version": str,
    }, pk="execution_id", not_null={"definition_id", "status", "attempt", "created_at", "updated_at"})
    runs.create_index(["definition_id", "created_at"], index_name="ix_runs_definition")
    runs.create_index(["status", "created_at"], index_name="ix_runs_status")
    # Partial (create_index cannot say WHERE): most runs have no key, and a NULL entry per run
    # would cost every start an index write.
    db.execute("CREATE UNIQUE INDEX ux_runs_idempotency_key ON runs (idempotency_key)"
               " WHERE idempotency_key IS NOT NULL")
    db.execute('CREATE TABLE "queue" (\n   "execution_id" TEXT PRIMARY KEY,\n   "ready_at" REAL NOT NULL,'
               '\n   "claimed" INTEGER\n) WITHOUT ROWID')
    db["queue"].create_index(["ready_at"], index_name="ix_queue_ready")
    db.create_table("journal", {
        "execution_id": str, "seq": int, "step_slug": str, "step_type": str, "attempt": int,
        "status": str, "port": str, "error": str, "started_at": float, "finished_at": float,
        "output": str, "state": str,
    }, pk=("execution_id", "seq"), not_null={"step_slug", "attempt", "status"})
    blobs = db.create_table("blobs", {"id": int, "execution_id": str, "body": str}, pk="id",
                            not_null={"execution_id", "body"})
    blobs.create_index(["execution_id"], index_name="ix_blobs_execution")
    add_hot_row(conn)
    conn.execute("INSERT INTO shard_status (id, shard, created_at) VALUES (1, ?, ?)", (shard, now))
    _stamp(conn, SHARD_APP_ID)


def create_catalog_schema(conn: sqlite3.Connection) -> None:
    """Create the catalog's table (inside the caller's transaction)."""
    from sqlite_utils import Database

    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    db.create_table("definitions", {
        "id": str, "name": str, "version": str, "steps": int, "updated_at": float, "body": str,
        "hash": str, "source": str,
    }, pk="id", not_null={"steps", "updated_at", "body"})
    conn.execute(_CREATE_SCHEDULES)
    conn.execute(_CREATE_VERSIONS)
    _stamp(conn, CATALOG_APP_ID)


_CREATE_SCHEDULES = ('CREATE TABLE IF NOT EXISTS "schedules" (\n   "definition_id" TEXT PRIMARY KEY,'
                     '\n   "state" TEXT NOT NULL,\n   "version" INTEGER NOT NULL,\n   "updated_at" REAL NOT NULL\n)')
_CREATE_VERSIONS = ('CREATE TABLE IF NOT EXISTS "definition_versions" (\n   "definition_id" TEXT NOT NULL,'
                    '\n   "hash" TEXT NOT NULL,\n   "applied_at" REAL NOT NULL,\n   "name" TEXT,'
                    '\n   "version" TEXT,\n   "steps" INTEGER NOT NULL,\n   "source" TEXT,'
                    '\n   "body" TEXT NOT NULL,\n   PRIMARY KEY ("definition_id", "hash")\n) WITHOUT ROWID')


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def upgrade_catalog(conn: sqlite3.Connection) -> bool:
    """Whether the catalog lacks a table or column this wfctl adds; see :func:`add_catalog_tables`."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return not {"schedules", "definition_versions"} <= tables or "hash" not in _columns(conn, "definitions")


def add_catalog_tables(conn: sqlite3.Connection) -> None:
    """Create the tables and columns added since the catalog was written, and record every
    current definition as a version (inside the caller's write transaction; idempotent)."""
    from ..payload import content_hash, decode

    conn.execute(_CREATE_SCHEDULES)
    conn.execute(_CREATE_VERSIONS)
    missing = {"hash", "source"} - _columns(conn, "definitions")
    for column in sorted(missing):
        conn.execute(f"ALTER TABLE definitions ADD COLUMN {column} TEXT")
    rows = conn.execute("SELECT id, name, version, steps, updated_at, body FROM definitions WHERE hash IS NULL").fetchall()
    for definition_id, name, version, steps, updated_at, body in rows:
        digest = content_hash(decode(body))
        conn.execute("INSERT INTO definition_versions (definition_id, hash, applied_at, name, version, steps, body)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     (definition_id, digest, updated_at, name, version, steps, body))
        conn.execute("UPDATE definitions SET hash = ? WHERE id = ?", (digest, definition_id))


#: Columns added to ``runs`` since the first shard layout, with their types (see :func:`add_run_columns`).
ADDED_RUN_COLUMNS = {"slot_time": "REAL", "definition_version": "TEXT"}
#: Columns added to ``journal`` since the first shard layout (added like :data:`ADDED_RUN_COLUMNS`).
ADDED_JOURNAL_COLUMNS = {"state": "TEXT"}
_ADDED = {"runs": ADDED_RUN_COLUMNS, "journal": ADDED_JOURNAL_COLUMNS}


def shard_lacks_columns(conn: sqlite3.Connection) -> bool:
    """Whether a shard file was written before a column of :data:`ADDED_RUN_COLUMNS` or :data:`ADDED_JOURNAL_COLUMNS`."""
    return any(not added.keys() <= _columns(conn, table) for table, added in _ADDED.items())


def add_run_columns(conn: sqlite3.Connection) -> None:
    """Add the missing :data:`ADDED_RUN_COLUMNS` and :data:`ADDED_JOURNAL_COLUMNS` (inside the caller's
    write transaction; idempotent)."""
    for table, added in _ADDED.items():
        present = _columns(conn, table)
        for column, kind in added.items():
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def has_hot_row(conn: sqlite3.Connection) -> bool:
    """Whether the shard file has its ``hot_row`` table (files written before it do not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hot_row'").fetchone() is not None


def add_hot_row(conn: sqlite3.Connection) -> None:
    """Create the ``hot_row`` table and its row (inside the caller's write transaction; idempotent)."""
    conn.execute('CREATE TABLE IF NOT EXISTS "hot_row" (\n   "id" INTEGER PRIMARY KEY CHECK ("id" = 1),'
                 '\n   "count" INTEGER NOT NULL DEFAULT 0\n)')
    conn.execute("INSERT OR IGNORE INTO hot_row (id, count) VALUES (1, 0)")


def _stamp(conn: sqlite3.Connection, app_id: int) -> None:
    conn.execute(f"PRAGMA application_id={app_id}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def is_initialized(conn: sqlite3.Connection) -> bool:
    """True once a schema was created in the file."""
    return conn.execute("PRAGMA user_version").fetchone()[0] != 0


def check_schema(conn: sqlite3.Connection, path: Path, app_id: int) -> None:
    """Check that the file is a wfctl file of the expected kind that this wfctl can read."""
    (found_app,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if found_app != app_id:
        other = f" (it is a {_KINDS[found_app]} file)" if found_app in _KINDS else ""
        raise CorruptShardError(f"{path} is not a wfctl {_KINDS[app_id]} file{other}")
    if version > SCHEMA_VERSION:
        raise InputError(f"{path} was written by a newer wfctl (schema {version} > {SCHEMA_VERSION})")
