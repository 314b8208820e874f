"""``wfctl start --wait`` as a user runs it, in real processes on real shard files: it runs its
own run only (the shard's other runs wait for a worker, which may need another environment),
and SIGTERM stops it like Ctrl-C, releasing the shard's lease at once."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from helpers import EXAMPLES, wait_until, wfctl, wfctl_argv, wfctl_env
from wfctl.engine import Engine

HELLO = str(EXAMPLES / "hello.json")
SLEEPY = {"id": "sleepy", "name": "Sleepy", "steps": [
    {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "nap"}},
    {"stepSlug": "nap", "name": "Nap", "stepType": "action",
     "config": {"type": "sleep", "parameters": {"seconds": 300}}, "nextSteps": {"success": "done"}},
    {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"slept": True}}}]}


def _shards(data) -> list[dict]:
    proc = wfctl(data, "shards", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_start_wait_runs_its_own_run_and_leaves_the_shards_other_runs_to_a_worker(tmp_path):
    data = tmp_path / "data"
    assert wfctl(data, "init", "--shards", "1").returncode == 0
    others = []
    for name in ("Ada", "Grace"):
        proc = wfctl(data, "start", HELLO, "--input", json.dumps({"name": name}))
        assert proc.returncode == 0, proc.stderr
        others.append(proc.stdout.strip())

    proc = wfctl(data, "start", HELLO, "--input", '{"name": "Linus"}', "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    mine = json.loads(proc.stdout)
    assert mine["status"] == "completed" and mine["output"]["message"] == "Hello, Linus!"
    for eid in others:  # not advanced by --wait: no step journaled, still pending
        other = json.loads(wfctl(data, "status", eid, "--json").stdout)
        assert (other["status"], other["steps"], other["started_at"]) == ("pending", [], None), other
    assert [s["lease_owner"] for s in _shards(data)] == [None]  # released when its run ended

    assert wfctl(data, "worker", "--drain").returncode == 0  # a worker runs them
    for eid, name in zip(others, ("Ada", "Grace")):
        other = json.loads(wfctl(data, "status", eid, "--json").stdout)
        assert other["status"] == "completed" and other["output"]["message"] == f"Hello, {name}!"


def test_sigterm_on_start_wait_releases_the_lease_and_exits_130(tmp_path):
    data = tmp_path / "data"
    definition = tmp_path / "sleepy.json"
    definition.write_text(json.dumps(SLEEPY))
    assert wfctl(data, "init", "--shards", "1").returncode == 0
    proc = subprocess.Popen(wfctl_argv(data, "start", definition, "--wait"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=wfctl_env())
    try:
        def sleeping() -> bool:  # --wait holds the lease and its run sleeps in its step
            with Engine(data) as engine:
                runs = engine.list()
                return bool(engine.shards()[0]["lease_owner"] and runs and runs[0]["status"] == "running")

        assert wait_until(sleeping), "start --wait did not take the shard and start its run"
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - began
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert stopped_in < 20
    shard = _shards(data)[0]
    assert shard["lease_owner"] is None and shard["runs_by_status"] == {"running": 1}  # the run goes on later
    with Engine(data) as engine:  # a new lease holder gets the shard at once, not after the 5 s lease
        assert engine.shard_store(0).acquire_lease("next", 5.0, now=time.time()) is not None
