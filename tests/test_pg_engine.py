"""The engine on a PostgreSQL deployment (a project directory made with ``DataDir.init(...,
backend="postgresql")``): idempotent starts from many processes, and what a start and a worker's
group commit cost in round trips and statements (libpq's protocol trace)."""

from __future__ import annotations

import json

import pytest

from helpers import report, run_processes
from pg import pg_project, traced
from wfctl.engine import Engine, Worker
from wfctl.store import COMPLETED

DEADLINE_S = 120.0
QUICK = {"id": "quick", "name": "Quick", "steps": [
    {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "done"}},
    {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"who": "{{input.who}}"}}}]}


def _applied(tmp_path, data) -> None:
    definition = tmp_path / "quick.json"
    definition.write_text(json.dumps(QUICK))
    with Engine(data, create=False) as engine:
        engine.apply([definition])


def _start_with_key(data, who, barrier, results):
    def work():
        with Engine(data, create=False) as engine:
            barrier.wait(DEADLINE_S)
            started = engine.start("quick", {"who": who}, idempotency_key="the-same-key")
        return started.execution_id, started.created
    report(results, who, work)


def test_eight_processes_starting_with_one_key_make_one_run(tmp_path):
    with pg_project(tmp_path / "data", shards=4, tag="engine") as data:
        _applied(tmp_path, data)
        started = run_processes([(_start_with_key, str(data), f"p{i}") for i in range(8)], DEADLINE_S)
        assert len({eid for eid, _ in started.values()}) == 1  # every process got the same run
        [creator] = [who for who, (_, created) in started.items() if created]  # created by exactly one
        with Engine(data, create=False) as engine:
            assert engine.count() == 1
            [run] = engine.list(limit=10)
            assert run["input"] == {"who": creator}


def _connections(engine, shards):
    return [engine.catalog._db.connection()] + [engine.shard_store(s)._db.connection() for s in range(shards)]


@pytest.fixture
def no_counter_flush(monkeypatch):
    """The counters' own small transaction (every few seconds) is not part of what is measured."""
    from wfctl.store.postgresql import connection

    monkeypatch.setattr(connection, "FLUSH_EVERY_S", 3600.0)


@pytest.mark.usefixtures("no_counter_flush")
def test_a_start_costs_at_most_three_round_trips(tmp_path):
    with pg_project(tmp_path / "data", shards=2, tag="engine") as data:
        _applied(tmp_path, data)
        with Engine(data, create=False) as engine:
            engine.start("quick", {"who": "warm-up"})  # the definition is read once, then kept
            engine.start("quick", {"who": "warm-up"}, idempotency_key="warm-up")
            connections = _connections(engine, 2)
            for i in range(10):
                assert traced(connections, lambda: engine.start("quick", {"who": i}))[0] <= 3
                assert traced(connections, lambda: engine.start("quick", {"who": i}, idempotency_key=f"k{i}"))[0] <= 3
                assert traced(connections, lambda: engine.start("quick", idempotency_key=f"k{i}"))[0] <= 3  # existing
            assert _connections(engine, 2) == connections  # no connection was opened meanwhile
            assert engine.count() == 22


@pytest.mark.usefixtures("no_counter_flush")
def test_a_worker_group_commit_costs_the_same_whatever_the_batch(tmp_path):
    """One worker pass over a batch of runs (claim, advance, group commit) spends the same round
    trips and statements for 4 runs as for 60."""
    with pg_project(tmp_path / "data", shards=1, tag="engine") as data:
        _applied(tmp_path, data)
        with Engine(data, create=False) as engine:
            worker = Worker(engine, owner="w", lease_ttl=600.0, batch=100, sweep_interval=3600.0)
            try:
                engine.start("quick", {"who": "warm-up"})
                assert worker.tick()  # takes the lease, reads the definition, sweeps once
                connections = _connections(engine, 1)
                costs = {}
                for size in (4, 60):
                    for i in range(size):
                        engine.start("quick", {"who": i})
                    costs[size] = traced(connections, lambda: worker.tick())
                # The same statements whatever the batch; the trace may count an extra turn or two
                # for the big batch, where the server answers while the pipeline is still being sent.
                assert costs[4][1] == costs[60][1] and costs[4][0] <= 3 and costs[60][0] <= 6, costs
                assert engine.count([COMPLETED]) == 65
            finally:
                worker.close()
