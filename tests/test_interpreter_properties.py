"""Property-based: random definitions, inputs and expressions never crash the interpreter.

The only failures allowed are wfctl's own errors (a definition rejected at parse time, a run
ending `failed` with a message); no other exception escapes, every state stays JSON.
"""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfctl.errors import WfctlError
from wfctl.interpreter import Interpreter
from wfctl.runner import run_to_end
from wfctl.secrets import SecretBox

STEP_TYPES = ["start", "trigger", "llm", "condition", "action", "loop", "output", "bogus"]
PORTS = ["success", "true", "false", "loop", "done", "default", "failure"]
EXPRESSIONS = [
    "input.a > 1", "input.a == '1'", "steps.s0.output.data", "loop.item", "input.list|length > 2",
    "variables.x || input.b", "input.a / 0", "input.list[.a == 1]", "1 +", "((", "input.a|upper",
    "config.k ? 'y' : 'n'", "input['a'] in input.list", "undefinedThing.x.y", "input.a // 0 ^ 2",
]
TEMPLATES = ["{{input.a}}", "x {{input.a}} y", "{{input.list}}", "{{missing}}", "{{input.a|upper}}",
             "{{ 1 + }}", "plain", "{{loop.item}}", "{{{input.b}}}"]
ACTIONS = ["set_variables", "log", "fail", "sleep", "http_request", "rag", "nope", 5, None]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@st.composite
def step_configs(draw, step_type):
    if step_type == "condition":
        return {"expression": draw(st.sampled_from(EXPRESSIONS + TEMPLATES + [None, 3]))}
    if step_type == "loop":
        cfg = {"items": draw(st.sampled_from(["{{input.list}}", "{{input.a}}", [1, 2], [], "{{missing}}", 7]))}
        if draw(st.booleans()):
            cfg["continueOnError"] = True
        if draw(st.booleans()):
            cfg["maxIterations"] = draw(st.sampled_from([1, 2, 0, -1, "3", None]))
        if draw(st.booleans()):
            cfg["itemVariable"] = draw(st.sampled_from(["it", "input", "loop", ""]))
        return cfg
    if step_type == "action":
        action = draw(st.sampled_from(ACTIONS))
        params = {"message": draw(st.sampled_from(TEMPLATES)), "operation": "x",
                  "variables": draw(st.sampled_from([
                      [{"name": "x", "value": draw(st.sampled_from(TEMPLATES))}],
                      [{"name": "s", "value": "{{input.a}}", "secure": True}], "oops", [{"value": 1}]])),
                  "seconds": draw(st.sampled_from([0, 0.01, -5, "x"])), "url": "http://127.0.0.1:9/none",
                  "timeout": 0.2}
        cfg = {"type": action, "parameters": params}
        if draw(st.booleans()):
            cfg["retryPolicy"] = {"maxRetries": draw(st.integers(0, 2)), "backoffMs": 0}
        return cfg
    if step_type == "output":
        return {"mapping": {"v": draw(st.sampled_from(TEMPLATES))}}
    if step_type == "llm":
        return {"userPrompt": draw(st.sampled_from(TEMPLATES)), "outputFormat": draw(st.sampled_from(["text", "json"]))}
    return draw(st.sampled_from([{}, {"type": "manual"}, {"x": "{{input.a}}"}]))


@st.composite
def definitions(draw):
    count = draw(st.integers(0, 7))
    slugs = [f"s{i}" for i in range(count)]
    steps = []
    for slug in slugs:
        step_type = draw(st.sampled_from(STEP_TYPES))
        ports = draw(st.lists(st.sampled_from(PORTS), max_size=3, unique=True))
        targets = st.sampled_from(slugs + ["noop", "ghost"])
        steps.append({"stepSlug": slug, "name": slug, "stepType": step_type,
                      "config": draw(step_configs(step_type)),
                      "nextSteps": {port: draw(targets) for port in ports}})
    data = {"name": "random", "steps": steps}
    if draw(st.booleans()):
        data["config"] = {"retryPolicy": {"maxRetries": draw(st.integers(0, 2)), "backoffMs": 0},
                          "variables": {"k": draw(json_values)}}
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=definitions(), input=json_values, seed=st.integers(0, 2**16))
def test_random_definitions_only_fail_with_wfctl_errors(data, input, seed):
    from wfctl.definitions import parse_definition

    try:
        defn = parse_definition(data, source="random.json", default_id="random")
    except WfctlError as exc:
        assert "\n" not in str(exc)
        return
    interp = Interpreter(env={}, rng=random.Random(seed), secret_box=SecretBox(SecretBox.generate_key()))
    result = run_to_end(defn, {"a": input, "list": [{"a": 1}, input], "b": "x"}, interp,
                        sleep=lambda s: None, max_steps=60)
    assert result.state.status in ("completed", "failed")
    if result.state.status == "failed":
        assert result.state.error and "\n" not in result.state.error
    json.dumps(result.state.to_dict())
