"""Session roles (:mod:`wfctl.store.roles`): the ``application_name`` a PostgreSQL session carries,
parsed back to its schema, shard and role, and the roles the worker and the scheduler take. The
names a real server shows: tests/test_pg_store.py."""

from __future__ import annotations

import threading

import pytest

from wfctl.store import (DataDir, application_name, parse_application_name, session_role, set_session_role,
                         shard_of_schema)


@pytest.fixture(autouse=True)
def cli_role():
    before = session_role()
    set_session_role("cli")
    yield
    set_session_role(before)


def test_a_name_carries_the_schema_and_the_processs_role_and_parses_back():
    assert application_name("wfctl_shard_003") == "wfctl wfctl_shard_003 cli"
    set_session_role("client")
    assert application_name("wfctl_catalog") == "wfctl wfctl_catalog client"
    assert application_name("wfctl_catalog", "harness") == "wfctl wfctl_catalog harness"
    assert parse_application_name("wfctl wfctl_shard_003 worker") == ("wfctl_shard_003", "worker")
    assert shard_of_schema("wfctl_shard_003") == ("wfctl", 3)
    assert shard_of_schema("wft_x_shard_shard_1000") == ("wft_x_shard", 1000)
    assert shard_of_schema("wfctl_catalog") is None


def test_a_long_schema_is_cut_and_the_role_kept():
    schema = "p" * 40 + "_shard_007"
    name = application_name(schema, "scheduler")
    assert len(name.encode()) == 63 and name.endswith(" scheduler")
    parsed_schema, role = parse_application_name(name)
    assert role == "scheduler" and schema.startswith(parsed_schema) and shard_of_schema(parsed_schema) is None


@pytest.mark.parametrize("name", [None, "", "psql", "wfctl listener", "wfctl shard 3", "wfctl a b c",
                                  "wfctl  worker", "wfctlx s worker", "wfctl s Worker"])
def test_other_names_do_not_parse(name):
    assert parse_application_name(name) is None


@pytest.mark.parametrize("role", ["", "Worker", "two words", "x" * 21, "1st", None])
def test_a_bad_role_is_refused(role):
    with pytest.raises(ValueError, match="a session role is"):
        set_session_role(role)
    assert session_role() == "cli"


def test_the_worker_and_the_scheduler_name_their_process(tmp_path):
    from wfctl.engine import Engine
    from wfctl.engine.worker import Worker
    from wfctl.schedules.scheduler import Scheduler

    DataDir.init(tmp_path, shards=1)
    Worker(tmp_path, only=["some-run"]).run(drain=True)  # start --wait: its caller's runs, in its caller's role
    assert session_role() == "cli"
    Worker(tmp_path).run(drain=True)
    assert session_role() == "worker"
    stop = threading.Event()
    stop.set()
    with Engine(tmp_path) as engine:
        Scheduler(engine).run(stop_event=stop)
    assert session_role() == "scheduler"
