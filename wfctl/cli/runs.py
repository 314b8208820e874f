"""Run commands over the durable engine: start, status, list, cancel, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import (ALLOW_MODULE_HELP, confirm, console, engine, escape, fitted_table, print_json,
                     print_json_streamed, short_json, short_time, status_markup)

EXIT_BY_STATUS = {"completed": 0, "failed": 1, "canceled": 3}
EXIT_TIMEOUT = 4
#: Steps `start --wait` shows (the last ones; `wfctl status ID --all-steps` shows every step).
WAIT_STEPS = 50
STATUSES = ("pending", "running", "completed", "failed", "canceled")
UNFINISHED_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("completed", "failed", "canceled")
JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _statuses(values: Optional[List[str]], allowed: tuple[str, ...] = STATUSES, why: str = "") -> list[str] | None:
    from ..errors import InputError

    for value in values or ():
        if value not in allowed:
            problem = f"'{value}'{why}" if value in STATUSES else f"unknown status '{value}'"
            raise InputError(f"--status: {problem} (expected one of {', '.join(allowed)})")
    return list(dict.fromkeys(values)) if values else None


def start_command(
    ctx: typer.Context,
    definition: str = typer.Argument(..., help="A registered definition id, or a definition file (applied on the fly)."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Run input as inline JSON (an object), or @path."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="Read the run input from a JSON file."),
    idempotency_key: Optional[str] = typer.Option(
        None, "--idempotency-key", help="Start at most one run per key: a repeated key returns the existing run."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run to its end (runs this run alone here if no worker holds its shard)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="With --wait: give up after this many seconds (exit 4)."),
    stubs: Optional[Path] = typer.Option(
        None, "--stubs", help="With --wait: a stubs file answering tale platform actions (rag, customer, ...)."),
    replace: bool = typer.Option(
        False, "--replace", help="DEFINITION is a file whose id is registered with other content: make the file its current version (as `defs apply` does) and start it."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    allow_module: Optional[List[str]] = typer.Option(None, "--allow-module", help=ALLOW_MODULE_HELP),
) -> None:
    """Start a run of DEFINITION: one transaction on one shard.

    A definition file is registered when its id is new and reused when its content is a stored version; a file whose id is registered with other content is refused unless --replace (or `defs apply` first). The run stays on the definition version it started on.

    Prints the execution id (and, with --wait, the run's status and its last 50 steps; `wfctl status ID --all-steps` shows them all). Exit codes: 0 started (or, with --wait, completed), 1 failed, 3 canceled, 4 timed out, 2 bad input, 130 interrupted (Ctrl-C or SIGTERM: the shard's lease is released, the run goes on under a worker).
    """
    from ..errors import InputError
    from ..jsoninput import json_argument, load_json_file

    if input is not None and input_file is not None:
        raise InputError("give either --input or --input-file, not both")
    if timeout is not None and not wait:
        raise InputError("--timeout goes with --wait")
    if timeout is not None:
        from ..durations import check_seconds

        check_seconds(timeout, "--timeout")  # before the run is started
    what = f"--input-file {input_file}" if input_file else "--input"
    payload = load_json_file(input_file, what) if input_file else json_argument(input, what)
    if payload is not None and not isinstance(payload, dict):
        raise InputError(f"{what}: the run input must be a JSON object, got {JSON_TYPES.get(type(payload), 'null')}")
    if stubs is not None and not wait:
        raise InputError("--stubs goes with --wait (workers take their own --stubs)")
    eng = engine(ctx, stubs, allow_module, create=True)
    started = eng.start(definition, payload, idempotency_key, replace=replace)
    result = {"execution_id": started.execution_id, "shard": started.shard, "created": started.created}
    if not wait:
        if json_out:
            print_json(result)
        else:
            note = "" if started.created else " (existing run for this idempotency key)"
            console().print(f"{started.execution_id}{note}", markup=False)
        return
    import signal

    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the shard's lease is released, exit 130
    status = {**eng.wait(started.execution_id, timeout, steps=WAIT_STEPS), "created": started.created}
    if json_out:
        print_json(status)
    else:
        _render_status(status)
    raise typer.Exit(EXIT_BY_STATUS.get(status["status"], EXIT_TIMEOUT))


def status_command(
    ctx: typer.Context,
    execution_id: str = typer.Argument(..., help="The execution id `wfctl start` printed."),
    steps: int = typer.Option(50, "--steps", min=1, help="Show the last N steps."),
    all_steps: bool = typer.Option(False, "--all-steps", help="Show every step (with --json: written as read)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run, steps_total and the steps as JSON."),
) -> None:
    """Show a run and its journal: each step's slug, type, status, attempts, port, output, error and timings.

    Shows the last --steps steps (default 50) and how many there are; --all-steps shows them all.
    """
    status = engine(ctx).status(execution_id, None if all_steps else steps, stream=json_out)
    if json_out:
        print_json_streamed(status, "steps")
    else:
        _render_status(status)


def list_command(
    ctx: typer.Context,
    status: Optional[List[str]] = typer.Option(None, "--status", "-s", help="Only runs with this status (repeatable)."),
    definition: Optional[str] = typer.Option(None, "--definition", "-d", help="Only runs of this definition."),
    shard: Optional[int] = typer.Option(None, "--shard", help="Only runs on this shard."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many runs."),
    json_out: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """List runs, newest first, across all shards."""
    runs = engine(ctx).list(_statuses(status), definition, shard, limit)
    if json_out:
        print_json(runs)
        return
    _render_list(runs)


def cancel_command(
    ctx: typer.Context,
    execution_ids: Optional[List[str]] = typer.Argument(None, help="Runs to cancel."),
    definition: Optional[str] = typer.Option(None, "--definition", "-d", help="Cancel the unfinished runs of this definition."),
    status: Optional[List[str]] = typer.Option(None, "--status", "-s", help="With --definition: only these statuses (pending, running)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation of a bulk cancel."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Cancel runs: a canceled run starts no new step; a step in flight is recorded but not followed.

    Give execution ids, or --definition (with --status) for a bulk cancel, which shows the count and asks first unless --yes.
    """
    from ..errors import InputError

    eng = engine(ctx)
    if execution_ids and definition:
        raise InputError("give execution ids or --definition, not both")
    if execution_ids:
        canceled = eng.cancel(execution_ids)
        result = {"canceled": canceled, "count": len(canceled)}
    elif definition:
        statuses = _statuses(status, UNFINISHED_STATUSES, ": only unfinished runs can be canceled") or list(
            UNFINISHED_STATUSES)
        count = eng.count(statuses, definition)
        if count:
            confirm(f"Cancel {count} run(s) of '{definition}'?", yes)
        result = {"count": eng.cancel_matching(definition, statuses) if count else 0}
    else:
        raise InputError("give execution ids to cancel, or --definition")
    if json_out:
        print_json(result)
    else:
        console().print(f"canceled {result['count']} run(s)")


