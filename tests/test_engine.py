"""The Engine and the Worker in one process, on real data directories."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

import pytest

import test_worker_effects as effects
from helpers import EXAMPLES, FakeClock, step, wait_until
from wfctl.engine import Engine, Runtime, Worker
from wfctl.engine.ids import shard_of
from wfctl.errors import DefinitionError, InputError
from wfctl.store import DataDir
from wfctl.store.errors import CorruptShardError

NESTED_INPUT = json.loads((EXAMPLES / "inputs" / "nested-loops.json").read_text())


def write_definition(tmp_path, definition_id, steps, **config) -> str:
    path = tmp_path / f"{definition_id}.json"
    path.write_text(json.dumps({"id": definition_id, "name": definition_id, "config": config, "steps": steps}))
    return str(path)


EFFECTS = ("test_worker_effects",)  # the module:function actions these tests allow


def action(slug, action_type, params=None, then=None):
    return step(slug, "action", {"type": action_type, "parameters": params or {}}, {"success": then} if then else {})


def gated_definition(tmp_path) -> str:
    """start -> gated side effect -> output."""
    return write_definition(tmp_path, "gated", [
        step("start", "start", next_steps={"success": "wait"}),
        action("wait", "test_worker_effects:gated", then="out"),
        step("out", "output", {"mapping": {"attempt": "{{steps.wait.output.data.attempt}}"}}),
    ])


@pytest.fixture
def engine(tmp_path):
    DataDir.init(tmp_path / "data", shards=4, route="execution")
    with Engine(tmp_path / "data", allow_modules=EFFECTS) as eng:
        eng.apply([EXAMPLES / "hello.json", EXAMPLES / "nested-loops.json"])
        yield eng


@pytest.fixture
def gate():
    effects.GATE.clear()
    effects.ENTERED.clear()
    yield effects.GATE
    effects.GATE.set()


def drain(engine, **options):
    assert Worker(engine.runtime, owner="test", **options).run(drain=True) == 0


def test_a_worker_needs_only_a_runtime(tmp_path, engine):
    """A Worker runs on a Runtime (stores, definitions, interpreter, clock): the engine's, which it
    shares and leaves open, or one it builds, and closes, for a data directory."""
    first = [engine.start("hello", {"name": f"n{i}"}).execution_id for i in range(4)]
    worker = Worker(engine.runtime, owner="shared")
    assert worker.runtime is engine.runtime and worker.interpreter is engine.interpreter
    assert worker.run(drain=True) == 0
    assert {engine.status(eid)["status"] for eid in first} == {"completed"}  # the shared stores are still open
    second = engine.start("hello", {"name": "own"}).execution_id
    own = Worker(engine.datadir.path, owner="own")
    assert own.runtime is not engine.runtime and own.run(drain=True) == 0
    assert engine.status(second)["output"]["message"] == "Hello, own!"
    with Runtime.open(engine.datadir.path, create=False) as runtime:
        assert runtime.definition("hello").content_hash == engine.definition("hello").content_hash
        assert runtime.shard_store(0) is runtime.shard_store(0)


def test_wait_runs_the_run_on_the_engines_runtime(engine, monkeypatch):
    """``wait`` builds its worker on the engine's runtime, not around the engine."""
    import wfctl.engine.worker as worker_module

    built = []
    real = worker_module.Worker.__init__
    monkeypatch.setattr(worker_module.Worker, "__init__", lambda self, source, *a, **k: built.append(source)
                        or real(self, source, *a, **k))
    eid = engine.start("hello", {"name": "w"}).execution_id
    assert engine.wait(eid, timeout=60)["status"] == "completed"
    assert built == [engine.runtime]


def completed_slugs(status) -> Counter:
    return Counter(s["slug"] for s in status["steps"] if s["status"] == "completed")


def test_start_status_list(engine):
    started = engine.start("hello", {"name": "Ada"})
    assert started.created and started.shard == int(started.execution_id.split("-")[0], 16)
    status = engine.status(started.execution_id)
    assert status["status"] == "pending" and status["steps"] == [] and status["input"] == {"name": "Ada"}
    assert status["shard"] == started.shard and status["created_at"].endswith("Z")
    second = engine.start("nested-loops", NESTED_INPUT)
    assert [r["execution_id"] for r in engine.list()] == [second.execution_id, started.execution_id]
    assert [r["execution_id"] for r in engine.list(definition="hello")] == [started.execution_id]
    assert engine.list(shard=second.shard, statuses=["pending"])[0]["execution_id"] == second.execution_id
    assert engine.list(statuses=["completed"]) == []
    assert [d["id"] for d in engine.definitions()] == ["hello", "nested-loops"]


