"""A bulk ``wfctl cancel`` while a worker process is busy on the same shard: every canceled run's
record is consistent (created <= started <= completed) and no step started after the cancel
is journaled (a side-effecting step in flight at the cancel is recorded, ending later). The store's
rules behind this are tested on every backend in tests/contract (test_commits, test_processes)."""

from __future__ import annotations

import json
import signal
import subprocess

from helpers import busy_definition, canceled_run_problems, slow_http_server, wait_until, wfctl_argv, wfctl_env
from wfctl.engine import Engine, Worker
from wfctl.store import DataDir

RUNS = 300
SLEEPY = {"id": "sleepy", "name": "Sleepy", "steps": [
    {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "nap"}},
    {"stepSlug": "nap", "name": "Nap", "stepType": "action",
     "config": {"type": "sleep", "parameters": {"seconds": 300}}, "nextSteps": {"success": "done"}},
    {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"slept": True}}}]}


def test_bulk_cancel_during_a_busy_worker_leaves_consistent_records(tmp_path):
    data = tmp_path / "data"
    subprocess.run(wfctl_argv(data, "init", "--shards", "1"), check=True, capture_output=True, env=wfctl_env())
    with slow_http_server(0.005) as url:  # a slow HTTP call keeps the worker's steps in flight
        definition = tmp_path / "busy.json"
        definition.write_text(json.dumps(busy_definition(url, inner=True)))
        with Engine(data) as engine:
            engine.apply([definition])
            for _ in range(RUNS):
                engine.start("busy", {"items": list(range(6)), "inner": list(range(30))})
        worker = subprocess.Popen(wfctl_argv(data, "worker", "--no-scheduler"), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=wfctl_env())
        try:
            with Engine(data) as engine:  # cancel once the worker is busy on the shard
                assert wait_until(lambda: engine.count(["running"], "busy") >= 20, interval=0.05), \
                    "the worker did not start the runs"
            cancel = subprocess.run(wfctl_argv(data, "cancel", "--definition", "busy", "--yes", "--json"),
                                    capture_output=True, text=True, stdin=subprocess.DEVNULL, env=wfctl_env(), timeout=120)
            assert cancel.returncode == 0, cancel.stderr
            count = json.loads(cancel.stdout)["count"]
            worker.send_signal(signal.SIGTERM)  # in-flight steps finish and are committed first
            _, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
        finally:
            worker.kill()
            worker.wait()

    with Engine(data) as engine:
        canceled = [engine.shard_store(r["shard"]).get_run(r["execution_id"])
                    for r in engine.list(["canceled"], "busy", limit=RUNS)]
        assert len(canceled) == count > 0
        assert any(run.started_at is not None for run in canceled)  # the cancel met runs in progress
        problems = {run.execution_id: p for run in canceled
                    if (p := canceled_run_problems(run, engine.shard_store(run.shard).journal(run.execution_id)))}
    assert not problems, f"{len(problems)} inconsistent canceled runs, e.g. {next(iter(problems.items()))}"


def test_the_cancel_time_is_read_once_each_shards_lock_is_held(tmp_path):
    """Deterministic: a worker commits a step on shard 1 while a bulk cancel is already under way
    (here: at the moment the cancel reads its clock, on shard 0); the cancel, reaching shard 1
    later, does not give that run a ``completed_at`` before its ``started_at``."""
    data = tmp_path / "data"
    DataDir.init(data, shards=2, route="execution")
    definition = tmp_path / "sleepy.json"
    definition.write_text(json.dumps(SLEEPY))
    ticks = iter(range(1_790_000_000, 1_790_001_000))
    during_cancel = []
    worker_time = [0.0]

    def clock() -> float:
        now = float(next(ticks))
        while during_cancel:
            during_cancel.pop()(now + 0.5)
        return now

    def worker_commits(at: float) -> None:
        worker_time[0] = at
        worker = Worker(other, [1], owner="worker")
        assert worker.tick()  # takes shard 1, runs the run's first steps, commits them at ``at``
        worker.close()

    with Engine(data, clock=clock) as canceler, Engine(data, clock=lambda: worker_time[0]) as other:
        assert {canceler.start(str(definition)).shard for _ in range(2)} == {0, 1}
        during_cancel.append(worker_commits)
        assert canceler.cancel_matching("sleepy") == 2
        [eid] = [r["execution_id"] for r in canceler.list(["canceled"], "sleepy", shard=1)]
        run = canceler.shard_store(1).get_run(eid)
        assert run.started_at == worker_time[0]  # the worker did commit it while the cancel went on
        assert canceled_run_problems(run, canceler.shard_store(1).journal(run.execution_id)) == []
