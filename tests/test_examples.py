"""wfctl's own examples run to their documented end, through the library and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import EXAMPLES


def load(name):
    from wfctl.definitions import load_definition

    return load_definition(EXAMPLES / name)


def run(name, input, clock, make_interpreter, **kwargs):
    from wfctl.runner import run_to_end

    return run_to_end(load(name), input, make_interpreter(**kwargs), sleep=clock.sleep)


@pytest.mark.parametrize("name, path, length", [
    ("Ada", ["start", "compose", "is_long", "short_name"], "short"),
    ("Grace Hopper", ["start", "compose", "is_long", "long_name"], "long"),
])
def test_hello(clock, make_interpreter, name, path, length):
    result = run("hello.json", {"name": name}, clock, make_interpreter)
    assert result.path == path
    assert result.state.output == {"message": f"Hello, {name}!", "length": length}


def test_nested_loops_sum_every_line(clock, make_interpreter):
    data = json.loads((EXAMPLES / "inputs" / "nested-loops.json").read_text())
    result = run("nested-loops.json", data, clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    assert result.state.output == {"orders": 3, "lines": 6, "grandTotal": 24.5, "lastOrderId": "A-3"}
    assert result.path.count("add_line") == 6 and result.path.count("each_order") == 4


def test_retries_and_continue_on_error(clock, make_interpreter):
    result = run("retries.yaml", {"items": [3, -1, 4, -5]}, clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    assert [e.attempt for e in result.journal if e.slug == "flaky"] == [1, 2, 3]
    assert result.state.output == {"accepted": 2, "failedItems": [1, 3]}


def test_review_llm_offline_json_satisfies_schema(clock, make_interpreter):
    result = run("review.yaml", {"message": "My order never arrived"}, clock, make_interpreter)
    assert result.state.status == "completed", result.state.error
    data = result.state.output["classification"]
    assert isinstance(data["urgent"], bool) and isinstance(data["topic"], str)
    again = run("review.yaml", {"message": "My order never arrived"}, clock, make_interpreter)
    assert again.state.output == result.state.output  # the offline provider is deterministic


def wfctl(*args, input=None):
    return subprocess.run([sys.executable, "-m", "wfctl", *args], capture_output=True, text=True, input=input,
                          timeout=60)


def test_cli_run_json_and_exit_codes(tmp_path):
    done = wfctl("run", str(EXAMPLES / "hello.json"), "--input", '{"name": "Ada"}', "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "completed" and body["output"]["message"] == "Hello, Ada!"
    assert [s["slug"] for s in body["steps"]] == ["start", "compose", "is_long", "short_name"]

    failing = tmp_path / "fails.json"
    failing.write_text(json.dumps({"name": "f", "steps": [
        {"stepSlug": "x", "name": "x", "stepType": "action", "config": {"type": "fail", "parameters": {"message": "nope"}}}]}))
    failed = wfctl("run", str(failing))
    assert failed.returncode == 1 and "nope" in failed.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "missing.json"], "missing.json"),
    (["run", "EXAMPLES/hello.json", "--input", "{not json"], "--input: invalid JSON at line 1 column 2"),
    (["eval", "1 +"], ""),
])
def test_cli_bad_input_is_one_line_exit_2(args, message):
    args = [a.replace("EXAMPLES", str(EXAMPLES)) for a in args]
    proc = wfctl(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wfctl: error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_eval_prints_json():
    proc = wfctl("eval", "items|map('id')|join('-')", "--vars", '{"items": [{"id": 1}, {"id": 2}]}')
    assert proc.returncode == 0 and json.loads(proc.stdout) == "1-2"
    proc = wfctl("eval", "Total: {{input.n * 2}}", "--template", "--vars", '{"input": {"n": 21}}')
    assert json.loads(proc.stdout) == "Total: 42"
    proc = wfctl("eval", "50 / 1")
    assert proc.stdout.strip() == "50"