def cleanup_command(
    ctx: typer.Context,
    execution_ids: Optional[List[str]] = typer.Argument(None, help="Finished runs to delete."),
    older_than: Optional[str] = typer.Option(None, "--older-than", help="Delete runs finished longer ago than this (e.g. 7d, 12h)."),
    status: Optional[List[str]] = typer.Option(None, "--status", "-s", help="With --older-than: only these statuses (completed, failed, canceled)."),
    force: bool = typer.Option(False, "--force", help="Cancel unfinished runs first instead of refusing them."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation of a bulk cleanup."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Delete finished runs and their journals, in batches.

    Give execution ids (an unfinished run is refused unless --force), or --older-than for a bulk cleanup, which shows the count and asks first unless --yes.
    """
    from ..durations import parse_duration
    from ..errors import InputError

    eng = engine(ctx)
    if execution_ids and older_than:
        raise InputError("give execution ids or --older-than, not both")
    if execution_ids:
        deleted = eng.cleanup(execution_ids, force=force)
    elif older_than:
        seconds = parse_duration(older_than, "--older-than")
        statuses = _statuses(status, FINISHED_STATUSES, ": only finished runs are cleaned up") or list(
            FINISHED_STATUSES)
        count = eng.count_finished_before(seconds, statuses)
        if count:
            confirm(f"Delete {count} finished run(s) older than {older_than}?", yes)
        deleted = eng.cleanup_older_than(seconds, statuses) if count else 0
    else:
        raise InputError("give execution ids to delete, or --older-than")
    if json_out:
        print_json({"deleted": deleted})
    else:
        console().print(f"deleted {deleted} run(s)")


def _interrupt(*_: object) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the lease's release short
    raise KeyboardInterrupt


def _render_status(status: dict) -> None:
    from rich.table import Table

    out = console()
    version = f" version {status['definition_version']}" if status.get("definition_version") else ""
    out.print(f"[bold]{status['execution_id']}[/bold]  {escape(status['definition_id'])}{version}  shard {status['shard']}  "
              f"{status_markup(status['status'])}")
    out.print(f"created {status['created_at']}  started {status['started_at'] or '-'}  "
              f"completed {status['completed_at'] or '-'}", markup=False)
    if status.get("slot_time"):
        out.print(f"schedule slot {status['slot_time']}  fire lag {status['fire_lag_ms']:.0f} ms", markup=False)
    table = Table(title_justify="left")
    for column in ("#", "step", "type", "status", "attempt", "port", "output / error"):
        table.add_column(column, overflow="fold")
    total = status.get("steps_total", len(status["steps"]))
    for n, row in enumerate(status["steps"], total - len(status["steps"]) + 1):
        output = row.get("output")
        data = output.get("data") if isinstance(output, dict) and "data" in output else output
        detail = row["error"] if row.get("error") else short_json(data, 50)
        table.add_row(str(n), row["slug"], row["type"] or "", row["status"], str(row["attempt"]), row["port"] or "",
                      escape(detail or ""))
    out.print(table)
    if len(status["steps"]) < total:
        out.print(f"{len(status['steps'])} of {total} steps shown; --all-steps for all", markup=False)
    if status.get("error"):
        out.print("error: " + status["error"], markup=False)
    out.print("output: " + short_json(status.get("output"), 400), markup=False)


def _render_list(runs: list[dict]) -> None:
    """The runs as a table that fits the terminal: an execution id is never wrapped; the columns that
    do not fit (least useful first) are left out and named under the table."""
    import time

    from ..durations import format_seconds

    def took(run):
        done, created = _epoch(run["completed_at"]), _epoch(run["created_at"])
        return "" if done is None or created is None else format_seconds(max(0.0, done - created))

    def detail(run):
        return escape(run["error"] if run["status"] == "failed" else short_json(run["output"], 60) or "")

    year = time.strftime("%Y", time.gmtime())
    slots = any(run.get("slot_time") for run in runs)  # slot columns only when a scheduled run is listed
    # (header, cell, priority: the lower ones are kept first when the terminal is narrow)
    columns = [("execution id", lambda r: r["execution_id"], 0), ("definition", lambda r: escape(r["definition_id"]), 2),
               ("version", lambda r: r.get("definition_version") or "-", 8), ("shard", lambda r: str(r["shard"]), 7),
               ("status", lambda r: status_markup(r["status"]), 1),
               ("created (UTC)", lambda r: short_time(r["created_at"], year), 3)]
    if slots:
        columns += [("slot (UTC)", lambda r: short_time(r.get("slot_time"), year), 6),
                    ("fire lag", lambda r: "" if r.get("fire_lag_ms") is None
                     else format_seconds(r["fire_lag_ms"] / 1000), 4)]
    columns += [("took", took, 5), ("output / error", detail, 6.5)]
    out = console()
    table, hidden = fitted_table([(h, p) for h, _, p in columns], [[cell(r) for _, cell, _ in columns] for r in runs],
                                 {"definition": 10, "output / error": 14}, out.width)
    out.print(table)
    note = f"; not shown at {out.width} columns: {', '.join(hidden)} (see --json)" if hidden and runs else ""
    out.print(f"{len(runs)} run(s){note}")


def _epoch(text: str | None) -> float | None:
    from datetime import datetime

    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
