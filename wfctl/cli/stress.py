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


def _fail_on_regression_option(lead: str):
    """``--fail-on-regression PCT`` of `run --compare` and `compare`."""
    return typer.Option(
        None, "--fail-on-regression", min=0, metavar="PCT",
        help=f"{lead} 98 when a metric is worse than the baseline by more than PCT percent, more than its noise "
             "floor and, when both results have repetitions, outside the baseline's range.")


def _metrics_option(lead: str):
    """``--metrics GLOB`` of `run --compare` and `compare`."""
    return typer.Option(
        None, "--metrics", metavar="GLOB",
        help=f"{lead} to compare (repeatable or comma-separated globs, 'all' for every metric). Default: "
             "throughput, start/e2e/fire-lag p50 and p99, failed, stuck, retries per 1,000 starts.")


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
    repeat: Optional[int] = typer.Option(
        None, "--repeat", min=1, max=100, metavar="N",
        help="Run each variant N times, interleaved (A B C, C B A, ...); report medians, spreads (min-max) and "
             "ratios per repetition. Default: the scenario's 'repeat' (1; --smoke: 1)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the full result as JSON here (docs/stress.md)."),
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report with charts here."),
    thresholds: Optional[List[str]] = typer.Option(
        None, "--threshold", "-t", help="A pass/fail check, e.g. 'start_latency.p99 < 50ms' (repeatable; replaces "
                                        "the scenario's threshold on the same metric). A breach exits 99."),
    baseline: Optional[Path] = typer.Option(None, "--compare", help="A baseline result (--json) to compare against."),
    fail_on_regression: Optional[float] = _fail_on_regression_option("With --compare: exit"),
    metrics: Optional[List[str]] = _metrics_option("With --compare: the metrics"),
    keep: bool = typer.Option(False, "--keep", help="Keep each variant's data directory (each printed, ready for WFCTL_DATA_DIR)."),
    live: bool = typer.Option(True, "--live/--no-live", help="Show live progress while running."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Where each variant's fresh deployment lives: 'sqlite' or 'postgresql' (schemas of "
                                "its own on the --dsn servers, dropped after unless --keep). Default: the scenario's "
                                "[engine] backend, else sqlite.", show_default=False),
    dsn: Optional[List[str]] = typer.Option(
        None, "--dsn", help="postgresql: a server (a libpq DSN without a password); repeat it to spread each variant's "
                            "shards round-robin over several (a comparison also runs its 'servers' counts). Default: "
                            "the scenario's [engine] dsn, else $WFCTL_DSN.", show_default=False),
    isolation: Optional[str] = typer.Option(
        None, "--isolation", help="postgresql: 'read committed' or 'serializable' for every transaction of the "
                                  "engine (a comparison runs only this level). Default: the scenario's, else read "
                                  "committed.", show_default=False),
    hot_rows: Optional[bool] = typer.Option(
        None, "--hot-rows/--no-hot-rows", help="Every start and completion also updates one shared row per shard (the "
                                               "contention tale's seed had); a comparison runs only this setting. "
                                               "Default: the scenario's.", show_default=False),
) -> None:
    """Run stress scenarios on fresh data directories with real worker, client and scheduler processes.

    Prints an end report (counts, latency percentiles, throughput, per-shard contention, cross-check against the
    shards, thresholds, the machine's CPU load, medians and spreads with --repeat); the last line says PASS or
    FAIL. Exit codes: 0 all thresholds passed, 99 a threshold breached, 98 a regression beyond
    --fail-on-regression, 1 a variant could not run (a process failed to start or died), 2 bad usage, scenario or
    baseline, 130 interrupted.
    """
    from ..stress.compare import (DEFAULT_TOLERANCE_PCT, check_metric_globs, comparisons_exit_code,
                                  compare_results, load_result, metric_globs)
    from ..stress.harness import run_stress
    from ..stress.live import LiveView
    from ..stress.report import render_report, render_verdict
    from ..stress.scenarios import load_scenarios
    from ..stress.thresholds import parse_thresholds
    from ..store.backend import backend_class

    checks = parse_thresholds(thresholds or [])  # an unknown metric stops here, before anything runs
    base = load_result(str(baseline)) if baseline is not None else None
    if fail_on_regression is not None and base is None:
        from ..errors import InputError

        raise InputError("--fail-on-regression needs --compare BASELINE.json")
    globs = metric_globs(metrics)
    check_metric_globs(globs, _metric_names(base) if base is not None else ())
    if backend is not None:
        backend_class(backend, "--backend")
    overrides = dict(shards=shards, route=route, clients=clients, rate=rate, duration=duration, total=total,
                     seed=seed, scale=scale, repeat=repeat, backend=backend, dsn=dsn or None, isolation=isolation,
                     hot_rows=hot_rows)
    scenarios = load_scenarios(target, overrides, smoke=smoke)
    out = console()
    keep_dir = _keep_dir() if keep else None
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: stop the processes, remove the data directories
    with LiveView(out, enabled=live) as view:
        result = run_stress(scenarios, checks, keep=keep_dir, progress=view.update, command=["wfctl", *sys.argv[1:]])
    tolerance = DEFAULT_TOLERANCE_PCT if fail_on_regression is None else fail_on_regression
    comparisons = compare_results(base, result, tolerance, globs) if base is not None else None
    if comparisons is not None:  # a breach (99) wins over a regression (98)
        result["exit_code"] = result["exit_code"] or comparisons_exit_code(comparisons, fail_on_regression)
    _write_outputs(result, json_path, html_path, out)  # first: a broken pipe must not lose the result
    if keep_dir is not None:  # before the report, whose last line is the verdict
        _print_kept(out, result)
    render_report(out, result, verdict=False)
    worse = _show_comparison(out, comparisons, baseline, fail_on_regression) if comparisons is not None else 0
    out.print()
    render_verdict(out, result, worse, fail_on_regression)  # the last line: PASS or FAIL
    raise typer.Exit(result["exit_code"])


