"""The backends the contract suite runs against.

``BACKENDS`` maps a backend's name to its factory: ``factory(path, shards=N, max_payload_bytes=B,
hot_rows=False)`` creates an empty deployment (a catalog and N shards) under ``path`` (a fresh
directory; ``hot_rows``: the deployment setting) and returns a
:class:`Deployment`. A deployment is picklable: a child process (multiprocessing, spawn context)
receives it as an argument and opens its own stores with it. Adding a backend is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from pg import drop_prefix, pg_dsn, unique_prefix
from wfctl.store import CatalogStore, DataDir, ShardStore


class Deployment(Protocol):
    """One backend's catalog and shards, opened as many times as a test likes (in any process)."""

    def open_shard(self, shard: int) -> ShardStore: ...

    def open_catalog(self) -> CatalogStore: ...

    def close(self) -> None:
        """Remove what the factory created (called once, by the test process, after the test)."""


@dataclass(frozen=True)
class ProjectDeployment:
    """A deployment reached through its project directory (``wfctl.json``), as every command reaches it."""

    path: Path

    def open_shard(self, shard: int) -> ShardStore:
        return DataDir.open(self.path, create=False).open_shard(shard)

    def open_catalog(self) -> CatalogStore:
        return DataDir.open(self.path, create=False).open_catalog()

    def close(self) -> None:
        """Nothing to do: the files live in the test's temporary directory."""


def sqlite(path: Path, *, shards: int, max_payload_bytes: int, hot_rows: bool = False) -> Deployment:
    """SQLite files; values over 2,000 bytes go out of line, so the suite's larger values take that path."""
    DataDir.init(path, shards=shards, max_payload_bytes=max_payload_bytes, options={"spill_threshold_bytes": 2_000},
                 hot_rows=hot_rows)
    return ProjectDeployment(path)


@dataclass(frozen=True)
class PostgresDeployment(ProjectDeployment):
    """A project directory naming schemas of their own on the test server (tests/pg.py)."""

    dsn: str
    prefix: str

    def close(self) -> None:
        """Drop the deployment's schemas."""
        drop_prefix(self.dsn, self.prefix)


def postgresql(path: Path, *, shards: int, max_payload_bytes: int, hot_rows: bool = False) -> Deployment:
    """Schemas on a unique prefix on the test server (skipped without one, failed under CI=true)."""
    dsn, prefix = pg_dsn(), unique_prefix("contract")
    deployment = PostgresDeployment(path, dsn, prefix)
    try:
        DataDir.init(path, shards=shards, max_payload_bytes=max_payload_bytes, backend="postgresql",
                     options={"dsn": dsn, "schema_prefix": prefix}, hot_rows=hot_rows)
    except BaseException:
        deployment.close()
        raise
    return deployment


BACKENDS: dict[str, Callable[..., Deployment]] = {"sqlite": sqlite, "postgresql": postgresql}
