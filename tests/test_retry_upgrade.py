"""A shard written before journal rows kept states (``wfctl retry --from``) gets the ``state`` column
when opened, on SQLite (``ALTER TABLE``) and PostgreSQL (completed under the deployment's lock), and
its older rows, which kept none, read back as None."""

from __future__ import annotations

import sqlite3

from wfctl.store import RUNNING, DataDir, JournalRow, StepCommit
from wfctl.store.base import STARTED

from pg import pg_dsn, pg_project


def _state(current):
    return {"variables": {"input": {}}, "current": current, "status": RUNNING, "output": None, "error": None,
            "wake_at": None, "steps_run": 0}


def _old_row_then_a_kept_state(datadir: DataDir, drop) -> None:
    with datadir.open_shard(0) as store:
        store.create_run("wf-0", "wf", {}, _state("a"), now=1.0)
        g = store.acquire_lease("w", 600.0, now=1.0)
        store.mark_step_started(g, "wf-0", JournalRow("a", "action", STARTED, 1), now=2.0)
        store.release_lease("w", g)
    drop()  # as if written before the column
    with datadir.open_shard(0) as store:
        assert store.step_state("wf-0", 1) is None
        g = store.acquire_lease("w", 600.0, now=3.0)
        store.commit_steps(g, [StepCommit("wf-0", RUNNING, _state("b"), "b", ready_at=3.0)], now=3.0)
        assert store.mark_step_started(g, "wf-0", JournalRow("b", "action", STARTED, 1), now=4.0)
        assert store.step_state("wf-0", 2) == _state("b")


def test_sqlite_shard_file_gets_the_journal_state_column(tmp_path):
    datadir = DataDir.init(tmp_path / "data", shards=1)

    def drop():
        conn = sqlite3.connect(datadir.backend.shard_path(0))
        with conn:
            conn.execute("ALTER TABLE journal DROP COLUMN state")
        conn.close()

    _old_row_then_a_kept_state(datadir, drop)


def test_postgresql_shard_schema_gets_the_journal_state_column(tmp_path):
    import psycopg

    with pg_project(tmp_path / "data", shards=1, tag="upg") as path:
        datadir = DataDir.open(path, create=False)
        schema = f"{datadir.backend.prefix}_shard_000"

        def drop():
            with psycopg.connect(pg_dsn(), autocommit=True) as conn:
                conn.execute(f"ALTER TABLE {schema}.journal DROP COLUMN state")

        _old_row_then_a_kept_state(datadir, drop)
