"""Which code a definition may run: module:function actions only from modules the operator allows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import definition, step
from wfctl.actions import ActionNotAllowed, ActionPolicy, ActionRegistry
from wfctl.errors import InputError

NOT_ALLOWED = "action type 'shutil:rmtree' is not allowed"


def wfctl(*args, data=None, env=None, pythonpath=None, timeout=120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "WFCTL_ALLOW_MODULES"}
    full.update(env or {})
    if pythonpath is not None:
        full["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "wfctl", *(["--data-dir", str(data)] if data else []), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=full, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def write(tmp_path: Path, name: str, action: dict) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"id": name, "name": name, "steps": [
        step("start", "start", next_steps={"success": "act"}),
        step("act", "action", action, {"success": "out"}),
        step("out", "output", {"mapping": {"result": "{{steps.act.output.data}}"}}),
    ]}))
    return path


@pytest.fixture
def victim(tmp_path) -> Path:
    """A directory with a file in it that ``shutil:rmtree`` would delete."""
    path = tmp_path / "precious"
    path.mkdir()
    (path / "keep.txt").write_text("data")
    return path


@pytest.fixture
def plugins(tmp_path) -> Path:
    """A folder holding ``mypkg`` (with ``acts.hello`` and ``os`` imported) and ``mypkgevil``."""
    root = tmp_path / "plugins"
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("import os\n")
    (root / "mypkg" / "acts.py").write_text(textwrap.dedent("""
        def hello(params, ctx):
            return {"hi": params["name"]}
    """))
    (root / "mypkgevil.py").write_text("def hello(params, ctx):\n    return {'evil': True}\n")
    return root


def test_rmtree_reference_is_a_validation_error_unless_allowed(tmp_path, victim):
    rm = write(tmp_path, "rm", {"type": "shutil:rmtree", "parameters": {"path": str(victim)}})
    proc = wfctl("defs", "validate", rm, data=tmp_path / "nodata")
    assert proc.returncode == 1
    assert (f"rm.json: step 'act': config.type: {NOT_ALLOWED}: definitions may call Python functions only "
            "from modules the operator allows; allow it with --allow-module shutil") in " ".join(proc.stdout.split())
    assert not (tmp_path / "nodata").exists()  # validating creates no data directory
    assert wfctl("defs", "validate", rm, "--allow-module", "shutil", data=tmp_path / "nodata").returncode == 0
    assert wfctl("defs", "validate", rm, data=tmp_path / "nodata",
                 env={"WFCTL_ALLOW_MODULES": "json, shutil"}).returncode == 0
    assert wfctl("defs", "validate", rm, "--allow-module", "shu", data=tmp_path / "nodata").returncode == 1
    assert victim.is_dir()


def test_run_refuses_rmtree_and_the_directory_survives(tmp_path, victim):
    rm = write(tmp_path, "rm", {"type": "shutil:rmtree", "parameters": {"path": str(victim)}})
    line = one_error_line(wfctl("run", rm))
    assert line.startswith(f"wfctl: error: rm.json: step 'act': config.type: {NOT_ALLOWED}")
    assert (victim / "keep.txt").read_text() == "data"
    assert one_error_line(wfctl("start", rm, "--wait", data=tmp_path / "data")).startswith(
        f"wfctl: error: rm.json: step 'act': config.type: {NOT_ALLOWED}")
    assert one_error_line(wfctl("defs", "apply", rm, data=tmp_path / "data")).startswith(
        f"wfctl: error: rm.json: step 'act': config.type: {NOT_ALLOWED}")
    assert (victim / "keep.txt").read_text() == "data"


def test_a_stored_definition_cannot_run_a_function_the_worker_does_not_allow(tmp_path, victim):
    """Defence in depth: applied while allowed, run by a worker that does not allow it."""
    data = tmp_path / "data"
    rm = write(tmp_path, "rm", {"type": "shutil:rmtree", "parameters": {"path": str(victim)}})
    assert wfctl("defs", "apply", rm, "--allow-module", "shutil", data=data).returncode == 0
    proc = wfctl("start", "rm", "--wait", "--json", data=data)
    assert proc.returncode == 1, proc.stderr
    run = json.loads(proc.stdout)
    assert run["status"] == "failed"
    assert run["error"].startswith(f"step 'act': {NOT_ALLOWED}: ")
    assert "--allow-module shutil" in run["error"]
    eid = wfctl("start", "rm", data=data).stdout.strip()
    assert wfctl("worker", "--drain", data=data).returncode == 0
    assert json.loads(wfctl("status", eid, "--json", data=data).stdout)["status"] == "failed"
    assert (victim / "keep.txt").read_text() == "data"


def test_allowed_by_option_environment_or_setting(tmp_path, plugins):
    data = tmp_path / "data"
    hello = write(tmp_path, "hello", {"type": "mypkg.acts:hello", "parameters": {"name": "ops"}})
    evil = write(tmp_path, "evil", {"type": "mypkgevil:hello", "parameters": {}})

    def started(*args, env=None):
        return wfctl("start", *args, "--wait", "--json", data=data, env=env, pythonpath=plugins)

    done = started(hello, "--allow-module", "mypkg")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"result": {"hi": "ops"}}
    assert started("hello", env={"WFCTL_ALLOW_MODULES": "mypkg.acts"}).returncode == 0
    assert started("hello").returncode == 1  # stored, but no longer allowed
    assert one_error_line(started(evil, "--allow-module", "mypkg")).startswith(
        "wfctl: error: evil.json: step 'act': config.type: action type 'mypkgevil:hello' is not allowed")

    settings = json.loads((data / "wfctl.json").read_text())
    (data / "wfctl.json").write_text(json.dumps({**settings, "allow_modules": ["mypkg"]}))
    assert started("hello").returncode == 0
    eid = wfctl("start", "hello", data=data).stdout.strip()
    drained = wfctl("worker", "--drain", data=data, pythonpath=plugins)
    assert drained.returncode == 0, drained.stderr
    assert json.loads(wfctl("status", eid, "--json", data=data).stdout)["status"] == "completed"
    assert wfctl("defs", "validate", evil, data=data).returncode == 1

    (data / "wfctl.json").write_text(json.dumps({**settings, "allow_modules": "mypkg"}))
    assert "allow_modules must be a list of module prefixes" in one_error_line(started("hello"))


def test_worker_option_reaches_the_worker_processes(tmp_path, plugins):
    data = tmp_path / "data"
    hello = write(tmp_path, "hello", {"type": "mypkg.acts:hello", "parameters": {"name": "w"}})
    assert wfctl("defs", "apply", hello, "--allow-module", "mypkg", data=data).returncode == 0
    ids = [wfctl("start", "hello", data=data).stdout.strip() for _ in range(3)]
    drained = wfctl("worker", "--drain", "--processes", "2", "--allow-module", "mypkg", data=data, pythonpath=plugins)
    assert drained.returncode == 0, drained.stderr
    for eid in ids:
        run = json.loads(wfctl("status", eid, "--json", data=data).stdout)
        assert (run["status"], run["output"]) == ("completed", {"result": {"hi": "w"}})


def test_bad_prefix_is_one_line(tmp_path):
    hello = write(tmp_path, "hello", {"type": "log", "parameters": {"message": "x"}})
    assert "--allow-module: invalid module prefix 'a b'" in one_error_line(
        wfctl("run", hello, "--allow-module", "a b"))
    assert wfctl("init", data=tmp_path / "data").returncode == 0
    assert "WFCTL_ALLOW_MODULES: invalid module prefix 'x:y'" in one_error_line(
        wfctl("worker", "--drain", data=tmp_path / "data", env={"WFCTL_ALLOW_MODULES": "x:y"}))


def test_prefixes_match_whole_module_components():
    policy = ActionPolicy(("mypkg", "other.sub"))
    assert policy.allows("mypkg:f") and policy.allows("mypkg.x.y:f") and policy.allows("other.sub.z:f")
    assert not policy.allows("mypkgevil:f") and not policy.allows("other:f") and not policy.allows("other.subx:f")
    assert not ActionPolicy().allows("json:dumps")
    assert ActionPolicy.resolve(["a"], {"WFCTL_ALLOW_MODULES": " b ,, a"}, ["c.d"]).modules == ("a", "b", "c.d")
    with pytest.raises(InputError, match="wfctl.json allow_modules: invalid module prefix '.x'"):
        ActionPolicy.resolve(setting=[".x"], env={})


def test_nothing_is_imported_before_the_policy_allows_it(tmp_path, monkeypatch):
    (tmp_path / "sideeffect_on_import.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef f(params, ctx):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ActionNotAllowed, match="allow it with --allow-module sideeffect_on_import"):
        ActionRegistry().get("sideeffect_on_import:f")
    assert not (tmp_path / "imported").exists()


def test_the_function_part_cannot_reach_into_another_module(plugins, make_interpreter):
    sys.path.insert(0, str(plugins))
    try:
        interp = make_interpreter(policy=ActionPolicy(("mypkg",)))
        d = definition([step("start", "start", next_steps={"success": "act"}),
                        step("act", "action", {"type": "mypkg:os.system", "parameters": {}})])
        state = interp.step(d, interp.step(d, interp.new_run(d)).state).state
    finally:
        sys.path.remove(str(plugins))
        sys.modules.pop("mypkg", None)
    assert state.status == "failed"
    assert state.error == "step 'act': cannot load action 'mypkg:os.system': os is a module; name a function of mypkg itself"


def test_parameters_must_be_an_object(tmp_path, make_interpreter):
    bad = write(tmp_path, "bad", {"type": "log", "parameters": ["message", "x"]})
    proc = wfctl("defs", "validate", bad)
    assert proc.returncode == 1
    assert "bad.json: step 'act': config.parameters: must be an object, got array" in " ".join(proc.stdout.split())
    assert "config.parameters: must be an object, got array" in one_error_line(wfctl("run", bad))
    # At run time (a stored definition, or a template that renders to something else): the step fails.
    interp = make_interpreter()
    for params, kind in ((["message"], "an array"), ("{{input.p}}", "a number"), (7, "a number")):
        d = definition([step("start", "start", next_steps={"success": "act"}),
                        step("act", "action", {"type": "log", "parameters": params})])
        state = interp.step(d, interp.step(d, interp.new_run(d, {"p": 3})).state).state
        assert (state.status, state.error) == ("failed", f"step 'act': config.parameters must be an object, got {kind}")
