"""The interpreter's run semantics, step by step (tale's rules plus wfctl's documented additions)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from helpers import definition, step
from wfctl.interpreter import RetryPolicy, effective_policy, retry_delay
from wfctl.runner import run_to_end


def run(defn, interp, input=None, clock=None):
    return run_to_end(defn, input, interp, execution_id="ex_1", sleep=(clock.sleep if clock else lambda s: None))


# -- first step, routing, ending ------------------------------------------------------------
def test_first_step_is_first_start_or_trigger_by_order(make_interpreter):
    defn = definition([
        step("a", "output", {"mapping": {"x": "a"}}, order=2),
        step("t", "trigger", {"type": "manual"}, {"success": "a"}, order=1),
        step("s", "start", {}, {"success": "a"}, order=3),
    ])
    state = make_interpreter().new_run(defn, {})
    assert state.current == "t"


def test_first_step_falls_back_to_steps_0(make_interpreter):
    defn = definition([step("b", "output", {"mapping": {"v": "b"}}), step("a", "output", {"mapping": {"v": "a"}})])
    result = run(defn, make_interpreter())
    assert result.path == ["b"] and result.state.output == {"v": "b"}


def test_zero_steps_completes_at_once(make_interpreter):
    result = run(definition([]), make_interpreter())
    assert result.state.status == "completed" and result.journal == [] and result.state.output is None


def test_noop_target_and_empty_next_steps_end_the_run(make_interpreter):
    defn = definition([step("s", "start", {}, {"success": "noop"}), step("noop", "output", {"mapping": {"x": 1}})])
    result = run(defn, make_interpreter())
    assert result.path == ["s"] and result.state.status == "completed" and result.state.output is None
    result = run(definition([step("s", "start")]), make_interpreter())
    assert result.path == ["s"] and result.state.status == "completed"


def test_missing_port_fails_with_available_ports(make_interpreter):
    defn = definition([
        step("c", "condition", {"expression": "false"}, {"true": "o"}),
        step("o", "output"),
    ])
    result = run(defn, make_interpreter())
    assert result.state.status == "failed"
    assert result.state.error == "No next step for port 'false' on step 'c'. Available ports: true"


def test_output_step_sets_run_output_and_final_variables(make_interpreter):
    defn = definition([
        step("s", "start", {}, {"success": "o"}),
        step("o", "output", {"mapping": {"id": "{{executionId}}", "def": "{{wfDefinitionId}}", "n": "{{input.n}}"}}),
    ], id="my-def")
    result = run(defn, make_interpreter(), {"n": 3})
    assert result.state.output == {"id": "ex_1", "def": "my-def", "n": 3}
    assert result.state.variables["variables"]["__workflowOutput"] == result.state.output


def test_non_object_input_becomes_empty_object(make_interpreter):
    defn = definition([step("o", "output", {"mapping": {"keys": "{{input|string}}"}})])
    assert run(defn, make_interpreter(), [1, 2]).state.output == {"keys": "{}"}


# -- state: layout, immutability, JSON -------------------------------------------------------
def test_state_layout_and_step_outputs(make_interpreter):
    defn = definition([
        step("s", "start", {}, {"success": "c"}),
        step("c", "condition", {"expression": "input.n > 1", "description": "big"}, {"true": "noop", "false": "noop"}),
    ], config={"variables": {"limit": 5}})
    result = run(defn, make_interpreter(), {"n": 2})
    v = result.state.variables
    assert set(v) >= {"input", "config", "variables", "steps", "lastOutput", "secrets", "executionId", "wfDefinitionId"}
    assert v["config"] == {"limit": 5}
    assert v["steps"]["s"]["output"] == {"type": "start", "data": "Workflow started"}
    cond = v["steps"]["c"]["output"]
    assert cond["type"] == "condition" and cond["data"]["passed"] is True
    assert cond["data"]["message"] == "Condition passed: Expression: input.n > 1"
    assert v["lastOutput"] == cond


def test_steps_never_mutate_the_previous_state_and_stay_json(make_interpreter):
    defn = definition([
        step("s", "start", {}, {"success": "set"}),
        step("set", "action", {"type": "set_variables", "parameters": {"variables": [{"name": "a", "value": 1}]}},
             {"success": "loop"}),
        step("loop", "loop", {"items": "{{input.items}}"}, {"loop": "body", "done": "o"}),
        step("body", "action", {"type": "set_variables", "parameters": {"variables": [
            {"name": "a", "value": "{{variables.a + loop.item}}"}]}}, {"success": "loop"}),
        step("o", "output", {"mapping": {"a": "{{variables.a}}"}}),
    ])
    interp = make_interpreter()
    state = interp.new_run(defn, {"items": [1, 2, 3]}, "ex")
    while not state.finished:
        snapshot = copy.deepcopy(state.variables)
        t = interp.step(defn, state)
        assert state.variables == snapshot, f"step {t.slug} mutated the previous state"
        json.dumps(t.state.to_dict())  # serializable after every step
        state = t.state
    assert state.output == {"a": 7}


# -- actions -----------------------------------------------------------------------------
def test_action_result_variables_are_merged_and_removed_from_output(make_interpreter):
    from wfctl.actions import default_registry

    registry = default_registry()
    registry.register("emit", lambda params, ctx: {"variables": {"got": params["v"]}, "kept": True})
    defn = definition([
        step("a", "action", {"type": "emit", "parameters": {"v": "{{input.v}}"}}, {"success": "o"}),
        step("o", "output", {"mapping": {"got": "{{variables.got}}"}}),
    ])
    result = run(defn, make_interpreter(registry=registry), {"v": [1]})
    assert result.state.variables["steps"]["a"]["output"] == {"type": "action", "data": {"kept": True}}
    assert result.state.output == {"got": [1]}


def test_set_variables_keeps_variables_in_output_and_sees_earlier_values(make_interpreter):
    defn = definition([step("a", "action", {"type": "set_variables", "parameters": {"variables": [
        {"name": "x", "value": 2}, {"name": "y", "value": "{{variables.x * 10}}"}]}})])
    result = run(defn, make_interpreter())
    assert result.state.variables["variables"] == {"x": 2, "y": 20}
    assert result.state.variables["steps"]["a"]["output"]["data"] == {"variables": {"x": 2, "y": 20}}


def test_unresolved_template_fails_the_step_naming_the_template(make_interpreter):
    defn = definition([step("a", "action", {"type": "log", "parameters": {"message": "{{backoffHours}}"}})])
    result = run(defn, make_interpreter())
    assert result.state.status == "failed"
    assert result.state.error.startswith("step 'a': ") and "backoffHours" in result.state.error


def test_unknown_action_type_fails_clearly(make_interpreter):
    result = run(definition([step("a", "action", {"type": "teleport"})]), make_interpreter())
    assert result.state.error == "step 'a': Unknown action type: teleport"


def test_platform_action_without_stub_names_the_stubs_option(make_interpreter):
    result = run(definition([step("a", "action", {"type": "rag", "parameters": {"operation": "x"}})]),
                 make_interpreter())
    assert "provided by the tale platform; supply a stub with --stubs FILE" in result.state.error


def test_purity_per_step_type(make_interpreter):
    defn = definition([
        step("s", "start"), step("t", "trigger"), step("c", "condition"), step("o", "output"),
        step("l", "loop", {"items": []}), step("sv", "action", {"type": "set_variables"}),
        step("h", "action", {"type": "http_request"}), step("m", "llm"), step("r", "action", {"type": "rag"}),
    ])
    interp = make_interpreter()
    pure = {s.slug: interp.is_pure(defn, s.slug) for s in defn.steps}
    assert pure == {"s": True, "t": True, "c": True, "o": True, "l": True, "sv": True,
                    "h": False, "m": False, "r": False}


def test_sleep_sets_wake_time_without_blocking(make_interpreter, clock):
    defn = definition([
        step("z", "action", {"type": "sleep", "parameters": {"seconds": 30}}, {"success": "o"}),
        step("o", "output", {"mapping": {"ok": True}}),
    ])
    interp = make_interpreter()
    t = interp.step(defn, interp.new_run(defn, {}, "ex"))
    assert t.wake_at == pytest.approx(clock.now + 30) and t.state.wake_at == t.wake_at
    assert t.state.current == "o" and clock.slept == []
    result = run(defn, make_interpreter(), clock=clock)
    assert result.state.status == "completed" and clock.slept == [pytest.approx(30)]


# -- retries ---------------------------------------------------------------------------------
def test_retry_delay_formula_with_seeded_jitter():
    policy = RetryPolicy(max_retries=3, backoff_ms=1000)
    rng, ref = random.Random(42), random.Random(42)
    delays = [retry_delay(policy, attempt, rng) for attempt in (1, 2, 3)]
    expected = [1.0 * 2 ** (a - 1) * (0.5 + ref.random()) for a in (1, 2, 3)]
    assert delays == pytest.approx(expected)
    assert all(0.5 * 2 ** i <= d < 1.5 * 2 ** i for i, d in enumerate(delays))
    assert retry_delay(policy, 4, rng) is None
    assert policy.max_attempts == 4
    assert retry_delay(RetryPolicy(0, 1000), 1, rng) is None


def test_step_policy_overrides_workflow_policy():
    assert effective_policy({"retryPolicy": {"maxRetries": 1, "backoffMs": 5}}, {"maxRetries": 9, "backoffMs": 1}) \
        == RetryPolicy(1, 5)
    assert effective_policy({}, {"maxRetries": 9, "backoffMs": 1}) == RetryPolicy(9, 1)
    assert effective_policy({}, None) == RetryPolicy(0, 0)


def test_failing_step_retries_then_succeeds(make_interpreter, clock):
    defn = definition([
        step("f", "action", {"type": "fail", "parameters": {"message": "flaky", "attempts": 2}}, {"success": "o"}),
        step("o", "output", {"mapping": {"ok": True}}),
    ], config={"retryPolicy": {"maxRetries": 2, "backoffMs": 1000}})
    result = run(defn, make_interpreter(), clock=clock)
    assert [(e.slug, e.attempt, e.error is not None) for e in result.journal] == [
        ("f", 1, True), ("f", 2, True), ("f", 3, False), ("o", 1, False)]
    assert result.state.status == "completed" and result.path == ["f", "o"]
    assert len(clock.slept) == 2 and 0.5 <= clock.slept[0] < 1.5 and 1.0 <= clock.slept[1] < 3.0


def test_failing_step_exhausts_retries_and_fails_the_run(make_interpreter, clock):
    defn = definition([step("f", "action", {"type": "fail", "parameters": {"message": "boom"},
                                            "retryPolicy": {"maxRetries": 1, "backoffMs": 10}})])
    result = run(defn, make_interpreter(), clock=clock)
    assert [e.attempt for e in result.journal] == [1, 2]
    assert result.state.status == "failed" and "boom" in result.state.error


# -- loops -----------------------------------------------------------------------------------
LOOP_DEF = [
    step("s", "start", {}, {"success": "outer"}),
    step("outer", "loop", {"items": "{{input.rows}}", "itemVariable": "row", "indexVariable": "r"},
         {"loop": "inner", "done": "o"}),
    step("inner", "loop", {"items": "{{row}}", "itemVariable": "cell"}, {"loop": "visit", "done": "outer"}),
    step("visit", "action", {"type": "set_variables", "parameters": {"variables": [
        {"name": "seen", "value": "{{(variables.seen || '') + r + ':' + cell + ':' + loop.parent.index + ' '}}"}]}},
         {"success": "inner"}),
    step("o", "output", {"mapping": {"seen": "{{variables.seen}}", "index": "{{loop.index}}"}}),
]


def test_nested_loops_restore_parent_and_expose_aliases(make_interpreter):
    result = run(definition(LOOP_DEF), make_interpreter(), {"rows": [["a", "b"], ["c"]]})
    assert result.state.status == "completed"
    assert result.state.output == {"seen": "0:a:0 0:b:0 1:c:1 ", "index": -1}
    assert result.path == ["s", "outer", "inner", "visit", "inner", "visit", "inner",
                           "outer", "inner", "visit", "inner", "outer", "o"]
    assert "row" not in result.state.variables and "cell" not in result.state.variables


def test_loop_max_iterations_fails_the_step(make_interpreter):
    defn = definition([step("l", "loop", {"items": "{{input.items}}", "maxIterations": 3}, {"loop": "l", "done": "noop"})])
    result = run(defn, make_interpreter(), {"items": [1, 2, 3, 4]})
    assert result.state.error == "step 'l': loop 'l': 4 items exceed maxIterations 3"


def test_loop_default_max_iterations_is_1000(make_interpreter):
    defn = definition([step("l", "loop", {"items": "{{input.items}}"}, {"loop": "l", "done": "noop"})])
    assert run(defn, make_interpreter(), {"items": list(range(1000))}).state.status == "completed"
    assert "exceed maxIterations 1000" in run(defn, make_interpreter(), {"items": list(range(1001))}).state.error


@pytest.mark.parametrize("items, message", [
    ([], "items resolved to an empty array"),
    ({"a": 1}, "items must resolve to an array, got dict"),
])
def test_loop_items_must_be_a_non_empty_array(make_interpreter, items, message):
    defn = definition([step("l", "loop", {"items": "{{input.items}}"}, {"loop": "l", "done": "noop"})])
    assert message in run(defn, make_interpreter(), {"items": items}).state.error


def test_continue_on_error_records_the_item_and_advances(make_interpreter):
    defn = definition([
        step("l", "loop", {"items": "{{input.items}}", "continueOnError": True}, {"loop": "check", "done": "o"}),
        step("check", "action", {"type": "set_variables", "parameters": {"variables": [
            {"name": "v", "value": "{{loop.item}}"}]}}, {"success": "gate"}),
        step("gate", "condition", {"expression": "loop.item > 0"}, {"true": "l", "false": "boom"}),
        step("boom", "action", {"type": "fail", "parameters": {"message": "bad item {{loop.item}}"}}, {"success": "l"}),
        step("o", "output", {"mapping": {"errors": "{{loop.state.errors}}", "last": "{{variables.v}}"}}),
    ], config={"retryPolicy": {"maxRetries": 1, "backoffMs": 0}})
    result = run(defn, make_interpreter(), {"items": [1, -2, 3]})
    assert result.state.status == "completed"
    assert result.state.output["last"] == 3
    [err] = result.state.output["errors"]
    assert err["index"] == 1 and err["step"] == "boom" and "bad item -2" in err["error"]
    assert [e.attempt for e in result.journal if e.slug == "boom"] == [1, 2]  # retried before recovering


def test_failure_outside_continue_on_error_loop_fails_the_run(make_interpreter):
    defn = definition([
        step("l", "loop", {"items": "{{input.items}}"}, {"loop": "boom", "done": "noop"}),
        step("boom", "action", {"type": "fail", "parameters": {"message": "stop"}}, {"success": "l"}),
    ])
    result = run(defn, make_interpreter(), {"items": [1, 2]})
    assert result.state.status == "failed" and "stop" in result.state.error


# -- secrets ---------------------------------------------------------------------------------
SECRET_DEF = [
    step("s", "start", {}, {"success": "call"}),
    step("call", "action", {"type": "log", "parameters": {"message": "token={{secrets.API_TOKEN}}"}},
         {"success": "o"}),
    step("o", "output", {"mapping": {"echo": "{{secrets.API_TOKEN}}", "len": "{{secrets.API_TOKEN|length}}"}}),
]


def test_secrets_resolved_encrypted_and_redacted(make_interpreter):
    from wfctl.secrets import SecretBox

    defn = definition(SECRET_DEF, config={"secrets": {"API_TOKEN": {"envVar": "MY_TOKEN"}}})
    logged = []
    interp = make_interpreter(env={"MY_TOKEN": "s3cr3t-value"}, secret_box=SecretBox(SecretBox.generate_key()),
                              log=logged.append)
    result = run(defn, interp)
    assert result.state.status == "completed"
    dumped = json.dumps(result.state.to_dict())
    assert "s3cr3t-value" not in dumped
    assert result.state.output == {"echo": "***", "len": 12}
    assert result.state.variables["steps"]["call"]["output"]["data"]["logged"] == "token=***"


def test_missing_secret_environment_variable_is_a_clear_error(make_interpreter):
    from wfctl.errors import SecretError

    defn = definition(SECRET_DEF, config={"secrets": {"API_TOKEN": {"envVar": "MY_TOKEN"}}})
    with pytest.raises(SecretError, match="MY_TOKEN"):
        make_interpreter(env={}).new_run(defn, {})


def test_secure_set_variables_go_to_encrypted_secrets(make_interpreter):
    defn = definition([
        step("a", "action", {"type": "set_variables", "parameters": {"variables": [
            {"name": "pin", "value": "{{input.pin}}", "secure": True}]}}, {"success": "o"}),
        step("o", "output", {"mapping": {"pin": "{{secrets.pin}}", "plain": "{{variables.pin || 'none'}}"}}),
    ])
    result = run(defn, make_interpreter(), {"pin": "4242-9"})
    assert result.state.output == {"pin": "***", "plain": "none"}
    assert "4242-9" not in json.dumps(result.state.variables["secrets"])


def test_time_transforms_use_the_interpreter_clock(make_interpreter, clock):
    day = 86_400
    defn = definition([step("c", "condition", {"expression": "input.at|daysAgo == 3"}, {"true": "o", "false": "noop"}),
                       step("o", "output", {"mapping": {"now": "{{nowMs}}", "h": "{{input.at|hoursAgo}}"}})])
    result = run(defn, make_interpreter(), {"at": clock.now - 3 * day - 60})
    assert result.path == ["c", "o"]
    assert result.state.output == {"now": int(clock.now * 1000), "h": 72}
