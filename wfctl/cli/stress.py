"""``wfctl stress``: list, run and compare stress scenarios (the harness is :mod:`wfctl.stress`)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import List, Optional

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


@app.command("run")
def run_command(
    target: str = typer.Argument(..., metavar="NAME|FILE|all",
                                 help="A packaged scenario (see 'wfctl stress list'), a scenario file, or 'all'."),
    smoke: bool = typer.Option(False, "--smoke", help="Each scenario's small smoke preset (its file's smoke table, sized by work; 1-2.5 min for all on 2 cores)."),
    scale: Optional[float] = typer.Option(None, "--scale", help="Multiply the totals, rates, stage targets and slots."),
    shards: Optional[int] = typer.Option(None, "--shards", min=1, max=1000,
                                         help="Shards (a comparison runs 1 and this many)."),
    route: Optional[str] = typer.Option(None, "--route", help="Routing: definition or execution."),
    clients: Optional[int] = typer.Option(None, "--clients", min=1,
                                          help="Closed model: virtual users; open model: client processes."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Open model: starts per second after the ramp."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Open model: length of the arrivals, e.g. 30s, 2m."),
    total: Optional[int] = typer.Option(None, "--total", min=1, help="Closed model: starts in all."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the input generator."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON here (docs/stress.md)."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report with charts here."),
    thresholds: Optional[List[str]] = typer.Option(
        None, "--threshold", "-t", help="A pass/fail check, e.g. 'start_latency.p99 < 50ms' (repeatable; replaces "
                                        "the scenario's threshold on the same metric). A breach exits 99."),
    baseline: Optional[Path] = typer.Option(None, "--compare", help="A baseline result (--json) to compare against."),
    fail_on_regression: Optional[float] = typer.Option(
        None, "--fail-on-regression", min=0, metavar="PCT",
        help="With --compare: exit 98 when a metric is worse than the baseline by more than PCT percent."),
    keep: bool = typer.Option(False, "--keep", help="Keep each variant's data directory (paths are in the report)."),
    live: bool = typer.Option(True, "--live/--no-live", help="Show live progress while running."),
) -> None:
    """Run stress scenarios on fresh data directories with real worker, client and scheduler processes.

    Prints an end report (counts, latency percentiles, throughput, per-shard contention, cross-check against the
    shard files, thresholds). Exit codes: 0 all thresholds passed, 99 a threshold breached, 98 a regression beyond
    --fail-on-regression, 1 a variant could not run (a process failed to start or died), 2 bad usage, scenario or
    baseline, 130 interrupted.
    """
    from ..stress.compare import comparisons_exit_code, compare_results, load_result
    from ..stress.harness import run_stress
    from ..stress.live import LiveView
    from ..stress.report import render_report
    from ..stress.scenarios import load_scenarios
    from ..stress.thresholds import parse_thresholds

    checks = parse_thresholds(thresholds or [])  # an unknown metric stops here, before anything runs
    base = load_result(str(baseline)) if baseline is not None else None
    if fail_on_regression is not None and base is None:
        from ..errors import InputError

        raise InputError("--fail-on-regression needs --compare BASELINE.json")
    overrides = dict(shards=shards, route=route, clients=clients, rate=rate, duration=duration, total=total,
                     seed=seed, scale=scale)
    scenarios = load_scenarios(target, overrides, smoke=smoke)
    out = console()
    keep_dir = _keep_dir() if keep else None
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: stop the processes, remove the data directories
    with LiveView(out, enabled=live) as view:
        result = run_stress(scenarios, checks, keep=keep_dir, progress=view.update, command=["wfctl", *sys.argv[1:]])
    comparisons = compare_results(base, result, fail_on_regression or 0.0) if base is not None else None
    if comparisons is not None:  # a breach (99) wins over a regression (98)
        result["exit_code"] = result["exit_code"] or comparisons_exit_code(comparisons, fail_on_regression)
    _write_outputs(result, json_path, html_path, out)  # first: a broken pipe must not lose the result
    render_report(out, result)
    if comparisons is not None:
        _show_comparison(out, comparisons, baseline, fail_on_regression)
    if keep_dir is not None:
        out.print(f"data directories kept under {keep_dir}")
    raise typer.Exit(result["exit_code"])


@app.command("compare")
def compare_command(
    baseline: Path = typer.Argument(..., help="The baseline result (wfctl stress run --json)."),
    current: Path = typer.Argument(..., help="The result to compare with it."),
    fail_on_regression: Optional[float] = typer.Option(
        None, "--fail-on-regression", min=0, metavar="PCT",
        help="Exit 98 when a metric is worse than the baseline by more than PCT percent."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare two stress results metric by metric, per scenario and variant; flag regressions.

    Latencies, failures, stuck runs and lock retries are better lower; throughput and success better higher;
    the rest is informational. Exit 98 with --fail-on-regression when any metric regressed beyond PCT.
    """
    from ..stress.compare import comparisons_exit_code, compare_results, load_result

    comparisons = compare_results(load_result(str(baseline)), load_result(str(current)), fail_on_regression or 0.0)
    if json_out:
        print_json([{"scenario": c.scenario, "variant": c.variant,
                     "metrics": [vars(row) for row in c.rows]} for c in comparisons])
    else:
        _show_comparison(console(), comparisons, baseline, fail_on_regression, current)
    raise typer.Exit(comparisons_exit_code(comparisons, fail_on_regression))


def _show_comparison(out, comparisons, baseline: Path, fail_on_regression: Optional[float],
                     current: Optional[Path] = None) -> None:
    from ..stress.report import render_comparison

    for c in comparisons:
        out.print(f"[bold]{escape(c.scenario)}[/bold] / {escape(c.variant)}")
        render_comparison(out, c.rows, str(baseline), str(current or "this run"), fail_on_regression)


def _write_outputs(result: dict, json_path: Optional[Path], html_path: Optional[Path], out) -> None:
    import json

    from ..errors import InputError

    for path, render in ((json_path, lambda: json.dumps(result, indent=2)), (html_path, lambda: _html(result))):
        if path is None:
            continue
        try:
            path.write_text(render(), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
        out.print(f"wrote {escape(str(path))}")


def _html(result: dict) -> str:
    from ..stress.html import render_html

    return render_html(result)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _keep_dir() -> Path:
    import tempfile
    import time

    return Path(tempfile.gettempdir()) / time.strftime("wfctl-stress-%Y%m%d-%H%M%S")
