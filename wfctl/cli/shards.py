"""``wfctl shards``: per-shard activity and contention, and where a key routes."""

from __future__ import annotations

import time
from typing import List, Optional

import typer

from ..engine.ids import parse_owner
from .output import console, engine, escape, print_json

app = typer.Typer(help="Show shards and routing; add or remove shards of a live deployment.",
                  invoke_without_command=True)


@app.callback()
def shards_command(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Check each shard's integrity (SQLite: reads its file whole; PostgreSQL: its schema); a damaged one shows its error."),
) -> None:
    """Per-shard runs by status (pending, running, completed, failed, canceled), queue depth, retries and time waited (by cause when there are several), lease holder (machine:pid, heartbeat), size, and where the shard lives (its file, or server and schema).

    Unfinished runs a worker left waiting (their secrets cannot be decrypted with its key) are counted with their error; a damaged shard shows its error. --json adds the retries and wait time by cause, the backend's size details (SQLite: file and WAL bytes; PostgreSQL: dead tuples, server), the transaction count, the lease owner id, expiry, fencing generation and heartbeat.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = engine(ctx).shards(check=check)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    from rich import box

    now = time.time()
    causes = {cause for row in rows for cause in row.get("retries") or {}}
    retries_header = f"retries\n({_cause(next(iter(causes)))})" if len(causes) == 1 else "retries"
    table = Table(title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("shard", "runs", "by status", "queue", retries_header, "waited", "holder", "size"):
        wrap = column in ("by status", "holder")
        table.add_column(column, justify="left" if wrap else "right", overflow="fold",
                         no_wrap=not wrap and column != retries_header,
                         min_width={"by status": 12, "holder": 11}.get(column))
    for row in rows:
        if "error" in row:
            table.add_row(str(row["shard"]), "", f"[red]{escape(row['error'])}[/red]", *[""] * 5)
            continue
        by = row.get("runs_by_status", {})
        statuses = escape(", ".join(f"{count} {status}" for status, count in by.items() if count) or "-")
        if row.get("waiting"):
            statuses += f"\n[yellow]{row['waiting']} waiting: {escape(row['waiting_error'] or '')}[/yellow]"
        table.add_row(str(row["shard"]), str(sum(by.values())), statuses, str(row.get("queue_depth", 0)),
                      _by_cause(row.get("retries") or {}, str), _by_cause(row.get("wait_ms") or {}, _ms),
                      _holder(row, now), f"{(row.get('size_bytes') or 0) / 2**20:.1f} MiB")
    console().print(table)
    if any(row.get("location") for row in rows):  # where each shard lives: its own table, paths are long
        places = Table(box=box.SIMPLE_HEAD)
        places.add_column("shard", justify="right")
        places.add_column("location", overflow="fold")
        for row in rows:
            places.add_row(str(row["shard"]), escape(row.get("location") or "?"))
        console().print(places)


def _holder(row: dict, now: float) -> str:
    """The lease holder as ``machine:pid`` (a worker's owner id is ``machine:pid:random``), its
    heartbeat's age, and whether its lease has expired (so another worker may take the shard)."""
    owner = row.get("lease_owner")
    if not owner:
        return "-"
    holder = parse_owner(owner)
    lines = [escape(f"{holder[0]}:{holder[1]}" if holder else owner)]
    beat = row.get("heartbeat_at")
    if beat is not None:
        lines.append(f"[dim]beat {max(0.0, now - beat):.0f}s ago[/dim]")
    expires = row.get("lease_expires_at")
    if expires is not None and expires < now:
        lines.append("[yellow]lease expired[/yellow]")
    return "\n".join(lines)


def _cause(cause: str) -> str:
    """A retry cause for people: ``lock_busy`` -> "lock busy"."""
    return cause.replace("_", " ")


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _by_cause(counts: dict, show) -> str:
    """The total of a by-cause figure, then one line per cause when more than one cause has some."""
    some = {cause: value for cause, value in counts.items() if value}
    lines = [show(sum(counts.values()))]
    if len(some) > 1:
        lines += [f"[dim]{escape(_cause(cause))} {show(value)}[/dim]" for cause, value in some.items()]
    return "\n".join(lines)


@app.command("route")
def route_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="A definition id or execution id (whatever the data directory routes by)."),
    shards: Optional[int] = typer.Option(None, "--shards", min=1, help="The shard count (default: the data directory's)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Print the shard KEY maps to: 32-bit FNV-1a over UTF-16 code units, mod the shard count (tale's getShardIndex)."""
    from ..store import fnv1a_32, shard_for

    count = shards if shards is not None else engine(ctx).shard_count
    result = {"key": key, "shards": count, "shard": shard_for(key, count), "fnv1a_32": fnv1a_32(key)}
    if json_out:
        print_json(result)
    else:
        typer.echo(result["shard"])


@app.command("add")
def add_command(
    ctx: typer.Context,
    count: int = typer.Argument(..., min=1, help="How many shards to add."),
    place: Optional[List[str]] = typer.Option(
        None, "--place", help="postgresql: put new shards FIRST-LAST (or one shard N) on another server: "
                              "FIRST-LAST='host=db2 dbname=wfctl' (repeatable; default: the server of the "
                              "last shard)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add COUNT shards to the live deployment; the new count is published last, so a crash midway leaves the old one.

    New starts route over the new count; runs already started stay on the shard their id names and finish there. Keyed starts (idempotency keys, schedule slots) keep routing over the shards the deployment had before its first add, so a repeated key finds its run. With route=definition a definition's new runs may move to another shard (listed). Workers serving every shard take the new ones within seconds; workers started with --shards keep theirs.
    """
    from ..store.placement import parse_placement

    result = engine(ctx).add_shards(count, parse_placement(place or ()))
    if json_out:
        print_json(result)
        return
    added = result["added"]
    typer.echo(f"added {_numbers([a['shard'] for a in added])}: {result['after']} shards (was {result['before']})")
    for a in added:
        typer.echo(f"  shard {a['shard']}: {a['location']}")
    typer.echo(f"new starts route over {result['after']} shards; runs already started stay where their ids say")
    keys = result["key_shards"]
    typer.echo(f"keyed starts (idempotency keys, schedule slots) keep routing over shards 0..{keys - 1}")
    _moved(result)
    typer.echo("workers serving every shard take the new ones within seconds (those started with --shards keep theirs)")


@app.command("remove")
def remove_command(
    ctx: typer.Context,
    count: int = typer.Argument(..., min=1, help="How many of the highest-numbered shards to remove."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove the COUNT highest-numbered shards, added by `wfctl shards add`, once they hold no run.

    A shard that holds runs, unfinished or finished, is refused (nothing changed): let them finish or cancel them, then delete them with `wfctl cleanup` (`wfctl list --shard N` shows them). The lower count is published first, then each shard is dropped in one transaction that finds it still empty, so a start racing the removal is never lost. Shards below the count the deployment had before its first add cannot be removed (keyed starts route over them).
    """
    result = engine(ctx).remove_shards(count)
    if json_out:
        print_json(result)
        return
    typer.echo(f"removed {_numbers(result['removed'])}: {result['after']} shards (was {result['before']})")
    _moved(result)


def _numbers(shards: list[int]) -> str:
    return f"shard {shards[0]}" if len(shards) == 1 else f"shards {shards[0]}..{shards[-1]}"


def _moved(result: dict) -> None:
    """With definition routing: which stored definitions' new runs start on another shard now."""
    if result["route"] != "definition":
        return
    moved = result["moved"]
    if not moved:
        typer.echo("route=definition: no stored definition's new runs move to another shard")
        return
    shown = ", ".join(f"{m['definition']} ({m['from']} -> {m['to']})" for m in moved[:10])
    more = f" and {len(moved) - 10} more" if len(moved) > 10 else ""
    typer.echo(f"route=definition: new runs of {len(moved)} definition(s) start on another shard now: {shown}{more}")
