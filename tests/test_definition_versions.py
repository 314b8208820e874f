"""Definition versions: runs finish on the version they started with, whatever is applied meanwhile.

The main test uses real processes (``wfctl`` commands and worker processes) on real shard
files, with v1's first action in flight (an HTTP request held by a local server) while v2,
whose steps are all renamed, is applied.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import EXAMPLES, local_http_server, reply_json, wait_until
from test_cli_engine import _argv, _env, error_line, init, ok, ok_json, start_runs, wfctl, wfctl_many
from wfctl.engine import Engine, Worker
from wfctl.store import DataDir

HELLO = EXAMPLES / "hello.json"
DEADLINE_S = 90


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    value = wait_until(condition, deadline_s, interval=0.05)
    assert value, f"timed out waiting for {what}"
    return value


def step(slug, step_type, config=None, then=None):
    return {"stepSlug": slug, "name": slug, "stepType": step_type, "config": config or {},
            "nextSteps": {"success": then} if then else {}}


def v1_body(gate_url: str) -> dict:
    """start_v1 -> fetch_v1 (an HTTP request the test holds) -> mark_v1 -> done_v1."""
    return {"name": "Flow", "version": "1", "steps": [
        step("start_v1", "start", then="fetch_v1"),
        step("fetch_v1", "action", {"type": "http_request", "parameters": {"url": gate_url, "timeout": 300}},
             then="mark_v1"),
        step("mark_v1", "action", {"type": "set_variables", "parameters": {
            "variables": [{"name": "fetched", "value": "{{steps.fetch_v1.output.data.json.ok}}"}]}}, then="done_v1"),
        step("done_v1", "output", {"mapping": {"version": "v1", "fetched": "{{variables.fetched}}"}}),
    ]}


def v2_body() -> dict:
    """begin_v2 -> compute_v2 -> finish_v2: no slug in common with v1."""
    return {"name": "Flow", "version": "2", "steps": [
        step("begin_v2", "start", then="compute_v2"),
        step("compute_v2", "action", {"type": "set_variables", "parameters": {
            "variables": [{"name": "n", "value": 2}]}}, then="finish_v2"),
        step("finish_v2", "output", {"mapping": {"version": "v2", "n": "{{variables.n}}"}}),
    ]}


def write(path: Path, body: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


class Gate(BaseHTTPRequestHandler):
    """GET answers ``{"ok": true}`` once the gate is open; ``held`` counts requests received."""

    opened = threading.Event()
    held = 0
    lock = threading.Lock()

    def do_GET(self):
        with Gate.lock:
            Gate.held += 1
        Gate.opened.wait(DEADLINE_S * 2)
        reply_json(self)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the killed worker's connections


@pytest.fixture
def gate():
    Gate.opened.clear()
    Gate.held = 0
    with local_http_server(Gate, QuietServer) as url:
        yield url + "/hold"
    Gate.opened.set()


def worker_process(data: Path) -> subprocess.Popen:
    """``wfctl worker`` in its own process group (so that it and its child can be killed together)."""
    with open(data.parent / "worker.log", "wb") as log:
        return subprocess.Popen(_argv(["worker", "--no-scheduler"], data), env=_env({"NO_PROXY": "*"}),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def test_runs_in_flight_finish_on_the_version_they_started_with(tmp_path, gate):
    data = init(tmp_path, shards=2)
    v1 = write(tmp_path / "v1" / "flow.json", v1_body(gate))
    v2 = write(tmp_path / "v2" / "flow.json", v2_body())
    applied = ok(wfctl("defs", "apply", v1, data=data)).stdout.strip()
    assert applied.startswith("flow: applied (version ")
    v1_hash = applied.split("version ")[1].rstrip(")")
    v1_runs = [ok(p).stdout.strip() for p in wfctl_many([["start", "flow"], ["start", v1], ["start", "flow"]], data)]

    worker = worker_process(data)
    try:
        wait_for(lambda: Gate.held >= 3, "the v1 runs' requests in flight")
        for eid in v1_runs:
            status = ok_json(wfctl("status", eid, "--json", data=data))
            assert (status["status"], status["current_step"], status["definition_version"]) == (
                "running", "fetch_v1", v1_hash)

        # v2 renames every step; the file has the same name, so the same id, as v1's
        line = ok(wfctl("defs", "apply", v2, data=data)).stdout.strip()
        assert line.startswith(f"flow: changed from version {v1_hash} to ")
        assert line.endswith(f"(the replaced version came from another file: {v1.resolve()})")
        v2_hash = line.split(" to ")[1].split()[0]
        # the v1 file is a stored version: starting it again runs v1, and v2 stays current
        v1_runs.append(ok(wfctl("start", v1, data=data)).stdout.strip())
        v2_runs = [ok(p).stdout.strip() for p in wfctl_many([["start", "flow"], ["start", v2]], data)]
        wait_for(lambda: Gate.held >= 4, "the fourth v1 run's request")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its child, mid-request
        worker.wait(timeout=60)

    Gate.opened.set()
    drained = subprocess.run(_argv(["worker", "--drain"], data), env=_env({"NO_PROXY": "*"}), capture_output=True,
                             text=True, stdin=subprocess.DEVNULL, timeout=DEADLINE_S * 2)
    assert drained.returncode == 0, drained.stderr

    runs = {r["execution_id"]: r for r in ok_json(wfctl("list", "--json", data=data))}
    assert set(runs) == set(v1_runs + v2_runs)
    for eid in v1_runs:
        assert (runs[eid]["status"], runs[eid]["output"], runs[eid]["definition_version"]) == (
            "completed", {"version": "v1", "fetched": True}, v1_hash), runs[eid]
        steps = ok_json(wfctl("status", eid, "--json", data=data))["steps"]
        assert {s["slug"] for s in steps} == {"start_v1", "fetch_v1", "mark_v1", "done_v1"}
        assert [s["status"] for s in steps if s["slug"] == "fetch_v1"][-1] == "completed"
    for eid in v2_runs:
        assert (runs[eid]["status"], runs[eid]["output"], runs[eid]["definition_version"]) == (
            "completed", {"version": "v2", "n": 2}, v2_hash), runs[eid]
        steps = ok_json(wfctl("status", eid, "--json", data=data))["steps"]
        assert [s["slug"] for s in steps] == ["begin_v2", "compute_v2", "finish_v2"]

    history = ok_json(wfctl("defs", "history", "flow", "--json", data=data))
    assert [(h["version"], h["current"], h["runs"], h["definition_version"]) for h in history] == [
        (v2_hash, True, 2, "2"), (v1_hash, False, 4, "1")]
    assert history[1]["source"] == str(v1.resolve()) and history[0]["source"] == str(v2.resolve())
    assert ok_json(wfctl("defs", "show", "flow", "--version", v1_hash, data=data))["steps"][0]["stepSlug"] == "start_v1"
    assert ok_json(wfctl("defs", "show", "flow", data=data))["steps"][0]["stepSlug"] == "begin_v2"


def test_start_file_never_silently_replaces_a_definition(tmp_path):
    data = init(tmp_path)
    # the README quickstart: the same file started again and again
    first, again = (ok_json(wfctl("start", HELLO, "--json", data=data)) for _ in range(2))
    assert first["created"] and again["created"]
    [history] = ok_json(wfctl("defs", "history", "hello", "--json", data=data))
    assert history["current"] and history["runs"] == 2 and history["source"] == str(HELLO)

    other = tmp_path / "elsewhere" / "hello.json"  # an unrelated file with the same name
    other.parent.mkdir()
    other.write_text(json.dumps({"name": "Other", "steps": [step("start", "start")]}))
    line = error_line(wfctl("start", other, data=data))
    assert line == (f"hello.json: definition 'hello' is already registered with other content (current version "
                    f"{history['version']}, applied from {HELLO}); `wfctl defs apply {other}` makes this file its "
                    f"current version, or start it with --replace")
    assert ok_json(wfctl("defs", "show", "hello", data=data))["name"] == "Hello"
    assert len(ok_json(wfctl("list", "--json", data=data))) == 2

    assert error_line(wfctl("start", "hello", "--replace", data=data)) == (
        "--replace goes with a definition file, and 'hello' is not one")
    replaced = ok_json(wfctl("start", other, "--replace", "--wait", "--json", data=data))
    assert replaced["status"] == "completed" and replaced["definition_version"] != history["version"]
    assert ok_json(wfctl("defs", "show", "hello", data=data))["name"] == "Other"
    # the original file is a stored version: it starts as itself and leaves the current version alone
    old = ok_json(wfctl("start", HELLO, "--wait", "--json", data=data))
    assert old["definition_version"] == history["version"] and old["output"]["message"] == "Hello, world!"
    versions = ok_json(wfctl("defs", "history", "hello", "--json", data=data))
    assert [(v["version"], v["current"], v["runs"]) for v in versions] == [
        (replaced["definition_version"], True, 1), (history["version"], False, 3)]

    # an edit of the current file is other content too
    edited = json.loads(other.read_text())
    edited["name"] = "Other, edited"
    other.write_text(json.dumps(edited))
    assert "already registered with other content" in error_line(wfctl("start", other, data=data))
    assert ok(wfctl("defs", "apply", other, data=data)).stdout.startswith(
        f"hello: changed from version {replaced['definition_version']} to ")
    assert ok_json(wfctl("start", other, "--json", data=data))["created"]


def test_status_and_list_show_the_version(tmp_path):
    data = init(tmp_path)
    [eid] = start_runs(data, str(HELLO), 1)
    status_json, list_json, status_text, list_text, unknown, bad_version = wfctl_many([
        ["status", eid, "--json"], ["list", "--json"], ["status", eid], ["list"], ["defs", "history", "nosuch"],
        ["defs", "show", "hello", "--version", "0123456789ab"]], data)
    version = ok_json(status_json)["definition_version"]
    assert len(version) == 12 and int(version, 16) >= 0
    assert [r["definition_version"] for r in ok_json(list_json)] == [version]
    assert f"hello version {version}" in ok(status_text).stdout
    assert version in ok(list_text).stdout
    assert error_line(unknown) == "unknown definition 'nosuch'"
    assert error_line(bad_version) == "unknown version '0123456789ab' of definition 'hello'"


def test_the_version_is_computed_once_per_definition_not_per_start(tmp_path, monkeypatch):
    import wfctl.engine.engine as client

    calls = []
    real = client.content_hash
    monkeypatch.setattr(client, "content_hash", lambda body: calls.append(1) or real(body))
    DataDir.init(tmp_path / "data", shards=2, route="execution")
    with Engine(tmp_path / "data") as engine:
        [applied] = engine.apply([HELLO])
        assert len(calls) == 1
        ids = [engine.start("hello").execution_id for _ in range(50)]
        assert len(calls) == 1
        ids += [engine.start(str(HELLO)).execution_id for _ in range(50)]
        assert len(calls) == 2  # the file's content, read once
        assert {engine.status(eid)["definition_version"] for eid in ids} == {applied.version}
        assert Worker(engine, owner="test").run(drain=True) == 0
        assert engine.count(["completed"], "hello") == 100
