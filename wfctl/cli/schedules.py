"""``wfctl scheduler`` and ``wfctl schedules``: fire scheduled definitions, inspect and steer their schedules."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Optional

import typer

from .output import console, engine, escape, print_json
from .worker import METRICS_HOST_HELP, METRICS_PORT_HELP

app = typer.Typer(help="Inspect and steer schedules (definitions with a 'scheduled' trigger).", no_args_is_help=True)


def scheduler_command(
    ctx: typer.Context,
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", min=0, max=65535, help=METRICS_PORT_HELP),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help=METRICS_HOST_HELP),
) -> None:
    """Run the scheduler loop alone: start the due slots of every scheduled definition.

    Any number of schedulers (and workers, which run one by default) may run at once: a slot starts at most one run. Ctrl-C or SIGTERM stops it.
    With --metrics-port, it serves its fire lag as Prometheus metrics (docs/engine.md).
    """
    import signal
    import threading

    from ..schedules.scheduler import Scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    eng = engine(ctx)
    endpoint = events = None
    if metrics_port is not None:
        from ..engine.metrics import MetricsEndpoint, SchedulerMetrics

        endpoint, events = MetricsEndpoint.start(metrics_host, metrics_port), SchedulerMetrics()
    try:
        Scheduler(eng, events=events).run(stop_event=stop)
    finally:
        if endpoint is not None:
            endpoint.close()


def _spec(eng, definition_id: str):
    from ..errors import InputError
    from ..schedules import schedule_of

    spec = schedule_of(eng.definition(definition_id))
    if spec is None:
        raise InputError(f"definition '{definition_id}' has no scheduled trigger")
    return spec


def _time(text: str, what: str) -> float:
    from datetime import datetime, timezone

    from ..errors import InputError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what}: expected an ISO 8601 time, got '{text}'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def schedule_rows(eng, now: float) -> list[dict]:
    """Every schedule as JSON: spec, next three fire times, last slot, paused, counters."""
    from ..errors import WfctlError
    from ..schedules import ScheduleState, next_slots, schedule_of, utc_iso

    rows = []
    for d in eng.definitions():
        try:
            spec = schedule_of(eng.definition(d["id"]))
        except WfctlError as exc:
            rows.append({"definition_id": d["id"], "error": str(exc)})
            continue
        if spec is None:
            continue
        raw = eng.schedule_state(spec.definition_id)
        state = ScheduleState.from_dict(raw) if raw is not None else ScheduleState()
        after = max(now, state.last_slot or now)
        rows.append({
            "definition_id": spec.definition_id, "schedule": spec.cron, "timezone": spec.timezone,
            "overlap": str(spec.overlap.value if hasattr(spec.overlap, "value") else spec.overlap),
            "next": [utc_iso(s) for s in next_slots(spec, after, 3)],
            "last_slot": None if state.last_slot is None else utc_iso(state.last_slot),
            "last_started": None if state.last_started is None else utc_iso(state.last_started),
            "paused": state.paused, "buffered": len(state.buffered),
            "counters": {"started": state.started, "skipped_overlap": state.skipped_overlap,
                         "skipped_catchup": state.skipped_catchup, "skipped_paused": state.skipped_paused,
                         "canceled": state.canceled},
        })
    return rows


@app.command("list")
def list_command(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the schedules: expression, time zone, overlap, next 3 fire times, last fired slot, paused, counters."""
    eng = engine(ctx)
    rows = schedule_rows(eng, eng.clock())
    if json_out:
        print_json(rows)
        return
    _render_schedules(rows, eng.clock())


