"""``wfctl eval``: evaluate a JEXL expression (or a template) against variables."""

from __future__ import annotations

import math
from typing import Optional

import typer

from .output import print_json


def eval_command(
    expression: str = typer.Argument(..., help="A JEXL expression, e.g. 'input.total > 100 && config.enabled'."),
    vars: Optional[str] = typer.Option(
        None, "--vars", help="Variables as inline JSON, or @path to a JSON file (e.g. a run's variables)."
    ),
    template: bool = typer.Option(
        False, "--template", help="Treat EXPRESSION as a {{ }} template string and render it."
    ),
    truthy: bool = typer.Option(False, "--truthy", help="Print whether the result is truthy (as a condition sees it)."),
) -> None:
    """Evaluate EXPRESSION with tale's JEXL semantics and print the result as JSON.

    The result prints as JSON.stringify writes it: undefined, NaN and Infinity
    print as null, with a note on stderr ('|string' shows their text). Examples:

      wfctl eval "1 == '1'"                                   -> true

      wfctl eval "items|map('id')|join('-')" --vars '{"items": [{"id": 1}, {"id": 2}]}'   -> "1-2"

      wfctl eval "Total: {{input.n * 2}}" --template --vars '{"input": {"n": 21}}'   -> "Total: 42"
    """
    from ..expressions import UNDEFINED, compile_template, evaluate, to_js_string, to_json_value
    from ..expressions import truthy as js_truthy
    from ..jsoninput import json_argument

    variables = json_argument(vars, "--vars")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        from ..errors import InputError

        raise InputError("--vars: expected a JSON object")
    value = compile_template(expression).render(variables) if template else evaluate(expression, variables)
    if truthy:
        print_json(js_truthy(value))
        return
    if value is UNDEFINED:
        typer.echo("note: the result is undefined", err=True)
    elif isinstance(value, float) and not math.isfinite(value):
        typer.echo(f"note: the result is {to_js_string(value)}, which JSON writes as null", err=True)
    print_json(to_json_value(value))
