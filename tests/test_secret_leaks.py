"""Secrets and values derived from them never land in stored state in clear text."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import definition, step, wait_until
from wfctl.actions import ActionRegistry, default_registry
from wfctl.secrets import SecretBox

SECRET = "Sekrit-Value-4711"
DERIVED = (SECRET, SECRET.upper(), SECRET.lower(), "Bearer " + SECRET)
DEADLINE_S = 90


def leak_definition(path: Path) -> Path:
    """A loop over a secret, its lower-case form and a plain item; every way to derive a value."""
    path.write_text(json.dumps({"id": "leaky", "name": "leaky", "config": {
        "secrets": {"TOKEN": {"envVar": "WFCTL_TEST_TOKEN"}}}, "steps": [
        step("start", "start", next_steps={"success": "prep"}),
        step("prep", "action", {"type": "set_variables", "parameters": {"variables": [
            {"name": "shout", "value": "{{secrets.TOKEN|upper}}"}]}}, {"success": "each"}),
        step("each", "loop", {"items": "{{[secrets.TOKEN, secrets.TOKEN|lower, 'plain-item']}}",
                              "itemVariable": "tok", "continueOnError": True}, {"loop": "record", "done": "out"}),
        step("record", "action", {"type": "recorder:record", "parameters": {"value": "{{tok}}"}}, {"success": "nap"}),
        step("nap", "action", {"type": "sleep", "parameters": {"seconds": "{{input.nap}}"}}, {"success": "boom"}),
        step("boom", "action", {"type": "fail", "parameters": {"message": "bad {{tok|upper}}"}}, {"success": "each"}),
        step("out", "output", {"mapping": {
            "upper": "{{secrets.TOKEN|upper}}", "bearer": "{{'Bearer ' + secrets.TOKEN}}", "shout": "{{variables.shout}}",
            "errors": "{{steps.each.output.data.state.errors}}", "length": "{{secrets.TOKEN.length}}"}}),
    ]}))
    return path


def raw_leaks(data: Path) -> list[str]:
    """``file: value`` for every derived value found in the bytes of any file under ``data``."""
    found = []
    for file in sorted(p for p in data.rglob("*") if p.is_file()):
        raw = file.read_bytes()
        found += [f"{file.name}: {value}" for value in DERIVED if value.encode() in raw]
    return found


def test_a_durable_run_stores_no_secret_while_in_flight_nor_after(tmp_path):
    data, plugins, calls = tmp_path / "data", tmp_path / "plugins", tmp_path / "calls.txt"
    plugins.mkdir()
    (plugins / "recorder.py").write_text(textwrap.dedent(f"""
        def record(params, ctx):
            with open({str(calls)!r}, "a") as handle:
                handle.write(params["value"] + "\\n")
            return {{"got": params["value"]}}
    """))
    env = {**os.environ, "WFCTL_TEST_TOKEN": SECRET, "WFCTL_ALLOW_MODULES": "recorder",
           "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}

    def wfctl(*args):
        proc = subprocess.run([sys.executable, "-m", "wfctl", "--data-dir", str(data), *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    eid = wfctl("start", leak_definition(tmp_path / "leaky.json"), "--input", '{"nap": 2}').strip()
    worker = subprocess.Popen([sys.executable, "-m", "wfctl", "--data-dir", str(data), "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ran = wait_until(lambda: worker.poll() is not None or (calls.exists() and calls.read_text()), DEADLINE_S,
                         interval=0.05)
        assert ran and worker.poll() is None, "the loop body never ran"  # the loop state is stored
        in_flight = raw_leaks(data)
        assert json.loads(wfctl("status", eid, "--json"))["status"] == "running"  # still in the loop
        assert in_flight == []
        status = wait_until(lambda: (s := json.loads(wfctl("status", eid, "--json")))["status"] != "running" and s,
                            DEADLINE_S, interval=0.2)
        assert status, "the run did not finish"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert status["status"] == "completed", status
    assert calls.read_text().splitlines() == [SECRET, SECRET.lower(), "plain-item"]  # the body saw the values
    assert raw_leaks(data) == []
    shown = wfctl("status", eid, "--json") + wfctl("list", "--json")
    assert [value for value in DERIVED if value in shown] == []
    assert status["output"] == {
        "upper": "***", "bearer": "***", "shout": "***", "length": len(SECRET),
        "errors": [{"index": 0, "step": "boom", "error": "step 'boom': bad ***"},
                   {"index": 1, "step": "boom", "error": "step 'boom': bad ***"},
                   {"index": 2, "step": "boom", "error": "step 'boom': bad PLAIN-ITEM"}]}
    recorded = [s["output"]["data"] for s in status["steps"] if s["slug"] == "record" and s["status"] == "completed"]
    assert recorded == [{"got": "***"}, {"got": "***"}, {"got": "plain-item"}]


def _interpreter(make_interpreter, seen, lines):
    registry = default_registry(plugins=False)
    registry.register("see", lambda params, ctx: seen.append(params["v"]) or {"len": len(params["v"])})
    return make_interpreter(registry=registry, env={"TOKEN_VAR": SECRET}, log=lines.append,
                            secret_box=SecretBox(SecretBox.generate_key()))


def test_every_state_of_a_loop_over_derived_secrets_is_clean(make_interpreter):
    seen, lines = [], []
    interp = _interpreter(make_interpreter, seen, lines)
    d = definition([
        step("start", "start", next_steps={"success": "each"}),
        step("each", "loop", {"items": "{{[secrets.T|upper, 'ok-item', {k: secrets.T}]}}", "itemVariable": "it",
                              "indexVariable": "i"},
             {"loop": "see", "done": "out"}),
        step("see", "action", {"type": "see", "parameters": {"v": "{{it.k ? it.k|lower : it}}"}}, {"success": "say"}),
        step("say", "action", {"type": "log", "parameters": {"message": "{{it|lower}} {{loop.ownerStepSlug}} {{i}}"}},
             {"success": "each"}),
        step("out", "output", {"mapping": {"slug": "{{loop.ownerStepSlug}}", "last": "{{steps.see.output.data}}"}}),
    ], config={"secrets": {"T": {"envVar": "TOKEN_VAR"}}})
    state = interp.new_run(d)
    for _ in range(20):
        if state.finished:
            break
        transition = interp.step(d, state)
        state = transition.state
        text = json.dumps([state.to_dict(), transition.output, transition.error])
        assert [v for v in DERIVED if v in text] == []
    assert state.status == "completed", state.error
    assert seen == [SECRET.upper(), "ok-item", SECRET.lower()]
    assert state.output == {"slug": "each", "last": {"len": len(SECRET)}}
    assert lines[1] == "[info] ok-item each 1"  # values not derived from the secret are kept
    assert [v for v in DERIVED if v in "\n".join(lines)] == []


def test_a_run_without_secrets_stores_its_loop_as_it_is(make_interpreter):
    """Without secrets the state is stored as it is: no sealing, no decoy evaluation."""
    interp = make_interpreter(registry=ActionRegistry())
    d = definition([step("start", "start", next_steps={"success": "each"}),
                    step("each", "loop", {"items": "{{['a-long-item']}}"}, {"loop": "each", "done": "out"}),
                    step("out", "output", {"mapping": {"x": "{{steps.each.output.data}}"}})])
    state = interp.step(d, interp.step(d, interp.new_run(d)).state).state
    assert state.variables["loop"]["items"] == ["a-long-item"]


def test_a_definition_cannot_read_the_secret_key(tmp_path):
    path = tmp_path / "steal.json"
    path.write_text(json.dumps({"id": "steal", "name": "steal", "config": {
        "secrets": {"K": {"envVar": "WFCTL_SECRET_KEY"}}}, "steps": [
        step("start", "start", next_steps={"success": "out"}),
        step("out", "output", {"mapping": {"k": "{{secrets.K|upper}}"}})]}))
    key = SecretBox.generate_key()
    proc = subprocess.run([sys.executable, "-m", "wfctl", "run", str(path), "--json"], capture_output=True, text=True,
                          env={**os.environ, "WFCTL_SECRET_KEY": key}, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == ("wfctl: error: secret 'K': WFCTL_SECRET_KEY is wfctl's own secret key; "
                                   "a definition cannot read it")


def test_nested_loops_keep_the_outer_secret_item_sealed(make_interpreter):
    seen, lines = [], []
    interp = _interpreter(make_interpreter, seen, lines)
    d = definition([
        step("start", "start", next_steps={"success": "outer"}),
        step("outer", "loop", {"items": "{{[secrets.T, secrets.T|upper]}}", "itemVariable": "key"},
             {"loop": "inner", "done": "out"}),
        step("inner", "loop", {"items": "{{['p-one', 'p-two']}}", "itemVariable": "page"},
             {"loop": "see", "done": "outer"}),
        step("see", "action", {"type": "see", "parameters": {"v": "{{page}}:{{key}}"}}, {"success": "inner"}),
        step("out", "output", {"mapping": {"pages": "{{steps.see.output.data}}"}}),
    ], config={"secrets": {"T": {"envVar": "TOKEN_VAR"}}})
    state, readable = interp.new_run(d), False
    while not state.finished:
        transition = interp.step(d, state)
        state = transition.state
        text = json.dumps([state.to_dict(), transition.output, transition.error])
        assert [v for v in DERIVED if v in text] == []
        readable = readable or '"items": ["p-one", "p-two"]' in text  # the inner loop's plain items are not sealed
    assert state.status == "completed", state.error
    assert readable
    assert seen == [f"{p}:{k}" for k in (SECRET, SECRET.upper()) for p in ("p-one", "p-two")]
