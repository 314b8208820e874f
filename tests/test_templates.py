"""wfctl.expressions templates: Mustache tokenizing, typed single tags, interpolation, errors."""

from __future__ import annotations

import copy

import pytest

from wfctl.errors import ExpressionError, TemplateError
from wfctl.expressions import UNDEFINED, Template, compile_template, render_value

CTX = {
    "input": {"name": "Ada", "n": 21, "ratio": 0.5, "whole": 2.0, "flag": True, "off": False,
              "items": [1, 2], "obj": {"b": 1, "a": "x"}, "none": None, "text": "{{not a tag}}"},
    "config": {"currentPage": 1},
}


def render(text, ctx=CTX, **kw):
    return compile_template(text).render(ctx, **kw)


@pytest.mark.parametrize("text, value", [
    ("{{input.n}}", 21),
    ("{{ input.n * 2 }}", 42),
    ("{{input.items}}", [1, 2]),
    ("{{input.obj}}", {"b": 1, "a": "x"}),
    ("{{input.flag}}", True),
    ("{{input.ratio}}", 0.5),
    ("{{{input.items}}}", [1, 2]),
    ("{{& input.n}}", 21),
    ("{{config.currentPage + 1}}", 2),
    ("{{input.none}}", None),
    ("{{input.name|upper}}", "ADA"),
])
def test_a_single_tag_returns_the_typed_value(text, value):
    result = render(text)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize("text, out", [
    ("Hello {{input.name}}!", "Hello Ada!"),
    ("n={{input.n}} ratio={{input.ratio}} whole={{input.whole}}", "n=21 ratio=0.5 whole=2"),
    ("{{input.flag}}/{{input.off}}", "true/false"),
    ("items: {{input.items}}", "items: [1,2]"),
    ("obj: {{input.obj}}", 'obj: {"b":1,"a":"x"}'),
    ("{{({b: 1, '2': [true, null]})}} x", '{"2":[true,null],"b":1} x'),  # JS key order
    ("page {{config.currentPage + 1}} of 3", "page 2 of 3"),
    ("triple {{{input.name}}} & {{& input.name}}", "triple Ada & Ada"),
    ("{{input.text}} stays", "{{not a tag}} stays"),  # values are never re-rendered
    ("{{10 / 4}}-{{1 / 3}}", "2.5-0.3333333333333333"),
    (" {{input.n}}", " 21"),  # not a whole-string tag: interpolated
    ("{{input.n}}{{input.n}}", "2121"),
    ("a{{! a comment }}b", "ab"),
    ("{{! only a comment }}", ""),
    ("no tags at all", "no tags at all"),
    ("", ""),
    ("}} {", "}} {"),
])
def test_interpolation(text, out):
    assert render(text) == out


def test_no_html_escaping():
    assert render("<{{s}}>", {"s": "<b>&\"'</b>"}) == "<<b>&\"'</b>>"


def test_whole_string_tag_resolving_to_undefined_fails_unless_allowed():
    with pytest.raises(TemplateError) as info:
        render("{{backoffHours}}")
    assert str(info.value) == "unresolved template '{{backoffHours}}': 'backoffHours' is undefined"
    assert render("{{backoffHours}}", allow_undefined=True) is UNDEFINED


@pytest.mark.parametrize("text, message", [
    ("wait {{ backoffHours }} hours", "unresolved template 'wait {{ backoffHours }} hours': 'backoffHours' is undefined"),
    ("x {{input.none}}", "unresolved template 'x {{input.none}}': 'input.none' is null"),
])
def test_unresolved_tags_in_text_fail_naming_template_and_name(text, message):
    with pytest.raises(TemplateError) as info:
        render(text)
    assert str(info.value) == message
    with pytest.raises(TemplateError):
        render(text, allow_undefined=True)  # interpolation never tolerates a missing value


