"""The data directory (project directory): ``wfctl.json`` and the deployment its backend keeps.

``wfctl.json`` (:mod:`.settings`) names the backend; creating, verifying and opening the
catalog and the shards is the backend's (:mod:`.backend`; SQLite keeps its files in this
directory). ``wfctl.json`` is written last (atomically) when a directory is created, so a
directory with settings is complete; creation is serialized between processes by a lock file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from .backend import open_backend
from .base import SCHEMA_VERSION, CatalogStore, ShardStore
from .files import exists
from .payload import DEFAULT_MAX_PAYLOAD_BYTES
from .resize import Resized, add_shards, remove_shards
from .routing import shard_for
from .settings import DEFAULT_BACKEND, SETTINGS_FILE, Settings, read_settings, settings_lock, write_settings

__all__ = ["SCHEMA_VERSION", "DataDir", "Settings", "resolve_data_dir"]

CREATING_FILE = ".wfctl.creating"
DEFAULT_DIR = ".wfctl"
ENV_VAR = "WFCTL_DATA_DIR"


def resolve_data_dir(option: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """The data directory: the ``--data-dir`` option, else ``$WFCTL_DATA_DIR``, else ``./.wfctl``."""
    return Path(option or env.get(ENV_VAR) or DEFAULT_DIR).expanduser()


class DataDir:
    """An initialized data directory: its settings, its backend (:attr:`backend`), and stores opened through it."""

    def __init__(self, path: Path, settings: Settings):
        self.path = path
        self.backend = open_backend(path, settings)

    @property
    def settings(self) -> Settings:
        """The directory's settings (its backend's: they are one object)."""
        return self.backend.settings

    @classmethod
    def init(cls, path: str | Path, shards: int = 4, route: str = "definition",
             durability: str = "normal", *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
             backend: str = DEFAULT_BACKEND, options: Mapping[str, Any] | None = None,
             placement: Mapping[int, str] | None = None, hot_rows: bool = False) -> "DataDir":
        """Create a data directory (or accept an existing one with the same settings).

        ``backend`` and its ``options`` (the backend's defaults for those not given) say where
        the catalog and shards live; ``placement`` (shard -> server) goes to the backend's
        :meth:`~wfctl.store.backend.Backend.create`; ``hot_rows``: see :class:`Settings`. An
        existing directory with different settings is refused with an InputError.
        """
        wanted = Settings(backend=backend, shards=shards, route=route, durability=durability,
                          max_payload_bytes=max_payload_bytes, options=dict(options or {}), hot_rows=hot_rows)
        return cls._create(Path(path), wanted, strict=True, placement=placement)

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> "DataDir":
        """Open a data directory; create it with default settings when missing and ``create``.

        Raises InputError when it is missing (and not ``create``), cannot be created, was
        written by a newer wfctl, or its backend finds a part missing, damaged or beyond the
        shard count (SQLite: a missing file, shard or catalog files but no settings, more shard
        files than the settings say).
        """
        path = Path(path)
        if not exists(path / SETTINGS_FILE):
            if not create:
                _refuse_folder_of_data_dirs(path)
                if not exists(path):
                    raise InputError(f"data directory {path} does not exist; create it with wfctl init")
                if not path.is_dir():
                    raise InputError(f"data directory {path} is not a directory")
                left = open_backend(path, Settings()).leftovers()
                if left:
                    raise _no_settings(path, left)
                raise InputError(f"{path} is not a wfctl data directory (no {SETTINGS_FILE}); "
                                 "create one with wfctl init")
            return cls._create(path, Settings(), strict=False)
        datadir = cls(path, read_settings(path))
        datadir.backend.verify()
        return datadir

    @classmethod
    def _create(cls, path: Path, wanted: Settings, *, strict: bool,
                placement: Mapping[int, str] | None = None) -> "DataDir":
        wanted = wanted.validate(str(path))
        if not exists(path / SETTINGS_FILE):
            _refuse_folder_of_data_dirs(path)
            open_backend(path, wanted).check_creation(placement)  # before anything is created
        try:
            if path.exists() and not path.is_dir():
                raise InputError(f"{path} exists and is not a directory")
            path.mkdir(parents=True, exist_ok=True)
            with settings_lock(path):
                if (path / SETTINGS_FILE).exists():
                    existing = read_settings(path)
                    diff = existing.differences(wanted)
                    if strict and diff:
                        raise InputError(
                            f"data directory {path} already exists with {', '.join(diff)}; refusing to "
                            f"re-initialize it with {', '.join(wanted.differences(existing))}")
                    if placement:
                        open_backend(path, existing).check_creation(placement)
                else:
                    backend = open_backend(path, wanted)
                    left = backend.leftovers()
                    if left and not (path / CREATING_FILE).exists():
                        raise _no_settings(path, left)
                    (path / CREATING_FILE).touch()  # a creation cut short may be completed
                    now = time.time()
                    backend.create(now=now, placement=placement)
                    created = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")
                    write_settings(path, replace(wanted, options=backend.recorded_options(), created_at=created))
                    (path / CREATING_FILE).unlink()
        except OSError as exc:
            raise InputError(f"cannot create data directory {path}: {exc.strerror or exc}") from None
        return cls.open(path, create=False)

    def is_writable(self) -> bool:
        """Whether this process may write the directory (a read-only one is opened read-only)."""
        return os.access(self.path, os.W_OK)

    @property
    def shard_count(self) -> int:
        """How many shards the directory has."""
        return self.settings.shards

    def location(self, shard: int | None = None) -> str:
        """Where shard ``shard`` (None: the catalog) lives, for messages (see :meth:`Backend.location`)."""
        if shard is not None:
            self.check_shard(shard)
        return self.backend.location(shard)

    def route_key(self, definition_id: str, execution_id: str) -> str:
        """The key a new run is routed by, following the ``route`` setting."""
        return definition_id if self.settings.route == "definition" else execution_id

    def shard_for(self, definition_id: str, execution_id: str, keyed: bool = False) -> int:
        """The shard a new run goes to, following the ``route`` setting; a ``keyed`` run (started with an
        idempotency key) over the first :attr:`Settings.key_count` shards only (see :mod:`.resize`)."""
        settings = self.settings
        return shard_for(self.route_key(definition_id, execution_id), settings.key_count if keyed else settings.shards)

    def add_shards(self, count: int, *, placement: Mapping[int, str] | None = None) -> Resized:
        """Add ``count`` shards to this live deployment (see :func:`wfctl.store.resize.add_shards`)."""
        return add_shards(self, count, now=time.time(), placement=placement)

    def remove_shards(self, count: int) -> Resized:
        """Remove the ``count`` highest-numbered shards, once empty (see :func:`wfctl.store.resize.remove_shards`)."""
        return remove_shards(self, count)

    def refresh_shards(self, catalog: CatalogStore) -> bool:
        """Adopt the shard count recorded now (another process may have added or removed shards);
        whether it changed. ``catalog``: the deployment's open catalog."""
        return self.backend.refresh_shards(catalog)

    def open_shard(self, shard: int) -> ShardStore:
        """Open one shard's store (CorruptShardError when it is damaged)."""
        self.check_shard(shard)
        return self.backend.open_shard(shard)

    def open_catalog(self) -> CatalogStore:
        """Open the definition catalog."""
        return self.backend.open_catalog()

    def check_shard(self, shard: int) -> None:
        """InputError when the directory has no shard ``shard``."""
        if not (isinstance(shard, int) and not isinstance(shard, bool) and 0 <= shard < self.settings.shards):
            raise InputError(f"data directory {self.path} has shards 0..{self.settings.shards - 1}, not {shard!r}")

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r}, {self.settings})"