def test_start_is_one_transaction_on_one_shard(engine):
    engine.start("hello")  # opens the shard files and builds the interpreter
    before = {s["shard"]: s["transactions"] for s in engine.shards()}
    started = engine.start("hello")
    after = {s["shard"]: s["transactions"] for s in engine.shards()}
    assert {n: after[n] - before[n] for n in after} == {n: int(n == started.shard) for n in after}


def test_idempotency_key_returns_the_same_run(engine):
    first = engine.start("hello", {"name": "a"}, idempotency_key="order-1")
    again = engine.start("hello", {"name": "b"}, idempotency_key="order-1")
    assert (again.execution_id, again.created) == (first.execution_id, False)
    assert engine.status(first.execution_id)["input"] == {"name": "a"}
    other = engine.start("hello", idempotency_key="order-2")
    elsewhere = engine.start("nested-loops", NESTED_INPUT, idempotency_key="order-1")
    assert other.created and elsewhere.created
    assert len({first.execution_id, other.execution_id, elsewhere.execution_id}) == 3


def test_definition_file_is_applied_on_the_fly(engine, tmp_path):
    path = write_definition(tmp_path, "adhoc", [step("start", "start", next_steps={"success": "out"}),
                                                step("out", "output", {"mapping": {"v": 1}})])
    started = engine.start(path)
    assert engine.status(started.execution_id)["definition_id"] == "adhoc"
    assert "adhoc" in [d["id"] for d in engine.definitions()]
    assert engine.start(path).created
    drain(engine)
    assert engine.status(started.execution_id)["output"] == {"v": 1}


