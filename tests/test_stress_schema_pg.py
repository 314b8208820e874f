"""docs/stress-result.schema.json on PostgreSQL results (tests/pg_stress_result.py) and on
SQLite results, old (no backend) and new (the PostgreSQL fields absent or null)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pg_stress_result import SMOKE, pg_result

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "stress-result.schema.json"


@pytest.fixture
def result() -> dict:
    return pg_result()


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _errors(validator: Draft202012Validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_schema_accepts_the_postgresql_result(validator: Draft202012Validator, result: dict) -> None:
    assert _errors(validator, result) == []
    comparison = result["scenarios"][1]
    assert _errors(validator, {**result, "scenarios": [comparison]}) == []
    variant = comparison["variants"][0]
    variant["server"]["wal"], variant["metrics"]["server.wal_bytes"] = [], None  # no pg_stat_wal
    assert _errors(validator, result) == []


def test_the_schema_rejects_a_malformed_server_block(validator: Draft202012Validator, result: dict) -> None:
    variant = result["scenarios"][0]["variants"][0]
    broken = copy.deepcopy(result)
    broken["scenarios"][0]["variants"][0]["server"]["cross_check"][0]["agrees"] = "yes"
    assert any("cross_check" in e for e in _errors(validator, broken))
    broken = copy.deepcopy(result)
    broken["scenarios"][0]["variants"][0]["isolation"] = "repeatable read"
    assert any("isolation" in e for e in _errors(validator, broken))
    variant["metrics"]["server.lock_waitz"] = 1
    assert any("server.lock_waitz" in e for e in _errors(validator, result))


def test_the_schema_accepts_sqlite_results_old_and_new(validator: Draft202012Validator) -> None:
    old = json.loads(SMOKE.read_text(encoding="utf-8"))
    assert "backend" not in old and _errors(validator, old) == []
    new = copy.deepcopy(old)
    new["backend"] = {"name": "sqlite", "servers": []}
    for scenario in new["scenarios"]:
        for variant in scenario["variants"]:
            variant.update(isolation=None, hot_rows=None, servers=None, server=None)
    assert _errors(validator, new) == []
