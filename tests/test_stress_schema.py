"""docs/stress-result.schema.json against a real ``wfctl stress run --json`` result."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from wfctl.stress.metrics import known_metric_names

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "docs" / "stress-result.schema.json"


def _wfctl() -> list[str]:
    """``python -m wfctl`` with this interpreter, else the ``wfctl`` script next to it."""
    probe = subprocess.run([sys.executable, "-m", "wfctl", "--help"], capture_output=True, text=True, timeout=60)
    if probe.returncode == 0:
        return [sys.executable, "-m", "wfctl"]
    script = Path(sys.executable).with_name("wfctl")
    assert script.is_file(), f"neither 'python -m wfctl' nor {script} works: {probe.stderr}"
    return [str(script)]


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """One real smoke run of concurrent-starts for the whole module."""
    folder = tmp_path_factory.mktemp("stress-schema")
    out = folder / "result.json"
    proc = subprocess.run(
        [*_wfctl(), "stress", "run", "concurrent-starts", "--smoke", "--json", str(out), "--no-live"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    document = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    return proc, document


def _errors(validator: Draft202012Validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_schema_is_valid_draft_2020_12(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_real_result_validates(real_run, validator):
    proc, document = real_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert document["schema"] == "wfctl.stress.result/1"
    assert _errors(validator, document) == []


def test_schema_requires_every_always_present_metric(schema):
    metrics = schema["$defs"]["variant"]["properties"]["metrics"]
    assert set(metrics["required"]) == set(known_metric_names())
    assert set(metrics["properties"]) == set(known_metric_names())
    assert metrics["additionalProperties"] is False


def test_every_property_has_a_description(schema):
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for key in ("properties", "patternProperties"):
                for name, sub in (node.get(key) or {}).items():
                    if not isinstance(sub, dict) or not sub.get("description"):
                        missing.append(f"{path}/{name}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "#")
    assert missing == []


def _variant(document: dict) -> dict:
    return document["scenarios"][0]["variants"][0]


def test_rejects_a_missing_metric(real_run, validator):
    document = copy.deepcopy(real_run[1])
    del _variant(document)["metrics"]["start_latency.p99"]
    assert any("start_latency.p99" in e for e in _errors(validator, document))


def test_rejects_an_unknown_metric(real_run, validator):
    document = copy.deepcopy(real_run[1])
    _variant(document)["metrics"]["start_latency.p42"] = 1.0
    assert _errors(validator, document)


def test_accepts_any_step_type_latency(real_run, validator):
    document = copy.deepcopy(real_run[1])
    _variant(document)["metrics"]["step_latency.my-step_type.p99_9"] = None
    assert _errors(validator, document) == []


def test_rejects_a_variant_without_crosscheck(real_run, validator):
    document = copy.deepcopy(real_run[1])
    del _variant(document)["crosscheck"]
    assert any("crosscheck" in e for e in _errors(validator, document))


def test_rejects_a_wrong_schema_tag(real_run, validator):
    document = copy.deepcopy(real_run[1])
    document["schema"] = "wfctl.stress.result/2"
    assert any(e.startswith(": ") or "schema" in e for e in _errors(validator, document))
    assert not validator.is_valid(document)


def test_accepts_comparison_and_slots_shapes(real_run, validator):
    """A comparison table (as the harness builds it) and scheduled slot coverage also validate."""
    from wfctl.stress.harness import comparison_table

    document = copy.deepcopy(real_run[1])
    scenario = document["scenarios"][0]
    second = copy.deepcopy(scenario["variants"][0])
    scenario["variants"][0].update(name="1sh/spread", shard_count=1)
    second.update(name="4sh/exec/hot", route="execution", hot_definition=True)
    second["slots"] = {"expected": 6, "fired": 6, "duplicates": 0, "missed": 0}
    scenario["variants"].append(second)
    scenario["comparison"] = comparison_table(scenario["variants"])
    assert _errors(validator, document) == []
    second["slots"] = {"expected": 6, "fired": 6}
    assert _errors(validator, document)
