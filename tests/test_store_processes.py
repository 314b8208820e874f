"""Real processes on real files: write contention, idempotency races, fencing, corrupt shards."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time

import pytest

from helpers import wfctl, wfctl_env
from wfctl.store import DataDir, StepCommit
from wfctl.store.errors import CorruptShardError, FencingError

CTX = multiprocessing.get_context("fork")
PER_PROCESS = 500


def _create_many(path, shard, prefix, count, barrier, results):
    try:
        with DataDir.open(path, create=False).open_shard(shard) as store:
            barrier.wait()
            created = sum(store.create_run(f"{prefix}-{i}", "wf", {"i": i}, None, now=time.time())[1]
                          for i in range(count))
        results.put((prefix, created, None))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((prefix, 0, repr(exc)))


def _create_keyed(path, prefix, keys, barrier, results):
    try:
        with DataDir.open(path, create=False).open_shard(0) as store:
            barrier.wait()
            got = [store.create_run(f"{prefix}-{k}", "wf", None, None, idempotency_key=k, now=time.time())
                   for k in keys]
        results.put((prefix, [(run.execution_id, created) for run, created in got], None))
    except BaseException as exc:
        results.put((prefix, [], repr(exc)))


def run_processes(target, args_list):
    results = CTX.Queue()
    barrier = CTX.Barrier(len(args_list))
    procs = [CTX.Process(target=target, args=(*args, barrier, results)) for args in args_list]
    for proc in procs:
        proc.start()
    out = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert [error for *_, error in out if error] == []
    return out


def test_four_processes_on_one_shard(tmp_path):
    DataDir.init(tmp_path, shards=1)
    out = run_processes(_create_many, [(tmp_path, 0, f"p{n}", PER_PROCESS) for n in range(4)])
    assert sorted(created for _, created, _ in out) == [PER_PROCESS] * 4
    with DataDir.open(tmp_path).open_shard(0) as store:
        stats = store.stats()
        ids = [r.execution_id for r in store.list_runs(limit=10_000)]
    assert len(ids) == len(set(ids)) == 4 * PER_PROCESS
    assert stats.runs_by_status == {"pending": 4 * PER_PROCESS} and stats.queue_depth == 4 * PER_PROCESS
    assert stats.transactions == 4 * PER_PROCESS
    assert stats.retries["lock_busy"] > 0 and stats.wait_ms["lock_busy"] > 0
    # the same figures, by cause, reach `wfctl shards --json` and its table
    proc = wfctl(tmp_path, "shards", "--json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["retries"] == stats.retries and row["wait_ms"] == pytest.approx(stats.wait_ms)
    table = wfctl(tmp_path, "shards", env=wfctl_env(COLUMNS="100")).stdout
    assert "(lock busy)" in table and f" {stats.retries['lock_busy']} " in table


def test_four_processes_on_four_shards(tmp_path):
    DataDir.init(tmp_path, shards=4)
    run_processes(_create_many, [(tmp_path, n, f"p{n}", PER_PROCESS) for n in range(4)])
    datadir = DataDir.open(tmp_path)
    for shard in range(4):
        with datadir.open_shard(shard) as store:
            stats = store.stats()
            assert stats.runs_by_status == {"pending": PER_PROCESS}
            assert stats.transactions == PER_PROCESS
            assert {r.execution_id.split("-")[0] for r in store.list_runs(limit=1000)} == {f"p{shard}"}


def test_idempotency_key_race(tmp_path):
    DataDir.init(tmp_path, shards=1)
    keys = [f"key-{i}" for i in range(100)]
    out = run_processes(_create_keyed, [(tmp_path, f"p{n}", keys) for n in range(4)])
    winners = {}
    for _, got, _ in out:
        for key, (execution_id, _) in zip(keys, got):
            winners.setdefault(key, set()).add(execution_id)
    assert all(len(ids) == 1 for ids in winners.values())
    assert sum(created for _, got, _ in out for _, created in got) == len(keys)
    with DataDir.open(tmp_path).open_shard(0) as store:
        assert store.count_runs() == len(keys)


def test_fencing_between_two_connections(tmp_path):
    datadir = DataDir.init(tmp_path, shards=1)
    with datadir.open_shard(0) as old, DataDir.open(tmp_path).open_shard(0) as new:
        old.create_run("e1", "wf", None, None, now=100.0)
        g1 = old.acquire_lease("worker-a", 0.2, now=100.0)
        assert new.acquire_lease("worker-b", 0.2, now=100.1) is None
        g2 = new.acquire_lease("worker-b", 0.2, now=100.3)
        assert g2 == g1 + 1
        with pytest.raises(FencingError):
            old.commit_steps(g1, [StepCommit("e1", "completed", None, None)], now=100.4)
        with pytest.raises(FencingError):
            old.renew_lease("worker-a", g1, 0.2, now=100.4)
        assert new.commit_steps(g2, [StepCommit("e1", "completed", None, None)], now=100.4) == []
        assert old.get_run("e1").status == "completed"


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
