"""wfctl.expressions: the public API, JS value helpers, errors, limits and speed."""

from __future__ import annotations

import copy
import math
import pickle
import time

import pytest

from wfctl.errors import ExpressionError, TemplateError
from wfctl.expressions import (
    TRANSFORMS,
    UNDEFINED,
    Expression,
    compile_expression,
    compile_template,
    evaluate,
    now_ms,
    register_transform,
    set_clock,
    to_js_string,
    to_json_value,
    truthy,
    use_clock,
)
from wfctl.expressions.jsvalues import format_number, js_string, json_stringify, loose_equal
from wfctl.expressions.parser import MAX_DEPTH

# ------------------------------------------------------------------------------ the API


def test_compile_expression_is_cached_and_evaluates_many_contexts():
    expr = compile_expression("input.n * 2")
    assert compile_expression("input.n * 2") is expr
    assert isinstance(expr, Expression) and expr.source == "input.n * 2"
    assert [expr.evaluate({"input": {"n": n}}) for n in (1, 2.5, "3")] == [2, 5, 6]
    assert expr({"input": {"n": 4}}) == 8


def test_evaluate_without_context_and_with_any_mapping():
    from types import MappingProxyType

    assert evaluate("1 + 1") == 2
    assert evaluate("missing") is UNDEFINED
    assert evaluate("a.b", MappingProxyType({"a": MappingProxyType({"b": 3})})) == 3


def test_context_must_be_a_mapping():
    with pytest.raises(ExpressionError, match="the context must be a mapping"):
        evaluate("a", ["a"])


@pytest.mark.parametrize("src, roots", [
    ("steps.a.output.data.count > 3 && input.flag", {"steps", "input"}),
    ("items[.x == limit]|map('y')", {"items", "limit"}),
    ("{key: value}|string", {"value"}),
    ("a|join(sep) + b[c]", {"a", "sep", "b", "c"}),
    ("x ? y : z ?: w", {"x", "y", "z", "w"}),
    ("null == undefined || true", set()),
    ("[1, 'two', n]", {"n"}),
    ("(list|first || other|first).threadId", {"list", "other"}),
    (".top + items[.inner > 1]|length", {"top", "items"}),
])
def test_roots_are_the_top_level_names_read(src, roots):
    assert compile_expression(src).roots == frozenset(roots)


def test_undefined_is_a_falsy_singleton_distinct_from_null():
    assert repr(UNDEFINED) == "undefined" and not UNDEFINED
    assert UNDEFINED is not None and UNDEFINED != None  # noqa: E711
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED
    assert type(UNDEFINED)() is UNDEFINED


@pytest.mark.parametrize("value, expected", [
    ([], True), ({}, True), ("0", True), (" ", True), (-1, True), (0.5, True), (True, True),
    (0, False), (0.0, False), ("", False), (math.nan, False), (None, False), (UNDEFINED, False),
    (False, False),
])
def test_truthy_is_js_truthiness(value, expected):
    assert truthy(value) is expected


