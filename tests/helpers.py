"""Builders shared by the tests: definitions from step dicts, a hand-driven clock, local HTTP servers,
subprocesses and racing child processes, checks."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TALE_EXAMPLES = ROOT.parent / "shared" / "tale-examples"


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def definition(steps, **top):
    """A definition from a list of step dicts (tale format); ``top`` adds top-level fields."""
    from wfctl.definitions import parse_definition

    data = {"name": top.pop("name", "test"), "steps": steps, **top}
    return parse_definition(data, source="test.json", default_id=top.get("id", "test"))


def step(slug, step_type, config=None, next_steps=None, **extra):
    """One tale step dict."""
    return {"stepSlug": slug, "name": slug, "stepType": step_type, "config": config or {},
            "nextSteps": next_steps or {}, **extra}


def write_definition(folder: Path, definition_id: str, steps, **top) -> Path:
    """Write definition ``definition_id`` (``steps``: tale step dicts; ``top``: more top-level fields)
    to ``folder/<definition_id>.json``; its path."""
    path = folder / f"{definition_id}.json"
    path.write_text(json.dumps({"id": definition_id, "name": definition_id, "steps": steps, **top}))
    return path


def minutely_sleeper(folder: Path) -> Path:
    """Definition ``d`` in ``folder``: a trigger every minute, then a 60-second sleep."""
    return write_definition(folder, "d", [
        step("t", "trigger", {"type": "scheduled", "schedule": "* * * * *"}, {"success": "w"}),
        step("w", "action", {"type": "sleep", "parameters": {"seconds": 60}})])


def busy_definition(url: str, *, inner: bool = False) -> dict:
    """Definition ``busy``: ``n = 0``, then for each of ``input.items`` ``n += 1`` (with ``inner``: once
    for each of ``input.inner``, in a nested loop) and a side-effecting GET of ``url``; outputs ``{"n": n}``."""
    first = "inner" if inner else "bump"
    bump = {"type": "set_variables", "parameters": {"variables": [{"name": "n", "value": "{{variables.n + 1}}"}]}}
    nested = [step("inner", "loop", {"items": "{{input.inner}}", "itemVariable": "x"}, {"loop": "bump", "done": "call"})]
    return {"id": "busy", "name": "Busy", "steps": [
        step("start", "start", None, {"success": "init"}),
        step("init", "action", {"type": "set_variables", "parameters": {"variables": [{"name": "n", "value": 0}]}},
             {"success": "each"}),
        step("each", "loop", {"items": "{{input.items}}", "itemVariable": "item"}, {"loop": first, "done": "done"}),
        *(nested if inner else []),
        step("bump", "action", bump, {"success": "inner" if inner else "call"}),
        step("call", "action", {"type": "http_request", "parameters": {"url": url}}, {"success": "each"}),
        step("done", "output", {"mapping": {"n": "{{variables.n}}"}}),
    ]}


@contextmanager
def local_http_server(handler, server_cls=ThreadingHTTPServer):
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = server_cls(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def slow_http_server(seconds: float):
    """:func:`local_http_server` answering every GET with :func:`reply_json` after ``seconds`` (the
    workload: a side effect that takes a while, so a worker's steps are in flight); yields the base URL."""
    import time

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            time.sleep(seconds)
            reply_json(self)

        def log_message(self, *args):
            pass

    with local_http_server(Slow) as url:
        yield url


def report(results, name, work) -> None:
    """In a child of :func:`run_processes`: put ``(name, work(), None)`` on ``results``, or
    ``(name, None, error)`` when ``work()`` raises (the parent fails the test)."""
    try:
        results.put((name, work(), None))
    except BaseException as exc:  # reported to the parent, which fails the test
        results.put((name, None, repr(exc)))


def run_processes(calls, timeout: float = 120.0, method: str = "spawn") -> dict:
    """Run each ``(target, *args)`` of ``calls`` as ``target(*args, barrier, results)`` in a process of
    its own (``method``: spawn, a fresh interpreter as on another machine, or fork), ``barrier`` shared
    by all of them; each puts one ``(name, value, error)`` on ``results`` (see :func:`report`). Waits
    ``timeout`` seconds at most for each result and each exit, kills what is left; fails the test on a
    reported error or an exit code but 0. Returns ``{name: value}``."""
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    results = ctx.Queue()
    barrier = ctx.Barrier(len(calls))
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for target, *args in calls]
    for proc in procs:
        proc.start()
    try:
        out = [results.get(timeout=timeout) for _ in procs]
        for proc in procs:
            proc.join(timeout=timeout)
            assert proc.exitcode == 0, f"{proc.name} exited with {proc.exitcode}"
    finally:
        for proc in procs:
            proc.kill()
    errors = [(name, error) for name, _, error in out if error]
    assert errors == [], errors
    return {name: value for name, value, _ in out}


