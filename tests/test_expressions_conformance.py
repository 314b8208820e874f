"""The JEXL conformance table (tests/data/jexl_conformance.yaml), one test per case."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from wfctl.errors import ExpressionError
from wfctl.expressions import UNDEFINED, evaluate, use_clock
from wfctl.expressions.transforms import parse_date_string

TABLE = yaml.safe_load((Path(__file__).parent / "data" / "jexl_conformance.yaml").read_text("utf-8"))
NOW_SECONDS = parse_date_string(TABLE["now"]) / 1000
CASES = TABLE["cases"]


def same(actual, expected) -> bool:
    """Type-strict equality: 1 is not 1.0 nor True; NaN equals NaN; dicts and lists deep."""
    if expected is UNDEFINED or actual is UNDEFINED:
        return actual is expected
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)
    return actual == expected


def test_table_is_large_and_ids_are_unique():
    ids = [case.get("id", case["expr"]) for case in CASES]
    assert len(CASES) >= 170
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("case", CASES, ids=[case.get("id", case["expr"]) or "<empty>" for case in CASES])
def test_conformance(case):
    context = {**TABLE["vars"], **case.get("vars", {})}
    with use_clock(lambda: NOW_SECONDS):
        if "error" in case:
            with pytest.raises(ExpressionError) as info:
                evaluate(case["expr"], context)
            message = str(info.value)
            assert case["error"] in message
            assert "\n" not in message
            return
        actual = evaluate(case["expr"], context)
    expected = UNDEFINED if case.get("undefined") else case["expect"]
    assert same(actual, expected), f"{case['expr']!r}: got {actual!r}, expected {expected!r}"
