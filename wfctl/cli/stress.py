"""``wfctl stress``: the packaged stress scenarios (``list`` today; ``run`` comes with the harness)."""

from __future__ import annotations

import typer

from .output import console, escape, print_json

app = typer.Typer(help="Stress-test workflow contention with the packaged scenarios.", no_args_is_help=True)


@app.command("list")
def list_command(
    json_out: bool = typer.Option(False, "--json", help="Print the scenarios as JSON."),
) -> None:
    """List the packaged scenarios: what each runs and what it shows.

    Copy a scenario file (the 'file' field of --json) to make your own and run it by path.
    """
    from ..stress.scenarios import list_scenarios

    scenarios = list_scenarios()
    if json_out:
        print_json([_scenario_json(s) for s in scenarios])
        return
    from rich.table import Table

    table = Table(title_justify="left", show_lines=True)
    for column in ("scenario", "model", "shards", "description", "shows"):
        table.add_column(column, overflow="fold", no_wrap=column in ("scenario", "model", "shards"))
    for s in scenarios:
        table.add_row(s.name, s.workload.model, _shards(s), escape(s.description), escape(s.shows))
    console().print(table)


def _shards(scenario) -> str:
    if scenario.comparison is not None:
        return " vs ".join(str(n) for n in scenario.comparison.shards)
    return str(scenario.engine.shards)


def _scenario_json(scenario) -> dict:
    return {
        "name": scenario.name,
        "description": scenario.description,
        "shows": scenario.shows,
        "model": scenario.workload.model,
        "shards": scenario.engine.shards,
        "route": scenario.engine.route,
        "comparison": scenario.comparison.model_dump() if scenario.comparison is not None else None,
        "definitions": scenario.definition_count(),
        "thresholds": list(scenario.thresholds.defaults),
        "file": str(scenario.source),
    }