def wfctl_argv(data, *args) -> list[str]:
    """``python -m wfctl [--data-dir DATA] ARGS`` with this interpreter."""
    import sys

    return [sys.executable, "-m", "wfctl", *(["--data-dir", str(data)] if data is not None else []), *map(str, args)]


def wfctl_env(drop=(), **extra) -> dict:
    """The environment for a wfctl subprocess: this one without ``WFCTL_DATA_DIR``,
    ``WFCTL_DEBUG`` (and ``drop``), this checkout first on the path, wide Rich output, plus ``extra``."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("WFCTL_DATA_DIR", "WFCTL_DEBUG", *drop)}
    env.update({"PYTHONPATH": str(ROOT), "COLUMNS": "200"}, **extra)
    return env


def wfctl(data, *args, env=None, timeout: float = 180, argv_prefix=(), cwd=None):
    """Run ``wfctl --data-dir DATA ARGS`` (no ``--data-dir`` when DATA is None) in a subprocess
    (no stdin) and return the CompletedProcess; fails the test on a traceback or an internal
    error, which wfctl must never print."""
    import subprocess
    import tempfile

    proc = subprocess.run([*argv_prefix, *wfctl_argv(data, *args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=wfctl_env() if env is None else env, timeout=timeout,
                          cwd=cwd or tempfile.gettempdir())
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def refused(proc) -> str:
    """The one stderr line of a command refused with exit 2."""
    assert proc.returncode == 2, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wfctl: error: "), proc.stderr
    return lines[0]


def wait_until(condition, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``condition()`` until it gives a true value (returned) or ``timeout`` seconds pass
    (False): the one way tests wait for something, never a bare sleep."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return False


def reply_json(handler, body: bytes = b'{"ok": true}', status: int = 200) -> None:
    """Answer an http.server request with a JSON body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def canceled_run_problems(run, journal) -> list[str]:
    """What is inconsistent in a canceled run's record and journal (empty when nothing): created <=
    started <= completed (the cancel), no row started after the cancel, none finished after it but
    the result of the side-effecting step in flight at the cancel (the last row, after its ``started`` row)."""
    from wfctl.store.base import STARTED

    problems = []
    end = run.completed_at
    if end is None or run.created_at > end:
        problems.append(f"created {run.created_at} after completed {end}")
    if run.started_at is not None and not run.created_at <= run.started_at <= end:
        problems.append(f"started {run.started_at} not between created {run.created_at} and completed {end}")
    for i, row in enumerate(journal):
        if row.started_at is not None and row.started_at > end:
            problems.append(f"row {row.seq} ({row.step_slug}) started {row.started_at - end:.6f} s after the cancel")
        prev = journal[i - 1] if i else None
        in_flight = (prev is not None and prev.status == STARTED and row.status != STARTED
                     and (prev.step_slug, prev.attempt) == (row.step_slug, row.attempt) and i == len(journal) - 1)
        if row.finished_at is not None and row.finished_at > end and not in_flight:
            problems.append(f"row {row.seq} ({row.step_slug}) finished {row.finished_at - end:.6f} s after the cancel")
    return problems
