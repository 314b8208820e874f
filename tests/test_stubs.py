import json
from pathlib import Path

import pytest
import yaml

from wfctl.actions import ActionContext, StubSet, default_registry
from wfctl.errors import ActionError, InputError

SAMPLE = Path(__file__).parent / "data" / "stubs" / "sample.yaml"


def ctx(stubs=None, execution_id="e1", **variables):
    return ActionContext(execution_id=execution_id, definition_id="d", step_slug="s",
                         variables={"config": {"orgId": "org_1"}, **variables}, stubs=stubs)


def test_sample_file_loads_and_answers():
    stubs = StubSet.load(SAMPLE)
    assert stubs.types() == ["customer", "integration", "rag"]
    c = ctx(stubs)
    assert stubs.call("customer", {"operation": "query", "externalId": "c-1"}, c) == {
        "items": [{"_id": "cust_1", "externalId": "c-1"}]}
    assert stubs.call("customer", {"operation": "query", "externalId": "zzz"}, c) == {"items": []}
    created = stubs.call("customer", {"operation": "create", "externalId": "c-9", "email": "a@b.c"}, c)
    assert created == {"_id": "cust_c-9", "email": "a@b.c"}
    assert stubs.call("rag", {"operation": "upload_document"}, c) == {"success": True}
    assert stubs.call("rag", {}, c) == {"success": True}


def test_literal_results_render_typed_values_from_variables_and_params():
    stubs = StubSet.from_dict({"product": {"get_by_id": {
        "id": "{{params.productId}}", "count": "{{params.n + 1}}", "org": "{{config.orgId}}", "static": [1, "a"]}}})
    out = stubs.call("product", {"operation": "get_by_id", "productId": "p1", "n": 2}, ctx(stubs))
    assert out == {"id": "p1", "count": 3, "org": "org_1", "static": [1, "a"]}


def test_results_are_fresh_copies():
    stubs = StubSet.from_dict({"product": {"query": {"items": [{"a": 1}]}}})
    first = stubs.call("product", {"operation": "query"}, ctx(stubs))
    first["items"].append("mutated")
    assert stubs.call("product", {"operation": "query"}, ctx(stubs)) == {"items": [{"a": 1}]}


def test_sequence_advances_per_execution_and_repeats_the_last():
    stubs = StubSet.load(SAMPLE)
    params = {"operation": "list_customers", "name": "circuly"}
    pages = [stubs.call("integration", params, ctx(stubs))["result"]["pagination"]["hasNextPage"]
             for _ in range(3)]
    assert pages == [True, False, False]
    other = stubs.call("integration", params, ctx(stubs, execution_id="e2"))
    assert other["result"]["data"] == [{"id": 1}, {"id": 2}]


def test_sequence_elements_are_plain_results():
    stubs = StubSet.from_dict({"integration": {"list_messages": {"sequence": [
        {"result": {"data": ["{{params.page}}"]}}, {"data": []}]}}})
    c = ctx(stubs)
    assert stubs.call("integration", {"operation": "list_messages", "page": 4}, c) == {"result": {"data": [4]}}
    assert stubs.call("integration", {"operation": "list_messages"}, c) == {"data": []}


def test_cases_see_variables_and_fall_through_to_an_error():
    stubs = StubSet.from_dict({"customer": {"filter": [
        {"when": "variables.mode == 'vip' && params.limit > 1", "result": "vip"},
        {"when": "params.limit", "result": "some"},
    ]}})
    assert stubs.call("customer", {"operation": "filter", "limit": 2}, ctx(stubs, variables={"mode": "vip"})) == "vip"
    assert stubs.call("customer", {"operation": "filter", "limit": 2}, ctx(stubs)) == "some"
    with pytest.raises(ActionError, match="no case matches operation 'filter'"):
        stubs.call("customer", {"operation": "filter", "limit": 0}, ctx(stubs))


def test_error_cases_fail_the_call():
    stubs = StubSet.load(SAMPLE)
    with pytest.raises(ActionError) as err:
        stubs.call("customer", {"operation": "query", "externalId": "locked"}, ctx(stubs))
    assert str(err.value) == "customer locked is locked"
    spec = default_registry(plugins=False).get("customer", stubs)
    with pytest.raises(ActionError, match="^customer locked is locked$"):
        spec.fn({"operation": "query", "externalId": "locked"}, ctx(stubs))