@app.command("compare")
def compare_command(
    baseline: Path = typer.Argument(..., help="The baseline result (wfctl stress run --json)."),
    current: Path = typer.Argument(..., help="The result to compare with it."),
    fail_on_regression: Optional[float] = _fail_on_regression_option("Exit"),
    metrics: Optional[List[str]] = _metrics_option("The metrics"),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare two stress results per scenario and variant; flag changes beyond the noise.

    A metric regresses when it got worse by more than the tolerance (--fail-on-regression PCT, else 10 % and
    only marked 'worse'), more than its absolute floor (1 ms for latencies, 1/s for rates, 10 retries per
    1,000 starts) and, when both results have repetitions, when the ranges do not overlap. Exit 98 with
    --fail-on-regression when any metric regressed; the last line says PASS or FAIL.
    """
    from ..stress.compare import (DEFAULT_TOLERANCE_PCT, check_metric_globs, comparisons_exit_code,
                                  compare_results, load_result, metric_globs)

    base, cur = load_result(str(baseline)), load_result(str(current))
    globs = metric_globs(metrics)
    check_metric_globs(globs, [*_metric_names(base), *_metric_names(cur)])
    tolerance = DEFAULT_TOLERANCE_PCT if fail_on_regression is None else fail_on_regression
    comparisons = compare_results(base, cur, tolerance, globs)
    code = comparisons_exit_code(comparisons, fail_on_regression)
    if json_out:
        print_json([{"scenario": c.scenario, "variant": c.variant,
                     "metrics": [{**vars(row), "worse": row.regression,
                                  "regression": row.regression and fail_on_regression is not None}
                                 for row in c.rows]} for c in comparisons])
    else:
        out = console()
        worse = _show_comparison(out, comparisons, baseline, fail_on_regression, current)
        out.print()
        if code:
            out.print(f"[bold red]FAIL: {worse} metric(s) regressed beyond {tolerance:g}% and the noise floors "
                      f"(exit {code})[/bold red]")
        else:
            out.print(f"[bold green]PASS: no regression beyond {tolerance:g}% and the noise floors"
                      + ("" if fail_on_regression is not None else " (no --fail-on-regression: never fails)")
                      + "[/bold green]")
    raise typer.Exit(code)


def _metric_names(result: dict) -> list[str]:
    return [m for s in result.get("scenarios") or [] for v in s.get("variants") or [] for m in v.get("metrics") or {}]


def _show_comparison(out, comparisons, baseline: Path, fail_on_regression: Optional[float],
                     current: Optional[Path] = None) -> int:
    """Print each variant's comparison; the number of metrics that got worse beyond the noise."""
    from ..stress.compare import DEFAULT_TOLERANCE_PCT
    from ..stress.report import render_comparison

    tolerance = DEFAULT_TOLERANCE_PCT if fail_on_regression is None else fail_on_regression
    worse = 0
    for c in comparisons:
        out.print(f"[bold]{escape(c.scenario)}[/bold] / {escape(c.variant)}")
        worse += render_comparison(out, c.rows, str(baseline), str(current or "this run"), tolerance,
                                   fail_on_regression is not None)
    return worse


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


def _print_kept(out, result: dict) -> None:
    """The kept data directories, each ready for ``WFCTL_DATA_DIR`` (the folder above them is not one)."""
    kept = [(s["name"], v["name"], v["data_dir"]) for s in result["scenarios"] for v in s["variants"] if v.get("data_dir")]
    out.print("data directories kept (inspect one with WFCTL_DATA_DIR=DIR wfctl shards, wfctl list, ...):")
    for scenario, variant, path in kept:
        out.print(f"  {escape(scenario)} / {escape(variant)}: {escape(path)}", soft_wrap=True)


def _keep_dir() -> Path:
    import tempfile
    import time

    return Path(tempfile.gettempdir()) / time.strftime("wfctl-stress-%Y%m%d-%H%M%S")
