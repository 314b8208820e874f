"""Workers and clients in real processes: concurrent starts, kill -9 recovery, clean stop."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from helpers import EXAMPLES, report, run_processes, step, wait_until
from wfctl.engine import Engine, run_workers
from wfctl.engine.ids import shard_of
from wfctl.errors import InputError
from wfctl.store import DataDir, fnv1a_32

TESTS = Path(__file__).resolve().parent
WORKER_SCRIPT = """
import sys
from wfctl.engine import Worker
sys.exit(Worker(sys.argv[1], owner="crashy", lease_ttl=1.0, max_parallel=8).run(drain=sys.argv[2] == "drain"))
"""


def _starts(path, n, count, barrier, results):
    def work():
        with Engine(path) as engine:
            engine.start("hello")  # warm up: open files, build the interpreter
            barrier.wait()
            started = [engine.start("hello", {"name": f"p{n}-{i}"}) for i in range(count)]
        return [(s.execution_id, s.shard, s.created) for s in started]
    report(results, n, work)


CLIENTS, PER_CLIENT = 8, 1000


@pytest.mark.parametrize("shards", [1, 4])
def test_eight_client_processes_start_1000_runs_each_then_a_drain(tmp_path, shards):
    DataDir.init(tmp_path, shards=shards, route="execution")
    with Engine(tmp_path) as engine:
        engine.apply([EXAMPLES / "hello.json"])
    out = run_processes([(_starts, str(tmp_path), n, PER_CLIENT) for n in range(CLIENTS)], 60)
    started = [s for runs in out.values() for s in runs]
    total = CLIENTS * PER_CLIENT
    assert len(started) == total and all(created for *_, created in started)
    for eid, shard, _ in started:
        assert shard == shard_of(eid, shards)[0] == fnv1a_32(eid.split("-", 1)[1]) % shards
    assert run_workers(tmp_path, processes=2, drain=True) == 0
    with Engine(tmp_path) as engine:
        listed = engine.list(limit=total + 100)
        assert len(listed) == total + CLIENTS and len({r["execution_id"] for r in listed}) == total + CLIENTS
        assert {r["status"] for r in listed} == {"completed"}
        stored_on = {r["execution_id"]: r["shard"] for r in listed}
        assert all(stored_on[eid] == shard for eid, shard, _ in started)  # each on the shard routing chose
        per_shard = {s["shard"]: s["runs_by_status"]["completed"] for s in engine.shards()}
        assert Counter(stored_on.values()) == Counter(per_shard)
        one = engine.status(started[0][0])
        assert one["output"]["message"] == f"Hello, {one['input']['name']}!"


def _kill_definition(tmp_path) -> Path:
    path = tmp_path / "effects.json"
    path.write_text(json.dumps({"id": "effects", "name": "effects", "steps": [
        step("start", "start", next_steps={"success": "prep"}),
        step("prep", "action", {"type": "set_variables", "parameters": {"variables": [{"name": "n", "value": 3}]}},
             {"success": "each"}),
        step("each", "loop", {"items": "{{input.items}}"}, {"loop": "effect", "done": "out"}),
        step("effect", "action", {"type": "test_worker_effects:record",
                                  "parameters": {"item": "{{loop.item}}", "sleep": 0.02}}, {"success": "each"}),
        step("out", "output", {"mapping": {"n": "{{variables.n}}"}}),
    ]}))
    return path


RUNS = 500  # multi-step runs, each with three side-effecting steps


def test_kill_9_worker_repeatedly_loses_nothing_and_reruns_only_in_flight_steps(tmp_path):
    data = tmp_path / "data"
    calls_file = tmp_path / "calls.txt"
    DataDir.init(data, shards=2, route="execution")
    with Engine(data, allow_modules=["test_worker_effects"]) as engine:
        ids = [engine.start(str(_kill_definition(tmp_path)), {"items": [1, 2, 3]}).execution_id for _ in range(RUNS)]
    env = {**os.environ, "WFCTL_TEST_EFFECTS": str(calls_file), "WFCTL_ALLOW_MODULES": "test_worker_effects",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(20240601)

    def calls_made() -> int:
        return len(calls_file.read_bytes().splitlines()) if calls_file.exists() else 0

    for _ in range(3):
        before = calls_made()
        proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(data), "run"], env=env)
        # Kill once this worker has demonstrably made side effects (at a varying point of the
        # ~1,500 calls), whatever its start-up took: never on a timer.
        wanted = before + rng.randint(20, 300)
        assert wait_until(lambda: calls_made() >= wanted or proc.poll() is not None, timeout=120), \
            "the worker made no side effects in 120 s"
        proc.kill()
        assert proc.wait(10) == -9
    final = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, str(data), "drain"], env=env, timeout=120)
    assert final.returncode == 0

    calls: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in calls_file.read_text().splitlines():
        eid, item, attempt = line.split()
        calls[eid, item].append(int(attempt))
    interrupted_total = 0
    with Engine(data) as engine:
        for eid in ids:
            status = engine.status(eid)
            assert status["status"] == "completed" and status["output"] == {"n": 3}
            done = Counter(s["slug"] for s in status["steps"] if s["status"] == "completed")
            assert done == {"start": 1, "prep": 1, "each": 4, "effect": 3, "out": 1}  # none ran twice
            interrupted = 0
            item = 0
            for s in status["steps"]:
                if s["slug"] != "effect":
                    continue
                assert s["status"] in ("completed", "interrupted")
                if s["status"] == "interrupted":
                    interrupted += 1
                    continue
                item += 1
                attempts = calls[eid, str(item)]
                # every call is a journaled attempt; attempt n > 1 only after n - 1 interrupted ones
                assert len(attempts) == len(set(attempts)) and max(attempts) == s["attempt"] == interrupted + 1
                assert s["output"]["data"] == {"attempt": s["attempt"]}
                interrupted_total += interrupted
                interrupted = 0
    assert interrupted_total >= 1  # the kills did hit side effects in flight
    assert 3 * RUNS <= sum(map(len, calls.values())) <= 3 * RUNS + interrupted_total


def test_stop_event_stops_worker_processes_and_releases_leases(tmp_path):
    DataDir.init(tmp_path, shards=2)
    stop = threading.Event()
    codes = []
    thread = threading.Thread(target=lambda: codes.append(run_workers(tmp_path, processes=2, stop_event=stop)))
    thread.start()
    with Engine(tmp_path) as engine:
        assert wait_until(lambda: all(s["lease_owner"] for s in engine.shards()), timeout=60)
        stop.set()
        thread.join(30)
        assert codes == [0]
        assert [s["lease_owner"] for s in engine.shards()] == [None, None]


def test_secret_key_file_lets_another_process_resume_a_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WFCTL_SECRET_KEY", raising=False)
    monkeypatch.setenv("WFCTL_TEST_TOKEN", "tok-12345")
    DataDir.init(tmp_path / "data", shards=1)
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"id": "secret", "name": "secret", "config": {
        "secrets": {"TOKEN": {"envVar": "WFCTL_TEST_TOKEN"}}}, "steps": [
        step("start", "start", next_steps={"success": "check"}),
        step("check", "condition", {"expression": "secrets.TOKEN == 'tok-12345'"}, {"true": "yes", "false": "no"}),
        step("yes", "output", {"mapping": {"match": True}}),
        step("no", "output", {"mapping": {"match": False}}),
    ]}))
    with Engine(tmp_path / "data") as engine:
        eid = engine.start(str(path)).execution_id
        assert "tok-12345" not in json.dumps(engine.shard_store(0).get_run(eid).state)
    key_file = tmp_path / "data" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run_workers(tmp_path / "data", drain=True) == 0  # another process decrypts with the same key
    with Engine(tmp_path / "data") as engine:
        assert engine.status(eid)["output"] == {"match": True}
    monkeypatch.setenv("WFCTL_SECRET_KEY", "not a key")
    with Engine(tmp_path / "data") as engine, pytest.raises(InputError, match="does not hold a valid secret key"):
        engine.start(str(path))
