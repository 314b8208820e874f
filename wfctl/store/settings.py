"""``wfctl.json``: a deployment's settings, the general ones and its backend's own.

Layout (the backend's options under its name)::

    {"schema_version": 1, "backend": "sqlite", "shards": 4, "route": "definition",
     "durability": "normal", "max_payload_bytes": 16777216,
     "sqlite": {"spill_threshold_bytes": 262144}, "created_at": "...", ...}

A file written before backends (no ``backend``, SQLite options such as
``spill_threshold_bytes`` at the top level) is read as the SQLite backend with those options.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from .backend import backend_class
from .base import SCHEMA_VERSION
from .payload import DEFAULT_MAX_PAYLOAD_BYTES

SETTINGS_FILE = "wfctl.json"
LOCK_FILE = ".wfctl.lock"
DEFAULT_BACKEND = "sqlite"
ROUTES = ("definition", "execution")
DURABILITIES = ("normal", "full")
MAX_SHARDS = 1000


@dataclass(frozen=True)
class Settings:
    """What ``wfctl.json`` holds.

    ``backend`` names where the catalog and shards live (:data:`wfctl.store.backend.BACKENDS`);
    ``options`` are that backend's own settings. ``route`` picks the routing key:
    ``definition`` keeps a definition's runs on one shard, ``execution`` spreads them.
    ``durability`` ``full`` makes every commit durable on power loss (SQLite
    ``synchronous=FULL``); ``normal`` may lose the last commits, never consistency.
    ``created_at`` is ISO 8601 (UTC). ``allow_modules``: module prefixes whose functions
    definitions may call as ``module:function`` actions (see docs/actions.md). ``hot_rows``:
    every start and every finish also updates one shared row per shard (the stress harness
    reproduces with it the contention wfctl's design avoids; see docs/engine.md), never for production.
    ``key_shards``: the shard count keyed starts (idempotency keys, schedule slots) route over,
    recorded by the first ``wfctl shards add`` (None: ``shards``, never resized); see
    :mod:`wfctl.store.resize`.
    """

    schema_version: int = SCHEMA_VERSION
    backend: str = DEFAULT_BACKEND
    shards: int = 4
    route: str = "definition"
    durability: str = "normal"
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    allow_modules: list[str] = field(default_factory=list)  # module prefixes for module:function actions
    secret_key_fingerprint: str | None = None
    hot_rows: bool = False
    key_shards: int | None = None

    @property
    def key_count(self) -> int:
        """The shard count keyed starts route over (``key_shards``, else ``shards``)."""
        return self.key_shards or self.shards

    def validate(self, where: str) -> "Settings":
        """These settings with the backend's default options filled in; InputError naming
        ``where`` on an invalid value (an unknown backend included)."""
        def positive_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        cls = backend_class(self.backend, where)
        if not positive_int(self.shards) or self.shards > MAX_SHARDS:
            raise InputError(f"{where}: shards must be an integer from 1 to {MAX_SHARDS}, got {self.shards!r}")
        if self.route not in ROUTES:
            raise InputError(f"{where}: route must be one of {', '.join(ROUTES)}, got {self.route!r}")
        if self.durability not in DURABILITIES:
            raise InputError(f"{where}: durability must be one of {', '.join(DURABILITIES)}, "
                             f"got {self.durability!r}")
        if not positive_int(self.max_payload_bytes):
            raise InputError(f"{where}: max_payload_bytes must be a positive integer, got {self.max_payload_bytes!r}")
        if not isinstance(self.options, dict):
            raise InputError(f"{where}: {self.backend} must be an object of {self.backend} options, "
                             f"got {self.options!r}")
        if not (isinstance(self.allow_modules, list) and all(isinstance(m, str) for m in self.allow_modules)):
            raise InputError(f"{where}: allow_modules must be a list of module prefixes, got {self.allow_modules!r}")
        if self.key_shards is not None and not (positive_int(self.key_shards) and self.key_shards <= self.shards):
            raise InputError(f"{where}: key_shards must be an integer from 1 to shards ({self.shards}), "
                             f"got {self.key_shards!r}")
        if not isinstance(self.hot_rows, bool):
            raise InputError(f"{where}: hot_rows must be true or false, got {self.hot_rows!r}")
        if self.secret_key_fingerprint is not None and not isinstance(self.secret_key_fingerprint, str):
            raise InputError(f"{where}: secret_key_fingerprint must be a string, got {self.secret_key_fingerprint!r}")
        options = {**cls.default_options, **self.options}
        cls.check_options(options, f"{where}: {self.backend}")
        return replace(self, options=options)

    def differences(self, other: "Settings") -> list[str]:
        """``name=ours`` for every setting (creation time, allowed modules and key fingerprint
        aside) that differs from ``other``; a backend option as ``backend.name=ours``."""
        ours, theirs = asdict(self), asdict(other)
        out = [f"{k}={v}" for k, v in ours.items()
               if k not in ("options", "created_at", "allow_modules", "secret_key_fingerprint", "key_shards")
               and v != theirs[k]]
        if self.backend == other.backend:
            out += [f"{self.backend}.{k}={self.options.get(k)}" for k in sorted({*self.options, *other.options})
                    if self.options.get(k) != other.options.get(k)]
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``wfctl.json`` object: the options under the backend's name."""
        return {(self.backend if k == "options" else k): v for k, v in asdict(self).items()
                if not (k == "key_shards" and v is None)}  # written once a deployment was resized

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "Settings":
        """Settings read from a ``wfctl.json`` object (either layout), validated; InputError naming ``where``."""
        for key in ("shards", "route", "durability"):
            if key not in data:
                raise InputError(f"{where}: {key} is missing")
        backend = data.get("backend", DEFAULT_BACKEND)
        options = data.get(backend, {}) if isinstance(backend, str) else {}
        if not isinstance(options, dict):
            raise InputError(f"{where}: {backend} must be an object of {backend} options, got {options!r}")
        legacy = backend_class(backend, where).default_options
        options = {**{k: data[k] for k in legacy if k in data}, **options}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in ("backend", "options")}
        return cls(**known, backend=backend, options=options).validate(where)


@contextmanager
def settings_lock(path: Path) -> Iterator[None]:
    """Serialize creation and changes of project directory ``path`` between processes (an advisory
    lock on a file in the directory)."""
    with open(path / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_settings(path: Path) -> Settings:
    """The settings of project directory ``path`` (its ``wfctl.json``); InputError when unreadable,
    invalid or written by a newer wfctl."""
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
    return Settings.from_json(data, str(file))


def write_settings(path: Path, settings: Settings) -> None:
    """Write ``wfctl.json`` of project directory ``path`` atomically (and durably)."""
    tmp = path / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(settings.to_json(), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path / SETTINGS_FILE)
