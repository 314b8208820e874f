"""``wfctl init``: create a data directory with chosen settings."""

from __future__ import annotations

import os
from typing import Optional

import typer

from .output import console, print_json


def init_command(
    ctx: typer.Context,
    shards: Optional[int] = typer.Option(
        None, "--shards", min=1, max=1000, help="How many shards (independent writers). Default: 4.",
        show_default=False),
    route: Optional[str] = typer.Option(
        None, "--route", help="Route runs by 'definition' id (tale #401) or 'execution' id (tale #425). "
        "Default: definition.", show_default=False),
    durability: Optional[str] = typer.Option(
        None, "--durability", help="'normal' (the last commits may be lost on power loss, never consistency) "
        "or 'full' (every commit survives power loss). Default: normal.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
) -> None:
    """Create the data directory (--data-dir, $WFCTL_DATA_DIR or ./.wfctl) with N shards.

    Settings are fixed for the directory's life: on an existing directory, init succeeds (and prints its settings) when the options given match, and refuses otherwise. 'start' and 'defs apply' create a missing directory with the defaults (4 shards, definition routing, normal durability); the other commands refuse it. A directory holding shard or catalog files but no wfctl.json is refused.
    """
    from ..store import DataDir, Settings, resolve_data_dir
    from ..store.datadir import SETTINGS_FILE

    root = ctx.find_root()
    path = resolve_data_dir((root.obj or {}).get("data_dir"))
    # An option not given means "as it is": the existing directory's setting, else the default.
    base = DataDir.open(path, create=False).settings if os.path.exists(path / SETTINGS_FILE) else Settings()
    datadir = DataDir.init(path, shards=base.shards if shards is None else shards,
                           route=base.route if route is None else route,
                           durability=base.durability if durability is None else durability,
                           backend=base.backend, options=base.options)
    from ..engine.keys import secret_box

    secret_box(datadir)  # the key is made with the directory (or checked against it)
    settings = {"path": str(datadir.path), "backend": datadir.settings.backend, "shards": datadir.shard_count,
                "route": datadir.settings.route, "durability": datadir.settings.durability}
    if json_out:
        print_json(settings)
    else:
        console().print(f"initialised {settings['path']}: {settings['backend']}, {settings['shards']} shards, "
                        f"route by {settings['route']}, durability {settings['durability']}", markup=False)
