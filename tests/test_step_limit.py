"""Runs that never end: the per-run step limit (``config.maxSteps``) and the closed-cycle warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import EXAMPLES, TALE_EXAMPLES, step, wait_until
from wfctl.definitions import validate_file
from wfctl.store import DataDir

LIMIT_ERROR = "run exceeded its step limit of {} steps (config.maxSteps)"


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("WFCTL_DATA_DIR", "WFCTL_DEBUG")}


def wfctl(*args, data=None, timeout=120) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "wfctl", *(["--data-dir", str(data)] if data else []), *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=_env(),
                          timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def spinning(tmp_path: Path, max_steps: int | None = None, nap: float | None = None, name="spin") -> Path:
    """start -> pick; pick true -> a condition that loops to itself on both ports (through a sleep
    step when ``nap``), false -> done. Valid: the false branch ends."""
    body = "nap" if nap is not None else "check"
    steps = [
        step("start", "start", next_steps={"success": "pick"}),
        step("pick", "condition", {"expression": "input.spin"}, {"true": "check", "false": "done"}),
        step("check", "condition", {"expression": "true"}, {"true": body, "false": body}),
        step("done", "output", {"mapping": {"ok": True}}),
    ]
    if nap is not None:
        steps.append(step("nap", "action", {"type": "sleep", "parameters": {"seconds": nap}}, {"success": "check"}))
    data = {"id": name, "name": name, "steps": steps}
    if max_steps is not None:
        data["config"] = {"maxSteps": max_steps}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


# -- the in-memory runner ---------------------------------------------------------------------

def test_run_stops_a_never_ending_run_at_the_default_limit(tmp_path):
    began = time.monotonic()
    proc = wfctl("run", spinning(tmp_path), "--input", '{"spin": true}', "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed" and out["error"] == LIMIT_ERROR.format(10000)
    executed = [s for s in out["steps"] if s["error"] is None]
    assert len(executed) == 10000 and out["steps"][-1]["slug"] == "check"
    assert time.monotonic() - began < 60


def test_run_honours_config_max_steps_and_finite_runs_are_untouched(tmp_path):
    path = spinning(tmp_path, max_steps=25)
    out = json.loads(wfctl("run", path, "--input", '{"spin": true}', "--json").stdout)
    assert out["status"] == "failed" and out["error"] == LIMIT_ERROR.format(25)
    assert len([s for s in out["steps"] if s["error"] is None]) == 25
    done = wfctl("run", path, "--input", '{"spin": false}', "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["output"] == {"ok": True}


@pytest.mark.parametrize("value", [0, -5, "100", 1.5])
def test_bad_max_steps_is_a_schema_error(tmp_path, value):
    path = spinning(tmp_path)
    data = json.loads(path.read_text())
    data["config"] = {"maxSteps": value}
    path.write_text(json.dumps(data))
    report = validate_file(path)
    assert [i.field for i in report.errors] == ["config.maxSteps"], report.errors


# -- the durable engine ------------------------------------------------------------------------

def test_durable_run_fails_at_its_step_limit(tmp_path):
    data = tmp_path / "data"
    proc = wfctl("start", spinning(tmp_path, max_steps=300), "--input", '{"spin": true}', "--wait", "--json",
                 data=data)
    assert proc.returncode == 1, proc.stderr
    run = json.loads(proc.stdout)
    assert run["status"] == "failed" and run["error"] == LIMIT_ERROR.format(300)
    run = json.loads(wfctl("status", run["execution_id"], "--all-steps", "--json", data=data).stdout)
    done = Counter(s["status"] for s in run["steps"])
    assert done["completed"] == 300 and done["failed"] == 1
    assert run["steps"][-1]["error"] == LIMIT_ERROR.format(300)


def _completed_steps(data: Path, execution_id: str) -> tuple[str, int]:
    proc = wfctl("status", execution_id, "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    return run["status"], sum(1 for s in run["steps"] if s["status"] == "completed")


def test_step_count_survives_a_worker_restart(tmp_path):
    """The count lives in the stored run state: a worker killed half-way and a new one together
    execute exactly ``maxSteps`` steps."""
    data = tmp_path / "data"
    DataDir.init(data, shards=1)
    limit = 200  # two steps every 0.1 s: about 10 s of work
    proc = wfctl("start", spinning(tmp_path, max_steps=limit, nap=0.1), "--input", '{"spin": true}', data=data)
    assert proc.returncode == 0, proc.stderr
    execution_id = proc.stdout.strip()
    worker = subprocess.Popen([sys.executable, "-m", "wfctl", "--data-dir", str(data), "worker", "--no-scheduler"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                              start_new_session=True)
    try:
        assert wait_until(lambda: _completed_steps(data, execution_id)[1] >= 10, interval=0.2), \
            "the worker made no progress"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
    status, before = _completed_steps(data, execution_id)
    assert status == "running" and 10 <= before < limit
    drained = wfctl("worker", "--drain", data=data, timeout=300)
    assert drained.returncode == 0, drained.stderr
    run = json.loads(wfctl("status", execution_id, "--all-steps", "--json", data=data).stdout)
    assert run["status"] == "failed" and run["error"] == LIMIT_ERROR.format(limit)
    assert sum(1 for s in run["steps"] if s["status"] == "completed") == limit


# -- the validation warning --------------------------------------------------------------------

def _warnings(path: Path) -> list[str]:
    report = validate_file(path)
    assert report.errors == []
    return [str(w) for w in report.warnings]


def test_closed_cycle_is_warned_about(tmp_path):
    warnings = _warnings(spinning(tmp_path))
    assert warnings == ["spin.json: step 'check': nextSteps: steps 'check' form a cycle that no port leaves: "
                        "a run that gets here never ends and fails at its step limit (config.maxSteps)"]
    proc = wfctl("defs", "validate", "--strict", spinning(tmp_path))
    assert proc.returncode == 1 and "form a cycle that no port leaves" in proc.stdout


def test_closed_cycle_of_several_steps_is_warned_about_once(tmp_path):
    path = tmp_path / "ring.json"
    path.write_text(json.dumps({"name": "ring", "steps": [
        step("start", "start", next_steps={"success": "pick"}),
        step("pick", "condition", {"expression": "input.x"}, {"true": "a", "false": "noop"}),
        step("a", "condition", {"expression": "input.y"}, {"true": "b", "false": "c"}),
        step("b", "action", {"type": "log", "parameters": {"message": "b"}}, {"success": "c"}),
        step("c", "condition", {"expression": "input.z"}, {"true": "a", "false": "b"}),
    ]}))
    assert _warnings(path) == ["ring.json: step 'a': nextSteps: steps 'a', 'b', 'c' form a cycle that no port "
                               "leaves: a run that gets here never ends and fails at its step limit (config.maxSteps)"]


def test_cycles_with_an_exit_are_not_warned_about(tmp_path):
    path = tmp_path / "exits.json"
    path.write_text(json.dumps({"name": "exits", "steps": [
        step("start", "start", next_steps={"success": "each"}),
        step("each", "loop", {"items": "{{input.items}}"}, {"loop": "body", "done": "page"}),
        step("body", "action", {"type": "log", "parameters": {"message": "x"}}, {"success": "each"}),
        step("page", "condition", {"expression": "input.more"}, {"true": "each", "false": "done"}),
        step("half", "condition", {"expression": "input.more"}, {"true": "half"}),  # unreachable anyway
        step("done", "output", {"mapping": {"ok": True}}),
    ]}))
    assert not [w for w in _warnings(path) if "cycle" in w]


def test_shipped_examples_have_no_closed_cycle():
    files = sorted(EXAMPLES.glob("*.json")) + sorted(EXAMPLES.glob("*.yaml"))
    if TALE_EXAMPLES.is_dir():
        files += sorted(TALE_EXAMPLES.rglob("*.json"))
    assert files
    for path in files:
        assert not [str(w) for w in validate_file(path).warnings if "form a cycle" in w.message], path