def test_long_templates_are_truncated_in_messages():
    text = "x" * 500 + "{{missing}}"
    with pytest.raises(TemplateError) as info:
        render(text)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 200 and "'missing' is undefined" in msg


@pytest.mark.parametrize("text, fragment", [
    ("{{a +}}", "invalid template '{{a +}}': invalid expression 'a +': unexpected end of expression"),
    ("oops {{a", "unclosed tag at column 6"),
    ("{{{a}}", "unclosed tag"),
    ("{{#items}}x{{/items}}", "sections, partials"),
    ("{{> partial}}", "sections, partials"),
    ("{{=<% %>=}}", "changing Mustache delimiters"),
    ("{{}}", "empty expression"),
    ("{{daysAgo(x)}}", "unknown function 'daysAgo'"),
])
def test_invalid_templates(text, fragment):
    with pytest.raises(TemplateError) as info:
        compile_template(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_expression_errors_while_rendering_are_template_errors():
    with pytest.raises(TemplateError) as info:
        render("id: {{input.list[0]}}")
    assert str(info.value) == ("cannot render template 'id: {{input.list[0]}}': cannot evaluate "
                               "'input.list[0]': cannot read property 0 of undefined")
    assert isinstance(info.value, ExpressionError)


def test_triple_stache_begins_at_an_opening_brace_after_whitespace():
    # Mustache reads `{{ {` as a triple-stache opening, as tale's Mustache.parse does, so an
    # object literal must not start a tag: `{{({a: 1})}}` works, `{{ {a: 1} }}` does not
    assert render("{{ {input.n}}}") == 21
    assert render("{{({a: 1}).a}}") == 1
    with pytest.raises(TemplateError, match="unclosed tag"):
        compile_template("{{ {a: 1} }}")


def test_template_metadata():
    t = compile_template("Hi {{input.name}}, page {{config.currentPage + offset}}")
    assert isinstance(t, Template) and compile_template(t.text) is t
    assert t.roots == frozenset({"input", "config", "offset"})
    assert t.tags == ("input.name", "config.currentPage + offset")
    assert not t.is_static
    static = compile_template("plain text")
    assert static.is_static and static.roots == frozenset() and static.render(None) == "plain text"
    assert compile_template("{{! c }}").is_static is False


def test_render_value_renders_strings_and_keys_recursively_without_mutating():
    value = {
        "message": "Hello {{input.name}}",
        "{{input.name}}_key": ["{{input.n}}", "static", 3, None, True, {"deep": "{{input.items}}"}],
        "count": "{{input.n + 1}}",
        "{{input.n}}": "number key",
        "{{input.none}}": "null key",
    }
    snapshot = copy.deepcopy(value)
    out = render_value(value, CTX)
    assert out == {
        "message": "Hello Ada",
        "Ada_key": [21, "static", 3, None, True, {"deep": [1, 2]}],
        "count": 22,
        "21": "number key",
        "null": "null key",
    }
    assert value == snapshot
    assert out["Ada_key"] is not value["{{input.name}}_key"]


def test_render_value_copies_static_containers():
    value = {"a": ["x", {"b": "y"}]}
    out = render_value(value, {})
    assert out == value and out is not value and out["a"] is not value["a"] and out["a"][1] is not value["a"][1]
    assert render_value("plain", {}) == "plain"
    assert render_value(5, {}) == 5 and render_value(None, {}) is None


def test_render_value_undefined_handling():
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render_value({"v": "{{missing}}"}, {})
    assert render_value({"v": "{{missing}}"}, {}, allow_undefined=True) == {"v": UNDEFINED}
    assert render_value(["{{input.none}}"], CTX) == [None]


def test_render_value_only_raises_template_errors():
    deep: list = []
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(TemplateError, match="nested"):
        render_value(deep, {})
    with pytest.raises(TemplateError):
        render_value({"k": "{{ 1 +"}, {})
    with pytest.raises(TemplateError):
        compile_template(None)
