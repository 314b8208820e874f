"""Cancel and cleanup racing a busy worker on PostgreSQL, in both isolations: a worker process
advances many runs (side-effecting steps in flight) while another process cancels them and
cleans them up in batches. No deadlock or serialization failure reaches either process: the
store retries them and counts them by cause in the shard's stats."""

from __future__ import annotations

import json
import logging
import time

import pytest

from helpers import busy_definition, canceled_run_problems, report, run_processes, slow_http_server, wait_until
from pg import pg_project
from wfctl.engine import Engine, Worker
from wfctl.store import CANCELED, COMPLETED, UNFINISHED
from wfctl.store.base import CONNECTION_LOST, DEADLOCK, LOCK_BUSY, LOCK_TIMEOUT, SERIALIZATION_FAILURE

DEADLINE_S = 300.0
RUNS = 160
ITEMS = 10
BATCH = 5
CANCEL_BATCHES = 8
MAX_CANCEL_BATCHES = 20
FORCED = range(0, 40)  # cleaned up with force (canceled, then deleted) in batches


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


class _Problems(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _work(data, barrier, results):
    """The busy worker: every shard, until no run is left unfinished; what it logged as a problem."""
    def work():
        problems = _Problems()
        logging.getLogger("wfctl").addHandler(problems)
        worker = Worker(data, owner="busy", lease_ttl=30.0)
        barrier.wait(DEADLINE_S)
        return worker.run(drain=True), problems.messages
    report(results, "worker", work)


def _clean(data, ids, isolation, barrier, results):
    """The user: once the worker is busy, cancels runs in progress, a few at a time (at least
    :data:`CANCEL_BATCHES` times and, when serializable, until a conflict was counted), cleans
    up :data:`FORCED` with force in batches, then deletes completed runs while the worker goes on."""
    def work():
        forced_ids = [ids[i] for i in FORCED]
        with Engine(data, create=False) as engine:
            barrier.wait(DEADLINE_S)
            assert wait_until(lambda: engine.count(["running"]) >= 10, timeout=DEADLINE_S, interval=0.01), \
                "the worker is idle"
            canceled: list[str] = []
            for batches in range(1, MAX_CANCEL_BATCHES + 1):
                running = [r["execution_id"] for r in engine.list(["running"], limit=100)]
                batch = [eid for eid in running if eid not in forced_ids][:BATCH]
                if not batch:
                    break
                canceled += engine.cancel(batch)
                conflicts = sum(row["retries"][SERIALIZATION_FAILURE] for row in engine.shards())
                if batches >= CANCEL_BATCHES and (conflicts or isolation != "serializable"):
                    break
            forced = [engine.cleanup(batch, force=True) for batch in _chunks(forced_ids, BATCH)]
            deleted = 0
            deadline = time.monotonic() + DEADLINE_S
            while engine.count(UNFINISHED) and time.monotonic() < deadline:
                deleted += engine.cleanup_older_than(0, [COMPLETED])
            return canceled, forced, deleted
    report(results, "user", work)


@pytest.mark.parametrize("isolation", ["read committed", "serializable"])
def test_cancel_and_cleanup_racing_a_busy_worker_reach_no_user(tmp_path, isolation):
    with pg_project(tmp_path / "data", shards=2, tag="race", route="execution", isolation=isolation) as data, \
            slow_http_server(0.002) as url:
        definition = tmp_path / "busy.json"
        definition.write_text(json.dumps(busy_definition(url)))
        with Engine(data, create=False) as engine:
            engine.apply([definition])
            ids = [engine.start("busy", {"items": list(range(ITEMS))}).execution_id for _ in range(RUNS)]
            assert {engine.locate(eid) for eid in ids} == {0, 1}
        found = run_processes([(_work, str(data)), (_clean, str(data), ids, isolation)],
                              2 * DEADLINE_S)  # fails unless every call returned normally
        assert found["worker"] == (0, [])  # nothing failed, nothing logged as a problem
        canceled, forced, deleted = found["user"]

        with Engine(data, create=False) as engine:
            assert forced == [BATCH] * (len(FORCED) // BATCH)  # every forced run deleted
            assert canceled and not set(canceled) & {ids[i] for i in FORCED}
            listed = engine.list([CANCELED], limit=1000)
            assert sorted(r["execution_id"] for r in listed) == sorted(canceled)
            assert engine.count(UNFINISHED) == 0
            completed = engine.list([COMPLETED], limit=1000)
            assert len(completed) + deleted + len(canceled) + len(FORCED) == RUNS  # nothing lost or left
            assert all(r["output"] == {"n": ITEMS} for r in completed)
            stores = {shard: engine.shard_store(shard) for shard in range(2)}
            records = [stores[engine.locate(eid)].get_run(eid) for eid in canceled]
            assert any(run.started_at is not None for run in records)  # the cancels met runs in progress
            problems = {run.execution_id: p for run in records
                        if (p := canceled_run_problems(run, stores[run.shard].journal(run.execution_id)))}
            assert not problems, f"{len(problems)} inconsistent canceled runs, e.g. {next(iter(problems.items()))}"
            shards = engine.shards()
        retries = {cause: sum(row["retries"][cause] for row in shards) for cause in shards[0]["retries"]}
        waited = {cause: sum(row["wait_ms"][cause] for row in shards) for cause in retries}
        assert set(retries) == {SERIALIZATION_FAILURE, DEADLOCK, LOCK_TIMEOUT, CONNECTION_LOST, LOCK_BUSY}
        assert all(waited[cause] > 0 for cause in retries if retries[cause])
        if isolation == "serializable":  # the conflicts read committed resolves by waiting, retried and counted
            assert retries[SERIALIZATION_FAILURE] > 0