def _render_schedules(rows: list[dict], now: float) -> None:
    """The schedules as a table that fits the terminal (columns that do not fit are named under it)."""
    import time

    from ..durations import format_seconds
    from .output import fitted_table, short_time

    year = time.strftime("%Y", time.gmtime(now))
    columns = [("definition", 0), ("schedule", 1), ("tz", 3), ("overlap", 4), ("next (UTC)", 2), ("then", 8),
               ("last slot (UTC)", 5), ("started", 6), ("skipped", 7), ("canceled", 9)]
    cells, errors = [], []
    for r in rows:
        if "error" in r:  # the whole message goes under the table
            cells.append([escape(r["definition_id"]), "[red]invalid[/red]"] + [""] * 8)
            errors.append(f"[red]{escape(r['definition_id'])}: {escape(r['error'])}[/red]")
            continue
        c = r["counters"]
        following = r["next"][0] if r["next"] else None
        if r["paused"]:
            upcoming = "paused"
        elif following is None:
            upcoming = "-"
        else:
            wait = datetime.fromisoformat(following.replace("Z", "+00:00")).timestamp() - now
            upcoming = f"{short_time(following, year)} (in {format_seconds(max(0.0, wait))})"
        then = "" if r["paused"] else ", ".join(short_time(t, year) for t in r["next"][1:])
        cells.append([escape(r["definition_id"]), escape(r["schedule"]), r["timezone"], r["overlap"], upcoming, then,
                      short_time(r["last_slot"], year) or "-",
                      str(c["started"]), str(c["skipped_overlap"] + c["skipped_catchup"] + c["skipped_paused"]),
                      str(c["canceled"])])
    out = console()
    table, hidden = fitted_table(columns, cells, {"definition": 10, "schedule": 9}, out.width)
    out.print(table)
    for line in errors:
        out.print(line)
    if hidden and rows:
        out.print(f"not shown at {out.width} columns: {', '.join(hidden)} (see --json)")


def _set_paused(ctx: typer.Context, definition_id: str, paused: bool) -> None:
    from ..schedules.scheduler import Scheduler

    eng = engine(ctx)
    _spec(eng, definition_id)
    Scheduler(eng).set_paused(definition_id, paused)
    typer.echo(f"{definition_id}: {'paused' if paused else 'resumed'}")


@app.command("pause")
def pause_command(ctx: typer.Context, definition: str = typer.Argument(..., help="The definition id.")) -> None:
    """Pause a schedule: due slots are skipped (counted) until it is resumed."""
    _set_paused(ctx, definition, True)


@app.command("resume")
def resume_command(ctx: typer.Context, definition: str = typer.Argument(..., help="The definition id.")) -> None:
    """Resume a paused schedule."""
    _set_paused(ctx, definition, False)


@app.command("trigger")
def trigger_command(ctx: typer.Context, definition: str = typer.Argument(..., help="The definition id."),
                    json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Fire a slot now under the schedule's overlap policy: start, skip (previous run unfinished), buffer, or cancel the previous run and start.

    Prints the execution id when a run started, else what happened and why.
    """
    from ..schedules.scheduler import Scheduler

    eng = engine(ctx)
    result = Scheduler(eng).trigger(_spec(eng, definition))
    started = result.started
    out = {"action": result.action, "reason": result.reason,
           "execution_id": started.execution_id if started else None,
           "shard": started.shard if started else None, "created": bool(started and started.created)}
    if json_out:
        print_json(out)
    elif started:
        typer.echo(started.execution_id)
    else:
        typer.echo(f"{result.action}: {result.reason}")


@app.command("backfill")
def backfill_command(
    ctx: typer.Context,
    definition: str = typer.Argument(..., help="The definition id."),
    start: str = typer.Option(..., "--from", help="First time (ISO 8601; UTC when no offset is given)."),
    end: str = typer.Option(..., "--to", help="Last time (ISO 8601), included."),
    max_slots: int = typer.Option(10_000, "--max-slots", min=1,
                                  help="Refuse (before starting anything) a range with more slots than this."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start the slots between --from and --to, at most once each (a slot that already ran is not doubled).

    Slots are started (and printed with --json) one at a time; a range with more than --max-slots slots is refused.
    """
    from ..schedules.scheduler import Scheduler

    a, b = _time(start, "--from"), _time(end, "--to")
    eng = engine(ctx)
    results = Scheduler(eng).backfill(_spec(eng, definition), a, b, max_slots)
    count = created = 0
    if json_out:
        sys.stdout.write("[")
    for r in results:
        if json_out:
            item = json.dumps({"execution_id": r.execution_id, "shard": r.shard, "created": r.created})
            sys.stdout.write(("," if count else "") + "\n  " + item)
        count += 1
        created += r.created
    if json_out:
        sys.stdout.write("\n]\n" if count else "]\n")
    else:
        typer.echo(f"{definition}: {count} slots, {created} started, {count - created} already ran")
