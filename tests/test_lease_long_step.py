"""A pure step that runs longer than the lease TTL keeps the lease: a renewer thread renews it, so a
second worker cannot take the shard, no fenced write is lost and no step runs twice."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import step, wait_until
from wfctl.engine import Engine
from wfctl.store import DataDir

# A worker whose ``log`` action is a pure step that busy-waits ``seconds`` (holding the loop, as a
# heavy expression does) and records each call.
WORKER_SCRIPT = """
import sys, time
from wfctl.engine import Worker

data, owner, calls = sys.argv[1:4]

def slow(params, ctx):
    with open(calls, "a") as f:
        f.write(owner + "\\n")
    end = time.monotonic() + float(params["seconds"])
    while time.monotonic() < end:
        pass
    return {"by": owner}

worker = Worker(data, owner=owner, lease_ttl=1.0)
worker.interpreter.registry.register("log", slow, pure=True)
sys.exit(worker.run(drain=True))
"""

STEP_S = 4.0  # four lease TTLs


def test_a_step_longer_than_the_lease_keeps_it_and_runs_once(tmp_path):
    data, calls = tmp_path / "data", tmp_path / "calls.txt"
    DataDir.init(data, shards=1)
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"id": "long", "name": "long", "steps": [
        step("start", "start", next_steps={"success": "slow"}),
        step("slow", "action", {"type": "log", "parameters": {"seconds": STEP_S}}, {"success": "done"}),
        step("done", "output", {"mapping": {"by": "{{steps.slow.output.data.by}}"}}),
    ]}))
    with Engine(data) as engine:
        execution_id = engine.start(str(path)).execution_id

    def worker(owner: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(data), owner, str(calls)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = worker("first")
    started = wait_until(lambda: first.poll() is not None or (calls.exists() and calls.read_text()), interval=0.05)
    assert started and first.poll() is None, first.communicate()  # the long step has started
    second = worker("second")  # tries to take the shard every TTL / 3 until the run is done
    out_first, err_first = first.communicate(timeout=120)
    out_second, err_second = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err_first, err_second)
    assert "lost the lease" not in err_first and "lease" not in err_second, (err_first, err_second)
    assert calls.read_text().splitlines() == ["first"]  # the step ran once, in the first worker
    with Engine(data) as engine:
        run = engine.status(execution_id)
    assert run["status"] == "completed" and run["output"] == {"by": "first"}
    assert [(s["slug"], s["status"]) for s in run["steps"]] == [
        ("start", "completed"), ("slow", "completed"), ("done", "completed")]