def _nested_data_dirs(path: Path) -> list[Path]:
    """The data directories one or two levels below ``path`` (a folder of ``wfctl stress run --keep``
    holds ``SCENARIO-VARIANT-*/data``); none when ``path`` is missing or cannot be listed."""
    try:
        if not path.is_dir():
            return []
        return sorted(p.parent for pattern in (f"*/{SETTINGS_FILE}", f"*/*/{SETTINGS_FILE}") for p in path.glob(pattern))
    except OSError:
        return []


def _refuse_folder_of_data_dirs(path: Path) -> None:
    """InputError when ``path`` is not a data directory but holds some (a ``--keep`` folder of the
    stress harness): a data directory is never created, or looked for, above others."""
    nested = _nested_data_dirs(path)
    if nested:
        shown = ", ".join(map(str, nested[:3])) + (f" and {len(nested) - 3} more" if len(nested) > 3 else "")
        raise InputError(f"{path} is not a wfctl data directory but holds {len(nested)}: {shown}; point "
                         "--data-dir or $WFCTL_DATA_DIR at one of them")


def _no_settings(path: Path, what: str) -> InputError:
    return InputError(f"data directory {path} has {what} but no {SETTINGS_FILE}: refusing to "
                      f"re-create it (restore {SETTINGS_FILE} from a backup, or write it with the directory's "
                      "shard count, route and durability)")
