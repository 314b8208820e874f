"""The data directory: ``wfctl.json`` (settings), ``catalog.db`` and ``shard-NNN.db`` files.

``wfctl.json`` is written last (atomically) when a directory is created, so a directory
with settings is complete; creation is serialized between processes by a lock file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import SCHEMA_VERSION, CatalogStore, ShardStore
from .payload import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_SPILL_THRESHOLD_BYTES
from .routing import shard_for
from .sqlite.catalog import SQLiteCatalogStore, create_catalog_file
from .sqlite.connection import DEFAULT_BUSY_DEADLINE_S
from .sqlite.shard import SQLiteShardStore, create_shard_file

__all__ = ["SCHEMA_VERSION", "DataDir", "Settings", "resolve_data_dir"]

SETTINGS_FILE = "wfctl.json"
CATALOG_FILE = "catalog.db"
LOCK_FILE = ".wfctl.lock"
CREATING_FILE = ".wfctl.creating"
DEFAULT_DIR = ".wfctl"
ENV_VAR = "WFCTL_DATA_DIR"
ROUTES = ("definition", "execution")
DURABILITIES = ("normal", "full")
MAX_SHARDS = 1000
_SHARD_FILE = re.compile(r"shard-(\d{3,})\.db")


def resolve_data_dir(option: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """The data directory: the ``--data-dir`` option, else ``$WFCTL_DATA_DIR``, else ``./.wfctl``."""
    return Path(option or env.get(ENV_VAR) or DEFAULT_DIR).expanduser()


def shard_file_name(shard: int) -> str:
    """``shard-000.db`` for shard 0."""
    return f"shard-{shard:03d}.db"


@dataclass(frozen=True)
class Settings:
    """What ``wfctl.json`` holds.

    ``route`` picks the routing key: ``definition`` keeps a definition's runs on one shard,
    ``execution`` spreads them. ``durability`` ``full`` syncs every commit (SQLite
    ``synchronous=FULL``); ``normal`` may lose the last commits on power loss, never
    consistency. ``created_at`` is ISO 8601 (UTC). ``allow_modules``: module prefixes whose
    functions definitions may call as ``module:function`` actions (see docs/actions.md).
    """

    schema_version: int = SCHEMA_VERSION
    shards: int = 4
    route: str = "definition"
    durability: str = "normal"
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    spill_threshold_bytes: int = DEFAULT_SPILL_THRESHOLD_BYTES
    created_at: str = ""
    allow_modules: list[str] = field(default_factory=list)  # module prefixes for module:function actions
    secret_key_fingerprint: str | None = None

    def validate(self, where: str) -> None:
        """Raise InputError naming ``where`` on an invalid value."""
        def positive_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        if not positive_int(self.shards) or self.shards > MAX_SHARDS:
            raise InputError(f"{where}: shards must be an integer from 1 to {MAX_SHARDS}, got {self.shards!r}")
        if self.route not in ROUTES:
            raise InputError(f"{where}: route must be one of {', '.join(ROUTES)}, got {self.route!r}")
        if self.durability not in DURABILITIES:
            raise InputError(f"{where}: durability must be one of {', '.join(DURABILITIES)}, "
                             f"got {self.durability!r}")
        for name in ("max_payload_bytes", "spill_threshold_bytes"):
            if not positive_int(getattr(self, name)):
                raise InputError(f"{where}: {name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.allow_modules, list) and all(isinstance(m, str) for m in self.allow_modules)):
            raise InputError(f"{where}: allow_modules must be a list of module prefixes, got {self.allow_modules!r}")
        if self.secret_key_fingerprint is not None and not isinstance(self.secret_key_fingerprint, str):
            raise InputError(f"{where}: secret_key_fingerprint must be a string, got {self.secret_key_fingerprint!r}")

    def differences(self, other: "Settings") -> list[str]:
        """``name=ours`` for every setting (creation time and key fingerprint aside) that differs from ``other``."""
        return [f"{k}={v}" for k, v in asdict(self).items()
                if k not in ("created_at", "allow_modules", "secret_key_fingerprint") and v != getattr(other, k)]


class DataDir:
    """An initialized data directory: its settings, its files, and stores opened on them."""

    def __init__(self, path: Path, settings: Settings):
        self.path = path
        self.settings = settings

    @classmethod
    def init(cls, path: str | Path, shards: int = 4, route: str = "definition",
             durability: str = "normal", *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
             spill_threshold_bytes: int = DEFAULT_SPILL_THRESHOLD_BYTES) -> "DataDir":
        """Create a data directory (or accept an existing one with the same settings).

        An existing directory with different settings is refused with an InputError.
        """
        wanted = Settings(shards=shards, route=route, durability=durability,
                          max_payload_bytes=max_payload_bytes, spill_threshold_bytes=spill_threshold_bytes)
        return cls._create(Path(path), wanted, strict=True)

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> "DataDir":
        """Open a data directory; create it with default settings when missing and ``create``.

        Raises InputError when it is missing (and not ``create``), cannot be created, was
        written by a newer wfctl, lacks one of its files, has shard or catalog files but no
        settings, or has more shard files than its settings say.
        """
        path = Path(path)
        if not _exists(path / SETTINGS_FILE):
            if not create:
                _refuse_folder_of_data_dirs(path)
                if not _exists(path):
                    raise InputError(f"data directory {path} does not exist; create it with wfctl init")
                if not path.is_dir():
                    raise InputError(f"data directory {path} is not a directory")
                if _leftovers(path):
                    raise _no_settings(path)
                raise InputError(f"{path} is not a wfctl data directory (no {SETTINGS_FILE}); "
                                 "create one with wfctl init")
            return cls._create(path, Settings(), strict=False)
        datadir = cls(path, _read_settings(path))
        for name in [CATALOG_FILE, *map(shard_file_name, range(datadir.settings.shards))]:
            if not _exists(path / name, file=True):
                raise InputError(f"data directory {path}: {name} is missing")
        extra = sorted(n for n in _shard_numbers(path) if n >= datadir.settings.shards)
        if extra:
            raise InputError(
                f"data directory {path}: {shard_file_name(extra[0])} is beyond the {datadir.settings.shards} "
                f"shard(s) {SETTINGS_FILE} declares (was 'shards' lowered by hand? it cannot be changed: "
                f"set it back to {extra[-1] + 1} or more)")
        return datadir

    @classmethod
    def _create(cls, path: Path, wanted: Settings, *, strict: bool) -> "DataDir":
        wanted.validate(str(path))
        if not _exists(path / SETTINGS_FILE):
            _refuse_folder_of_data_dirs(path)
        try:
            if path.exists() and not path.is_dir():
                raise InputError(f"{path} exists and is not a directory")
            path.mkdir(parents=True, exist_ok=True)
            with _locked(path):
                if (path / SETTINGS_FILE).exists():
                    existing = _read_settings(path)
                    diff = existing.differences(wanted)
                    if strict and diff:
                        raise InputError(
                            f"data directory {path} already exists with {', '.join(diff)}; refusing to "
                            f"re-initialize it with {', '.join(wanted.differences(existing))}")
                else:
                    if _leftovers(path) and not (path / CREATING_FILE).exists():
                        raise _no_settings(path)
                    (path / CREATING_FILE).touch()  # a creation cut short may be completed
                    now = time.time()
                    create_catalog_file(path / CATALOG_FILE, durability=wanted.durability)
                    for shard in range(wanted.shards):
                        create_shard_file(path / shard_file_name(shard), shard, durability=wanted.durability,
                                          now=now)
                    created = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")
                    _write_settings(path, Settings(**{**asdict(wanted), "created_at": created}))
                    (path / CREATING_FILE).unlink()
        except OSError as exc:
            raise InputError(f"cannot create data directory {path}: {exc.strerror or exc}") from None
        return cls.open(path, create=False)

    def reload(self) -> Settings:
        """The settings as ``wfctl.json`` holds them now (another process may have recorded the key's fingerprint)."""
        self.settings = _read_settings(self.path)
        return self.settings

    def record_key_fingerprint(self, fingerprint: str) -> str:
        """Record the secret key's fingerprint in ``wfctl.json`` unless one is recorded already;
        returns the recorded one (serialized between processes)."""
        with _locked(self.path):
            settings = _read_settings(self.path)
            if settings.secret_key_fingerprint is None:
                settings = Settings(**{**asdict(settings), "secret_key_fingerprint": fingerprint})
                _write_settings(self.path, settings)
        self.settings = settings
        return settings.secret_key_fingerprint

    def is_writable(self) -> bool:
        """Whether this process may write the directory (a read-only one is opened read-only)."""
        return os.access(self.path, os.W_OK)

    @property
    def shard_count(self) -> int:
        """How many shards the directory has."""
        return self.settings.shards

    @property
    def catalog_path(self) -> Path:
        """``catalog.db``."""
        return self.path / CATALOG_FILE

    def shard_path(self, shard: int) -> Path:
        """The file of shard ``shard``."""
        self._check_shard(shard)
        return self.path / shard_file_name(shard)

    def route_key(self, definition_id: str, execution_id: str) -> str:
        """The key a new run is routed by, following the ``route`` setting."""
        return definition_id if self.settings.route == "definition" else execution_id

    def shard_for(self, definition_id: str, execution_id: str) -> int:
        """The shard a new run goes to, following the ``route`` setting."""
        return shard_for(self.route_key(definition_id, execution_id), self.settings.shards)

    def open_shard(self, shard: int, *, busy_deadline_s: float = DEFAULT_BUSY_DEADLINE_S) -> ShardStore:
        """Open one shard's store (CorruptShardError when its file is damaged)."""
        return SQLiteShardStore(self.shard_path(shard), shard, durability=self.settings.durability,
                                max_payload_bytes=self.settings.max_payload_bytes,
                                spill_threshold_bytes=self.settings.spill_threshold_bytes,
                                busy_deadline_s=busy_deadline_s)

    def open_catalog(self, *, busy_deadline_s: float = DEFAULT_BUSY_DEADLINE_S) -> CatalogStore:
        """Open the definition catalog."""
        return SQLiteCatalogStore(self.catalog_path, durability=self.settings.durability,
                                  max_payload_bytes=self.settings.max_payload_bytes,
                                  busy_deadline_s=busy_deadline_s)

    def _check_shard(self, shard: int) -> None:
        if not (isinstance(shard, int) and 0 <= shard < self.settings.shards):
            raise InputError(f"data directory {self.path} has shards 0..{self.settings.shards - 1}, not {shard!r}")

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r}, {self.settings})"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize creation between processes (an advisory lock on a file in the directory)."""
    with open(path / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _exists(path: Path, file: bool = False) -> bool:
    """Whether ``path`` exists (a file when ``file``); InputError when it cannot be looked at."""
    try:
        return path.is_file() if file else path.exists()
    except OSError as exc:
        raise InputError(f"cannot access {path}: {exc.strerror or exc}") from None


def _shard_numbers(path: Path) -> list[int]:
    """The shard numbers of the ``shard-NNN.db`` files in ``path``."""
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise InputError(f"cannot list data directory {path}: {exc.strerror or exc}") from None
    return [int(m.group(1)) for name in names if (m := _SHARD_FILE.fullmatch(name))]


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


def _leftovers(path: Path) -> bool:
    """Whether ``path`` holds a catalog or shard file (so it is a data directory that lost its settings)."""
    return bool(_shard_numbers(path)) or _exists(path / CATALOG_FILE)


def _no_settings(path: Path) -> InputError:
    return InputError(f"data directory {path} has shard or catalog files but no {SETTINGS_FILE}: refusing to "
                      f"re-create it (restore {SETTINGS_FILE} from a backup, or write it with the directory's "
                      "shard count, route and durability)")


def _read_settings(path: Path) -> Settings:
    file = path / SETTINGS_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{file} must hold a JSON object")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(f"{file}: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise InputError(f"data directory {path} was written by a newer wfctl (schema {version} > {SCHEMA_VERSION})")
    for key in ("shards", "route", "durability"):
        if key not in data:
            raise InputError(f"{file}: {key} is missing")
    known = {k: v for k, v in data.items() if k in Settings.__dataclass_fields__}
    settings = Settings(**known)
    settings.validate(str(file))
    return settings


def _write_settings(path: Path, settings: Settings) -> None:
    tmp = path / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(settings), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path / SETTINGS_FILE)
