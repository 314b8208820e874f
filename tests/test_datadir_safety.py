"""The data directory is never silently re-created, shrunk or created by a command that only reads.

Issue 9: a deleted ``wfctl.json`` was rebuilt with the defaults (shards 4-7 vanished), a
lowered ``shards`` hid shard files, ``--data-dir / list`` wrote into ``/``, a bad ``--data-dir``
was an internal error, and a read-only directory could not be inspected. Every check runs the
real ``wfctl`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import EXAMPLES, refused, wfctl_env
from helpers import wfctl as run_wfctl
from wfctl.engine import Engine, Worker
from wfctl.store import DataDir

HELLO = str(EXAMPLES / "hello.json")
ROOT = Path(__file__).resolve().parents[1]
#: Root may write anything: as root, the permission checks run as user ``nobody`` (``setpriv``).
OTHER = 65534 if os.geteuid() == 0 else None
_AS_OTHER = ["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups"]


def _other_user_problem() -> str | None:
    """Why the permission checks cannot run as another user here (None when they can)."""
    if OTHER is None:
        return None
    if shutil.which("setpriv") is None:
        return "running as root without setpriv: cannot drop write permission"
    probe = subprocess.run([*_AS_OTHER, sys.executable, "-c", "import wfctl.cli"], capture_output=True, text=True,
                           env=wfctl_env(), cwd=tempfile.gettempdir())
    if probe.returncode != 0:  # e.g. the virtualenv lies in a folder only root may enter
        return f"user {OTHER} cannot run this Python and wfctl: {probe.stderr.strip().splitlines()[-1:]}"
    return None


needs_other_user = pytest.mark.skipif(_other_user_problem() is not None, reason=str(_other_user_problem()))


def wfctl(*args, data=None, user=None, timeout=120) -> subprocess.CompletedProcess:
    """wfctl in a subprocess; ``user``: as that user (the tests run as root, who may write anything)."""
    prefix = _AS_OTHER if user is not None else []
    return run_wfctl(data, *args, timeout=timeout, argv_prefix=prefix)


def ok(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def eight_shards_with_runs(tmp_path) -> tuple[Path, set[str]]:
    data = tmp_path / "data"
    DataDir.init(data, shards=8, route="execution")
    with Engine(data) as engine:
        ids = {engine.start(HELLO, {"name": f"n{i}"}).execution_id for i in range(40)}
    assert {int(i.split("-")[0], 16) for i in ids} >= {4, 5, 6, 7}
    return data, ids


def listed(data) -> set[str]:
    return {run["execution_id"] for run in json.loads(ok(wfctl("list", "--json", "--limit", "1000", data=data)).stdout)}


# -- finding: a deleted wfctl.json, a lowered shard count ------------------------------------------

def test_deleted_settings_are_refused_not_rebuilt(tmp_path):
    data, ids = eight_shards_with_runs(tmp_path)
    (data / "wfctl.json").unlink()
    for args in (["list"], ["start", HELLO], ["shards"], ["worker", "--drain"], ["defs", "apply", HELLO],
                 ["init"], ["init", "--shards", "8", "--route", "execution"]):
        line = refused(wfctl(*args, data=data))
        assert "has shard or catalog files but no wfctl.json" in line and str(data) in line, (args, line)
    assert not (data / "wfctl.json").exists()  # nothing re-created; restoring the settings brings all back
    DataDir.init(tmp_path / "same", shards=8, route="execution")
    shutil.copy(tmp_path / "same" / "wfctl.json", data / "wfctl.json")
    assert listed(data) == ids


def test_lowered_shard_count_is_refused(tmp_path):
    data, ids = eight_shards_with_runs(tmp_path)
    settings = json.loads((data / "wfctl.json").read_text())
    (data / "wfctl.json").write_text(json.dumps({**settings, "shards": 4}))
    for args in (["list"], ["start", HELLO], ["shards"], ["worker", "--drain"], ["init", "--shards", "4"]):
        line = refused(wfctl(*args, data=data))
        assert "shard-004.db is beyond the 4 shard(s) wfctl.json declares" in line, (args, line)
    (data / "wfctl.json").write_text(json.dumps(settings))
    assert listed(data) == ids


def test_a_creation_cut_short_is_completed(tmp_path):
    """A crash between the first shard file and wfctl.json leaves the creation marker: completed later."""
    data = tmp_path / "data"
    DataDir.init(data, shards=2)
    (data / "wfctl.json").unlink()
    (data / ".wfctl.creating").touch()
    ok(wfctl("start", HELLO, data=data))
    assert json.loads((data / "wfctl.json").read_text())["shards"] == 4
    assert not (data / ".wfctl.creating").exists()


# -- the backend named in wfctl.json -----------------------------------------------------------------

def test_settings_written_before_backends_still_open(tmp_path):
    """A wfctl.json of the layout before backends (no ``backend``, ``spill_threshold_bytes`` at the
    top level) is read as the SQLite backend with that option, by every command."""
    data, ids = eight_shards_with_runs(tmp_path)
    settings = json.loads((data / "wfctl.json").read_text())
    assert (settings["backend"], settings["sqlite"]) == ("sqlite", {"spill_threshold_bytes": 256 * 1024})
    old = {k: v for k, v in settings.items() if k not in ("backend", "sqlite")} | {"spill_threshold_bytes": 1000}
    (data / "wfctl.json").write_text(json.dumps(old))
    assert listed(data) == ids
    assert ok_json_of(wfctl("init", "--shards", "8", "--json", data=data))["backend"] == "sqlite"
    datadir = DataDir.open(data, create=False)
    assert (datadir.settings.backend, datadir.settings.options) == ("sqlite", {"spill_threshold_bytes": 1000})
    with Engine(datadir) as engine:  # the old option is the one used: a 1.5 KB input is stored out of line
        started = engine.start(HELLO, {"name": "x" * 1500})
    conn = sqlite3.connect(datadir.backend.shard_path(started.shard))
    assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 2  # the input, the state holding it
    conn.close()


@pytest.mark.parametrize("change,message", [
    ({"backend": "mongodb"}, "wfctl.json: backend must be one of postgresql, sqlite, got 'mongodb'"),
    ({"sqlite": {"spill_threshold_bytes": 0}}, "wfctl.json: sqlite: spill_threshold_bytes must be a positive integer"),
    ({"sqlite": {"page_size": 4096}}, "wfctl.json: sqlite: unknown option 'page_size'"),
])
def test_a_bad_backend_setting_is_one_line(tmp_path, change, message):
    data = tmp_path / "data"
    DataDir.init(data, shards=1)
    settings = json.loads((data / "wfctl.json").read_text())
    (data / "wfctl.json").write_text(json.dumps({**settings, **change}))
    for args in (["list"], ["start", HELLO], ["shards"], ["init"]):
        line = refused(wfctl(*args, data=data))
        assert message in line and str(data) in line, (args, line)


def ok_json_of(proc: subprocess.CompletedProcess):
    return json.loads(ok(proc).stdout)


# -- finding: read-only commands create nothing ----------------------------------------------------

READ_ONLY = [["list"], ["list", "--json"], ["status", "00-" + "0" * 32], ["shards"], ["shards", "--json"],
             ["defs", "list"], ["defs", "show", "hello"], ["schedules", "list"],
             ["cancel", "--definition", "hello", "--yes"], ["cleanup", "--older-than", "1d", "--yes"]]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_commands_that_only_read_do_not_create_a_directory(tmp_path, args):
    missing, plain = tmp_path / "missing", tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    assert "does not exist" in refused(wfctl(*args, data=missing))
    assert not missing.exists()
    assert "is not a wfctl data directory (no wfctl.json)" in refused(wfctl(*args, data=plain))
    assert sorted(p.name for p in plain.iterdir()) == ["notes.txt"]


def test_only_start_defs_apply_and_init_create_it(tmp_path):
    ok(wfctl("start", HELLO, data=tmp_path / "a"))
    ok(wfctl("defs", "apply", HELLO, data=tmp_path / "b"))
    ok(wfctl("init", data=tmp_path / "c"))
    for name in "abc":
        assert (tmp_path / name / "wfctl.json").is_file()


# -- finding: a --data-dir that cannot be a directory ------------------------------------------------

@needs_other_user
def test_impossible_data_dirs_are_one_line_exit_2(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("x")
    locked = Path(tempfile.mkdtemp(prefix="wfctl-locked-"))
    try:
        locked.chmod(0o555)
        for data in (regular / "sub", regular, "/proc/self/wfctl", "/proc/self"):
            for args in (["start", HELLO], ["init"], ["defs", "apply", HELLO], ["list"], ["worker", "--drain"]):
                refused(wfctl(*args, data=data))
        for args in (["start", HELLO], ["init"]):
            line = refused(wfctl(*args, data=locked / "sub", user=OTHER))
            assert "cannot create data directory" in line and "Permission denied" in line
    finally:
        locked.chmod(0o755)
        shutil.rmtree(locked)


# -- finding: a read-only data directory can be inspected -----------------------------------------

@needs_other_user
def test_a_read_only_data_directory_can_be_inspected(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="wfctl-ro-"))  # outside tmp_path: another user must reach it
    data = base / "data"
    try:
        base.chmod(0o755)
        DataDir.init(data, shards=2)
        with Engine(data) as engine:
            done = engine.start(HELLO, {"name": "Ada"}).execution_id
            assert Worker(engine, owner="setup").run(drain=True) == 0
            engine.apply([HELLO])
            pending = engine.start(HELLO, {"name": "Bob"}).execution_id
        for path in [data, *data.iterdir()]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        before = sorted(p.name for p in data.iterdir())
        runs = json.loads(ok(wfctl("list", "--json", data=data, user=OTHER)).stdout)
        assert {r["execution_id"]: r["status"] for r in runs} == {done: "completed", pending: "pending"}
        status = json.loads(ok(wfctl("status", done, "--json", data=data, user=OTHER)).stdout)
        assert status["output"] == {"message": "Hello, Ada!", "length": "short"}
        shards = json.loads(ok(wfctl("shards", "--json", data=data, user=OTHER)).stdout)
        assert sum(sum(s["runs_by_status"].values()) for s in shards) == 2
        assert "hello" in ok(wfctl("defs", "list", data=data, user=OTHER)).stdout
        assert pending in ok(wfctl("list", data=data, user=OTHER)).stdout
        refused(wfctl("start", HELLO, data=data, user=OTHER))  # writing is refused, on one line
        assert sorted(p.name for p in data.iterdir()) == before
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(base)
