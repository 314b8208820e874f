"""The definition model and loader: schema, defaults, ids, sorting, YAML, file errors, to_tale()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wfctl.definitions import (
    DEFAULT_TIMEOUT_MS,
    PORTS,
    STEP_TYPES,
    Definition,
    Issue,
    load_definition,
    parse_definition,
    validate_data,
    validate_file,
)
from wfctl.errors import DefinitionError

DATA = Path(__file__).resolve().parent / "data" / "definitions"


def step(slug, step_type="action", config=None, next_steps=None, **extra):
    return {"stepSlug": slug, "name": slug, "stepType": step_type, "config": config or {},
            "nextSteps": next_steps or {}, **extra}


def parse(steps, **top):
    return parse_definition({"name": "t", "steps": steps, **top}, source="flows/orders.json", default_id="orders")


def schema_errors(data):
    return [str(i) for i in validate_data(data, "flows/orders.json", "orders").errors]


def test_ports_and_step_types():
    assert PORTS["condition"] == ("true", "false")
    assert PORTS["loop"] == ("loop", "done")
    assert set(STEP_TYPES) == {"start", "trigger", "llm", "condition", "action", "loop", "output"}


def test_defaults_and_snake_case_attributes():
    d = parse([step("a", "start", next_steps={"success": "noop"})])
    assert (d.id, d.name, d.description, d.version, d.source) == ("orders", "t", None, "1.0.0", "flows/orders.json")
    assert d.config.timeout == DEFAULT_TIMEOUT_MS == 21_600_000
    assert d.config.retry_policy is None and d.config.variables == {} and d.config.secrets == {}
    s = d.steps[0]
    assert (s.slug, s.name, s.step_type, s.order) == ("a", "a", "start", 0)
    assert (s.config, s.next_steps) == ({}, {"success": "noop"})


def test_config_fields_and_unknown_keys():
    d = parse([], config={"timeout": 600000, "retryPolicy": {"maxRetries": 3, "backoffMs": 2000},
                          "variables": {"x": None}, "secrets": {"TOKEN": {"envVar": "MY_TOKEN"}},
                          "models": ["m"], "custom": {"kept": True}},
              enabled=True, installed=True, metadata={"k": 1}, requires={"integrations": []})
    assert d.config.timeout == 600000 and isinstance(d.config.timeout, int)
    assert (d.config.retry_policy.max_retries, d.config.retry_policy.backoff_ms) == (3, 2000)
    assert d.config.secrets["TOKEN"].env_var == "MY_TOKEN"
    assert d.config.model_extra == {"custom": {"kept": True}}
    assert d.metadata == {"k": 1} and d.requires == {"integrations": []}
    assert not hasattr(d, "enabled")


def test_steps_sorted_by_order_stably_with_index_default():
    d = parse([step("c", order=2), step("a", order=0), step("b1", order=1), step("b2", order=1)])
    assert [s.slug for s in d.steps] == ["a", "b1", "b2", "c"]
    d = parse([step("x"), step("y", order=-1), step("z")])  # x and z default to their indexes 0 and 2
    assert [s.slug for s in d.steps] == ["y", "x", "z"]


def test_step_lookup_first_step_and_trigger():
    d = parse([step("out", "output"), step("t", "trigger"), step("s", "start"), step("t2", "trigger")])
    assert d.step("s").slug == "s" and d.step("missing") is None
    assert d.first_step().slug == "t"
    assert d.trigger().slug == "t"
    d = parse([step("b", "output"), step("a", "action")])
    assert d.first_step().slug == "b" and d.trigger() is None
    assert parse([]).first_step() is None


def test_id_from_field_else_default_else_source_stem():
    assert parse([], id="explicit").id == "explicit"
    assert parse_definition({"name": "t", "steps": []}, source="dir/my-flow.yaml").id == "my-flow"
    with pytest.raises(DefinitionError, match="^id: is required when there is no file name"):
        parse_definition({"name": "t", "steps": []})
    assert validate_file(DATA / "with-id.yml").definition_id == "orders-v2"
    assert validate_file(DATA / "orders.yaml").definition_id == "orders"


def test_to_tale_round_trip():
    data = {"id": "rt", "name": "t", "description": "d",
            "config": {"timeout": 1500.5, "retryPolicy": {"maxRetries": 1, "backoffMs": 10},
                       "variables": {"cursor": None}, "secrets": {"K": {"envVar": "E"}}, "extra": [1]},
            "steps": [step("b", "output", {"mapping": {"v": "{{input.v}}"}}, order=1),
                      step("a", "start", next_steps={"success": "b"}, order=0, description="first")]}
    d = parse_definition(data)
    tale = d.to_tale()
    assert tale["steps"][0] == {"stepSlug": "a", "name": "a", "stepType": "start", "description": "first",
                                "order": 0, "config": {}, "nextSteps": {"success": "b"}}
    assert tale["config"]["retryPolicy"] == {"maxRetries": 1, "backoffMs": 10}
    assert tale["config"]["variables"] == {"cursor": None} and tale["config"]["extra"] == [1]
    assert "metadata" not in tale and "source" not in tale
    assert parse_definition(json.loads(json.dumps(tale))).to_tale() == tale


def test_yaml_file_loads():
    d = load_definition(DATA / "orders.yaml")
    assert d.id == "orders" and d.source == str(DATA / "orders.yaml")
    assert [s.slug for s in d.steps] == ["start", "check_total", "big", "small"]
    assert d.step("check_total").next_steps == {"true": "big", "false": "small"}
    assert d.config.variables == {"threshold": 100}


@pytest.mark.parametrize("name, message", [
    ("missing.json", "missing.json: no such file"),
    ("broken.json", "broken.json: invalid JSON at line 4 column 22: Expecting property name enclosed in double quotes"),
    ("broken.yaml", "broken.yaml: invalid YAML at line 3 column 3: expected the node content, but found '-'"),
    ("array.json", "array.json: the top level must be an object, got array"),
])
def test_bad_files_give_one_error(name, message):
    report = validate_file(DATA / name)
    assert report.definition is None and report.warnings == []
    assert [str(i) for i in report.errors] == [message]
    assert report.errors[0].source == str(DATA / name)
    with pytest.raises(DefinitionError) as info:
        load_definition(DATA / name)
    assert str(info.value) == message


def test_unreadable_and_unsupported_files(tmp_path):
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    (tmp_path / "flow.txt").write_text("{}")
    (tmp_path / "dir.json").mkdir()
    assert [str(i) for i in validate_file(tmp_path / "latin1.json").errors] == [
        "latin1.json: cannot read: not UTF-8 text (byte 0xe9 at offset 13)"]
    assert [str(i) for i in validate_file(tmp_path / "flow.txt").errors] == [
        "flow.txt: unsupported file type '.txt' (expected .json, .yaml, .yml)"]
    assert [str(i) for i in validate_file(tmp_path / "dir.json").errors] == [
        "dir.json: is a directory, not a definition file"]


def test_empty_yaml_is_not_an_object(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert [str(i) for i in validate_file(tmp_path / "empty.yaml").errors] == [
        "empty.yaml: the top level must be an object, got null"]


def test_schema_errors_are_translated_one_per_line():
    errors = schema_errors({
        "name": "x" * 201,
        "config": {"timeout": 0, "retryPolicy": {"maxRetries": -1, "backoffMs": "2"},
                   "secrets": {"A": {}, "B": "ENV"}},
        "steps": [step("a", order="1", next_steps={"success": 3}), {"name": 3}, "x"],
    })
    assert errors == [
        "orders.json: name: must be at most 200 characters (got 201)",
        "orders.json: config.timeout: must be greater than 0, got number 0",
        "orders.json: config.retryPolicy.maxRetries: must be at least 0, got number -1",
        "orders.json: config.retryPolicy.backoffMs: must be a number, got string '2'",
        "orders.json: config.secrets.A.envVar: is required",
        "orders.json: config.secrets.B: must be an object, got string 'ENV'",
        "orders.json: step 'a': order: must be a number, got string '1'",
        "orders.json: step 'a': nextSteps.success: must be a string, got number 3",
        "orders.json: steps[1].stepSlug: is required",
        "orders.json: steps[1].name: must be a string, got number 3",
        "orders.json: steps[1].stepType: is required",
        "orders.json: steps[2]: must be an object, got string 'x'",
    ]


@pytest.mark.parametrize("data, message", [
    ({"steps": []}, "orders.json: name: is required"),
    ({"name": "", "steps": []}, "orders.json: name: must not be empty"),
    ({"name": "t"}, "orders.json: steps: is required"),
    ({"name": "t", "steps": {}}, "orders.json: steps: must be an array, got object"),
    ({"name": "t", "steps": [], "config": {"timeout": float("inf")}},
     "orders.json: config.timeout: must be a finite number, got number inf"),
    ({"name": "t", "steps": [], "config": {"retryPolicy": {"maxRetries": 1.5}}},
     "orders.json: config.retryPolicy.maxRetries: must be an integer, got number 1.5"),
    ({"name": "t", "steps": [], "id": 5}, "orders.json: id: must be a string, got number 5"),
])
def test_schema_error_messages(data, message):
    assert schema_errors(data) == [message]
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, "flows/orders.json", "orders")
    assert str(info.value) == message


def test_issue_format_uses_base_name_and_stays_on_one_line():
    assert str(Issue("/a/b/orders.json", "check_total", "config.expression", "bad", "error")) == \
        "orders.json: step 'check_total': config.expression: bad"
    assert str(Issue("orders.json", None, None, "no such file")) == "orders.json: no such file"
    assert str(Issue(None, "a", None, "x")) == "step 'a': x"
    issue = Issue("x.json", "a\nb", "f\r\ng", "line1\nline2\u2028line3")
    assert str(issue) == "x.json: step 'a b': f g: line1 line2 line3"
    assert issue.message == "line1 line2 line3"


def test_definition_is_immutable():
    d = parse([step("a", "start")])
    with pytest.raises(Exception):
        d.name = "other"
    assert isinstance(d, Definition)
