"""Engine.start's fast path: the per-definition state template, shard choice, limits, spill."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter

import pytest

from helpers import EXAMPLES, step
from wfctl.engine import Engine
import wfctl.engine.engine as engine_module
from wfctl.engine import ids
from wfctl.interpreter import Interpreter
from wfctl.store import DataDir, fnv1a_32
from wfctl.store.errors import PayloadTooLargeError


def open_engine(tmp_path, **settings) -> Engine:
    DataDir.init(tmp_path / "data", **settings)
    engine = Engine(tmp_path / "data")
    engine.apply([EXAMPLES / "hello.json"])
    return engine


def raw(engine, shard, sql, params=()):
    conn = sqlite3.connect(engine.datadir.backend.shard_path(shard))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("payload", [None, {}, {"lone": "\ud800"},
                                     {"name": "Zoë 😀", "n": [1, 2.5, None, True], "nested": {"a": "\"q\""}}])
def test_stored_state_is_what_new_run_builds(tmp_path, payload):
    with open_engine(tmp_path, shards=4, route="execution") as engine:
        started = engine.start("hello", payload)
        run = engine.shard_store(started.shard).get_run(started.execution_id)
        expected = engine.interpreter.new_run(engine.definition("hello"), payload, started.execution_id).to_dict()
        assert run.state == json.loads(json.dumps(expected))
        assert run.input == payload and run.current_step == "start" and run.status == "pending"


def test_one_client_spreads_its_runs_and_ids_hash_to_their_shard(tmp_path):
    with open_engine(tmp_path, shards=4, route="execution") as engine:
        started = [engine.start("hello") for _ in range(8)]
        assert Counter(s.shard for s in started) == {0: 2, 1: 2, 2: 2, 3: 2}  # in turn, uncontended
        for s in started:
            body = s.execution_id.split("-", 1)[1]
            assert len(body) == 32 and fnv1a_32(body) % 4 == s.shard == ids.shard_of(s.execution_id, 4)[0]


def test_a_held_write_lock_sends_the_run_to_another_shard(tmp_path):
    with open_engine(tmp_path, shards=4, route="execution") as engine:
        engine.start("hello")
        blocker = sqlite3.connect(engine.datadir.backend.shard_path((engine._home + 1) % 4), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            held = (engine._home + 1) % 4
            started = engine.start("hello")
            assert started.shard == (held + 1) % 4 and started.created
            assert [engine.start("hello").shard for _ in range(3)] == [started.shard] * 3  # stays there
        finally:
            blocker.execute("ROLLBACK")
        retries = {s["shard"]: s["retries"]["lock_busy"] for s in engine.shards()}
        assert retries[held] == 1


def test_a_store_that_cannot_try_a_start_is_waited_for(tmp_path, monkeypatch):
    """Trying another shard is a capability of the store (``can_try_start``): without it the
    engine keeps its shard in turn and waits for the busy one."""
    from wfctl.store.sqlite.shard import SQLiteShardStore

    monkeypatch.setattr(SQLiteShardStore, "can_try_start", False)
    monkeypatch.setattr(SQLiteShardStore, "try_start", None)  # never called
    with open_engine(tmp_path, shards=4, route="execution") as engine:
        engine.start("hello")
        held = (engine._home + 1) % 4
        blocker = sqlite3.connect(engine.datadir.backend.shard_path(held), isolation_level=None,
                                  check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, blocker.execute, ["ROLLBACK"])
        release.start()
        try:
            started = engine.start("hello")
        finally:
            release.join()
        assert started.shard == held and started.created
        assert engine.shards()[held]["retries"]["lock_busy"] >= 1  # it waited for the lock
        assert engine.start("hello").shard == (held + 1) % 4  # and goes on in turn


def test_keyed_and_definition_routed_starts_follow_the_hash(tmp_path):
    with open_engine(tmp_path, shards=4, route="definition") as engine:
        shards = {engine.start("hello").shard for _ in range(6)}
        assert shards == {fnv1a_32("hello") % 4}
    with open_engine(tmp_path / "x", shards=4, route="execution") as engine:
        first = engine.start("hello", {"a": 1}, idempotency_key="k")
        again = engine.start("hello", {"a": 2}, idempotency_key="k")
        assert (again.execution_id, again.shard, again.created) == (first.execution_id, first.shard, False)
        assert first.shard == fnv1a_32(first.execution_id.split("-", 1)[1]) % 4


def test_limits_are_checked_before_anything_is_written(tmp_path):
    DataDir.init(tmp_path / "data", shards=2, route="execution", max_payload_bytes=2000, options={"spill_threshold_bytes": 1000})
    with Engine(tmp_path / "data") as engine:
        engine.apply([EXAMPLES / "hello.json"])
        with pytest.raises(PayloadTooLargeError, match=r"^input of run [0-9a-f]{2}-[0-9a-f]{32} is "):
            engine.start("hello", {"pad": "x" * 2100})
        with pytest.raises(PayloadTooLargeError, match=r"^state of run [0-9a-f]{2}-[0-9a-f]{32} is "):
            engine.start("hello", {"pad": "x" * 1700})  # the input fits, the state with it does not
        assert engine.count() == 0
        big = engine.start("hello", {"pad": "y" * 1200}, idempotency_key="big")  # spilled to blobs
        assert engine.status(big.execution_id)["input"] == {"pad": "y" * 1200}
        again = engine.start("hello", {"pad": "z" * 1200}, idempotency_key="big")
        assert (again.execution_id, again.created) == (big.execution_id, False)
        assert raw(engine, big.shard, "SELECT COUNT(*) FROM blobs") == [(2,)]  # no blob left behind


def test_definitions_with_secrets_build_the_state_per_start(tmp_path, monkeypatch):
    monkeypatch.setenv("WFCTL_TEST_TOKEN", "tok-1")
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"id": "secret", "name": "secret", "config": {
        "secrets": {"TOKEN": {"envVar": "WFCTL_TEST_TOKEN"}}}, "steps": [
        step("start", "start", next_steps={"success": "out"}), step("out", "output", {"mapping": {"v": 1}})]}))
    with open_engine(tmp_path, shards=2, route="execution") as engine:
        engine.apply([path])
        first, second = engine.start("secret"), engine.start("secret")
        plan = engine._plans["secret"]
        assert plan.template is None
        states = [engine.shard_store(s.shard).get_run(s.execution_id).state for s in (first, second)]
        tokens = [s["variables"]["secrets"]["TOKEN"] for s in states]
        assert tokens[0] != tokens[1] and "tok-1" not in json.dumps(states)  # encrypted per run
        assert engine.interpreter.secret_box.decrypt(tokens[0]) == "tok-1"


def test_a_changed_definition_gets_a_new_plan(tmp_path):
    with open_engine(tmp_path, shards=1) as engine:
        engine.start("hello")
        old = engine._plans["hello"]
        data = json.loads((EXAMPLES / "hello.json").read_text())
        data["config"]["variables"]["greeting"] = "Hi"
        path = tmp_path / "hello.json"
        path.write_text(json.dumps(data))
        engine.apply([path])
        started = engine.start("hello")
        assert engine._plans["hello"] is not old
        state = engine.shard_store(0).get_run(started.execution_id).state
        assert state["variables"]["config"] == {"greeting": "Hi"}


def test_a_template_that_does_not_match_new_run_is_not_used(tmp_path, monkeypatch):
    class Stamping(Interpreter):
        calls = 0

        def new_run(self, definition, input=None, execution_id=None):
            Stamping.calls += 1
            state = super().new_run(definition, input, execution_id)
            state.variables["n"] = Stamping.calls  # differs between two calls: not templatable
            return state

    DataDir.init(tmp_path / "data", shards=2, route="execution")
    with Engine(tmp_path / "data", interpreter_factory=lambda box: Stamping(secret_box=box)) as engine:
        engine.apply([EXAMPLES / "hello.json"])
        started = engine.start("hello")
        assert engine._plans["hello"].template is None
        state = engine.shard_store(started.shard).get_run(started.execution_id).state
        assert state["variables"]["n"] == Stamping.calls
    assert engine_module.STAY_AFTER_CONFLICT > 0
