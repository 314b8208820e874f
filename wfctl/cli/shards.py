"""``wfctl shards``: per-shard activity and contention, and where a key routes."""

from __future__ import annotations

from typing import Optional

import typer

from .output import console, engine, escape, print_json

app = typer.Typer(help="Show shards and routing.", invoke_without_command=True)


@app.callback()
def shards_command(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Check each shard file's integrity (reads it whole); a damaged one shows its error."),
) -> None:
    """Per-shard runs by status (pending, running, completed, failed, canceled), queue depth, retries and time waited (by cause when there are several), lease holder, size.

    Unfinished runs a worker left waiting (their secrets cannot be decrypted with its key) are counted with their error; a damaged shard shows its error. --json adds the retries and wait time by cause, the backend's size details, the transaction count, lease expiry, fencing generation and heartbeat.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = engine(ctx).shards(check=check)
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    from rich import box

    causes = {cause for row in rows for cause in row.get("retries") or {}}
    retries_header = f"retries\n({_cause(next(iter(causes)))})" if len(causes) == 1 else "retries"
    table = Table(title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("shard", "runs", "by status", "queue", retries_header, "waited", "lease", "size"):
        wrap = column in ("by status", "lease")
        table.add_column(column, justify="left" if wrap else "right", overflow="fold",
                         no_wrap=not wrap and column != retries_header, min_width=12 if column == "by status" else None)
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
                      row.get("lease_owner") or "-", f"{(row.get('size_bytes') or 0) / 2**20:.1f} MiB")
    console().print(table)


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
