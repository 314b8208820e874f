"""``wfctl retry`` end to end, on SQLite and PostgreSQL: a run whose side-effecting step fails is
retried once the cause is fixed and a real worker completes it without running the steps before
the failed one again; ``--from`` goes back to an earlier step; the run stays on its definition
version; refusals change nothing; the bulk form; two retries racing in real processes."""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import local_http_server, refused, step, wfctl, wfctl_argv, wfctl_env
from pg import pg_project


class Service:
    """A local HTTP service the definition calls: ``/count`` answers 200, ``/check`` 500 while
    ``broken``; ``hits`` counts the calls of each path (the side effects that really ran)."""

    def __init__(self):
        self.broken = True
        self.hits = {"/count": 0, "/check": 0}


@pytest.fixture
def service():
    svc = Service()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            svc.hits[self.path] += 1
            status = 500 if self.path == "/check" and svc.broken else 200
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with local_http_server(Handler) as url:
        svc.url = url
        yield svc


@contextmanager
def _sqlite(path):
    from wfctl.store import DataDir

    DataDir.init(path, shards=2)
    yield path


@pytest.fixture(params=["sqlite", "postgresql"])
def data(request, tmp_path):
    make = _sqlite if request.param == "sqlite" else pg_project
    with make(tmp_path / "data") as path:
        yield path


def _definition(tmp_path, url, mapping=None, name="flaky.json", definition_id="flaky", last="done"):
    """``flaky`` (or ``definition_id``): start -> count (GET /count) -> check (GET /check, no retries) -> done
    (or ``last``)."""
    http = {"retryPolicy": {"maxRetries": 0, "backoffMs": 0}}
    steps = [step("start", "start", None, {"success": "count"}),
             step("count", "action", {"type": "http_request", "parameters": {"url": f"{url}/count"}, **http},
                  {"success": "check"}),
             step("check", "action", {"type": "http_request", "parameters": {"url": f"{url}/check"}, **http},
                  {"success": last}),
             step(last, "output", {"mapping": mapping or {"version": 1}})]
    path = tmp_path / name
    path.write_text(json.dumps({"id": definition_id, "name": definition_id, "steps": steps}))
    return path


def ok(proc):
    assert proc.returncode == 0, (proc.args[3:], proc.returncode, proc.stdout[-2000:], proc.stderr)
    return proc.stdout


def _status(data, eid):
    return json.loads(ok(wfctl(data, "status", eid, "--all-steps", "--json")))


def _drain(data):
    ok(wfctl(data, "worker", "--drain", "--no-scheduler"))


def _rows(status):
    return [(s["slug"], s["status"], s["attempt"]) for s in status["steps"]]


def _failed_run(data, tmp_path, service):
    ok(wfctl(data, "defs", "apply", _definition(tmp_path, service.url)))
    eid = ok(wfctl(data, "start", "flaky")).strip()
    _drain(data)
    status = _status(data, eid)
    assert status["status"] == "failed" and service.hits == {"/count": 1, "/check": 1}
    return eid, status


def test_a_failed_run_goes_on_from_its_failed_step_and_from_an_earlier_one(data, tmp_path, service):
    eid, failed = _failed_run(data, tmp_path, service)
    assert _rows(failed) == [("start", "completed", 1), ("count", "completed", 1), ("check", "failed", 1)]
    service.broken = False  # the cause fixed
    assert ok(wfctl(data, "retry", eid)).strip() == f"{eid} retried from step 'check' (attempt 2)"
    pending = _status(data, eid)
    assert pending["status"] == "running" and pending["error"] is None and pending["completed_at"] is None
    _drain(data)
    done = _status(data, eid)
    assert done["status"] == "completed" and done["output"] == {"version": 1}
    assert done["steps"][:3] == failed["steps"]  # the journal kept its rows as they were
    assert _rows(done)[3:] == [("check", "completed", 2), ("done", "completed", 1)]
    assert service.hits == {"/count": 1, "/check": 2}  # the step before the failed one did not run again

    # a completed run again, from an earlier step, pinned to its version although another is current
    ok(wfctl(data, "defs", "apply", _definition(tmp_path, service.url, {"version": 2}, "flaky-v2.json", last="end")))
    line = refused(wfctl(data, "retry", eid, "--from", "end"))  # a step of the current version, not of the run's
    assert line.startswith(f"wfctl: error: --from: 'end' is not a step of run {eid}'s definition flaky (version ")
    out = json.loads(ok(wfctl(data, "retry", eid, "--from", "count", "--json")))
    assert out == {"execution_id": eid, "shard": done["shard"], "step": "count", "attempt": 2}
    _drain(data)
    again = _status(data, eid)
    assert again["status"] == "completed" and again["output"] == {"version": 1}
    assert again["definition_version"] == failed["definition_version"]
    assert again["steps"][:5] == done["steps"]
    assert _rows(again)[5:] == [("count", "completed", 2), ("check", "completed", 1), ("done", "completed", 1)]
    assert service.hits == {"/count": 2, "/check": 3}


