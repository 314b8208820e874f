"""The data directory: init, open, settings, newer schema, default path (SQLite's own files:
tests/test_sqlite_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wfctl.errors import InputError
from wfctl.store import SCHEMA_VERSION, DataDir, resolve_data_dir


def test_init_creates_files_and_settings(tmp_path):
    path = tmp_path / "data"
    datadir = DataDir.init(path, shards=3, route="execution", durability="full")
    names = sorted(p.name for p in path.iterdir() if p.suffix in (".db", ".json"))
    assert names == ["catalog.db", "shard-000.db", "shard-001.db", "shard-002.db", "wfctl.json"]
    settings = json.loads((path / "wfctl.json").read_text())
    assert settings["schema_version"] == SCHEMA_VERSION == 1
    assert (settings["shards"], settings["route"], settings["durability"]) == (3, "execution", "full")
    assert settings["created_at"].endswith("Z")
    assert datadir.shard_count == 3
    assert datadir.backend.shard_path(2) == path / "shard-002.db"


def test_init_again_with_same_settings_is_accepted(tmp_path):
    DataDir.init(tmp_path, shards=2)
    assert DataDir.init(tmp_path, shards=2).shard_count == 2


@pytest.mark.parametrize("change", [{"shards": 8}, {"route": "execution"}, {"durability": "full"},
                                    {"options": {"spill_threshold_bytes": 1000}}, {"hot_rows": True}])
def test_init_refuses_different_settings(tmp_path, change):
    DataDir.init(tmp_path, shards=2)
    with pytest.raises(InputError, match="refusing to re-initialize") as info:
        DataDir.init(tmp_path, **{"shards": 2, **change})
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("kwargs,message", [
    ({"shards": 0}, "shards"), ({"shards": 1001}, "shards"), ({"route": "random"}, "route"),
    ({"durability": "none"}, "durability"), ({"max_payload_bytes": 0}, "max_payload_bytes"),
])
def test_init_validates_settings(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        DataDir.init(tmp_path / "d", **kwargs)


def test_hot_rows_is_recorded_kept_and_validated(tmp_path):
    assert json.loads((DataDir.init(tmp_path / "off").path / "wfctl.json").read_text())["hot_rows"] is False
    DataDir.init(tmp_path / "on", shards=1, hot_rows=True)
    assert json.loads((tmp_path / "on" / "wfctl.json").read_text())["hot_rows"] is True
    assert DataDir.open(tmp_path / "on").settings.hot_rows is True
    with pytest.raises(InputError, match=r"already exists with hot_rows=True; refusing to re-initialize it with "
                                         r"hot_rows=False$"):
        DataDir.init(tmp_path / "on", shards=1)
    settings = json.loads((tmp_path / "on" / "wfctl.json").read_text())
    (tmp_path / "on" / "wfctl.json").write_text(json.dumps({**settings, "hot_rows": "yes"}))
    with pytest.raises(InputError) as info:
        DataDir.open(tmp_path / "on")
    assert str(info.value) == f"{tmp_path / 'on' / 'wfctl.json'}: hot_rows must be true or false, got 'yes'"


def test_sqlite_refuses_a_placement(tmp_path):
    with pytest.raises(InputError, match="placement is for the postgresql backend"):
        DataDir.init(tmp_path / "d", shards=2, placement={0: "host=a", 1: "host=b"})
    assert not (tmp_path / "d" / "wfctl.json").exists()


def test_location_names_the_file_and_checks_the_shard(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    assert datadir.location(1) == str(tmp_path / "shard-001.db")
    assert datadir.location() == str(tmp_path / "catalog.db")
    with pytest.raises(InputError, match=r"has shards 0..1, not 2"):
        datadir.location(2)


def test_drop_removes_the_deployment_files(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    datadir.open_shard(1).close()  # leaves -wal/-shm files behind while open, then checkpoints
    datadir.backend.drop()
    assert sorted(p.name for p in tmp_path.iterdir() if ".db" in p.name) == []
    with pytest.raises(InputError, match="catalog.db is missing"):
        DataDir.open(tmp_path)


def test_open_creates_with_defaults(tmp_path):
    datadir = DataDir.open(tmp_path / "new")
    assert (datadir.settings.shards, datadir.settings.route, datadir.settings.durability) == \
        (4, "definition", "normal")
    assert (tmp_path / "new" / "shard-003.db").exists()


def test_open_without_create_needs_an_existing_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        DataDir.open(tmp_path / "missing", create=False)


def test_open_existing_keeps_its_settings(tmp_path):
    DataDir.init(tmp_path, shards=2, route="execution")
    datadir = DataDir.open(tmp_path)
    assert (datadir.settings.shards, datadir.settings.route) == (2, "execution")


def test_newer_schema_is_refused(tmp_path):
    DataDir.init(tmp_path, shards=1)
    settings = json.loads((tmp_path / "wfctl.json").read_text())
    settings["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "wfctl.json").write_text(json.dumps(settings))
    with pytest.raises(InputError) as info:
        DataDir.open(tmp_path)
    assert str(info.value) == (f"data directory {tmp_path} was written by a newer wfctl "
                               f"(schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION})")


def test_bad_settings_file(tmp_path):
    DataDir.init(tmp_path, shards=1)
    (tmp_path / "wfctl.json").write_text("{not json")
    with pytest.raises(InputError, match="wfctl.json"):
        DataDir.open(tmp_path)


def test_a_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        DataDir.init(tmp_path / "f")


def test_shard_index_out_of_range(tmp_path):
    datadir = DataDir.init(tmp_path, shards=2)
    with pytest.raises(InputError, match="shards 0..1"):
        datadir.open_shard(2)


def test_routing_follows_the_route_setting(tmp_path):
    by_definition = DataDir.init(tmp_path / "d", shards=4, route="definition")
    assert {by_definition.shard_for("wf-1", f"e{i}") for i in range(50)} == {by_definition.shard_for("wf-1", "x")}
    by_execution = DataDir.init(tmp_path / "e", shards=4, route="execution")
    assert len({by_execution.shard_for("wf-1", f"e{i}") for i in range(50)}) == 4


def test_resolve_data_dir():
    assert resolve_data_dir("/x/y", env={"WFCTL_DATA_DIR": "/env"}) == Path("/x/y")
    assert resolve_data_dir(None, env={"WFCTL_DATA_DIR": "/env"}) == Path("/env")
    assert resolve_data_dir(None, env={}) == Path(".wfctl")
    assert resolve_data_dir(None, env={"WFCTL_DATA_DIR": ""}) == Path(".wfctl")
