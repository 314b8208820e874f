"""A shard file damaged in the middle is set aside with one warning; every other shard keeps serving.

Issue 9: with a few KB overwritten in the middle of a shard file, ``worker --drain`` crashed
(or never ended), ``worker`` retook the lease ~80 times a second, and ``list``/``cleanup``
failed for every shard. Real ``wfctl`` processes on real (damaged) SQLite files.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess

import pytest

from helpers import wait_until, wfctl, wfctl_argv, wfctl_env
from wfctl.engine import Engine
from wfctl.store import DataDir

DEFINITION = {"id": "big", "name": "big", "steps": [
    {"stepSlug": "start", "name": "Start", "stepType": "start", "config": {}, "nextSteps": {"success": "done"}},
    {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"x": "{{input.blob}}"}},
     "nextSteps": {}}]}


def warnings_about(proc_stderr: str, name: str) -> list[str]:
    return [line for line in proc_stderr.splitlines() if name in line]


@pytest.fixture
def damaged(tmp_path):
    """Two shards with 200 runs each (3 KB inputs); shard 0's file overwritten with 8 KB mid-file."""
    data = tmp_path / "data"
    DataDir.init(data, shards=2, route="execution")
    definition = tmp_path / "big.json"
    definition.write_text(json.dumps(DEFINITION))
    ids: dict[int, list[str]] = {0: [], 1: []}
    with Engine(data) as engine:
        while min(len(v) for v in ids.values()) < 200:
            started = engine.start(str(definition), {"blob": "x" * 3000 + str(sum(map(len, ids.values())))})
            ids[started.shard].append(started.execution_id)
    path = data / "shard-000.db"
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(random.Random(9).randbytes(8192))
    with sqlite3.connect(path) as conn:  # the damage is real
        assert conn.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok"
    return data, ids


def test_worker_drain_sets_the_damaged_shard_aside_and_runs_the_others(damaged):
    data, ids = damaged
    proc = wfctl(data, "worker", "--drain")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "shard-000.db" in proc.stderr, proc.stderr
    with Engine(data, create=False) as engine:
        runs = engine.list(shard=1, limit=1000)
    assert {r["execution_id"] for r in runs} == set(ids[1])
    assert {r["status"] for r in runs} == {"completed"}


def test_listing_cleanup_and_shards_serve_the_other_shards(damaged):
    data, ids = damaged
    with Engine(data, create=False) as engine:
        assert engine.shard_store(1).count_runs() == 200
        from wfctl.engine import Worker

        Worker(engine, shards=[1], owner="setup").run(drain=True)
    for args in (["list", "--limit", "1000"], ["list", "--json", "--limit", "1000"]):
        proc = wfctl(data, *args)
        assert proc.returncode == 0, proc.stderr
        assert len(warnings_about(proc.stderr, "shard-000.db")) <= 1 and len(proc.stderr.splitlines()) <= 1
    listed = json.loads(wfctl(data, "list", "--json", "--limit", "1000").stdout)
    assert set(ids[1]) <= {r["execution_id"] for r in listed}
    shards = json.loads(wfctl(data, "shards", "--json").stdout)
    assert "shard-000.db" in shards[0]["error"] and "corrupt" in shards[0]["error"]
    assert shards[1]["runs_by_status"] == {"completed": 200}
    table = wfctl(data, "shards")
    assert table.returncode == 0 and "corrupt" in table.stdout
    proc = wfctl(data, "cleanup", "--older-than", "0s", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"deleted": 200}
    assert len(warnings_about(proc.stderr, "shard-000.db")) <= 1 and len(proc.stderr.splitlines()) <= 1


def _heartbeat(data, shard: int) -> float | None:
    """When the worker last renewed shard ``shard``'s lease (its file's shard_status row)."""
    with sqlite3.connect(f"file:{data / f'shard-{shard:03d}.db'}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT heartbeat_at FROM shard_status WHERE id = 1").fetchone()[0]


def test_worker_does_not_spin_on_the_damaged_shard(damaged):
    data, ids = damaged
    worker = subprocess.Popen(wfctl_argv(data, "worker", "--no-scheduler"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=wfctl_env())
    try:
        with Engine(data, create=False) as engine:
            store = engine.shard_store(1)
            wait_until(lambda: not store.count_runs(["pending", "running"]), 120, interval=0.2)
            assert store.count_runs(["completed"]) == 200
        # Two more lease renewals of the healthy shard: the worker's loop went round many times,
        # enough for a spinning worker to show itself (~80 lease retakes a second before the fix).
        first = _heartbeat(data, 1)
        assert wait_until(lambda: (beat := _heartbeat(data, 1)) is not None and first is not None
                          and beat > first + 1.0, 60, interval=0.2), "the worker stopped renewing shard 1"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert len(warnings_about(stderr, "shard 0")) == 1, stderr
    with sqlite3.connect(f"file:{data / 'shard-000.db'}?mode=ro", uri=True) as conn:
        generation = conn.execute("SELECT generation FROM shard_status WHERE id = 1").fetchone()[0]
    assert generation <= 2
