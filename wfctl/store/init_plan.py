"""What ``wfctl init`` creates or joins: the settings given, else the existing directory's or the
deployment's (one another machine created), else the defaults.

Settings are fixed for a directory's life, so a setting not given means "as it is". A fresh
directory whose backend finds a deployment already created (PostgreSQL: a catalog on the server)
joins it: its shard count, route and (no ``--place`` given) placement are adopted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import backend_class, open_backend
from .datadir import DataDir
from .placement import check_placement_range, parse_placement
from .settings import DEFAULT_BACKEND, SETTINGS_FILE, Settings

WHERE = "wfctl init"


@dataclass(frozen=True)
class InitPlan:
    """``settings`` and ``placement`` (shard -> server) to create the directory with
    (:meth:`DataDir.init`); ``joins``: the settings of the deployment it joins (None: it joins none)."""

    settings: Settings
    placement: dict[int, str] = field(default_factory=dict)
    joins: Settings | None = None


def plan_init(path: Path, *, backend: str | None = None, shards: int | None = None, route: str | None = None,
              durability: str | None = None, options: Mapping[str, Any] | None = None,
              place: Iterable[str] = ()) -> InitPlan:
    """The plan for ``wfctl init`` of project directory ``path`` with the settings given (None: as
    it is), ``options`` the backend's given (None values: not given) and ``place`` its ``--place``
    specs (:func:`~wfctl.store.placement.parse_placement`). InputError (one line, nothing created)
    on a bad option or placement; refusals of settings that differ are :meth:`DataDir.init`'s."""
    current = DataDir.open(path, create=False).settings if os.path.exists(path / SETTINGS_FILE) else None
    name = backend or (current.backend if current else DEFAULT_BACKEND)
    same = current is not None and current.backend == name
    given = {key: value for key, value in (options or {}).items() if value is not None}
    backend_class(name, "--backend").check_options(given, f"--backend {name}")
    merged = {**(current.options if same else {}), **given}
    base = current if same else Settings(backend=name)
    specs = list(place)
    placement = parse_placement(specs, shards)  # before any server is asked
    joins = None
    if current is None:
        probe = Settings(backend=name, shards=shards or base.shards, route=route or base.route, options=merged)
        found = open_backend(path, probe.validate(WHERE)).existing()
        if found is not None:  # another machine created the deployment: adopt what is not given
            joins = Settings(backend=name, shards=found["shards"], route=found["route"] or base.route,
                             options=merged).validate(WHERE)
            base = joins
            if not specs:
                placement = found["placement"]
    count = base.shards if shards is None else shards
    if specs and shards is None:
        check_placement_range(placement, count)
    settings = Settings(backend=name, shards=count, route=base.route if route is None else route,
                        durability=base.durability if durability is None else durability, options=merged,
                        hot_rows=base.hot_rows)
    return InitPlan(settings, placement, joins)
