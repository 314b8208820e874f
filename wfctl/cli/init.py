"""``wfctl init``: create a data directory (project directory) with chosen settings, or join a deployment."""

from __future__ import annotations

import os
import re
from typing import List, Optional

import typer

from ..errors import InputError
from .output import console, print_json

_PLACE = re.compile(r"(\d+)(?:-(\d+))?=(.+)", re.DOTALL)


def init_command(
    ctx: typer.Context,
    shards: Optional[int] = typer.Option(
        None, "--shards", min=1, max=1000, help="How many shards (independent writers). Default: 4, or the "
        "deployment's when joining one.", show_default=False),
    route: Optional[str] = typer.Option(
        None, "--route", help="Route runs by 'definition' id (tale #401) or 'execution' id (tale #425). "
        "Default: definition.", show_default=False),
    durability: Optional[str] = typer.Option(
        None, "--durability", help="'normal' (the last commits may be lost on power loss, never consistency) "
        "or 'full' (every commit survives power loss). Default: normal.", show_default=False),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Where the catalog and shards live: 'sqlite' (files in the data directory) or "
        "'postgresql' (schemas on one or several servers). Default: sqlite.", show_default=False),
    dsn: Optional[str] = typer.Option(
        None, "--dsn", help="postgresql: the catalog's server, a libpq DSN or URI without a password "
        "(~/.pgpass, $PGPASSWORD). Default: $WFCTL_DSN.", show_default=False),
    place: Optional[List[str]] = typer.Option(
        None, "--place", help="postgresql: put shards FIRST-LAST (or one shard N) on another server: "
        "'4-7=host=db2 dbname=wfctl'. Repeatable; other shards stay on --dsn's server.", show_default=False),
    schema_prefix: Optional[str] = typer.Option(
        None, "--schema-prefix", help="postgresql: the schemas' prefix (PREFIX_catalog, PREFIX_shard_000...). "
        "Default: wfctl.", show_default=False),
    isolation: Optional[str] = typer.Option(
        None, "--isolation", help="postgresql: 'read committed' or 'serializable' (conflicts are retried and "
        "counted per shard). Default: read committed.", show_default=False),
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
    from ..engine.keys import deployment_box, secret_box
    from ..store import DataDir, Settings, resolve_data_dir
    from ..store.backend import backend_class, open_backend
    from ..store.settings import DEFAULT_BACKEND, SETTINGS_FILE

    root = ctx.find_root()
    path = resolve_data_dir((root.obj or {}).get("data_dir"))
    # An option not given means "as it is": the existing directory's (or deployment's) setting, else the default.
    current = DataDir.open(path, create=False).settings if os.path.exists(path / SETTINGS_FILE) else None
    name = backend or (current.backend if current else DEFAULT_BACKEND)
    cls = backend_class(name, "--backend")
    options = dict(current.options) if current is not None and current.backend == name else {}
    given = {key: value for key, value in (("dsn", dsn), ("schema_prefix", schema_prefix), ("isolation", isolation))
             if value is not None}
    cls.check_options(given, f"--backend {name}")
    options.update(given)
    base = current if current is not None and current.backend == name else Settings(backend=name)
    placement = _placement(place or [], shards)
    found = None
    if current is None:
        probe = Settings(backend=name, shards=shards or base.shards, route=route or base.route, options=options)
        found = open_backend(path, probe.validate("wfctl init")).existing()
    if found is not None:  # another machine created the deployment: adopt what is not given
        base = Settings(backend=name, shards=found["shards"], route=found["route"] or base.route)
        if place is None:
            placement = found["placement"]
        joined = Settings(backend=name, shards=base.shards, route=base.route, options=options)
        deployment_box(open_backend(path, joined.validate("wfctl init")))  # its key, before joining it
    count = base.shards if shards is None else shards
    if placement and max(placement) >= count:
        raise InputError(f"--place: shard {max(placement)} is beyond the {count} shard(s) (0..{count - 1})")
    datadir = DataDir.init(path, shards=count, route=base.route if route is None else route,
                           durability=base.durability if durability is None else durability,
                           backend=name, options=options, placement=placement or None)
    secret_box(datadir)  # the key is made with the directory (or checked against the deployment's)
    settings = {"path": str(datadir.path), "backend": datadir.settings.backend, "shards": datadir.shard_count,
                "route": datadir.settings.route, "durability": datadir.settings.durability,
                "location": datadir.location()}
    if json_out:
        print_json(settings)
    else:
        joined = " (joined the existing deployment)" if found is not None else ""
        console().print(f"initialised {settings['path']}: {settings['backend']}, {settings['shards']} shards, "
                        f"route by {settings['route']}, durability {settings['durability']}; catalog at "
                        f"{settings['location']}{joined}", markup=False)


def _placement(specs: list[str], shards: int | None) -> dict[int, str]:
    """``--place FIRST-LAST=DSN`` options as shard -> DSN; InputError on bad syntax or overlapping ranges."""
    placement: dict[int, str] = {}
    for spec in specs:
        match = _PLACE.fullmatch(spec.strip())
        if not match or not match.group(3).strip():
            shown = spec.partition("=")[0][:40]  # never the DSN: it might hold a password
            raise InputError(f"--place {shown!r}...: expected FIRST-LAST=DSN or N=DSN (e.g. 4-7='host=db2 dbname=wfctl')")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise InputError(f"--place {match.group(1)}-{match.group(2)}: the range is empty (FIRST > LAST)")
        if shards is not None and last >= shards:
            raise InputError(f"--place {first}-{last}: shard {last} is beyond the {shards} shard(s) (0..{shards - 1})")
        for shard in range(first, last + 1):
            if shard in placement:
                raise InputError(f"--place {first}-{last}: shard {shard} is already placed by another --place")
            placement[shard] = match.group(3).strip()
    return placement
