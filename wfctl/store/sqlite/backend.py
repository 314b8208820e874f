"""The SQLite backend: ``catalog.db`` and one ``shard-NNN.db`` file per shard in the data directory.

Options (``wfctl.json`` under ``sqlite``): ``spill_threshold_bytes`` (values larger than this
are stored out of line, see :class:`~.shard.SQLiteShardStore`) and ``busy_deadline_s`` (how
long a write waits for a file's write lock, :data:`~.connection.DEFAULT_BUSY_DEADLINE_S` by
default). The general ``durability`` setting is SQLite's ``synchronous`` (NORMAL or FULL).
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from ...errors import InputError
from ..backend import Backend
from ..base import CatalogStore, ShardStore
from ..files import exists
from .catalog import SQLiteCatalogStore, create_catalog_file
from .connection import DEFAULT_BUSY_DEADLINE_S, Connection
from .shard import DEFAULT_SPILL_THRESHOLD_BYTES, SQLiteShardStore, create_shard_file

CATALOG_FILE = "catalog.db"
_SHARD_FILE = re.compile(r"shard-(\d{3,})\.db")


def shard_file_name(shard: int) -> str:
    """``shard-000.db`` for shard 0."""
    return f"shard-{shard:03d}.db"


class SQLiteBackend(Backend):
    """:class:`~wfctl.store.backend.Backend` on SQLite files in the data directory."""

    name = "sqlite"
    default_options = {"spill_threshold_bytes": DEFAULT_SPILL_THRESHOLD_BYTES}

    @classmethod
    def check_options(cls, options: Mapping[str, Any], where: str) -> None:
        for key, value in options.items():
            if key == "spill_threshold_bytes":
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise InputError(f"{where}: spill_threshold_bytes must be a positive integer, got {value!r}")
            elif key == "busy_deadline_s":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                        math.isfinite(value) and value > 0):
                    raise InputError(f"{where}: busy_deadline_s must be a positive number of seconds, got {value!r}")
            else:
                raise InputError(f"{where}: unknown option {key!r} "
                                 "(known: busy_deadline_s, spill_threshold_bytes)")

    @property
    def catalog_path(self) -> Path:
        """``catalog.db``."""
        return self.project / CATALOG_FILE

    def shard_path(self, shard: int) -> Path:
        """The file of shard ``shard``."""
        return self.project / shard_file_name(shard)

    def create(self, *, now: float, placement: Mapping[int, str] | None = None) -> None:
        """Create (or complete) every file; each is created in one write transaction that first
        checks whether it exists, so concurrent creations agree."""
        self.check_creation(placement)
        durability = self.settings.durability
        create_catalog_file(self.catalog_path, durability=durability)
        for shard in range(self.settings.shards):
            create_shard_file(self.shard_path(shard), shard, durability=durability, now=now)

    def verify(self) -> None:
        count = self.settings.shards
        for name in [CATALOG_FILE, *map(shard_file_name, range(count))]:
            if not exists(self.project / name, file=True):
                raise InputError(f"data directory {self.project}: {name} is missing")
        # An empty file beyond the count is a `shards add` cut short before it published, or a
        # `shards remove` cut short before it deleted the file: nothing routes to it.
        extra = sorted(n for n in self._shard_numbers() if n >= count and _holds_runs(self.shard_path(n)))
        if extra:
            raise InputError(
                f"data directory {self.project}: {shard_file_name(extra[0])} is beyond the {count} shard(s) "
                f"wfctl.json declares and holds runs (was 'shards' lowered by hand? `wfctl shards remove` "
                f"removes empty shards only: set it back to {extra[-1] + 1} or more)")

    def create_shards(self, shards: range, *, now: float,
                      placement: Mapping[int, str] | None = None) -> dict[int, str]:
        """Create the shard files (a file a removal cut short left without its tables is replaced)."""
        self.check_creation(placement)
        for shard in shards:
            path = self.shard_path(shard)
            if exists(path, file=True) and not _has_runs_table(path):
                _unlink_database(path)
            create_shard_file(path, shard, durability=self.settings.durability, now=now)
        return {}

    def publish_shards(self, expected: int, shards: int, key_shards: int,
                       placement: Mapping[int, str] | None = None) -> None:
        """Rewrite ``wfctl.json`` (atomically, under its lock) with the new count."""
        from dataclasses import replace

        from ..settings import read_settings, settings_lock, write_settings

        self.check_creation(placement)
        with settings_lock(self.project):
            current = read_settings(self.project)
            if current.shards != expected:
                raise InputError(f"data directory {self.project}: the shard count changed meanwhile (now "
                                 f"{current.shards}, not {expected}); run the command again")
            write_settings(self.project, replace(current, shards=shards, key_shards=key_shards))
        self.adopt_shards(shards, key_shards)

    def drop_shard(self, shard: int) -> bool:
        """Under the file's write lock: still no run? Drop its runs and queue tables (a start from a
        process routing by the old count then fails), commit, then delete the file."""
        path = self.shard_path(shard)
        if not exists(path, file=True):
            return True
        db = Connection(path, durability=self.settings.durability, busy_deadline_s=self._busy_deadline_s)
        try:
            with db.write() as conn:
                if _has_runs_table(path, conn):
                    if conn.execute("SELECT EXISTS (SELECT 1 FROM runs)").fetchone()[0]:
                        return False
                    conn.execute("DROP TABLE queue")
                    conn.execute("DROP TABLE runs")
        finally:
            db.close()
        try:
            _unlink_database(path)
        except OSError:
            pass  # without its tables it is ignored, and replaced by the next `shards add`
        return True

    def leftovers(self) -> str | None:
        return "shard or catalog files" if self._shard_numbers() or exists(self.catalog_path, file=True) else None

    def _shard_numbers(self) -> list[int]:
        """The shard numbers of the ``shard-NNN.db`` files in the data directory."""
        try:
            names = os.listdir(self.project)
        except OSError as exc:
            raise InputError(f"cannot list data directory {self.project}: {exc.strerror or exc}") from None
        return [int(m.group(1)) for name in names if (m := _SHARD_FILE.fullmatch(name))]

    def open_shard(self, shard: int) -> ShardStore:
        return SQLiteShardStore(self.shard_path(shard), shard, durability=self.settings.durability,
                                max_payload_bytes=self.settings.max_payload_bytes,
                                spill_threshold_bytes=self.options["spill_threshold_bytes"],
                                busy_deadline_s=self._busy_deadline_s, hot_rows=self.settings.hot_rows)

    def open_catalog(self) -> CatalogStore:
        return SQLiteCatalogStore(self.catalog_path, durability=self.settings.durability,
                                  max_payload_bytes=self.settings.max_payload_bytes,
                                  busy_deadline_s=self._busy_deadline_s)

    @property
    def _busy_deadline_s(self) -> float:
        return float(self.options.get("busy_deadline_s", DEFAULT_BUSY_DEADLINE_S))

    def location(self, shard: int | None = None) -> str:
        return str(self.catalog_path if shard is None else self.shard_path(shard))

    def location_details(self, shard: int) -> dict[str, Any]:
        return {"location": self.location(shard), "path": str(self.shard_path(shard))}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "version": sqlite3.sqlite_version}

    def drop(self) -> None:
        """Delete the catalog and shard files (with their ``-wal`` and ``-shm`` files)."""
        for file in [self.catalog_path, *map(self.shard_path, range(self.settings.shards))]:
            _unlink_database(file)


def _unlink_database(file: Path) -> None:
    """Delete a database file with its ``-wal`` and ``-shm`` files."""
    for path in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
        path.unlink(missing_ok=True)


def _has_runs_table(path: Path, conn: sqlite3.Connection | None = None) -> bool:
    """Whether shard file ``path`` has its runs table (a removal drops it before deleting the file)."""
    if conn is not None:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone() is not None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as ro:
            return _has_runs_table(path, ro)
    except sqlite3.Error:
        return True  # unreadable: not a leftover of a removal


def _holds_runs(path: Path) -> bool:
    """Whether shard file ``path`` holds a run (unreadable: True, it is not taken for an empty leftover)."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as ro:
            if not _has_runs_table(path, ro):
                return False
            return bool(ro.execute("SELECT EXISTS (SELECT 1 FROM runs)").fetchone()[0])
    except sqlite3.Error:
        return True
