"""``wfctl run``: run a definition file to its end in memory (no data directory)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import ALLOW_MODULE_HELP, console, print_json


def run_command(
    file: Path = typer.Argument(..., help="A workflow definition file (.json, .yaml, .yml)."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Run input as inline JSON, or @path."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="Read the run input from a JSON file."),
    stubs: Optional[Path] = typer.Option(
        None, "--stubs", help="A stubs file (YAML/JSON) giving results for tale platform actions (rag, customer, ...)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the run (status, output, steps) as JSON."),
    allow_module: Optional[List[str]] = typer.Option(None, "--allow-module", help=ALLOW_MODULE_HELP),
) -> None:
    """Run FILE to its end in this process and show every step it took.

    Nothing is stored: use this to author and debug definitions. Retries wait their backoff and sleep steps wait their time.

    Exit codes: 0 the run completed, 1 it failed, 2 invalid input or definition.
    """
    from ..actions import ActionPolicy, StubSet
    from ..definitions import load_definition
    from ..errors import InputError
    from ..interpreter import Interpreter
    from ..jsoninput import json_argument, load_json_file
    from ..runner import run_to_end

    if input is not None and input_file is not None:
        raise InputError("give either --input or --input-file, not both")
    payload = load_json_file(input_file, f"--input-file {input_file}") if input_file else json_argument(input, "--input")
    policy = ActionPolicy.resolve(allow_module or ())
    definition = load_definition(file, policy=policy)
    stub_set = None
    if stubs is not None:
        stub_set = StubSet.load(stubs)
    result = run_to_end(definition, payload, Interpreter(stubs=stub_set, policy=policy))
    if json_out:
        print_json(result.to_dict())
    else:
        _render(result, definition)
    raise typer.Exit(0 if result.state.status == "completed" else 1)


def _render(result, definition) -> None:
    from rich.table import Table

    from ..store.payload import dumps

    out = console()
    table = Table(title=f"{definition.id} ({definition.name})", title_justify="left")
    for column in ("#", "step", "type", "attempt", "port", "ms", "result"):
        table.add_column(column, justify="right" if column in ("#", "attempt", "ms") else "left")
    for n, entry in enumerate(result.journal, 1):
        row = entry.to_dict()
        outcome = f"[red]{entry.error}[/red]" if entry.error else "ok"
        if entry.retry_in is not None:
            outcome += f" [yellow](retry in {entry.retry_in:.2f}s)[/yellow]"
        table.add_row(str(n), entry.slug, entry.step_type or "", str(entry.attempt), entry.port or "",
                      f"{row['duration_ms']:.2f}", outcome)
    out.print(table)
    state = result.state
    colour = "green" if state.status == "completed" else "red"
    out.print(f"status: [{colour}]{state.status}[/{colour}]")
    if state.error:
        out.print(f"error: {state.error}", markup=False)
    out.print("output: " + dumps(state.output, ensure_ascii=False, default=str), markup=False)
