"""The durable-engine commands as a user runs them: the real ``wfctl`` in subprocesses.

Every test runs ``python -m wfctl`` with ``--data-dir`` on ``tmp_path`` (one uses
``$WFCTL_DATA_DIR``) and asserts what a user sees: exit codes, JSON fields, one-line errors on
stderr, never a traceback. Setup that is not under test (starting a few runs, draining them)
uses the library in this process, which is much faster than a process per call.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from helpers import EXAMPLES, TALE_EXAMPLES, wait_until
from wfctl.definitions import load_definition
from wfctl.engine import Engine, Worker
from wfctl.store import SCHEMA_VERSION, DataDir, shard_for

HELLO = str(EXAMPLES / "hello.json")
ID_RE = re.compile(r"^[0-9a-f]{2,}-[0-9a-f]{32}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RUN_KEYS = {"execution_id", "definition_id", "definition_version", "shard", "status", "current_step", "input", "output", "error",
            "created_at", "started_at", "completed_at", "slot_time", "fire_lag_ms"}
STATUS_KEYS = RUN_KEYS | {"steps_total", "steps"}
STEP_KEYS = {"slug", "type", "status", "attempt", "port", "output", "error", "started_at", "finished_at"}
SHARD_KEYS = {"shard", "runs_by_status", "queue_depth", "retries", "wait_ms", "transactions",
              "lease_owner", "lease_expires_at", "generation", "heartbeat_at", "size_bytes", "details", "path",
              "location", "waiting", "waiting_error"}


# -- running wfctl -------------------------------------------------------------------------

def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WFCTL_DATA_DIR", "WFCTL_DEBUG")}
    env["COLUMNS"] = "200"  # wide Rich tables: ids are not folded
    env.update(extra or {})
    return env


def _argv(args, data) -> list[str]:
    return [sys.executable, "-m", "wfctl", *(["--data-dir", str(data)] if data is not None else []), *map(str, args)]


def wfctl(*args, data=None, env=None, cwd=None, timeout=60) -> subprocess.CompletedProcess:
    """Run wfctl to its end (stdin is not a terminal); no traceback may reach the user."""
    proc = subprocess.run(_argv(args, data), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=_env(env), cwd=cwd, timeout=timeout)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def wfctl_many(calls, data=None) -> list[subprocess.CompletedProcess]:
    """Run independent wfctl invocations concurrently (each an argument list); results in order."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: wfctl(*args, data=data), calls))


