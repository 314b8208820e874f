"""SQLite's files: WAL and stamped, refused when newer or swapped, damage isolated, older files upgraded."""

from __future__ import annotations

import sqlite3

import pytest

from helpers import EXAMPLES, minutely_sleeper
from test_cli_engine import init, ok, ok_json, start_runs, wfctl
from wfctl.engine import Engine
from wfctl.errors import InputError
from wfctl.store import SCHEMA_VERSION, DataDir
from wfctl.store.errors import CorruptShardError

HELLO = EXAMPLES / "hello.json"


def test_files_are_wal_and_stamped(tmp_path):
    datadir = DataDir.init(tmp_path, shards=1)
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"shard_status", "runs", "queue", "journal", "blobs"} <= tables


def test_newer_shard_file_is_refused(tmp_path):
    datadir = DataDir.init(tmp_path, shards=1)
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(InputError, match=r"newer wfctl \(schema 99 > 1\)"):
        datadir.open_shard(0)


def test_missing_shard_file_is_named(tmp_path):
    DataDir.init(tmp_path, shards=2)
    (tmp_path / "shard-001.db").unlink()
    with pytest.raises(InputError, match="shard-001.db is missing"):
        DataDir.open(tmp_path)


def test_shard_file_swapped_for_another_is_detected(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    (tmp_path / "shard-000.db").replace(tmp_path / "keep.db")
    (tmp_path / "shard-001.db").replace(tmp_path / "shard-000.db")
    with pytest.raises(CorruptShardError, match="holds shard 1, not shard 0"):
        datadir.open_shard(0)
    (tmp_path / "catalog.db").replace(tmp_path / "shard-001.db")
    with pytest.raises(CorruptShardError, match="not a wfctl shard file"):
        datadir.open_shard(1)


def test_corrupt_shard_is_isolated(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    (tmp_path / "shard-001.db").write_bytes(b"this is not a database" * 300)
    datadir = DataDir.open(tmp_path)
    with pytest.raises(CorruptShardError) as info:
        datadir.open_shard(1)
    assert "shard-001.db" in str(info.value)
    with datadir.open_shard(0) as store:
        assert store.create_run("e1", "wf", None, None, now=1.0)[1]


def test_damaged_pages_surface_as_corrupt_shard_error(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    with datadir.open_shard(1) as store:
        for i in range(200):
            store.create_run(f"e{i}", "wf", {"pad": "x" * 500}, None, now=1.0)
    path = tmp_path / "shard-001.db"
    data = bytearray(path.read_bytes())
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    data[page:] = b"\xff" * (len(data) - page)  # keep the header page, wreck the rest
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError) as info:
        with datadir.open_shard(1) as store:
            store.list_runs()
    assert "shard-001.db" in str(info.value)
    with datadir.open_shard(0) as store:
        assert store.count_runs() == 0


def test_existing_files_are_upgraded_additively(tmp_path):
    data = DataDir.init(tmp_path / "data", shards=1)
    with Engine(data.path) as eng:
        eng.apply([minutely_sleeper(tmp_path)])
        old = eng.start("d").execution_id
    # make the files look like ones written before schedules
    conn = sqlite3.connect(data.backend.shard_path(0))
    conn.execute("ALTER TABLE runs DROP COLUMN slot_time")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(data.backend.catalog_path)
    conn.execute("DROP TABLE schedules")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.commit()
    conn.close()
    with Engine(data.path) as eng:
        assert eng.status(old)["status"] == "pending"
        run = eng.start("d", idempotency_key="s", slot_time=1.0)
        assert eng.status(run.execution_id)["slot_time"] == "1970-01-01T00:00:01.000Z"
        assert eng.put_schedule_state("d", 0, {"version": 1})
    conn = sqlite3.connect(data.backend.catalog_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version  # schema version kept
    conn.close()


def _without_hot_row(datadir) -> None:
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    with conn:
        conn.execute("DROP TABLE hot_row")
    conn.close()


def test_a_shard_file_written_before_the_hot_row_gets_it_when_opened(tmp_path, monkeypatch):
    DataDir.init(tmp_path / "d", shards=1, hot_rows=True)
    datadir = DataDir.open(tmp_path / "d", create=False)
    _without_hot_row(datadir)
    with monkeypatch.context() as patched:  # a reader that may not write the file: nothing is written
        patched.setattr("wfctl.store.sqlite.connection.os.access", lambda path, mode: False)
        with datadir.open_shard(0) as store:
            assert store.stats().details["hot_row_count"] == 0
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'hot_row'").fetchall() == []
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    with datadir.open_shard(0) as store:
        store.create_run("r1", "wf", None, None, now=1.0)
        assert store.stats().details["hot_row_count"] == 1
    conn = sqlite3.connect(datadir.backend.shard_path(0))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version  # schema version kept
    conn.close()


def test_files_written_before_versions_are_upgraded(tmp_path):
    """A shard without ``runs.definition_version`` and a catalog without versions: the columns
    and table are added when opened, and an old run follows the current definition."""
    data = init(tmp_path, shards=1)
    [old_run] = start_runs(data, str(HELLO), 1)
    catalog = sqlite3.connect(data / "catalog.db")
    with catalog:
        catalog.execute("DROP TABLE definition_versions")
        catalog.execute("ALTER TABLE definitions DROP COLUMN hash")
        catalog.execute("ALTER TABLE definitions DROP COLUMN source")
    catalog.close()
    shard = sqlite3.connect(data / "shard-000.db")
    with shard:
        shard.execute("ALTER TABLE runs DROP COLUMN definition_version")
    shard.close()

    status = ok_json(wfctl("status", old_run, "--json", data=data))
    assert status["definition_version"] is None and status["status"] == "pending"
    [version] = ok_json(wfctl("defs", "history", "hello", "--json", data=data))
    assert version["current"] and version["runs"] == 0 and version["source"] is None
    new_run = ok_json(wfctl("start", "hello", "--json", data=data))["execution_id"]
    assert ok(wfctl("worker", "--drain", data=data)).returncode == 0
    runs = {r["execution_id"]: r for r in ok_json(wfctl("list", "--json", data=data))}
    assert runs[old_run]["status"] == runs[new_run]["status"] == "completed"
    assert (runs[old_run]["definition_version"], runs[new_run]["definition_version"]) == (None, version["version"])
