"""NaN and Infinity: refused in every JSON a user gives, written as null (JSON.stringify's rule) in
everything wfctl prints or stores."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, step
from wfctl.store.payload import encode


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("WFCTL_DATA_DIR", "WFCTL_DEBUG")}


def wfctl(*args, data=None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "wfctl", *(["--data-dir", str(data)] if data else []), *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=_env(), timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def strict_json(text: str):
    """Parse as a strict parser does (Python's json accepts NaN and Infinity; JSON does not)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wfctl: error: "), proc.stderr
    return lines[0]


def definition(tmp_path: Path) -> Path:
    path = tmp_path / "nonfinite.json"
    path.write_text(json.dumps({"id": "nonfinite", "name": "nonfinite", "steps": [
        step("start", "start", next_steps={"success": "done"}),
        step("done", "output", {"mapping": {"inf": "{{1/0}}", "nan": "{{0/0}}", "list": "{{[-1/0, 2]}}",
                                            "text": "x{{1/0}}"}}),
    ]}))
    return path


EXPECTED_OUTPUT = {"inf": None, "nan": None, "list": [None, 2], "text": "xInfinity"}


# -- input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, token", [
    ('{"a": NaN}', "NaN"), ('{"a": [Infinity]}', "Infinity"), ('{"a": {"b": -Infinity}}', "-Infinity"),
    ('{"a": 1e400}', "1e400"), ('{"a": -2.5E999}', "-2.5E999"),
    ('{"a": ' + "1" * 5000 + "}", "11111111111111111111... (5000 characters)"),  # JSON.parse: Infinity
])
def test_non_finite_input_is_refused_everywhere(tmp_path, text, token):
    path, data = definition(tmp_path), tmp_path / "data"
    message = "is not a finite number; JSON has no NaN or Infinity"
    assert one_error_line(wfctl("run", path, "--input", text)) == f"wfctl: error: --input: {token} {message}"
    input_file = tmp_path / "input.json"
    input_file.write_text(text)
    line = one_error_line(wfctl("run", path, "--input-file", input_file))
    assert line.endswith(f"{token} {message}") and "--input-file" in line
    line = one_error_line(wfctl("start", path, "--input", f"@{input_file}", data=data))
    assert line.endswith(f"{token} {message}") and "--input" in line
    assert one_error_line(wfctl("eval", "a", "--vars", text)) == f"wfctl: error: --vars: {token} {message}"
    if data.exists():  # nothing was started
        assert json.loads(wfctl("list", "--json", data=data).stdout) == []


def test_finite_numbers_are_still_accepted(tmp_path):
    proc = wfctl("eval", "a + b", "--vars", '{"a": 1e308, "b": 1e-400}')
    assert proc.returncode == 0 and json.loads(proc.stdout) == 1e308


@pytest.mark.parametrize("name, text", [
    ("stubs.yaml", "rag:\n  search: {score: .nan}\n"),
    ("stubs.yaml", "rag:\n  search: {scores: [1, -.inf]}\n"),
    ("stubs.json", '{"rag": {"search": {"score": NaN}}}'),
])
def test_non_finite_stub_results_are_refused(tmp_path, name, text):
    stubs = tmp_path / name
    stubs.write_text(text)
    line = one_error_line(wfctl("run", definition(tmp_path), "--stubs", stubs))
    assert f"{stubs}: rag.search: " in line and "is not a finite number" in line


# -- output ------------------------------------------------------------------------------------

def test_run_json_writes_non_finite_numbers_as_null(tmp_path):
    proc = wfctl("run", definition(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert strict_json(proc.stdout)["output"] == EXPECTED_OUTPUT
    human = wfctl("run", definition(tmp_path))
    assert "Infinity," not in human.stdout and "NaN" not in human.stdout


def test_durable_run_stores_and_prints_non_finite_numbers_as_null(tmp_path):
    data = tmp_path / "data"
    proc = wfctl("start", definition(tmp_path), "--wait", "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    run = strict_json(proc.stdout)
    assert run["output"] == EXPECTED_OUTPUT
    status = strict_json(wfctl("status", run["execution_id"], "--json", data=data).stdout)
    assert status["output"] == EXPECTED_OUTPUT and status["steps"][-1]["output"]["data"] == EXPECTED_OUTPUT
    assert strict_json(wfctl("list", "--json", data=data).stdout)[0]["output"] == EXPECTED_OUTPUT
    raw = b"".join(p.read_bytes() for p in data.glob("shard-*.db*"))
    assert b'"list":[null,2]' in raw and b'"text":"xInfinity"' in raw
    assert not re.search(rb"[:\[,](?:NaN|-?Infinity)", raw)  # no bare non-finite number in stored JSON


def test_payload_encoding_writes_null_for_non_finite_numbers():
    value = {"a": float("nan"), "b": [1.5, float("inf"), {"c": float("-inf")}], "d": "NaN"}
    assert encode(value, "state", 1 << 20)[0] == '{"a":null,"b":[1.5,null,{"c":null}],"d":"NaN"}'
    assert value["a"] != value["a"]  # the caller's value is left alone


# -- wfctl eval and docs/expressions.md ---------------------------------------------------------

def _doc_examples() -> list[tuple[str, list[str]]]:
    """The ``$ wfctl eval`` examples of docs/expressions.md's console block about ``1 / 0``."""
    text = (ROOT / "docs" / "expressions.md").read_text()
    block = next(b for b in text.split("```console")[1:] if "1 / 0" in b.split("```")[0]).split("```")[0]
    examples: list[tuple[str, list[str]]] = []
    for line in block.strip().splitlines():
        if line.startswith("$ "):
            examples.append((line[2:], []))
        else:
            examples[-1][1].append(line)
    return examples


def test_eval_of_non_finite_results_matches_the_docs():
    examples = _doc_examples()
    assert any(cmd == 'wfctl eval "1 / 0"' for cmd, _ in examples)
    for command, expected in examples:
        proc = wfctl(*shlex.split(command)[1:])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() + proc.stderr.splitlines() == expected, command


@pytest.mark.parametrize("expression, shown", [("0/0", "NaN"), ("0 - 1/0", "-Infinity")])
def test_eval_notes_every_non_finite_result(expression, shown):
    proc = wfctl("eval", expression)
    assert proc.returncode == 0 and strict_json(proc.stdout) is None
    assert proc.stderr == f"note: the result is {shown}, which JSON writes as null\n"
    nested = wfctl("eval", f"{{a: [{expression}]}}")
    assert strict_json(nested.stdout) == {"a": [None]}


@pytest.mark.parametrize("name, text", [
    ("nan.yaml", "name: nan\nconfig:\n  variables: {limit: .inf}\nsteps:\n"
                 "  - {stepSlug: start, name: s, stepType: start}\n"),
    ("nan.json", '{"name": "nan", "steps": [{"stepSlug": "start", "name": "s", "stepType": "start"},'
                 ' {"stepSlug": "out", "name": "o", "stepType": "output", "config": {"mapping": {"x": [1, NaN]}}}]}'),
])
def test_non_finite_numbers_in_a_definition_are_errors(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    validated = wfctl("defs", "validate", path)
    assert validated.returncode == 1 and "is not a finite number; JSON has no NaN or Infinity" in validated.stdout
    where = "config.variables.limit: Infinity" if name.endswith("yaml") else "step 'out': config.mapping.x[1]: NaN"
    assert where in validated.stdout
    line = one_error_line(wfctl("start", path, data=tmp_path / "data"))
    assert f"{name}: {where} is not a finite number" in line
    assert one_error_line(wfctl("run", path)) == line