def test_refusals_are_one_line_and_change_nothing(data, tmp_path, service):
    eid, failed = _failed_run(data, tmp_path, service)
    ok(wfctl(data, "defs", "apply", _definition(tmp_path, service.url, name="other.json", definition_id="other")))
    pending = ok(wfctl(data, "start", "other")).strip()
    cases = [
        (("retry", "02-nosuchrun"), "unknown execution id '02-nosuchrun'"),
        (("retry", eid, "--from", "nope"), f"--from: 'nope' is not a step of run {eid}'s definition flaky"),
        (("retry", eid, "--from", "done"),
         f"--from: run {eid} never reached step 'done' (its path: start, count, check)"),
        (("retry", eid, "--from", "start"), f"--from: the state of run {eid} before step 'start' was not kept"),
        (("retry", pending), f"run {pending} is pending: only a failed or canceled run can be retried"),
        (("retry", "--definition", "flaky"), "Retry 1 run(s) of 'flaky'? (refusing without --yes"),
        (("retry", eid, "--definition", "flaky"), "give an execution id or --definition, not both"),
        (("retry", "--definition", "flaky", "--status", "running"), "--status: 'running': only failed or canceled"),
        (("retry", "--definition", "flaky", "--since", "soon", "--yes"), "--since"),
        (("retry", "--definition", "nope", "--yes"), "unknown definition 'nope'"),
    ]
    for args, message in cases:
        line = refused(wfctl(data, *args))
        assert line.startswith(f"wfctl: error: {message}"), (args, line)
    assert _status(data, eid) == failed and _status(data, pending)["status"] == "pending"
    assert service.hits == {"/count": 1, "/check": 1}


def test_a_canceled_run_goes_on_from_the_step_it_was_on(data, tmp_path, service):
    ok(wfctl(data, "defs", "apply", _definition(tmp_path, service.url)))
    service.broken = False
    eid = ok(wfctl(data, "start", "flaky")).strip()
    ok(wfctl(data, "cancel", eid))
    assert ok(wfctl(data, "retry", eid)).strip() == f"{eid} retried from step 'start' (attempt 1)"
    _drain(data)
    done = _status(data, eid)
    assert done["status"] == "completed" and service.hits == {"/count": 1, "/check": 1}


def test_bulk_retry_with_a_count_and_yes(data, tmp_path, service):
    ok(wfctl(data, "defs", "apply", _definition(tmp_path, service.url)))
    ids = [ok(wfctl(data, "start", "flaky")).strip() for _ in range(3)]
    _drain(data)
    assert {_status(data, eid)["status"] for eid in ids} == {"failed"}
    service.broken = False
    assert json.loads(ok(wfctl(data, "retry", "--definition", "flaky", "--since", "0s", "--yes", "--json")))[
        "count"] == 0  # none ended within the last 0 s
    out = json.loads(ok(wfctl(data, "retry", "--definition", "flaky", "--status", "failed", "--since", "1h",
                              "--limit", "2", "--yes", "--json")))
    assert out["count"] == 2 and out["skipped"] == [] and {r["step"] for r in out["retried"]} == {"check"}
    assert ok(wfctl(data, "retry", "--definition", "flaky", "--yes")).strip() == "retried 1 run(s)"
    _drain(data)
    assert {_status(data, eid)["status"] for eid in ids} == {"completed"}
    assert service.hits == {"/count": 3, "/check": 6}


def test_two_retries_racing_retry_the_run_once(data, tmp_path, service):
    eid, _ = _failed_run(data, tmp_path, service)
    service.broken = False
    env = wfctl_env()
    procs = [subprocess.Popen(wfctl_argv(data, "retry", eid), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=env) for _ in range(2)]
    outcomes = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert sorted(code for code, _, _ in outcomes) == [0, 2], outcomes
    loser = next(err for code, _, err in outcomes if code == 2).strip()
    assert loser in (f"wfctl: error: run {eid} is running: only a failed or canceled run can be retried",
                     f"wfctl: error: run {eid} changed while it was being retried (retried, advanced or deleted "
                     "meanwhile): nothing done")
    _drain(data)
    done = _status(data, eid)
    assert done["status"] == "completed" and [r[0] for r in _rows(done)].count("check") == 2
    assert service.hits == {"/count": 1, "/check": 2}  # executed once more, not twice
