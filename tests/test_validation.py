"""Semantic validation: each check with a small failing definition and its exact one-line message."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfctl.actions import ActionPolicy
from wfctl.definitions import PORTS, STEP_TYPES, parse_definition, validate_data
from wfctl.errors import DefinitionError, ExpressionError

LOCAL = {"set_variables", "log", "sleep", "fail", "http_request"}
PLATFORM = {"customer", "integration", "rag"}


def step(slug, step_type="action", config=None, next_steps=None, **extra):
    return {"stepSlug": slug, "name": slug, "stepType": step_type, "config": config or {},
            "nextSteps": next_steps or {}, **extra}


def log(slug, next_steps=None, **params):
    return step(slug, "action", {"type": "log", "parameters": {"message": "hi", **params}}, next_steps)


def validate(steps, stubbed=None, policy=None, **top):
    return validate_data({"name": "t", "steps": steps, **top}, "flows/orders.json", "orders",
                         known_actions=LOCAL, platform_actions=PLATFORM, stubbed=stubbed, policy=policy)


def errors(steps, **kw):
    return [str(i) for i in validate(steps, **kw).errors]


def warnings(steps, **kw):
    report = validate(steps, **kw)
    assert report.errors == []
    return [str(i) for i in report.warnings]


def test_a_clean_definition_has_no_issues():
    report = validate([
        step("start", "start", next_steps={"success": "check"}),
        step("check", "condition", {"expression": "input.total > config.threshold"},
             {"true": "each", "false": "noop"}),
        step("each", "loop", {"items": "{{input.lines}}", "itemVariable": "line", "maxIterations": 50},
             {"loop": "note", "done": "done"}),
        log("note", {"success": "each"}, message="{{line.sku}} x {{loop.index}}"),
        step("done", "output", {"mapping": {"total": "{{input.total}}", "at": "{{now}}"}}),
    ], config={"variables": {"threshold": 10}})
    assert report.errors == [] and report.warnings == []
    assert report.definition_id == "orders" and report.definition.step("each").step_type == "loop"


def test_duplicate_slugs():
    assert errors([log("a", {"success": "noop"}), log("a")]) == [
        "orders.json: step 'a': stepSlug: 'a' is used by 2 steps; step slugs must be unique"]


@pytest.mark.parametrize("slug", ["Check", "_check", "-x", "a b", "é"])
def test_slug_pattern(slug):
    assert errors([log(slug)]) == [
        f"orders.json: step '{slug}': stepSlug: must match ^[a-z0-9][a-z0-9_-]*$ "
        "(lowercase letters, digits, '_' and '-')"]


def test_unknown_step_type():
    assert errors([step("a", "actoin")]) == [
        "orders.json: step 'a': stepType: unknown step type 'actoin' "
        "(expected one of start, trigger, llm, condition, action, loop, output); did you mean 'action'?"]


def test_port_not_valid_for_step_type():
    assert errors([step("check_total", "condition", {"expression": "true"},
                        {"true": "noop", "false": "noop", "maybe": "noop"})]) == [
        "orders.json: step 'check_total': nextSteps port 'maybe' is not valid for a condition step "
        "(expected true, false)"]


@pytest.mark.parametrize("port", ["default", "failure", "error"])
def test_failure_ports_tale_never_emits(port):
    assert errors([log("a", {"success": "noop", port: "noop"})]) == [
        f"orders.json: step 'a': nextSteps port '{port}' is not valid for an action step (expected success); "
        "tale never emits this port; the step's failure fails the run"]


def test_only_an_invalid_port_also_warns_that_the_real_one_is_missing():
    report = validate([log("a", {"default": "noop"})])
    assert [str(i) for i in report.warnings] == [
        "orders.json: step 'a': nextSteps has no 'success' port; the run fails when the step emits it"]


def test_target_must_exist_or_be_noop():
    assert errors([step("s", "start", next_steps={"success": "chek"}), log("check", {"success": "noop"})]) == [
        "orders.json: step 's': nextSteps port 'success' points to unknown step 'chek'; did you mean 'check'?"]


def test_missing_port_of_a_condition_is_a_warning():
    assert warnings([step("c", "condition", {"expression": "true"}, {"true": "noop"})]) == [
        "orders.json: step 'c': nextSteps has no 'false' port; the run fails when the step emits it"]


def test_a_definition_that_can_only_loop_forever():
    assert errors([step("start", "start", next_steps={"success": "a"}), log("a", {"success": "b"}),
                   log("b", {"success": "a"})]) == [
        "orders.json: steps: no path from the first step 'start' reaches an end "
        "(a 'noop' target or a step with empty nextSteps): every run loops forever or fails"]


def test_an_output_step_with_empty_next_steps_is_an_end():
    assert errors([step("start", "start", next_steps={"success": "out"}), step("out", "output")]) == []


def test_zero_steps_is_a_warning():
    assert warnings([]) == ["orders.json: steps: no steps: a run completes at once"]


@pytest.mark.parametrize("next_steps", [{"done": "noop"}, {}])
def test_loop_needs_a_loop_port(next_steps):
    assert errors([step("l", "loop", {"items": [1]}, next_steps)]) == [
        "orders.json: step 'l': nextSteps has no 'loop' port; a loop step needs one (the first step of its body)"]


def test_loop_body_must_return_to_the_loop():
    body = log("x", {"success": "noop"})
    assert errors([step("l", "loop", {"items": [1]}, {"loop": "x", "done": "noop"}), body]) == [
        "orders.json: step 'l': loop body starting at 'x' never returns to loop 'l'"]


def test_loop_body_returning_on_one_path_and_nested_loops_are_fine():
    assert errors([
        step("outer", "loop", {"items": "{{input.rows}}"}, {"loop": "inner", "done": "noop"}),
        step("inner", "loop", {"items": "{{loop.item}}"}, {"loop": "c", "done": "outer"}),
        step("c", "condition", {"expression": "loop.item > 0"}, {"true": "inner", "false": "noop"}),
    ]) == []


def test_loop_port_to_noop_ends_the_run():
    assert errors([step("l", "loop", {"items": [1]}, {"loop": "noop", "done": "noop"})]) == [
        "orders.json: step 'l': nextSteps port 'loop' targets 'noop': the run ends at the first item"]


@pytest.mark.parametrize("value, got", [(0, "number 0"), (-3, "number -3"), (2.5, "number 2.5"),
                                        (True, "boolean true"), ("ten", "string 'ten'")])
def test_loop_max_iterations(value, got):
    assert errors([step("l", "loop", {"items": [1], "maxIterations": value}, {"loop": "l", "done": "noop"})]) == [
        f"orders.json: step 'l': config.maxIterations: must be a positive integer, got {got}"]


def test_loop_max_iterations_may_be_a_template_and_items_are_required():
    templated = {"items": [1], "maxIterations": "{{input.n}}"}
    assert errors([step("l", "loop", templated, {"loop": "l", "done": "noop"})]) == []
    assert errors([step("l", "loop", {}, {"loop": "l", "done": "noop"})]) == [
        "orders.json: step 'l': config.items: is required: the array (or a template resolving to one) to loop over"]


def test_condition_expression_syntax_error():
    from wfctl.expressions import compile_expression

    with pytest.raises(ExpressionError) as info:
        compile_expression("input.total >")
    assert errors([step("c", "condition", {"expression": "input.total >"}, {"true": "noop", "false": "noop"})]) == [
        f"orders.json: step 'c': config.expression: {info.value}"]


def test_template_syntax_error_names_the_field():
    from wfctl.expressions import compile_template

    with pytest.raises(ExpressionError) as info:
        compile_template("Hello {{input.name +}}")
    assert errors([log("a", message="Hello {{input.name +}}")]) == [
        f"orders.json: step 'a': config.parameters.message: {info.value}"]


def test_action_type_required_and_known():
    assert errors([step("a", "action", {"parameters": {}})]) == [
        "orders.json: step 'a': config.type: is required: an action type (built-in or plugin), "
        "a module:function reference or a tale platform type"]
    assert errors([step("a", "action", {"type": 3})]) == [
        "orders.json: step 'a': config.type: must be a string, got number 3"]
    assert errors([step("a", "action", {"type": "set_variable"})]) == [
        "orders.json: step 'a': config.type: unknown action type 'set_variable'; did you mean 'set_variables'? "
        "(actions: fail, http_request, log, set_variables, sleep; tale platform types: customer, integration, rag; "
        "or a module:function reference)"]
    assert errors([step("a", "action", {"type": "pkg.mod:fn"}), step("b", "action", {"type": "rag"})],
                  policy=ActionPolicy(("pkg",))) == []
    assert errors([step("a", "action", {"type": "pkg:fn:x"})]) == [
        "orders.json: step 'a': config.type: invalid action reference 'pkg:fn:x': expected module:function"]


def test_default_action_names_come_from_wfctl_actions():
    report = validate_data({"name": "t", "steps": [step("a", "action", {"type": "set_variables"}),
                                                   step("b", "action", {"type": "customer"})]}, "x.json")
    assert report.errors == []


def test_platform_actions_without_stubs_warn_only_when_stubs_are_given():
    steps = [step("a", "action", {"type": "customer", "parameters": {"operation": "query"}}, {"success": "b"}),
             step("b", "action", {"type": "rag", "parameters": {"operation": "upload"}}, {"success": "c"}),
             step("c", "action", {"type": "integration"})]
    assert warnings(steps) == []
    assert warnings(steps, stubbed={("customer", "query"), ("integration", None)}) == [
        "orders.json: step 'b': config.type: tale platform action 'rag' operation 'upload' has no stub; "
        "the step fails when it runs"]
    assert warnings(steps, stubbed={("customer", "create")}) == [
        "orders.json: step 'a': config.type: tale platform action 'customer' operation 'query' has no stub; "
        "the step fails when it runs",
        "orders.json: step 'b': config.type: tale platform action 'rag' operation 'upload' has no stub; "
        "the step fails when it runs",
        "orders.json: step 'c': config.type: tale platform action 'integration' has no stub; "
        "the step fails when it runs",
    ]


def test_step_retry_policy_must_be_non_negative():
    assert errors([step("a", "action", {"type": "log", "retryPolicy": {"maxRetries": -1, "backoffMs": -5}})]) == [
        "orders.json: step 'a': config.retryPolicy.maxRetries: must be at least 0, got number -1",
        "orders.json: step 'a': config.retryPolicy.backoffMs: must be at least 0, got number -5",
    ]


def test_bare_names_warn_with_the_likeliest_fix():
    report = validate([
        step("start", "start", next_steps={"success": "set"}),
        step("set", "action", {"type": "set_variables", "parameters": {"variables": [
            {"name": "page", "value": 1}, {"name": "cursor", "value": "{{page + 1}}"},
            {"name": "token", "value": "t", "secure": True}]}}, {"success": "use"}),
        log("use", message="{{backoffHours}} {{cursor}} {{nope}} {{token}}"),
    ], config={"variables": {"backoffHours": 168, "page": 0}})
    assert report.errors == []
    assert [str(i) for i in report.warnings] == [
        "orders.json: step 'set': config.parameters.variables[1].value: '{{page}}' resolves to undefined; "
        "did you mean config.page or variables.page?",
        "orders.json: step 'use': config.parameters.message: '{{backoffHours}}' resolves to undefined; "
        "did you mean config.backoffHours?",
        "orders.json: step 'use': config.parameters.message: '{{cursor}}' resolves to undefined; "
        "did you mean variables.cursor?",
        "orders.json: step 'use': config.parameters.message: '{{nope}}' resolves to undefined; known names: config, "
        "executionId, input, lastOutput, loop, now, nowMs, organizationId, rootWfDefinitionId, secrets, steps, "
        "userId, variables, wfDefinitionId",
        "orders.json: step 'use': config.parameters.message: '{{token}}' resolves to undefined; "
        "did you mean secrets.token?",
    ]


def test_only_template_tags_in_a_string_are_checked():
    text = 'status == "closed" && daysAgo(metadata.resolved_at) > {{staleDays}}'
    assert warnings([step("a", "action", {"type": "rag", "parameters": {"filterExpression": text}})],
                    config={"variables": {"staleDays": 30}}) == [
        "orders.json: step 'a': config.parameters.filterExpression: '{{staleDays}}' resolves to undefined; "
        "did you mean config.staleDays?"]


def test_condition_names_and_template_only_names():
    assert warnings([step("c", "condition", {"expression": "hasThread == true && nowMs > 0"},
                          {"true": "noop", "false": "noop"})], config={"variables": {"hasThread": True}}) == [
        "orders.json: step 'c': config.expression: 'hasThread' resolves to undefined; did you mean config.hasThread?",
        "orders.json: step 'c': config.expression: 'nowMs' is only available in templates, "
        "not in condition expressions; write {{nowMs}}",
    ]
    assert warnings([step("c", "condition", {"expression": "{{nowMs}} > input.deadline"},
                          {"true": "noop", "false": "noop"})]) == []


def test_loop_item_and_index_variables_are_known_names():
    assert warnings([step("l", "loop", {"items": [1], "itemVariable": "row", "indexVariable": "i"},
                          {"loop": "a", "done": "noop"}),
                     log("a", {"success": "l"}, message="{{row.id}} {{i}}")]) == []


@pytest.mark.parametrize("config", [{}, {"expression": ""}])
def test_missing_condition_expression_is_a_warning(config):
    assert warnings([step("c", "condition", config, {"true": "noop", "false": "noop"})]) == [
        "orders.json: step 'c': config.expression: missing: the condition is always false"]


def test_step_named_noop_and_unreachable_steps():
    steps = [step("start", "start", next_steps={"success": "noop"}), log("orphan"), step("noop", "output")]
    assert warnings(steps) == [
        "orders.json: step 'orphan': unreachable: no path from the first step 'start' leads here",
        "orders.json: step 'noop': stepSlug: a step named 'noop' never runs: a nextSteps target 'noop' ends the run",
    ]


def test_output_mapping():
    assert warnings([step("o", "output", {"outputMapping": {"a": "{{input.a}}"}})]) == [
        "orders.json: step 'o': config.outputMapping: deprecated; use mapping"]
    assert errors([step("o", "output", {"mapping": "{{input}}"})]) == [
        "orders.json: step 'o': config.mapping: must be an object whose values are templates, got string '{{input}}'"]


# --- random input never escapes as anything but one-line issues -----------------------------------

SLUGS = ["start", "a", "b", "noop", "Bad Slug", "l"]
PORT_NAMES = sorted({p for ports in PORTS.values() for p in ports} | {"default", "failure", "maybe"})
STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["{{input.x}}", "{{ bad", "{{a +}}", "x {{y}} z {{{z}}}", "{{now}}", "a\nb", "}}{{", "{{}}",
                     "status == 'x' && f(y) > {{z}}", "module:fn", "set_variables", "customer"]),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=8,
)
CONFIG = st.dictionaries(
    st.sampled_from(["type", "expression", "items", "maxIterations", "itemVariable", "retryPolicy", "mapping",
                     "outputMapping", "parameters"]) | STRINGS,
    JSON, max_size=4)
STEP = st.dictionaries(
    st.sampled_from(["stepSlug", "name", "stepType", "order", "config", "nextSteps", "description"]) | STRINGS,
    st.one_of(st.sampled_from(SLUGS), st.sampled_from(STEP_TYPES), CONFIG, JSON,
              st.dictionaries(st.sampled_from(PORT_NAMES), st.sampled_from(SLUGS) | STRINGS, max_size=3)),
    max_size=7,
) | st.fixed_dictionaries(
    {"stepSlug": st.sampled_from(SLUGS), "name": STRINGS, "stepType": st.sampled_from(STEP_TYPES) | STRINGS,
     "config": CONFIG,
     "nextSteps": st.dictionaries(st.sampled_from(PORT_NAMES), st.sampled_from(SLUGS), max_size=3)},
    optional={"order": st.integers(-3, 3) | JSON},
)
DEFINITION = st.one_of(
    JSON,
    st.fixed_dictionaries({"name": STRINGS, "steps": st.lists(STEP, max_size=6)},
                          optional={"id": STRINGS | JSON, "config": JSON | st.fixed_dictionaries(
                              {}, optional={"timeout": JSON, "retryPolicy": JSON, "variables": JSON,
                                            "secrets": JSON})}),
    st.dictionaries(STRINGS, JSON, max_size=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DEFINITION)
def test_random_structures_only_produce_one_line_issues(data):
    report = validate_data(data, "dir/random.json", "random", stubbed={("customer", None)})
    for issue in report.errors + report.warnings:
        assert len(str(issue).splitlines()) == 1
        assert str(issue).startswith("random.json: ")
    try:
        parse_definition(data, "dir/random.json", "random")
    except DefinitionError as exc:
        assert len(str(exc).splitlines()) == 1
