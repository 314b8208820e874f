"""Backends: where a deployment's catalog and shards live, chosen by ``wfctl.json``'s ``backend``.

A :class:`Backend` creates, verifies and opens one deployment's parts (SQLite: files in the
data directory; PostgreSQL: schemas on one or several servers). :func:`open_backend` looks
the class up in :data:`BACKENDS` and imports its module on first use, so a backend's driver
(psycopg) is imported only when that backend is used.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InputError
from .base import CatalogStore, ShardStore
from .observer import ServerObserver
from .waker import Waker

if TYPE_CHECKING:
    from .settings import Settings

#: Backend name -> ``module:class``, imported on first use.
BACKENDS = {
    "sqlite": "wfctl.store.sqlite.backend:SQLiteBackend",
    "postgresql": "wfctl.store.postgresql.backend:PostgresBackend",
}


class Backend(ABC):
    """Where a deployment's catalog and shards live (SQLite files, PostgreSQL schemas).

    ``project`` is the data (project) directory, which holds ``wfctl.json``; ``settings``
    its settings, ``settings.options`` this backend's own (``wfctl.json`` under the backend's
    name, completed with :attr:`default_options`).
    """

    name: ClassVar[str]
    #: Options every deployment of this backend has (written to ``wfctl.json`` at creation);
    #: a top-level key of an old ``wfctl.json`` naming one of them is read as that option.
    default_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, project: Path, settings: Settings):
        self.project = Path(project)
        self.settings = settings

    @property
    def options(self) -> Mapping[str, Any]:
        """This backend's options (from ``wfctl.json``)."""
        return self.settings.options

    @abstractmethod
    def create(self, *, now: float, placement: Mapping[int, str] | None = None) -> None:
        """Create the catalog and ``settings.shards`` shards; completes a creation cut short
        (idempotent) and is safe to run from several processes at once. ``placement``: where
        each shard lives (shard -> server), for backends that spread shards; others refuse it."""

    def check_creation(self, placement: Mapping[int, str] | None = None) -> Any:
        """InputError (one line) when this deployment cannot be created as asked (checked before
        anything is created); by default a backend places no shards, so ``placement`` is refused."""
        if placement:
            raise InputError(f"the {self.name} backend keeps every shard in the data directory: "
                             "placement is for the postgresql backend")

    def existing(self) -> dict[str, Any] | None:
        """What a deployment already created where these settings point (by another machine)
        records: ``{"shards", "route", "placement"}``; None when there is none (by default the
        deployment lives in its project directory, so there is none before ``wfctl.json``)."""
        return None

    def recorded_options(self) -> dict[str, Any]:
        """The options ``wfctl.json`` records at creation (what the environment supplied filled in)."""
        return dict(self.options)

    @abstractmethod
    def verify(self) -> None:
        """InputError (one line) when a part is missing, damaged at the layout level, beyond the
        shard count, or of a newer schema version."""

    @abstractmethod
    def open_catalog(self) -> CatalogStore:
        """Open the definition catalog."""

    @abstractmethod
    def open_shard(self, shard: int) -> ShardStore:
        """Open shard ``shard``'s store (CorruptShardError when it is damaged)."""

    @abstractmethod
    def location(self, shard: int | None = None) -> str:
        """Where a shard (None: the catalog) lives, for people: a file path, or
        ``host:port/dbname schema wfctl_shard_003`` (never a password)."""

    # -- changing the shard count (``wfctl shards add/remove``; the order is store/resize.py's) ---

    @abstractmethod
    def create_shards(self, shards: range, *, now: float,
                      placement: Mapping[int, str] | None = None) -> dict[int, str]:
        """Create shards ``shards`` (numbered from the count on; completes a creation cut short)
        before they are published; their placement (shard -> server; {} when the backend places
        no shard; ``placement`` given for others: InputError)."""

    @abstractmethod
    def publish_shards(self, expected: int, shards: int, key_shards: int,
                       placement: Mapping[int, str] | None = None) -> None:
        """Record ``shards`` (and ``key_shards``, the placement of added shards) as the count, in one
        atomic write, if the recorded count is still ``expected`` (else InputError: another
        process changed it); this object uses it from then on."""

    @abstractmethod
    def drop_shard(self, shard: int) -> bool:
        """Drop shard ``shard`` (beyond the published count) if it holds no run, in one transaction
        holding its write lock, so that a start racing it either is found or fails; False (nothing
        dropped) when it holds runs."""

    def recorded_shards(self, catalog: CatalogStore) -> tuple[int, int | None]:
        """``(shards, key_shards)`` as recorded now (by default in ``wfctl.json``; ``catalog``: the
        deployment's open catalog, for backends that record them there)."""
        from .settings import read_settings

        settings = read_settings(self.project)
        return settings.shards, settings.key_shards

    def refresh_shards(self, catalog: CatalogStore) -> bool:
        """Adopt the shard count recorded now (another process may have changed it); whether it changed."""
        return self.adopt_shards(*self.recorded_shards(catalog))

    def adopt_shards(self, shards: int, key_shards: int | None) -> bool:
        """Use ``shards`` and ``key_shards`` from now on; whether they differ from the settings'."""
        from dataclasses import replace

        if (shards, key_shards) == (self.settings.shards, self.settings.key_shards):
            return False
        self.settings = replace(self.settings, shards=shards, key_shards=key_shards)
        return True

    def waker(self, shards: Collection[int]) -> Waker | None:
        """A capability: a listening :class:`~wfctl.store.waker.Waker` that the servers wake when
        runs become ready on ``shards`` (close it when done), so that an idle worker waits on it
        instead of polling. None (the default: SQLite) when nothing announces new work."""
        return None

    def observer(self) -> ServerObserver | None:
        """A capability: a :class:`~wfctl.store.observer.ServerObserver` of the servers the
        deployment lives on (close it when done). None (the default: SQLite) when there is no server."""
        return None

    def location_details(self, shard: int) -> dict[str, Any]:
        """Where shard ``shard`` lives, as ``wfctl shards --json`` shows it: ``location`` (see
        :meth:`location`) and the backend's own keys (SQLite: ``path``)."""
        return {"location": self.location(shard)}

    @classmethod
    def check_options(cls, options: Mapping[str, Any], where: str) -> None:
        """InputError naming ``where`` on a bad option (by default: one not in :attr:`default_options`)."""
        unknown = sorted(set(options) - set(cls.default_options))
        if unknown:
            raise InputError(f"{where}: unknown option {unknown[0]!r}")

    def deployment(self) -> str:
        """The deployment, for messages: ``data directory PATH`` (a deployment inside its project
        directory, as SQLite's), ``deployment wfctl on host:port/dbname`` (PostgreSQL)."""
        return f"data directory {self.project}"

    def shared_setting(self, name: str) -> str | None:
        """A setting every process and machine of the deployment must agree on (``secret_key_fingerprint``),
        as recorded now; None when none is. By default (a deployment inside its project directory)
        the field ``name`` of ``wfctl.json``."""
        from .settings import read_settings

        self.settings = read_settings(self.project)
        return getattr(self.settings, name)

    def record_shared_setting(self, name: str, value: str) -> str:
        """Record shared setting ``name`` as ``value`` unless one is recorded already (serialized
        between processes); the recorded value. By default in ``wfctl.json``."""
        from dataclasses import replace

        from .settings import read_settings, settings_lock, write_settings

        with settings_lock(self.project):
            settings = read_settings(self.project)
            if getattr(settings, name) is None:
                settings = replace(settings, **{name: value})
                write_settings(self.project, settings)
        self.settings = settings
        return getattr(settings, name)

    @classmethod
    def throwaway_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` for one more throwaway deployment beside others (the stress harness's
        variants): by default the same (each lives in its own project directory)."""
        return dict(options)

    def leftovers(self) -> str | None:
        """What a deployment left in a project directory that has no ``wfctl.json`` (so it lost
        its settings and must not be re-created), e.g. ``"shard or catalog files"``; None when nothing."""
        return None

    def describe(self) -> dict[str, Any]:
        """The backend and its version, for reports: ``{"backend": "sqlite", "version": "3.40.1"}``."""
        return {"backend": self.name}

    def drop(self) -> None:
        """Remove everything this deployment created (the stress harness; optional)."""
        raise NotImplementedError(f"the {self.name} backend cannot drop a deployment")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.project)!r})"


def backend_class(name: Any, where: str = "wfctl.json") -> type[Backend]:
    """The class of backend ``name`` (its module imported now); InputError naming ``where``
    for an unknown name or a backend whose module cannot be imported (a missing driver)."""
    target = BACKENDS.get(name) if isinstance(name, str) else None
    if target is None:
        raise InputError(f"{where}: backend must be one of {', '.join(sorted(BACKENDS))}, got {name!r}")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise InputError(f"{where}: the {name} backend cannot be loaded ({exc})") from None


def open_backend(project: Path, settings: Settings) -> Backend:
    """The backend ``settings.backend`` of the deployment whose project directory is ``project``."""
    return backend_class(settings.backend)(Path(project), settings)
