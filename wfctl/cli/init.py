"""``wfctl init``: create a data directory (project directory) with chosen settings, or join a deployment."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from .output import console, print_json


def _as_it_is(flag: str, help: str, **limits: Any) -> Any:
    """An option whose absence means "as it is": the directory's or deployment's setting, else the
    default its help names."""
    return typer.Option(None, flag, help=help, show_default=False, **limits)


def init_command(
    ctx: typer.Context,
    shards: Optional[int] = _as_it_is(
        "--shards", "How many shards (independent writers). Default: 4, or the deployment's when joining one.",
        min=1, max=1000),
    route: Optional[str] = _as_it_is(
        "--route", "Route runs by 'definition' id (tale #401) or 'execution' id (tale #425). Default: definition."),
    durability: Optional[str] = _as_it_is(
        "--durability", "'normal' (the last commits may be lost on power loss, never consistency) or 'full' "
        "(every commit survives power loss). Default: normal."),
    backend: Optional[str] = _as_it_is(
        "--backend", "Where the catalog and shards live: 'sqlite' (files in the data directory) or 'postgresql' "
        "(schemas on one or several servers). Default: sqlite."),
    dsn: Optional[str] = _as_it_is(
        "--dsn", "postgresql: the catalog's server, a libpq DSN or URI without a password (~/.pgpass, "
        "$PGPASSWORD). Default: $WFCTL_DSN."),
    place: Optional[List[str]] = _as_it_is(
        "--place", "postgresql: put shards FIRST-LAST (or one shard N) on another server: "
        "'4-7=host=db2 dbname=wfctl'. Repeatable; other shards stay on --dsn's server."),
    schema_prefix: Optional[str] = _as_it_is(
        "--schema-prefix", "postgresql: the schemas' prefix (PREFIX_catalog, PREFIX_shard_000...). Default: wfctl."),
    isolation: Optional[str] = _as_it_is(
        "--isolation", "postgresql: 'read committed' or 'serializable' (conflicts are retried and counted per "
        "shard). Default: read committed."),
    json_out: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
) -> None:
    """Create the data directory (--data-dir, $WFCTL_DATA_DIR or ./.wfctl) with N shards.

    Settings are fixed for the directory's life: on an existing directory, init succeeds (and prints its settings) when the options given match, and refuses otherwise. 'start' and 'defs apply' create a missing directory with the defaults (4 shards, definition routing, normal durability, SQLite); the other commands refuse it. A directory holding shard or catalog files but no wfctl.json is refused.

    With --backend postgresql the directory holds only wfctl.json (the backend and the catalog's DSN): the catalog and the shards are schemas on the servers. Another machine joins the deployment with the same init in its own directory: the deployment is checked and adopted (its shard count and placement when not given), and a shard count, route or placement that differs from it is refused. Every machine needs the deployment's secret key ($WFCTL_SECRET_KEY, or secret.key in its directory).

    \b
    Examples:
      wfctl init --shards 8
      wfctl init --backend postgresql --dsn 'host=db1 dbname=wfctl user=wfctl' --shards 8
      wfctl init --backend postgresql --dsn 'host=db1 dbname=wfctl' --shards 8 \\
          --place 4-7='host=db2 dbname=wfctl'
      export WFCTL_DSN='postgresql://wfctl@db1/wfctl'
      wfctl init --backend postgresql --isolation serializable
    """
    from ..engine.project import init_project
    from ..store import resolve_data_dir

    path = resolve_data_dir((ctx.find_root().obj or {}).get("data_dir"))
    datadir, joined = init_project(path, backend=backend, shards=shards, route=route, durability=durability,
                                   options={"dsn": dsn, "schema_prefix": schema_prefix, "isolation": isolation},
                                   place=place or ())
    settings = {"path": str(datadir.path), "backend": datadir.settings.backend, "shards": datadir.shard_count,
                "route": datadir.settings.route, "durability": datadir.settings.durability,
                "location": datadir.location()}
    if json_out:
        print_json(settings)
    else:
        console().print(f"initialised {settings['path']}: {settings['backend']}, {settings['shards']} shards, "
                        f"route by {settings['route']}, durability {settings['durability']}; catalog at "
                        f"{settings['location']}{' (joined the existing deployment)' if joined else ''}", markup=False)
