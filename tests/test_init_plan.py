"""``wfctl init`` below the CLI: ``--place`` specs (:mod:`wfctl.store.placement`), the plan (settings
given, else as they are: :mod:`wfctl.store.init_plan`), the backends' checks of a placement, and
:func:`wfctl.engine.project.init_project`. The command itself: tests/test_cli_backends.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pg import pg_dsn, pg_settings, unique_prefix
from wfctl.engine.project import init_project
from wfctl.errors import InputError
from wfctl.store import DataDir, Settings
from wfctl.store.init_plan import plan_init
from wfctl.store.placement import check_placement_range, parse_placement

DB2 = "host=db2 dbname=wfctl"


# -- --place specs ---------------------------------------------------------------------------------

def test_one_shard_and_ranges_map_shards_to_servers():
    assert parse_placement([f"5={DB2}"]) == {5: DB2}
    assert parse_placement([f" 0-1={DB2} ", "2-3=postgresql://wfctl@db3/wfctl"], shards=8) == {
        0: DB2, 1: DB2, 2: "postgresql://wfctl@db3/wfctl", 3: "postgresql://wfctl@db3/wfctl"}
    assert parse_placement([]) == {}


def test_unplaced_shards_are_no_error():
    """A gap is allowed: the shards no range names stay on the catalog's server (the backend's check)."""
    assert parse_placement(["1=host=a", "3=host=b"], shards=6) == {1: "host=a", 3: "host=b"}


@pytest.mark.parametrize("specs,message", [
    (["0-2=host=a", "2-3=host=b"], "--place 2-3: shard 2 is already placed by another --place"),
    (["1=host=a", "0-3=host=b"], "--place 0-3: shard 1 is already placed by another --place"),
    (["3-2=host=a"], "--place 3-2: the range is empty (FIRST > LAST)"),
])
def test_overlapping_and_empty_ranges_are_refused(specs, message):
    with pytest.raises(InputError) as info:
        parse_placement(specs)
    assert str(info.value) == message


def test_a_shard_beyond_the_count_is_refused():
    with pytest.raises(InputError) as info:
        parse_placement(["0=host=a", "4-5=host=b"], shards=4)
    assert str(info.value) == "--place: shard 5 is beyond the 4 shard(s) (0..3)"
    check_placement_range({0: "host=a", 1: "host=a"}, 2)
    with pytest.raises(InputError, match=r"shard 2 is beyond the 2 shard\(s\) \(0\.\.1\)"):
        check_placement_range({2: "host=a"}, 2)
    assert parse_placement(["7=host=a"]) == {7: "host=a"}  # no count given: not checked


@pytest.mark.parametrize("spec,shown", [
    ("2-3", "2-3"), ("x=host=h", "x"), ("2=", "2"), ("2=   ", "2"), ("=host=h", ""), ("1-=host=h", "1-"),
    ("-1=host=h", "-1"), ("a-b=password=hunter2", "a-b"), ("x=postgresql://u:hunter2@h/db", "x"),
])
def test_malformed_specs_are_one_line_without_the_server(spec, shown):
    with pytest.raises(InputError) as info:
        parse_placement([spec], where="--put")
    message = str(info.value)
    assert message == f"--put {shown!r}...: expected FIRST-LAST=DSN or N=DSN (e.g. 4-7='host=db2 dbname=wfctl')"
    assert "hunter2" not in message


# -- the backends' checks of a placement ------------------------------------------------------------

def _postgres(shards: int, dsn: str = "host=127.0.0.1 dbname=test", prefix: str = "wfctl"):
    from wfctl.store.postgresql import PostgresBackend

    return PostgresBackend(Path("."), pg_settings(shards, dsn=dsn, schema_prefix=prefix))


@pytest.mark.parametrize("placement,message", [
    ({2: "postgresql://postgres:hunter2@127.0.0.1/postgres"}, "placement of shard 2: the DSN holds a password"),
    ({1: "host=db2 password=hunter2"}, "placement of shard 1: the DSN holds a password"),
    ({1: "host=db2 bogus=1"}, "not a valid PostgreSQL DSN"),
    ({4: DB2}, "placement: shard 4 is not one of 0..3"),
])
def test_postgresql_refuses_a_bad_placement_before_asking_a_server(placement, message):
    with pytest.raises(InputError) as info:
        _postgres(4).check_creation(placement)
    assert message in str(info.value) and "hunter2" not in str(info.value)


def test_postgresql_keeps_unplaced_shards_on_the_catalogs_server():
    dsn = pg_dsn()
    backend = _postgres(4, dsn=dsn, prefix=unique_prefix("plan"))  # a fresh prefix: nothing exists there
    assert backend.check_creation({2: DB2}) == {0: dsn, 1: dsn, 2: DB2, 3: dsn}


# -- the plan and init_project (SQLite: no server) ---------------------------------------------------

def test_a_fresh_directory_gets_the_defaults_or_what_is_given(tmp_path):
    plan = plan_init(tmp_path / "d")
    assert (plan.settings, plan.placement, plan.joins) == (Settings(), {}, None)
    plan = plan_init(tmp_path / "d", shards=2, route="execution", durability="full", options={"busy_deadline_s": None})
    assert plan.settings == Settings(shards=2, route="execution", durability="full")
    assert not (tmp_path / "d").exists()


def test_settings_not_given_are_as_they_are(tmp_path):
    DataDir.init(tmp_path, shards=2, route="execution", durability="full", hot_rows=True)
    wanted = plan_init(tmp_path).settings
    assert (wanted.shards, wanted.route, wanted.durability, wanted.hot_rows) == (2, "execution", "full", True)
    assert init_project(tmp_path)[0].settings.hot_rows  # wfctl init again keeps it
    assert plan_init(tmp_path, shards=3).settings.shards == 3  # refused later, by DataDir.init
    with pytest.raises(InputError) as info:
        plan_init(tmp_path, place=["1-2=host=a"])  # the count as it is: 2
    assert str(info.value) == "--place: shard 2 is beyond the 2 shard(s) (0..1)"


@pytest.mark.parametrize("kwargs,message", [
    ({"backend": "oracle"}, "--backend: backend must be one of postgresql, sqlite, got 'oracle'"),
    ({"options": {"dsn": "host=elsewhere"}}, "--backend sqlite: unknown option 'dsn'"),
    ({"place": ["2-3"]}, "--place '2-3'...: expected FIRST-LAST=DSN"),
    ({"shards": 2, "place": ["1-2=host=a"]}, "--place: shard 2 is beyond the 2 shard(s)"),
])
def test_bad_options_are_refused_before_anything_is_made(tmp_path, kwargs, message):
    with pytest.raises(InputError) as info:
        init_project(tmp_path / "d", **kwargs)
    assert message in str(info.value)
    assert not (tmp_path / "d").exists()


def test_init_project_makes_the_directory_and_its_key(tmp_path):
    datadir, joined = init_project(tmp_path / "d", shards=2)
    assert (datadir.shard_count, joined) == (2, False)
    assert (tmp_path / "d" / "secret.key").exists()
    with pytest.raises(InputError, match="placement is for the postgresql backend"):
        init_project(tmp_path / "e", place=["0-1=host=elsewhere"])
    assert not (tmp_path / "e" / "wfctl.json").exists()
