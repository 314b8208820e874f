import datetime as dt
import functools
import logging
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from wfctl.actions import (
    TALE_PLATFORM_ACTIONS,
    ActionContext,
    ActionPolicy,
    ActionRegistry,
    ActionResult,
    default_registry,
    fail,
    log,
    set_variables,
    sleep,
)
from wfctl.actions import registry as registry_module
from wfctl.errors import ActionError, StepError

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make_ctx(variables=None, attempt=1, lines=None):
    extra = {"log": lines.append} if lines is not None else {}
    return ActionContext(execution_id="e1", definition_id="d1", step_slug="s", attempt=attempt,
                         variables=variables if variables is not None else {"variables": {}, "config": {}},
                         now=lambda: NOW, **extra)


@pytest.fixture()
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "wfctl_test_plugin.py").write_text(textwrap.dedent("""
        import datetime

        def notify(params, ctx):
            return {"sent": params.get("to"), "step": ctx.step_slug}

        def crash(params, ctx):
            raise ValueError("bad input\\nsecond line")

        def not_json(params, ctx):
            return {"when": datetime.date(2026, 1, 1)}

        class Api:
            @staticmethod
            def ping(params, ctx):
                return "pong"

        NOT_CALLABLE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "wfctl_test_plugin"
    sys.modules.pop("wfctl_test_plugin", None)


# -- registry -----------------------------------------------------------------------------

def test_default_registry_builtins_and_purity():
    registry = default_registry(plugins=False)
    assert registry.names() == ["fail", "http_request", "log", "set_variables", "sleep"]
    assert [n for n in registry.names() if registry.is_pure(n)] == ["fail", "log", "set_variables", "sleep"]
    assert registry.get("set_variables").raw_params == ("variables",)
    assert not registry.is_pure("nope")
    assert default_registry(plugins=False) is not registry


def test_unknown_and_platform_types():
    registry = ActionRegistry()
    with pytest.raises(ActionError) as err:
        registry.get("frobnicate")
    assert str(err.value) == "Unknown action type: frobnicate"
    assert {"rag", "customer", "integration", "workflow_processing_records"} <= TALE_PLATFORM_ACTIONS
    assert "set_variables" not in TALE_PLATFORM_ACTIONS and len(TALE_PLATFORM_ACTIONS) == 11
    for name in TALE_PLATFORM_ACTIONS:
        with pytest.raises(ActionError, match=f"action type '{name}' is provided by the tale platform"):
            registry.get(name)


def test_register_and_guard_wraps_exceptions():
    registry = ActionRegistry()

    def boom(params, ctx):
        raise KeyError("missing\nthing")

    def step_error(params, ctx):
        raise StepError("explicit")

    registry.register("boom", boom)
    registry.register("step_error", step_error)
    registry.register("tuple", lambda params, ctx: (1, {"a": (2,)}), pure=True)
    with pytest.raises(ActionError) as err:
        registry.get("boom").fn({}, make_ctx())
    assert str(err.value) == "action 'boom' failed: KeyError: 'missing\\nthing'"
    with pytest.raises(StepError, match="^explicit$"):
        registry.get("step_error").fn({}, make_ctx())
    assert registry.get("tuple").fn({}, make_ctx()) == [1, {"a": [2]}]
    with pytest.raises(ActionError, match="not callable"):
        registry.register("x", 5)


def test_guard_rejects_non_json_results_and_bad_secrets(plugin_module):
    registry = ActionRegistry()
    with pytest.raises(ActionError, match="action 'wfctl_test_plugin:not_json' returned a non-JSON value of type date"):
        registry.get(f"{plugin_module}:not_json", policy=ActionPolicy((plugin_module,))).fn({}, make_ctx())
    registry.register("badsecret", lambda p, c: ActionResult({}, secrets={"a": 1}))
    with pytest.raises(ActionError, match="secrets that are not strings"):
        registry.get("badsecret").fn({}, make_ctx())
    registry.register("intkey", lambda p, c: {1: "a"})
    with pytest.raises(ActionError, match="key 1 is not a string"):
        registry.get("intkey").fn({}, make_ctx())


def test_module_function_references(plugin_module):
    registry = ActionRegistry()
    allowed = ActionPolicy((plugin_module, "no_such_mod_xyz"))
    get = functools.partial(registry.get, policy=allowed)
    spec = get(f"{plugin_module}:notify")
    assert not spec.pure and spec is registry.resolve(f"{plugin_module}:notify")
    assert spec.fn({"to": "ops"}, make_ctx()) == {"sent": "ops", "step": "s"}
    assert get(f"{plugin_module}:Api.ping").fn({}, make_ctx()) == "pong"
    with pytest.raises(ActionError) as err:
        get(f"{plugin_module}:crash").fn({}, make_ctx())
    assert str(err.value) == "action 'wfctl_test_plugin:crash' failed: ValueError: bad input second line"
    with pytest.raises(ActionError, match="cannot load action 'no_such_mod_xyz:f': ModuleNotFoundError"):
        get("no_such_mod_xyz:f")
    with pytest.raises(ActionError, match="AttributeError"):
        get(f"{plugin_module}:missing")
    with pytest.raises(ActionError, match="NOT_CALLABLE is not callable"):
        get(f"{plugin_module}:NOT_CALLABLE")
    with pytest.raises(ActionError, match="expected module:function"):
        registry.resolve("a b:c")


def test_entry_point_plugins(plugin_module, monkeypatch, caplog):
    eps = [
        EntryPoint("notify", f"{plugin_module}:notify", "wfctl.actions"),
        EntryPoint("broken", "no_such_mod_xyz:fn", "wfctl.actions"),
        EntryPoint("number", f"{plugin_module}:NOT_CALLABLE", "wfctl.actions"),
        EntryPoint("log", f"{plugin_module}:notify", "wfctl.actions"),
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: eps if group == "wfctl.actions" else [])
    with caplog.at_level(logging.WARNING, logger="wfctl.actions"):
        registry = default_registry()
    assert {"notify", "broken", "number"} <= set(registry.names())
    assert registry.get("notify").fn({"to": "x"}, make_ctx()) == {"sent": "x", "step": "s"}
    assert not registry.is_pure("notify")
    assert registry.get("log").fn({"message": "m"}, make_ctx(lines=[])) == {"logged": "m"}  # built-in kept
    with pytest.raises(ActionError) as err:
        registry.get("broken").fn({}, make_ctx())
    assert "action 'broken' is unavailable: plugin no_such_mod_xyz:fn failed to load: ModuleNotFoundError" in str(err.value)
    with pytest.raises(ActionError, match="is not callable"):
        registry.get("number").fn({}, make_ctx())
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and any("'log'" in w and "already taken" in w for w in warnings)


# -- set_variables --------------------------------------------------------------------------

def test_set_variables_renders_in_order():
    variables = {"config": {"currentPage": 1}, "variables": {"old": "kept"},
                 "steps": {"fetch": {"output": {"data": {"items": [1, 2, 3]}}}}}
    params = {"variables": [
        {"name": "currentPage", "value": "{{config.currentPage + 1}}"},
        {"name": "next", "value": "{{variables.currentPage * 10}}"},
        {"name": "label", "value": "page {{variables.next}} of {{variables.old}}"},
        {"name": "count", "value": "{{steps.fetch.output.data.items|length}}"},
        {"name": "obj", "value": {"n": "{{variables.currentPage}}", "list": ["{{variables.label}}"]}},
        {"name": "nothing"},
        {"name": "undefinedTag", "value": "{{steps.missing.output.data}}"},
        {"name": "literal", "value": 3.0},
    ]}
    result = set_variables(params, make_ctx(variables))
    assert isinstance(result, ActionResult) and result.secrets is None and result.wake_at is None
    assert result.data == {"variables": {
        "currentPage": 2, "next": 20, "label": "page 20 of kept", "count": 3,
        "obj": {"n": 2, "list": ["page 20 of kept"]}, "nothing": None, "undefinedTag": None, "literal": 3}}
    assert variables["variables"] == {"old": "kept"}  # the run's variables are not mutated


def test_set_variables_secure_values_go_to_secrets():
    variables = {"variables": {}, "secrets": {"API": "from-env"}, "input": {"token": "tok-123", "empty": ""}}
    params = {"variables": [
        {"name": "token", "value": "{{input.token}}", "secure": True},
        {"name": "header", "value": "Bearer {{secrets.token}} / {{secrets.API}}"},
        {"name": "skipped", "value": "{{input.empty}}", "secure": True},
    ]}
    result = set_variables(params, make_ctx(variables))
    assert result.secrets == {"token": "tok-123"}
    assert result.data == {"variables": {"header": "Bearer tok-123 / from-env"}}
    with pytest.raises(ActionError, match="secure variable 'n' must be a string, got number"):
        set_variables({"variables": [{"name": "n", "value": 5, "secure": True}]}, make_ctx())


@pytest.mark.parametrize("params, message", [
    ({}, "parameters.variables must be a list"),
    ({"variables": {"a": 1}}, "parameters.variables must be a list"),
    ({"variables": [{"value": 1}]}, r"variables\[0\] must be an object with a non-empty 'name'"),
    ({"variables": ["x"]}, r"variables\[0\]"),
])
def test_set_variables_bad_parameters(params, message):
    with pytest.raises(ActionError, match=message):
        set_variables(params, make_ctx())


def test_set_variables_template_errors_are_action_errors():
    registry = default_registry(plugins=False)
    with pytest.raises(ActionError, match="set_variables 'a'"):
        registry.get("set_variables").fn({"variables": [{"name": "a", "value": "x {{nope.deeper}} y"}]}, make_ctx())


# -- log, sleep, fail ------------------------------------------------------------------------

def test_log_action():
    lines = []
    assert log({"message": "hello", "level": "warning"}, make_ctx(lines=lines)) == {"logged": "hello"}
    assert log({"message": {"a": 1}}, make_ctx(lines=lines)) == {"logged": '{"a":1}'}
    assert lines == ["[warning] hello", '[info] {"a":1}']
    with pytest.raises(ActionError, match="level must be one of"):
        log({"message": "x", "level": "loud"}, make_ctx(lines=lines))


def test_log_action_default_logger(caplog):
    with caplog.at_level(logging.INFO, logger="wfctl.actions"):
        log({"message": "to the logger"}, ActionContext())
    assert "[info] to the logger" in caplog.text


def test_sleep_seconds_and_until():
    out = sleep({"seconds": 90}, make_ctx())
    assert out.wake_at == NOW + 90 and out.data == {"until": "2026-01-01T00:01:30.000Z"}
    assert sleep({"seconds": "1.5"}, make_ctx()).wake_at == NOW + 1.5
    assert sleep({"until": "2026-01-02T00:00:00Z"}, make_ctx()).wake_at == NOW + 86400
    assert sleep({"until": "2026-01-02T01:00:00+01:00"}, make_ctx()).wake_at == NOW + 86400
    assert sleep({"until": "2026-01-02T00:00:00"}, make_ctx()).wake_at == NOW + 86400  # naive = UTC
    assert sleep({"until": NOW + 5}, make_ctx()).wake_at == NOW + 5
    assert sleep({"until": (NOW + 5) * 1000}, make_ctx()).wake_at == NOW + 5  # milliseconds
    past = sleep({"until": "2020-01-01T00:00:00Z"}, make_ctx())
    assert past.wake_at < NOW and past.data == {"until": "2020-01-01T00:00:00.000Z"}


@pytest.mark.parametrize("params, message", [
    ({}, "exactly one of"),
    ({"seconds": 1, "until": NOW}, "exactly one of"),
    ({"seconds": -1}, "non-negative"),
    ({"seconds": True}, "non-negative"),
    ({"seconds": "soon"}, "non-negative"),
    ({"until": "tomorrow"}, "ISO-8601"),
    ({"until": [1]}, "ISO-8601"),
])
def test_sleep_bad_parameters(params, message):
    with pytest.raises(ActionError, match=message):
        sleep(params, make_ctx())


def test_sleep_does_not_block():
    started = dt.datetime.now()
    sleep({"seconds": 3600}, ActionContext())
    assert (dt.datetime.now() - started).total_seconds() < 1


def test_fail_action():
    with pytest.raises(ActionError, match="^fail action$"):
        fail({}, make_ctx(attempt=7))
    with pytest.raises(ActionError, match="^flaky$"):
        fail({"message": "flaky", "attempts": 2}, make_ctx(attempt=2))
    assert fail({"message": "flaky", "attempts": 2}, make_ctx(attempt=3)) == {"attempt": 3}
    with pytest.raises(ActionError, match="attempts must be an integer"):
        fail({"attempts": "2"}, make_ctx())
