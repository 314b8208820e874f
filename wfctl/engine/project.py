"""Creating a project directory (``wfctl init``), or joining a deployment another machine created:
the store's plan (:mod:`wfctl.store.init_plan`), the deployment's secret key checked before
joining it, and the key made with the directory (see :mod:`.keys`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..store import DataDir, open_backend
from ..store.init_plan import plan_init
from .keys import deployment_box, secret_box


def init_project(path: Path, *, backend: str | None = None, shards: int | None = None, route: str | None = None,
                 durability: str | None = None, options: Mapping[str, Any] | None = None,
                 place: Iterable[str] = ()) -> tuple[DataDir, bool]:
    """Create project directory ``path`` (or accept it with the same settings) as
    :func:`~wfctl.store.init_plan.plan_init` plans it; the directory, and whether it joined an
    existing deployment. InputError (one line, nothing created) when refused."""
    plan = plan_init(path, backend=backend, shards=shards, route=route, durability=durability, options=options,
                     place=place)
    if plan.joins is not None:
        deployment_box(open_backend(path, plan.joins))  # its key, before joining it
    wanted = plan.settings
    datadir = DataDir.init(path, shards=wanted.shards, route=wanted.route, durability=wanted.durability,
                           backend=wanted.backend, options=wanted.options, placement=plan.placement or None,
                           hot_rows=wanted.hot_rows)
    secret_box(datadir)  # the key is made with the directory (or checked against the deployment's)
    return datadir, plan.joins is not None