def test_unknown_ids_and_bad_input(engine, tmp_path):
    with pytest.raises(InputError, match="unknown execution id 'nope'") as info:
        engine.status("nope")
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="unknown execution id '01-beef'"):
        engine.cancel(["01-beef"])
    with pytest.raises(InputError, match="unknown execution id"):
        engine.cleanup(["02-beef"])
    with pytest.raises(InputError, match="unknown definition 'missing'"):
        engine.start("missing")
    with pytest.raises(InputError, match="input must be a JSON object"):
        engine.start("hello", [1, 2])
    with pytest.raises(InputError, match="not JSON-serializable"):
        engine.start("hello", {"when": object()})
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "bad", "name": "bad", "steps": [')
    with pytest.raises(DefinitionError, match="invalid JSON"):
        engine.start(str(bad))
    assert engine.list() == []


def test_worker_drains_200_runs_on_4_shards(engine):
    names = [f"n{i}" if i % 2 else f"longname{i}" for i in range(100)]
    hello = [engine.start("hello", {"name": name}).execution_id for name in names]
    nested = [engine.start("nested-loops", NESTED_INPUT).execution_id for _ in range(100)]
    assert len({shard_of(eid, 4)[0] for eid in hello + nested}) == 4
    drain(engine)
    for eid, name in zip(hello, names):
        status = engine.status(eid)
        assert status["status"] == "completed"
        assert status["output"] == {"message": f"Hello, {name}!", "length": "long" if len(name) > 5 else "short"}
        assert [s["slug"] for s in status["steps"]] == [
            "start", "compose", "is_long", "long_name" if len(name) > 5 else "short_name"]
        assert all(s["status"] == "completed" and s["attempt"] == 1 for s in status["steps"])
    for eid in nested:
        status = engine.status(eid)
        assert status["output"] == {"orders": 3, "lines": 6, "grandTotal": 24.5, "lastOrderId": "A-3"}
        assert completed_slugs(status) == {"start": 1, "init": 1, "each_order": 4, "each_line": 9,
                                           "add_line": 6, "summary": 1}
    assert sum(s["runs_by_status"].get("completed", 0) for s in engine.shards()) == 200


def test_retry_and_sleep(engine, tmp_path):
    path = write_definition(tmp_path, "retry-sleep", [
        step("start", "start", next_steps={"success": "flaky"}),
        action("flaky", "fail", {"attempts": 2}, then="nap"),
        action("nap", "sleep", {"seconds": 0.2}, then="out"),
        step("out", "output", {"mapping": {"ok": True}}),
    ], retryPolicy={"maxRetries": 3, "backoffMs": 20})
    eid = engine.start(path).execution_id
    begun = time.monotonic()
    drain(engine)
    assert time.monotonic() - begun >= 0.2
    steps = engine.status(eid)["steps"]
    assert [(s["slug"], s["status"], s["attempt"]) for s in steps] == [
        ("start", "completed", 1), ("flaky", "retrying", 1), ("flaky", "retrying", 2),
        ("flaky", "completed", 3), ("nap", "completed", 1), ("out", "completed", 1)]


def test_cancel_and_cleanup(engine):
    a, b, _ = (engine.start("hello").execution_id for _ in range(3))
    assert engine.cancel([a]) == [a]
    assert engine.cancel([a]) == []
    drain(engine)
    assert engine.status(a)["status"] == "canceled" and engine.status(a)["steps"] == []
    assert engine.status(b)["status"] == "completed"
    pending = engine.start("hello").execution_id
    with pytest.raises(InputError, match=f"run {pending} is not finished: not deleted"):
        engine.cleanup([b, pending])  # refused before anything is deleted
    assert engine.status(b)["status"] == "completed" and engine.status(pending)["status"] == "pending"
    assert engine.cleanup([b]) == 1
    assert engine.cleanup([pending], force=True) == 1
    with pytest.raises(InputError, match="unknown execution id"):
        engine.status(pending)
    assert engine.cleanup_older_than(3600) == 0
    assert engine.cleanup_older_than(0, ["canceled"]) == 1
    assert engine.cleanup_older_than(0) == 1
    assert engine.list() == []
    for _ in range(3):
        engine.start("hello")
    engine.start("nested-loops", NESTED_INPUT)
    assert engine.cancel_matching("hello") == 3
    assert engine.delete_definition("hello") == (0, 3)
    assert [d["id"] for d in engine.definitions()] == ["nested-loops"]
    with pytest.raises(InputError, match="unknown definition"):
        engine.start("hello")
    assert engine.delete_definition("nested-loops") == (1, 1)


def test_cancel_of_running_run_journals_the_result_but_does_not_follow_it(engine, tmp_path, gate):
    eid = engine.start(gated_definition(tmp_path)).execution_id
    worker = Worker(engine, owner="w1")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop_event": stop})
    thread.start()
    try:
        assert effects.ENTERED.wait(60)
        assert engine.status(eid)["status"] == "running"
        assert engine.cancel([eid]) == [eid]
        gate.set()

        def wait_step_done() -> bool:
            steps = engine.status(eid)["steps"]
            return steps[-1]["slug"] == "wait" and steps[-1]["status"] == "completed"

        wait_until(wait_step_done, timeout=60, interval=0.01)
    finally:
        stop.set()
        thread.join()
    status = engine.status(eid)
    assert status["status"] == "canceled" and status["output"] is None
    assert [(s["slug"], s["status"]) for s in status["steps"]] == [("start", "completed"), ("wait", "completed")]


def test_fencing_takeover_after_lease_expiry(tmp_path, gate, caplog):
    DataDir.init(tmp_path / "data", shards=1)
    clock = FakeClock()
    old = Engine(tmp_path / "data", clock=clock, allow_modules=EFFECTS)
    new = Engine(tmp_path / "data", clock=clock, allow_modules=EFFECTS)
    eid = old.start(gated_definition(tmp_path)).execution_id
    w1 = Worker(old, owner="w1", lease_ttl=5)
    w2 = Worker(new, owner="w2", lease_ttl=5)
    try:
        w1.tick()  # takes the lease, commits start, re-queues before the side effect
        w1.tick()  # claims again, marks the step started, runs it (blocks on attempt 1)
        assert effects.ENTERED.wait(60)
        w2.tick()
        assert w2.leases == {}  # held by w1
        clock.now += 6  # w1's lease expires (it was not renewed)
        w2.tick()
        assert list(w2.leases) == [0] and w2.leases[0] == w1.leases[0] + 1
        def w2_completed() -> bool:
            w2.tick()
            return new.status(eid)["status"] == "completed"

        wait_until(w2_completed, timeout=60, interval=0.01)
        assert new.status(eid)["output"] == {"attempt": 2}
        w1._next_heartbeat = float("inf")  # no renewal first: w1 learns of the takeover from its commit
        gate.set()  # w1's attempt 1 returns now: its late commit must be rejected
        with caplog.at_level(logging.WARNING, logger="wfctl.worker"):
            def w1_lost_its_lease() -> bool:
                w1.tick()
                return not w1.leases

            wait_until(w1_lost_its_lease, timeout=60, interval=0.01)
        assert "lost the lease of shard 0" in caplog.text and "no longer valid" in caplog.text
        assert w1.leases == {}
        status = new.status(eid)
        assert status["status"] == "completed" and status["output"] == {"attempt": 2}
        assert [(s["slug"], s["status"], s["attempt"]) for s in status["steps"]] == [
            ("start", "completed", 1), ("wait", "interrupted", 1), ("wait", "completed", 2), ("out", "completed", 1)]
    finally:
        gate.set()
        w1.close()
        w2.close()
        old.close()
        new.close()


def test_inactivity_timeout_fails_the_run(tmp_path):
    DataDir.init(tmp_path / "data", shards=1)
    clock = FakeClock()
    with Engine(tmp_path / "data", clock=clock) as engine:
        path = write_definition(tmp_path, "slow-retry", [
            step("start", "start", next_steps={"success": "flaky"}),
            action("flaky", "fail", {"attempts": 5}, then="out"),
            step("out", "output", {"mapping": {"ok": True}}),
        ], timeout=500, retryPolicy={"maxRetries": 5, "backoffMs": 60_000})
        eid = engine.start(path).execution_id
        worker = Worker(engine, owner="w", sweep_interval=0.1)
        try:
            worker.tick()
            assert engine.status(eid)["steps"][-1]["status"] == "retrying"
            clock.now += 1
            worker.tick()
        finally:
            worker.close()
        status = engine.status(eid)
    assert status["status"] == "failed" and "timed out" in status["error"]
    assert status["steps"][-1]["status"] == "failed"


def test_legacy_and_out_of_range_shard_ids_use_shard_0(engine, caplog):
    store = engine.shard_store(0)
    state = engine.interpreter.new_run(engine.definition("hello"), {}, "legacy").to_dict()
    store.create_run("legacy", "hello", {}, state, now=time.time())
    store.create_run("ff-0123", "hello", {}, state, now=time.time())
    with caplog.at_level(logging.WARNING, logger="wfctl.engine"):
        assert engine.status("legacy")["shard"] == 0
        assert engine.status("ff-0123")["status"] == "pending"
    assert "no shard prefix" in caplog.text and "out of range" in caplog.text
    drain(engine)
    assert engine.status("legacy")["status"] == "completed"


def test_corrupt_shard_names_the_file_and_others_keep_working(tmp_path):
    DataDir.init(tmp_path / "data", shards=2, route="execution")
    (tmp_path / "data" / "shard-001.db").write_bytes(b"this is not a database" * 200)
    with Engine(tmp_path / "data") as engine:
        engine.apply([EXAMPLES / "hello.json"])
        with pytest.raises(CorruptShardError, match="shard-001.db"):
            engine.status("01-0123")
        ids = []
        while len(ids) < 5:
            try:
                ids.append(engine.start("hello").execution_id)
            except CorruptShardError as exc:
                assert "shard-001.db" in str(exc)
        assert {r["execution_id"] for r in engine.list()} == set(ids)
        assert "shard-001.db" in engine.shards()[1]["error"]
        assert Worker(engine, owner="w").run(drain=True) == 1  # shard 1 unusable, shard 0 drained
        assert {engine.status(eid)["status"] for eid in ids} == {"completed"}


def test_wait_runs_the_shard_in_process_when_no_worker_holds_it(engine):
    eid = engine.start("nested-loops", NESTED_INPUT).execution_id
    status = engine.wait(eid, timeout=60)
    assert status["status"] == "completed" and status["output"]["lines"] == 6
    assert {s["lease_owner"] for s in engine.shards()} == {None}  # released afterwards


def test_wait_follows_a_run_whose_shard_is_held_elsewhere(engine):
    eid = engine.start("hello").execution_id
    shard = int(eid.split("-")[0], 16)
    generation = engine.shard_store(shard).acquire_lease("other", 30, now=time.time())
    status = engine.wait(eid, timeout=0.3)
    assert status["status"] == "pending"  # the holder is not working; wait did not take its shard
    assert engine.shards()[shard]["lease_owner"] == "other"
    engine.shard_store(shard).release_lease("other", generation)
    assert engine.wait(eid, timeout=60)["status"] == "completed"