@pytest.mark.parametrize("value, text", [
    (1, "1"), (1.0, "1"), (2.5, "2.5"), (-0.0, "0"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (123e-20, "1.23e-18"), (math.inf, "Infinity"),
    (-math.inf, "-Infinity"), (math.nan, "NaN"), (2**60, "1152921504606847000"),
    (0.1 + 0.2, "0.30000000000000004"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
    (True, "true"), (None, "null"), (UNDEFINED, "undefined"), ("x", "x"),
    ({"b": 1, "a": [1.0, None, "é"]}, '{"b":1,"a":[1,null,"é"]}'), ([], "[]"),
])
def test_to_js_string(value, text):
    assert to_js_string(value) == text


def test_format_number_matches_js_for_integers_past_2_53():
    assert format_number(2**53) == "9007199254740992"
    assert format_number(float(2**70)) == "1.1805916207174113e+21"
    assert format_number(123456789012345680000.0) == "123456789012345680000"


def test_json_stringify_follows_js():
    value = {"b": 1, "2": "two", "a": UNDEFINED, "1": [UNDEFINED, math.nan, math.inf, "\n\u2028\ud800"]}
    assert json_stringify(value) == '{"1":[null,null,null,"\\n\u2028\\ud800"],"2":"two","b":1}'
    assert json_stringify(UNDEFINED) is UNDEFINED


def test_js_string_of_arrays_and_objects():
    assert js_string([1, [2, None], UNDEFINED, {"a": 1}]) == "1,2,,,[object Object]"


def test_to_json_value_makes_json_safe_copies():
    src = {"a": UNDEFINED, "b": [UNDEFINED, 2.0, math.nan, (1, 1.5)], 3: {"c": -math.inf}}
    out = to_json_value(src)
    assert out == {"b": [None, 2, None, [1, 1.5]], "3": {"c": None}}
    assert type(out["b"][1]) is int
    assert src["a"] is UNDEFINED  # not mutated


def test_bools_are_never_numbers():
    assert evaluate("t == 1", {"t": True}) is True  # JS loose equality converts the boolean...
    assert evaluate("1 in [t]", {"t": True}) is False  # ...but `in` is strict
    assert evaluate("[t, 1, 1.0]|unique", {"t": True}) == ["true", "1"]
    assert evaluate("t + t", {"t": True}) == 2
    assert evaluate("[t]|filterBy('x', 1)", {"t": True}) == []
    assert evaluate("x|filterBy('v', 1)|length", {"x": [{"v": True}, {"v": 1}, {"v": 1.0}]}) == 2
    assert loose_equal(True, 1) and not loose_equal(True, 2)


def test_numbers_are_normalised():
    assert type(evaluate("10 / 5")) is int
    assert type(evaluate("x * 2", {"x": 1.5})) is int
    assert type(evaluate("x", {"x": 2.0})) is float  # values read from the context are kept
    assert evaluate("x + 1", {"x": 10**30}) == 1e30
    assert evaluate("x * x", {"x": 10**400}) == math.inf


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("src, fragment", [
    ("a +", "invalid expression 'a +': unexpected end of expression at column 4"),
    ("a\n+\n", "at line 3, column 1"),
    ("a ~ b", "unexpected character '~' at column 3"),
    ("foo(1)", "unknown function 'foo' in expression 'foo(1)': no functions are available"),
    ("x|daysago", "unknown transform 'daysago' at column 3"),
    ("   ", "empty expression"),
])
def test_syntax_errors_name_the_expression_and_column(src, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(src)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_function_call_hint_names_the_transform():
    with pytest.raises(ExpressionError, match=r"use the transform syntax value\|daysAgo"):
        compile_expression("daysAgo(x)")


def test_long_expressions_are_truncated_in_messages():
    src = "a + " * 100 + "+"
    with pytest.raises(ExpressionError) as info:
        compile_expression(src)
    assert len(str(info.value)) < 300 and "\u2026" in str(info.value)


def test_evaluation_errors_name_the_expression():
    with pytest.raises(ExpressionError) as info:
        evaluate("items[0].id", {})
    assert str(info.value) == "cannot evaluate 'items[0].id': cannot read property 0 of undefined"


def test_non_string_sources_are_rejected_cleanly():
    for bad in (None, 5, ["a"], {"a": 1}, b"a"):
        with pytest.raises(ExpressionError, match="must be a string"):
            compile_expression(bad)


def test_deep_nesting_is_rejected():
    deep = "[" * (MAX_DEPTH + 5) + "1" + "]" * (MAX_DEPTH + 5)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression(deep)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("a" + ".b" * 100 + "[0]" * 300)
    # parentheses alone add no depth (the LALR parser does not recurse)
    assert evaluate("(" * 5000 + "1" + ")" * 5000) == 1
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("!" * 1000 + "x")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        compile_expression("+".join(["1"] * 5000))
    ok = "(" * 50 + "1" + ")" * 50
    assert evaluate(ok) == 1
    assert evaluate("+".join(["1"] * 150)) == 150


def test_deeply_nested_values_fail_cleanly():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ExpressionError):
        evaluate("v|string", {"v": value})
    with pytest.raises(ExpressionError):
        evaluate("v + ''", {"v": value})
    with pytest.raises(TemplateError):
        compile_template("x {{v}}").render({"v": value})


def test_transform_errors_are_wrapped():
    def boom(value, *args):
        raise RuntimeError("kaput\nsecond line")

    register_transform("boom", boom)
    try:
        with pytest.raises(ExpressionError) as info:
            evaluate("1|boom")
        assert str(info.value) == "cannot evaluate '1|boom': transform 'boom' failed: kaput"
    finally:
        del TRANSFORMS["boom"]
        compile_expression.cache_clear()


def test_register_transform_clears_the_caches():
    with pytest.raises(ExpressionError):
        compile_expression("x|double")
    register_transform("double", lambda v, *a: v * 2)
    try:
        assert evaluate("x|double + 1", {"x": 4}) == 9
        assert compile_template("{{x|double}}").render({"x": 2}) == 4
    finally:
        del TRANSFORMS["double"]
        compile_expression.cache_clear()


def test_every_documented_transform_is_registered():
    names = ("upper lower trim length first last join map filter flatten unique concat string number "
             "boolean parseJSON formatList find filterBy hasOverlap sort reverse slice chunk daysAgo "
             "hoursAgo minutesAgo parseDate isoDate epochSeconds isBefore isAfter").split()
    assert set(names) <= set(TRANSFORMS)


# ------------------------------------------------------------------------------ clock


def test_clock_is_injectable():
    day = 86_400
    with use_clock(lambda: 20_000 * day + 3600):
        assert now_ms() == (20_000 * day + 3600) * 1000
        assert evaluate("t|daysAgo", {"t": 19_990 * day * 1000}) == 10
        assert evaluate("t|hoursAgo", {"t": 19_999 * day}) == 25  # seconds: below 1e11
    previous = set_clock(lambda: 2 * day)
    try:
        assert evaluate("0|daysAgo") == 2
        with use_clock(lambda: 3 * day):  # a context clock wins over the process clock
            assert evaluate("0|daysAgo") == 3
    finally:
        set_clock(previous)


@pytest.mark.parametrize("value, iso", [
    ("2024-02-29T23:59:59.999Z", "2024-02-29T23:59:59.999Z"),
    ("2024-01-15T10:30:00-05:30", "2024-01-15T16:00:00.000Z"),
    ("2024-01-15 10:30", "2024-01-15T10:30:00.000Z"),
    ("2024-03", "2024-03-01T00:00:00.000Z"),
    ("+012024-01-01T00:00:00Z", "+012024-01-01T00:00:00.000Z"),
    ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
    ("2024-01-15T24:00:00Z", "2024-01-16T00:00:00.000Z"),
    ("Mon, 15 Jan 2024 10:30:00 GMT", "2024-01-15T10:30:00.000Z"),
    ("2024-13-01", ""), ("2024-01-15T25:00:00Z", ""), ("yesterday", ""), ("", ""),
    (-1, "1969-12-31T23:59:59.999Z"), (8.64e15, "+275760-09-13T00:00:00.000Z"), (8.64e15 + 1, ""),
    (math.nan, ""), (math.inf, ""), (True, ""), ([], ""),
])
def test_date_parsing_and_iso_format(value, iso):
    assert evaluate("v|isoDate", {"v": value}) == iso


# ------------------------------------------------------------------------------ semantics details


def test_strings_count_utf16_units():
    ctx = {"s": "a😀b"}
    assert evaluate("s|length", ctx) == 4 and evaluate("s.length", ctx) == 4
    assert evaluate("s[3]", ctx) == "b"
    assert evaluate("'😀' < '\uffff'") is True  # UTF-16 order: surrogates sort below U+FFFF


def test_filters_nest_and_see_the_root_context():
    ctx = {"groups": [{"name": "g1", "members": [{"age": 10}, {"age": 40}]},
                      {"name": "g2", "members": [{"age": 12}]}],
           "limit": 30}
    assert evaluate("groups[.members[.age > limit]|length > 0]|map('name')", ctx) == ["g1"]
    assert evaluate("groups[.name == 'g2'].members[.age < limit]", ctx) == [{"age": 12}]


def test_filter_results_are_new_lists_and_literals_are_fresh():
    ctx = {"a": [1, 2]}
    expr = compile_expression("[a|first, {k: a}]")
    first, second = expr.evaluate(ctx), expr.evaluate(ctx)
    assert first == second and first is not second and first[1] is not second[1]


def test_short_circuit_skips_errors_and_transforms():
    calls = []
    register_transform("spy", lambda v, *a: calls.append(v) or v)
    try:
        assert evaluate("false && (1|spy)") is False
        assert evaluate("1 || (2|spy)") == 1
        assert evaluate("0 ? (3|spy) : 4") == 4
        assert calls == []
    finally:
        del TRANSFORMS["spy"]
        compile_expression.cache_clear()


def test_transforms_do_not_mutate_inputs():
    ctx = {"a": [3, 1, 2], "o": [{"v": 2}, {"v": 1}]}
    snapshot = copy.deepcopy(ctx)
    for src in ("a|sort", "a|reverse", "a|concat([4])", "a|slice(1)", "a|chunk(2)", "o|sort('v')",
                "[a]|flatten", "a|unique"):
        evaluate(src, ctx)
    assert ctx == snapshot


# ------------------------------------------------------------------------------ speed


def test_simple_condition_evaluates_in_microseconds():
    expr = compile_expression("steps.a.output.data.count > 3 && input.flag")
    ctx = {"steps": {"a": {"output": {"data": {"count": 5}}}}, "input": {"flag": True}}
    assert expr.evaluate(ctx) is True
    n = 20_000
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            expr.evaluate(ctx)
        best = min(best, (time.perf_counter() - start) / n)
    assert best < 10e-6, f"{best * 1e6:.2f} us per evaluation"