def ok(proc: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert proc.returncode == code, (proc.args[3:], proc.returncode, proc.stdout[-2000:], proc.stderr)
    return proc


def ok_json(proc: subprocess.CompletedProcess, code: int = 0):
    return json.loads(ok(proc, code).stdout)


def error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one stderr line of a refused command (``wfctl: error: `` removed)."""
    assert proc.returncode == code, (proc.args[3:], proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wfctl: error: "), proc.stderr
    return lines[0][len("wfctl: error: "):]


def assert_iso(value: str) -> None:
    """ISO 8601 UTC with milliseconds, and now (the clock is not off by a time zone)."""
    assert ISO_RE.match(value), value
    assert abs(datetime.fromisoformat(value).timestamp() - time.time()) < 600, value


# -- definitions and data directories --------------------------------------------------------

def write_def(tmp_path: Path, definition_id: str, action: dict | None) -> str:
    """start -> (one action) -> output."""
    steps = [{"stepSlug": "start", "name": "Start", "stepType": "start", "config": {},
              "nextSteps": {"success": "act" if action else "done"}}]
    if action:
        steps.append({"stepSlug": "act", "name": "Act", "stepType": "action", "config": action,
                      "nextSteps": {"success": "done"}})
    steps.append({"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"ok": True}},
                  "nextSteps": {}})
    path = tmp_path / f"{definition_id}.json"
    path.write_text(json.dumps({"id": definition_id, "name": definition_id, "steps": steps}))
    return str(path)


def failing_def(tmp_path) -> str:
    return write_def(tmp_path, "failing", {"type": "fail", "parameters": {"message": "kaboom"}})


def sleepy_def(tmp_path) -> str:
    return write_def(tmp_path, "sleepy", {"type": "sleep", "parameters": {"seconds": 30}})


def init(tmp_path, shards=4, route="execution") -> Path:
    data = tmp_path / "data"
    DataDir.init(data, shards=shards, route=route)
    return data


def start_runs(data, definition, n, drain=False) -> list[str]:
    """Start ``n`` runs in this process (and run them to their end with ``drain``)."""
    with Engine(data) as engine:
        ids = [engine.start(definition, {"name": f"n{i}"}).execution_id for i in range(n)]
        if drain:
            assert Worker(engine, owner="test-setup").run(drain=True) == 0
    return ids


# -- init and the data directory -------------------------------------------------------------

def test_init_settings_reinit_and_newer_schema(tmp_path):
    data = tmp_path / "data"
    settings = ok_json(wfctl("init", "--shards", "2", "--route", "execution", "--durability", "full", "--json",
                             data=data))
    assert settings == {"path": str(data), "backend": "sqlite", "shards": 2, "route": "execution",
                        "durability": "full", "location": str(data / "catalog.db")}
    stored = json.loads((data / "wfctl.json").read_text())
    assert stored["schema_version"] == SCHEMA_VERSION and stored["created_at"].endswith("Z")
    assert (stored["shards"], stored["route"], stored["durability"]) == (2, "execution", "full")
    assert sorted(p.name for p in data.glob("*.db")) == ["catalog.db", "shard-000.db", "shard-001.db"]

    same, unspecified, other = wfctl_many([["init", "--shards", "2", "--route", "execution", "--durability", "full"],
                                           ["init", "--json"], ["init", "--shards", "3"]], data)
    assert "2 shards, route by execution, durability full" in ok(same).stdout
    assert ok_json(unspecified) == settings  # options not given keep the directory's settings
    assert error_line(other) == (f"data directory {data} already exists with shards=2; "
                                 f"refusing to re-initialize it with shards=3")
    assert not (data / "shard-002.db").exists()


@pytest.mark.parametrize("damage, message", [
    ("newer", f"was written by a newer wfctl (schema {SCHEMA_VERSION + 1} > {SCHEMA_VERSION})"),
    ("missing shard", "shard-001.db is missing"),
])
def test_damaged_data_dir_stops_every_command(tmp_path, damage, message):
    data = init(tmp_path, shards=2)
    start_runs(data, HELLO, 1)
    if damage == "newer":
        settings = json.loads((data / "wfctl.json").read_text())
        (data / "wfctl.json").write_text(json.dumps({**settings, "schema_version": SCHEMA_VERSION + 1}))
    else:
        (data / "shard-001.db").unlink()
    commands = [["list"], ["status", "00-" + "0" * 32], ["start", HELLO], ["shards"], ["defs", "list"],
                ["worker", "--drain"], ["cancel", "--definition", "hello", "--yes"],
                ["cleanup", "--older-than", "0s", "--yes"], ["init", "--shards", "2", "--route", "execution"]]
    for args, proc in zip(commands, wfctl_many(commands, data)):
        assert message in error_line(proc), args


def test_data_dir_from_the_environment_and_the_default(tmp_path):
    env_dir, option_dir, cwd = tmp_path / "from-env", tmp_path / "from-option", tmp_path / "cwd"
    cwd.mkdir()
    env = {"WFCTL_DATA_DIR": str(env_dir)}
    assert ok_json(wfctl("init", "--shards", "1", "--json", env=env))["path"] == str(env_dir)
    run = ok_json(wfctl("start", HELLO, "--wait", "--json", env=env))
    assert run["status"] == "completed" and run["shard"] == 0 and run["execution_id"].startswith("00-")
    # --data-dir wins over the environment; start on a new directory creates it with the defaults
    assert ok(wfctl("start", HELLO, data=option_dir, env=env)).stdout
    assert json.loads((option_dir / "wfctl.json").read_text())["shards"] == 4
    # neither: ./.wfctl
    assert ok(wfctl("start", HELLO, cwd=cwd)).stdout
    assert (cwd / ".wfctl" / "wfctl.json").is_file()


# -- start, status, list -----------------------------------------------------------------------

def test_start_wait_json(tmp_path):
    data = init(tmp_path, shards=2)
    run = ok_json(wfctl("start", HELLO, "--input", '{"name": "Ada"}', "--wait", "--json", data=data))
    assert set(run) == STATUS_KEYS | {"created"}
    assert ID_RE.match(run["execution_id"]) and run["shard"] == int(run["execution_id"].split("-")[0], 16)
    assert run["shard"] == shard_for(run["execution_id"].split("-")[1], 2)  # routed by execution
    assert (run["definition_id"], run["status"], run["created"]) == ("hello", "completed", True)
    assert run["input"] == {"name": "Ada"} and run["error"] is None and run["current_step"] is None
    assert run["output"] == {"message": "Hello, Ada!", "length": "short"}
    for key in ("created_at", "started_at", "completed_at"):
        assert_iso(run[key])
    assert run["created_at"] <= run["started_at"] <= run["completed_at"]
    assert [s["slug"] for s in run["steps"]] == ["start", "compose", "is_long", "short_name"]
    for s in run["steps"]:
        assert set(s) == STEP_KEYS
        assert (s["status"], s["attempt"], s["error"]) == ("completed", 1, None)
        assert_iso(s["started_at"])
        assert_iso(s["finished_at"])
    assert [(s["type"], s["port"]) for s in run["steps"]] == [
        ("start", "success"), ("action", "success"), ("condition", "false"), ("output", "success")]
    assert run["steps"][-1]["output"] == {"type": "output", "data": run["output"]}

    status, text = wfctl_many([["status", run["execution_id"], "--json"], ["status", run["execution_id"]]], data)
    assert ok_json(status) == {k: v for k, v in run.items() if k != "created"}
    assert run["execution_id"] in ok(text).stdout and "short_name" in text.stdout and "completed" in text.stdout


def test_wait_exit_codes_failed_and_timeout(tmp_path):
    data = init(tmp_path, shards=2)
    failed = ok_json(wfctl("start", failing_def(tmp_path), "--wait", "--json", data=data), code=1)
    assert failed["status"] == "failed" and "kaboom" in failed["error"] and failed["output"] is None
    assert [(s["slug"], s["status"]) for s in failed["steps"]] == [("start", "completed"), ("act", "failed")]
    assert "kaboom" in failed["steps"][-1]["error"]

    began = time.monotonic()
    timed_out = ok_json(wfctl("start", sleepy_def(tmp_path), "--wait", "--timeout", "0.5", "--json", data=data),
                        code=4)
    assert time.monotonic() - began < 25  # the timeout, not the 30 s sleep, ended the wait
    assert timed_out["status"] in ("pending", "running") and timed_out["completed_at"] is None  # it goes on
    journal = [(s["slug"], s["status"]) for s in timed_out["steps"]]  # as far as it got in 0.5 s: asleep
    assert journal == [("start", "completed"), ("act", "completed")][:len(journal)]

    text = wfctl("start", "failing", "--wait", data=data)  # people get the table and the error
    assert "kaboom" in ok(text, code=1).stdout and "failed" in text.stdout


def test_wait_on_a_run_canceled_by_another_process_exits_3(tmp_path):
    data = init(tmp_path, shards=1)
    proc = subprocess.Popen(_argv(["start", sleepy_def(tmp_path), "--wait", "--json"], data),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 60
        runs = []
        while not runs and time.monotonic() < deadline:
            time.sleep(0.1)
            with Engine(data) as engine:
                runs = engine.list()
        assert runs, "the waiting process did not start its run"
        assert ok(wfctl("cancel", runs[0]["execution_id"], data=data)).stdout.strip() == "canceled 1 run(s)"
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "Traceback" not in err and json.loads(out)["status"] == "canceled"


def test_start_without_wait_status_list_and_idempotency(tmp_path):
    data = init(tmp_path, shards=4)
    ok(wfctl("defs", "apply", HELLO, failing_def(tmp_path), data=data))
    started = []
    for args in (["hello", "--input", '{"name": "Ada"}'], ["hello", "--input", '{"name": "Grace Hopper"}'],
                 ["failing"]):
        out = ok(wfctl("start", *args, data=data)).stdout
        assert ID_RE.match(out.strip()) and out.count("\n") == 1, out  # just the id
        started.append(out.strip())

    first = ok_json(wfctl("start", "hello", "--idempotency-key", "order-1", "--json", data=data))
    again, again_text, pending = wfctl_many([["start", "hello", "--idempotency-key", "order-1", "--json"],
                                             ["start", "hello", "--idempotency-key", "order-1"],
                                             ["status", started[0], "--json"]], data)
    assert set(first) == {"execution_id", "shard", "created"} and first["created"] is True
    assert ok_json(again) == {**first, "created": False}
    assert ok(again_text).stdout.strip() == f"{first['execution_id']} (existing run for this idempotency key)"
    started.append(first["execution_id"])
    pending = ok_json(pending)
    assert set(pending) == STATUS_KEYS and pending["status"] == "pending" and pending["steps"] == []
    assert pending["started_at"] is None and pending["input"] == {"name": "Ada"}

    ok(wfctl("worker", "--drain", data=data))
    shard = int(started[0].split("-")[0], 16)
    calls = [["list", "--json"], ["list", "--status", "completed", "--json"], ["list", "--status", "failed", "--json"],
             ["list", "--status", "completed", "--status", "failed", "--definition", "hello", "--json"],
             ["list", "--definition", "failing", "--json"], ["list", "--limit", "2", "--json"],
             ["list", "--shard", shard, "--json"], ["status", started[1], "--json"], ["list"]]
    everything, completed, failed, hello_done, failing, two, on_shard, grace, table = wfctl_many(calls, data)
    everything = ok_json(everything)
    assert [r["execution_id"] for r in everything] == started[::-1]  # newest first
    assert all(set(r) == RUN_KEYS for r in everything)
    assert [r["created_at"] for r in everything] == sorted((r["created_at"] for r in everything), reverse=True)
    ids = lambda proc: [r["execution_id"] for r in ok_json(proc)]  # noqa: E731
    assert ids(completed) == ids(hello_done) == [e for e in started[::-1] if e != started[2]]
    assert ids(failed) == ids(failing) == [started[2]]
    assert ids(two) == started[::-1][:2]
    assert ids(on_shard) == [r["execution_id"] for r in everything if r["shard"] == shard] and ids(on_shard)
    assert ok_json(grace)["output"] == {"message": "Hello, Grace Hopper!", "length": "long"}
    assert all(e in ok(table).stdout for e in started) and "4 run(s)" in table.stdout


def test_bad_input_is_one_line_exit_2(tmp_path):
    data = tmp_path / "data"
    DataDir.init(data, shards=2, route="execution", max_payload_bytes=64 * 1024)  # 16 MiB by default
    ok(wfctl("defs", "apply", HELLO, data=data))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"id": "broken", "name": "Broken", "steps": [
        {"stepSlug": "start", "name": "Start", "stepType": "start", "config": {},
         "nextSteps": {"success": "nowhere"}}]}))
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * (64 * 1024)}))  # just over the limit with its JSON
    unknown = "00-" + "0" * 32
    cases = [
        (["start", "hello", "--input-file", big],
         "is 64.0 KiB (65547 bytes), over the limit of 64.0 KiB (65536 bytes)"),
        (["start", "hello", "--input", "{bad"], "--input: invalid JSON at line 1 column 2"),
        (["start", "hello", "--input", '{"a": 1,\n "b": }'], "--input: invalid JSON at line 2 column 7"),
        (["start", "hello", "--input", "[1]"], "--input: the run input must be a JSON object, got an array"),
        (["start", "hello", "--input", '{"a": 1}', "--input-file", "x.json"], "either --input or --input-file"),
        (["start", "hello", "--timeout", "1"], "--timeout goes with --wait"),
        (["start", "nope"], "unknown definition 'nope'"),
        (["start", str(broken)],
         "broken.json: step 'start': nextSteps port 'success' points to unknown step 'nowhere'"),
        (["status", unknown], f"unknown execution id '{unknown}'"),
        (["cancel", unknown], f"unknown execution id '{unknown}'"),
        (["cleanup", unknown], f"unknown execution id '{unknown}'"),
        (["cleanup", "--older-than", "7days"], "--older-than: '7days' is not a duration"),
        (["list", "--status", "bogus"], "--status: unknown status 'bogus'"),
        (["list", "--shard", "7"], "has shards 0..1, not 7"),
        (["list", "--limit", "0"], "Invalid value for '--limit'"),  # a usage error, also one line
        (["start"], "Missing argument"),
        (["shards", "--bogus"], "No such option: --bogus"),
        (["defs", "show", "nope"], "unknown definition 'nope'"),
    ]
    onedrive = TALE_EXAMPLES / "onedrive" / "sync.json"
    if onedrive.is_file():
        cases.append((["start", str(onedrive)], "step 'refresh_token': nextSteps port 'failure' is not valid"))
    for (args, message), proc in zip(cases, wfctl_many([args for args, _ in cases], data)):
        assert message in error_line(proc), args
    # nothing was started or registered by the refused commands
    runs, defs = wfctl_many([["list", "--json"], ["defs", "list", "--json"]], data)
    assert ok_json(runs) == [] and [d["id"] for d in ok_json(defs)] == ["hello"]


# -- cancel, cleanup, definitions ---------------------------------------------------------------

def test_cancel_one_and_bulk(tmp_path):
    data = init(tmp_path)
    first, *rest = start_runs(data, HELLO, 3)
    assert ok(wfctl("cancel", first, data=data)).stdout.strip() == "canceled 1 run(s)"
    status, refused, wrong_status = wfctl_many(
        [["status", first, "--json"], ["cancel", "--definition", "hello"],
         ["cancel", "--definition", "hello", "--status", "completed", "--yes"]], data)
    assert ok_json(status)["status"] == "canceled" and ok_json(status)["completed_at"]
    assert "Cancel 2 run(s) of 'hello'?" in error_line(refused) and "--yes" in error_line(refused)
    assert "only unfinished runs can be canceled" in error_line(wrong_status)
    assert len(ok_json(wfctl("list", "--status", "pending", "--json", data=data))) == 2  # nothing canceled

    assert ok_json(wfctl("cancel", "--definition", "hello", "--yes", "--json", data=data)) == {"count": 2}
    canceled, again = wfctl_many([["list", "--status", "canceled", "--json"], ["cancel", first, "--json"]], data)
    assert sorted(r["execution_id"] for r in ok_json(canceled)) == sorted([first, *rest])
    assert ok_json(again) == {"canceled": [], "count": 0}  # a finished run is left alone


def test_cleanup(tmp_path):
    data = init(tmp_path)
    done = start_runs(data, HELLO, 3, drain=True)
    [pending] = start_runs(data, HELLO, 1)
    assert ok_json(wfctl("cleanup", done[0], "--json", data=data)) == {"deleted": 1}
    refused, bad_status, no_yes, gone, still, recent = wfctl_many(
        [["cleanup", pending], ["cleanup", "--older-than", "0s", "--status", "pending", "--yes"],
         ["cleanup", "--older-than", "0s"], ["status", done[0]], ["status", pending, "--json"],
         ["cleanup", "--older-than", "1h", "--yes", "--json"]], data)
    assert error_line(refused) == f"run {pending} is not finished: not deleted (cancel it first, or give --force)"
    assert "only finished runs are cleaned up" in error_line(bad_status)
    assert "Delete 2 finished run(s) older than 0s?" in error_line(no_yes)
    assert error_line(gone) == f"unknown execution id '{done[0]}'"
    assert ok_json(still)["status"] == "pending"
    assert ok_json(recent) == {"deleted": 0}  # nothing finished an hour ago

    assert ok_json(wfctl("cleanup", pending, "--force", "--json", data=data)) == {"deleted": 1}
    assert ok(wfctl("cleanup", "--older-than", "0s", "--yes", data=data)).stdout.strip() == "deleted 2 run(s)"
    assert ok_json(wfctl("list", "--json", data=data)) == []


def test_defs_apply_list_show_delete(tmp_path):
    data = init(tmp_path)
    [applied] = ok_json(wfctl("defs", "apply", HELLO, "--json", data=data))
    assert (applied["id"], applied["changed"], applied["previous"]) == ("hello", True, None)
    again, listed, shown = wfctl_many([["defs", "apply", HELLO], ["defs", "list", "--json"], ["defs", "show", "hello"]],
                                      data)
    assert ok(again).stdout.strip() == f"hello: unchanged (version {applied['version']})"
    [row] = ok_json(listed)
    assert (row["id"], row["name"], row["steps"]) == ("hello", "Hello", 5) and ISO_RE.match(row["updated_at"])
    tale = ok_json(shown)
    assert tale == load_definition(HELLO).to_tale()
    source = json.loads(Path(HELLO).read_text())
    assert [s["stepSlug"] for s in tale["steps"]] == [s["stepSlug"] for s in source["steps"]]

    start_runs(data, "hello", 1, drain=True)
    start_runs(data, "hello", 1)
    assert "Delete definition 'hello' and its 2 run(s)?" in error_line(wfctl("defs", "delete", "hello", data=data))
    result = ok_json(wfctl("defs", "delete", "hello", "--yes", "--json", data=data))
    assert result == {"id": "hello", "canceled": 1, "deleted": 2}
    runs, gone, defs = wfctl_many([["list", "--json"], ["defs", "show", "hello"], ["defs", "list", "--json"]], data)
    assert ok_json(runs) == [] and ok_json(defs) == []
    assert error_line(gone) == "unknown definition 'hello'"


# -- shards and routing --------------------------------------------------------------------------

def test_shards_json(tmp_path):
    data = init(tmp_path, shards=2)
    [eid] = start_runs(data, HELLO, 1)
    shard = int(eid.split("-")[0], 16)
    rows, table = wfctl_many([["shards", "--json"], ["shards"]], data)
    rows = ok_json(rows)
    assert [r["shard"] for r in rows] == [0, 1]
    for row in rows:
        assert set(row) == SHARD_KEYS
        assert Path(row["path"]).name == f"shard-{row['shard']:03d}.db" and Path(row["path"]).parent == data
        assert row["location"] == row["path"]  # where any backend's shard lives; SQLite: the file
        assert row["lease_owner"] is None and row["lease_expires_at"] is None and isinstance(row["generation"], int)
        assert set(row["retries"]) == set(row["wait_ms"]) == {"lock_busy"}  # SQLite's one cause
        assert row["retries"]["lock_busy"] >= 0 and row["wait_ms"]["lock_busy"] >= 0
        assert set(row["details"]) == {"file_bytes", "wal_bytes", "hot_row_count"} and row["details"]["file_bytes"] > 0
        assert row["size_bytes"] == row["details"]["file_bytes"] + row["details"]["wal_bytes"]
    assert rows[shard]["runs_by_status"] == {"pending": 1} and rows[shard]["queue_depth"] == 1
    assert rows[shard]["transactions"] >= 1
    assert sum(rows[1 - shard]["runs_by_status"].values()) == 0 and rows[1 - shard]["queue_depth"] == 0
    assert "1 pending" in ok(table).stdout and "(lock busy)" in table.stdout


def test_shards_route_matches_the_library(tmp_path):
    keys = ["hello", "order-42", "a", "Grüße", "日本語のキー", "emoji 😀 outside the BMP"]
    nowhere = tmp_path / "never-created"
    procs = wfctl_many([["shards", "route", key, "--shards", "4"] for key in keys] +
                       [["shards", "route", "a", "--shards", "4", "--json"],
                        ["shards", "route", "😀", "--shards", "7"]],
                       nowhere)
    for key, proc in zip(keys, procs):
        assert ok(proc).stdout.strip() == str(shard_for(key, 4)), key
    assert ok_json(procs[-2]) == {"key": "a", "shards": 4, "shard": 0xE40C292C % 4, "fnv1a_32": 0xE40C292C}
    assert ok(procs[-1]).stdout.strip() == str(shard_for("😀", 7))
    assert not nowhere.exists()  # --shards needs no data directory

    data = init(tmp_path, shards=3)
    assert ok(wfctl("shards", "route", "hello", data=data)).stdout.strip() == str(shard_for("hello", 3))


# -- workers -----------------------------------------------------------------------------------

def test_worker_drain_with_two_processes(tmp_path):
    data = init(tmp_path, shards=4)
    ids = start_runs(data, HELLO, 8)
    ok(wfctl("worker", "--drain", "--processes", "2", data=data))
    runs, shards = wfctl_many([["list", "--json"], ["shards", "--json"]], data)
    runs = ok_json(runs)
    assert sorted(r["execution_id"] for r in runs) == sorted(ids)
    assert {r["status"] for r in runs} == {"completed"}
    assert len({r["shard"] for r in runs}) > 1  # the work was spread over the shards
    assert [s["lease_owner"] for s in ok_json(shards)] == [None] * 4


def _wait_for_leases(data, timeout: float = 30) -> bool:
    """Wait until a worker holds every shard's lease; whether it does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Engine(data) as engine:
            if all(s["lease_owner"] for s in engine.shards()):
                return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_a_worker_promptly_and_releases_its_leases(tmp_path):
    data = init(tmp_path, shards=2)
    proc = subprocess.Popen(_argv(["worker", "--processes", "2"], data), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert _wait_for_leases(data), "the worker did not take its shards"
        [eid] = start_runs(data, HELLO, 1)  # the running worker does it

        def completed() -> bool:
            with Engine(data) as engine:
                return engine.status(eid)["status"] == "completed"

        assert wait_until(completed, timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # an idle worker stops at once; generous for a loaded machine
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert ok_json(wfctl("status", eid, "--json", data=data))["status"] == "completed"
    with Engine(data) as engine:
        assert [s["lease_owner"] for s in engine.shards()] == [None, None]  # released, not left to expire
    [eid] = start_runs(data, HELLO, 1)
    ok(wfctl("worker", "--drain", data=data))  # the released leases are taken at once
    assert ok_json(wfctl("status", eid, "--json", data=data))["status"] == "completed"


def test_sigterm_to_the_whole_process_group_exits_0(tmp_path):
    """What `kill %1` or a service manager does: every process of the group gets SIGTERM."""
    data = init(tmp_path, shards=2)
    proc = subprocess.Popen(_argv(["worker", "--processes", "2"], data), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
    try:
        _wait_for_leases(data)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    with Engine(data) as engine:
        assert [s["lease_owner"] for s in engine.shards()] == [None, None]  # this part holds today
    assert proc.returncode == 0, err


def test_shards_table_shows_several_causes_at_100_columns(monkeypatch):
    """A backend with several retry causes (PostgreSQL's): the table shows each shard's total and,
    when more than one cause has retries, a line per cause; it stays readable 100 columns wide."""
    from typer.testing import CliRunner

    import wfctl.cli.shards as shards_cli

    causes = {"serialization_failure": 0, "deadlock": 0, "lock_timeout": 0, "connection_lost": 0}
    rows = [{"shard": 0, "runs_by_status": {"completed": 1200, "failed": 3}, "queue_depth": 2,
             "retries": {**causes, "serialization_failure": 17, "deadlock": 2}, "wait_ms": {**causes, "deadlock": 840.0},
             "lease_owner": "worker-a:4242", "size_bytes": 3 * 2**20, "details": {"dead_tuples": 12}},
            {"shard": 1, "runs_by_status": {}, "queue_depth": 0, "retries": dict(causes), "wait_ms": dict(causes),
             "lease_owner": None, "size_bytes": 2**20, "details": {"dead_tuples": 0}}]

    class Fake:
        def shards(self, check=False):
            return rows

    monkeypatch.setattr(shards_cli, "engine", lambda ctx: Fake())
    out = CliRunner().invoke(shards_cli.app, [], env={"COLUMNS": "100"}).output
    assert max(len(line) for line in out.splitlines()) <= 100
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert re.search(r" 2 +19 +840 ms +worker-a:4242 +3\.0 MiB", lines["0"])  # queue, retries total, waited
    assert re.search(r" 0 +0 +0 ms +- +1\.0 MiB", lines["1"])
    breakdown = " ".join(out.split())
    assert "serialization failure 17" in breakdown and "deadlock 2" in breakdown  # only causes with some
    assert "lock timeout" not in out and "connection lost" not in out
    assert "(serialization" not in out  # several causes: no single cause in the header
