"""``wfctl init``: create a data directory with chosen settings."""

from __future__ import annotations

import typer

from .output import console, print_json


def init_command(
    ctx: typer.Context,
    shards: int = typer.Option(4, "--shards", min=1, max=1000, help="How many shard files (independent writers)."),
    route: str = typer.Option("definition", "--route", help="Route runs by 'definition' id (tale #401) or 'execution' id (tale #425)."),
    durability: str = typer.Option("normal", "--durability", help="'normal' (WAL, synchronous=NORMAL) or 'full' (survives power loss)."),
    json_out: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
) -> None:
    """Create the data directory (--data-dir, $WFCTL_DATA_DIR or ./.wfctl) with N shards.

    Settings are fixed for the directory's life; other commands create it with the defaults (4 shards, definition routing, normal durability) on first use.
    """
    from ..store import DataDir, resolve_data_dir

    root = ctx.find_root()
    path = resolve_data_dir((root.obj or {}).get("data_dir"))
    datadir = DataDir.init(path, shards=shards, route=route, durability=durability)
    settings = {"path": str(datadir.path), "shards": datadir.shard_count, "route": datadir.settings.route,
                "durability": datadir.settings.durability}
    if json_out:
        print_json(settings)
    else:
        console().print(f"initialised {settings['path']}: {settings['shards']} shards, route by "
                        f"{settings['route']}, durability {settings['durability']}", markup=False)