def test_a_single_case_wraps_a_literal_that_looks_special():
    literal = {"sequence": [1, 2]}
    stubs = StubSet.from_dict({"document": {"create": [{"result": literal}]}})
    assert stubs.call("document", {"operation": "create"}, ctx(stubs)) == literal


def test_missing_operation_names_type_operation_and_file():
    stubs = StubSet.load(SAMPLE)
    with pytest.raises(ActionError) as err:
        stubs.call("customer", {"operation": "delete"}, ctx(stubs))
    assert str(err.value) == f"no stub for action 'customer' operation 'delete' in {SAMPLE}"
    with pytest.raises(ActionError, match=r"operation '\(none\)'"):
        stubs.call("customer", {}, ctx(stubs))


def test_unresolved_template_in_a_stub_is_an_action_error():
    stubs = StubSet.from_dict({"customer": {"create": {"id": "{{params.missing}}"}}}, source="s.yaml")
    with pytest.raises(ActionError, match=r"stub customer.create in s.yaml"):
        stubs.call("customer", {"operation": "create"}, ctx(stubs))


@pytest.mark.parametrize("content, message", [
    ("customer: [1, 2", "invalid stub file"),
    ("- a\n- b\n", "must map action types to operations"),
    ("customer: 5\n", "stubs for 'customer' must map operations"),
    ("customer:\n  query:\n    sequence: []\n", "customer.query: sequence must be a non-empty list"),
    ("customer:\n  query:\n    - when: 5\n      result: 1\n", "case 1: when must be a JEXL expression"),
    ("customer:\n  query:\n    - when: 'a =='\n      result: 1\n", "customer.query: case 1"),
    ("customer:\n  query:\n    - error: [1]\n", "case 1: error must be a message string"),
])
def test_malformed_stub_files(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        StubSet.load(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_yaml_dates_stay_strings(tmp_path):
    path = tmp_path / "dates.yaml"
    path.write_text("document:\n  get: {modified: 2026-11-01T10:00:00Z, day: 2026-11-01}\n")
    out = StubSet.load(path).call("document", {"operation": "get"}, ctx())
    assert out == {"modified": "2026-11-01T10:00:00Z", "day": "2026-11-01"}
    assert yaml.safe_load("d: 2026-11-01")["d"] != "2026-11-01"  # the default loader would not


def test_json_stub_files_and_unreadable_files(tmp_path):
    path = tmp_path / "stubs.json"
    path.write_text(json.dumps({"rag": {"search": {"hits": []}}}))
    assert StubSet.load(path).call("rag", {"operation": "search"}, ctx()) == {"hits": []}
    path.write_text("{not json")
    with pytest.raises(InputError, match="invalid stub file"):
        StubSet.load(path)
    with pytest.raises(InputError, match="cannot read stub file"):
        StubSet.load(tmp_path / "missing.yaml")


def test_registry_routes_platform_types_to_stubs():
    registry = default_registry(plugins=False)
    stubs = StubSet.load(SAMPLE)
    with pytest.raises(ActionError) as err:
        registry.get("rag")
    assert str(err.value) == ("action type 'rag' is provided by the tale platform; "
                              "supply a stub with --stubs FILE")
    spec = registry.get("rag", stubs)
    assert spec.name == "rag" and not spec.pure
    assert spec.fn({"operation": "x"}, ctx(stubs)) == {"success": True}
    with pytest.raises(ActionError, match="provided by the tale platform"):
        registry.get("product", stubs)  # stubbed types only
    assert not registry.is_pure("rag")
    # stubs fill gaps only: a registered action is never replaced by a stub
    log_stubs = StubSet.from_dict({"log": {"*": "stubbed"}})
    assert registry.get("log", log_stubs).fn({"message": "hi"}, ctx(log_stubs)) == {"logged": "hi"}
    # unknown (non-platform) types can be stubbed too, e.g. newer tale types
    task_stubs = StubSet.from_dict({"task": {"create": {"ok": True}}})
    assert registry.get("task", task_stubs).fn({"operation": "create"}, ctx(task_stubs)) == {"ok": True}
