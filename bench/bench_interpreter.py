"""Interpreter benchmark: pure steps per second and expression evaluations per second, one core.

    python bench/bench_interpreter.py [--runs 20000] [--evals 200000] [--json]

Workloads:
- pure-3: start -> condition -> output (three pure steps per run), driven with Interpreter.step
  exactly as the engine drives it (new_run, then step until finished);
- pure-4-set: start -> set_variables (two templated values) -> condition -> output;
- expressions: a compiled condition evaluated against a run's variables (cached parse);
- templates: a mixed string template rendered against a run's variables.
Each figure is the best of 5 repetitions (less noise from the other core's load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time

from wfctl.definitions import parse_definition
from wfctl.expressions import compile_expression, compile_template
from wfctl.interpreter import Interpreter
from wfctl.secrets import SecretBox

PURE_3 = {
    "name": "pure-3",
    "steps": [
        {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "check"}},
        {"stepSlug": "check", "name": "Check", "stepType": "condition",
         "config": {"expression": "input.amount > 100 && input.country == 'DE'"},
         "nextSteps": {"true": "done", "false": "done"}},
        {"stepSlug": "done", "name": "Done", "stepType": "output",
         "config": {"mapping": {"big": "{{steps.check.output.data.passed}}"}}},
    ],
}

PURE_4_SET = {
    "name": "pure-4-set",
    "steps": [
        {"stepSlug": "start", "name": "Start", "stepType": "start", "nextSteps": {"success": "prepare"}},
        {"stepSlug": "prepare", "name": "Prepare", "stepType": "action",
         "config": {"type": "set_variables", "parameters": {"variables": [
             {"name": "total", "value": "{{input.amount * 1.19}}"},
             {"name": "label", "value": "order {{input.id}} for {{input.country}}"}]}},
         "nextSteps": {"success": "check"}},
        {"stepSlug": "check", "name": "Check", "stepType": "condition",
         "config": {"expression": "variables.total > 100"}, "nextSteps": {"true": "done", "false": "done"}},
        {"stepSlug": "done", "name": "Done", "stepType": "output",
         "config": {"mapping": {"label": "{{variables.label}}"}}},
    ],
}


def steps_per_second(spec: dict, runs: int) -> tuple[float, int]:
    defn = parse_definition(spec, source=spec["name"], default_id=spec["name"])
    interp = Interpreter(env={}, rng=random.Random(1), secret_box=SecretBox(SecretBox.generate_key()))
    inputs = [{"amount": 50 + i % 100, "country": "DE" if i % 2 else "FR", "id": i} for i in range(runs)]
    steps = 0
    started = time.perf_counter()
    for i, payload in enumerate(inputs):
        state = interp.new_run(defn, payload, f"ex_{i}")
        while not state.finished:
            state = interp.step(defn, state).state
            steps += 1
    elapsed = time.perf_counter() - started
    return steps / elapsed, steps


def evals_per_second(count: int) -> float:
    expr = compile_expression("steps.fetch.output.data.count > 3 && input.flag")
    context = {"input": {"flag": True}, "steps": {"fetch": {"output": {"data": {"count": 5}}}}}
    started = time.perf_counter()
    for _ in range(count):
        expr.evaluate(context)
    return count / (time.perf_counter() - started)


def renders_per_second(count: int) -> float:
    template = compile_template("order {{input.id}} costs {{input.amount * 2}} in {{input.country|upper}}")
    context = {"input": {"id": 7, "amount": 21.5, "country": "de"}}
    started = time.perf_counter()
    for _ in range(count):
        template.render(context)
    return count / (time.perf_counter() - started)


def best(fn, *args, repeat=5):
    results = [fn(*args) for _ in range(repeat)]
    return max(results, key=lambda r: r[0] if isinstance(r, tuple) else r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000, help="runs per repetition (default 20000)")
    parser.add_argument("--evals", type=int, default=200_000, help="evaluations per repetition (default 200000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    pure3, _ = best(steps_per_second, PURE_3, args.runs)
    pure4, _ = best(steps_per_second, PURE_4_SET, args.runs)
    figures = {
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "pure_3_steps_per_s": round(pure3),
        "pure_3_runs_per_s": round(pure3 / 3),
        "pure_4_set_steps_per_s": round(pure4),
        "expression_evals_per_s": round(best(evals_per_second, args.evals)),
        "template_renders_per_s": round(best(renders_per_second, args.evals)),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value:>12,}" if isinstance(value, int) else f"{key:28} {value:>12}")


if __name__ == "__main__":
    main()
