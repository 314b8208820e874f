"""Property tests: whatever the input, only ExpressionError/TemplateError escape, promptly."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfctl.errors import ExpressionError, TemplateError
from wfctl.expressions import (
    TRANSFORMS,
    UNDEFINED,
    compile_expression,
    compile_template,
    render_value,
    to_js_string,
    to_json_value,
)
from wfctl.expressions.jsvalues import format_number, loose_equal, strict_equal, truthy

SETTINGS = settings(max_examples=250, deadline=timedelta(seconds=2), database=None,
                    suppress_health_check=[HealthCheck.too_slow])

NAMES = ["a", "b", "n", "s", "items", "obj", "d", "length"]
TRANSFORM_NAMES = sorted(TRANSFORMS)
BINARY_OPS = ["+", "-", "*", "/", "//", "%", "^", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["2024-01-15T10:30:00Z", "2024-02-30", "1705314600", "x > 1", "{name}", "a.b"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(NAMES + ["0", "", "x.y"]), children, max_size=4),
    max_leaves=12,
)
contexts = st.dictionaries(st.sampled_from(NAMES), json_values, max_size=6)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


atoms = st.one_of(
    st.integers(-1000, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.text(max_size=6).map(_quote),
    st.sampled_from(["true", "false", "null", "undefined", "[]", "{}", "'x > 1'", "'name'",
                     "'desc'", "'{name} {a.b}'", "'2024-01-15'"]),
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(lambda name: "." + name),
)


def _extend(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY_OPS), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(children, children).map(lambda t: f"({t[0]} ?: {t[1]})"),
        st.tuples(children, st.sampled_from(NAMES)).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(children, st.sampled_from(TRANSFORM_NAMES), st.lists(children, max_size=3)).map(
            lambda t: f"({t[0]})|{t[1]}" + (f"({', '.join(t[2])})" if t[2] else "")),
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(NAMES), children), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"),
    )


expressions = st.recursive(atoms, _extend, max_leaves=16)


def _is_js_value(v, depth=0) -> bool:
    if v is None or v is UNDEFINED or type(v) in (bool, str, float):
        return True
    if type(v) is int:
        return True
    if type(v) is list:
        return all(_is_js_value(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(type(k) is str and _is_js_value(x, depth + 1) for k, x in v.items())
    return False


def _check_value(v) -> None:
    assert _is_js_value(v), repr(v)
    json.dumps(to_json_value(v), allow_nan=False)
    assert isinstance(to_js_string(v), str)


@SETTINGS
@given(st.text(max_size=60), contexts)
def test_random_text_only_raises_expression_errors(src, context):
    try:
        expr = compile_expression(src)
    except ExpressionError as e:
        assert "\n" not in str(e)
        return
    try:
        _check_value(expr.evaluate(context))
    except ExpressionError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(st.text(alphabet="ab1.'\"[]{}()|!-+*/%^=<>?:, \\", max_size=40), contexts)
def test_operator_soup_only_raises_expression_errors(src, context):
    try:
        _check_value(compile_expression(src).evaluate(context))
    except ExpressionError:
        pass


@SETTINGS
@given(expressions, contexts)
def test_generated_expressions_compile_and_evaluate_to_js_values(src, context):
    expr = compile_expression(src)  # generated syntax is always valid
    assert expr.roots <= set(NAMES)
    try:
        _check_value(expr.evaluate(context))
    except ExpressionError as e:
        message = str(e)
        assert "\n" not in message
        # the only evaluation errors: reading a property of null/undefined, a failing transform
        assert "cannot read property" in message or "transform 'formatList' failed" in message, message


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=8), expressions.map(lambda e: "{{" + e + "}}"),
                          st.sampled_from(["{{", "}}", "{{{", "}}}", "{{!", "{{#", "{{&", " "])),
                max_size=5).map("".join), contexts)
def test_templates_only_raise_template_errors(text, context):
    try:
        template = compile_template(text)
    except TemplateError as e:
        assert "\n" not in str(e)
        return
    try:
        out = template.render(context, allow_undefined=True)
        _check_value(out)
    except TemplateError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(st.recursive(
    st.one_of(scalars, expressions.map(lambda e: "x {{" + e + "}}"), expressions.map(lambda e: "{{" + e + "}}")),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.one_of(st.text(max_size=4), expressions.map(lambda e: "{{" + e + "}}")), children, max_size=3),
    max_leaves=8), contexts)
def test_render_value_only_raises_template_errors(value, context):
    try:
        render_value(value, context)
    except TemplateError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_strings_round_trip(x):
    text = format_number(x)
    assert float(text.replace("e+", "e")) == x
    assert not text.endswith(".0")


@SETTINGS
@given(scalars, scalars)
def test_equality_is_symmetric(a, b):
    assert loose_equal(a, b) == loose_equal(b, a)
    assert strict_equal(a, b) == strict_equal(b, a)
    if strict_equal(a, b):
        assert loose_equal(a, b)


@SETTINGS
@given(json_values)
def test_truthiness_matches_js(v):
    expected = not (v is None or v is False or v == "" or (type(v) in (int, float) and (v == 0 or math.isnan(v))))
    assert truthy(v) is expected
