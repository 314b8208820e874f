"""What running workflows needs, shared by an :class:`~wfctl.engine.Engine` and its workers.

A :class:`Runtime` holds a data directory's shard stores (opened once), its catalog, the
definitions read from it by (id, version), the interpreter and the clock. An ``Engine`` adds
the public operations on top; a :class:`~wfctl.engine.worker.Worker` needs nothing more.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, WfctlError
from ..store import CatalogStore, DataDir, ShardStore, StoreError, resolve_data_dir
from .views import shown

_log = logging.getLogger("wfctl.engine")

#: How often a long-lived engine or worker reads the shard count again (``wfctl shards add/remove``).
SHARD_REFRESH_S = 2.0

if TYPE_CHECKING:  # the definition model (pydantic) is imported on first use: status/list never need it
    from ..definitions import Definition


class Runtime:
    """A data directory's stores, definitions, interpreter and clock. Thread-safe; close it when done.

    ``interpreter_factory(secret_box) -> Interpreter`` builds the interpreter (stubs, a
    registry, an LLM provider); it must keep the given SecretBox, whose key is shared by every
    process (see :mod:`wfctl.engine.keys`). ``clock`` gives epoch seconds. ``allow_modules``:
    module prefixes whose functions definitions may call as ``module:function`` actions, besides
    those of ``$WFCTL_ALLOW_MODULES`` and the data directory's ``allow_modules`` setting.
    """

    def __init__(self, datadir: DataDir, *, interpreter_factory: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.time, allow_modules: Collection[str] = ()):
        self.datadir = datadir
        self.clock = clock
        self.interpreter_factory = interpreter_factory
        self._allow_modules = tuple(allow_modules)
        self._action_policy = None
        self._interpreter = None
        self._stores: dict[int, ShardStore] = {}
        self._catalog: CatalogStore | None = None
        self._current: dict[str, Definition] = {}  # the current version of each id read or applied
        self._versions: dict[tuple[str, str], Definition] = {}  # (id, content hash) -> that version
        self._lock = threading.RLock()
        self._next_refresh = time.monotonic() + SHARD_REFRESH_S  # the count was just read

    @classmethod
    def open(cls, data_dir: str | Path | DataDir | None = None, *, create: bool = True, **options: Any) -> "Runtime":
        """The runtime of ``data_dir`` (a DataDir, a path, or None for ``$WFCTL_DATA_DIR`` /
        ``./.wfctl``; a missing directory is created with default settings unless ``create`` is
        False: InputError then); ``options`` as for the constructor."""
        datadir = data_dir if isinstance(data_dir, DataDir) else DataDir.open(
            resolve_data_dir(None if data_dir is None else str(data_dir)), create=create)
        return cls(datadir, **options)

    @property
    def shard_count(self) -> int:
        """How many shards the data directory has."""
        return self.datadir.shard_count

    def refresh_shards(self, every: float | None = None) -> bool:
        """Adopt the shard count recorded now (``wfctl shards add/remove`` by another process), at most
        once per ``every`` seconds (None: now); whether it changed. The stores of shards beyond it
        are closed. When the count cannot be read (its server is down) the one known is kept."""
        now = time.monotonic()
        if every is not None and now < self._next_refresh:
            return False
        self._next_refresh = now + (SHARD_REFRESH_S if every is None else every)
        try:
            changed = self.datadir.refresh_shards(self.catalog)
        except (StoreError, InputError) as exc:
            _log.warning("cannot read the shard count, keeping %d: %s", self.shard_count, exc)
            return False
        if changed:
            self.close_removed_shards()
        return changed

    def reopen_shard(self, shard: int) -> bool:
        """Open shard ``shard``'s store again, in place of the one opened before (whose shard may have
        been removed and added again since); whether it opened (if not, the old one stays)."""
        try:
            fresh = self.datadir.open_shard(shard)
        except WfctlError:
            return False
        with self._lock:
            old = self._stores.get(shard)
            self._stores[shard] = fresh
        if old is not None:
            old.close()
        return True

    def close_removed_shards(self) -> None:
        """Close the opened stores of shards beyond the shard count (removed)."""
        with self._lock:
            for shard in [s for s in self._stores if s >= self.shard_count]:
                self._stores.pop(shard).close()

    @property
    def action_policy(self):
        """The :class:`~wfctl.actions.ActionPolicy`: which ``module:function`` actions may run."""
        if self._action_policy is None:
            from ..actions.policy import ActionPolicy

            self._action_policy = ActionPolicy.resolve(self._allow_modules, os.environ,
                                                       self.datadir.settings.allow_modules)
        return self._action_policy

    @property
    def interpreter(self):
        """The interpreter (built on first use with the data directory's secret key)."""
        with self._lock:
            if self._interpreter is None:
                from .keys import secret_box

                box = secret_box(self.datadir)
                if self.interpreter_factory is not None:
                    self._interpreter = self.interpreter_factory(box)
                else:
                    from ..interpreter import Interpreter

                    self._interpreter = Interpreter(secret_box=box, clock=self.clock)
                self._interpreter.policy = self.action_policy
            return self._interpreter

    def shard_store(self, shard: int) -> ShardStore:
        """Shard ``shard``'s store, opened once (CorruptShardError names a damaged shard)."""
        store = self._stores.get(shard)
        if store is None:
            with self._lock:
                store = self._stores.get(shard)
                if store is None:
                    store = self._stores[shard] = self.datadir.open_shard(shard)
        return store

    @property
    def catalog(self) -> CatalogStore:
        """The definition catalog, opened once."""
        with self._lock:
            if self._catalog is None:
                self._catalog = self.datadir.open_catalog()
            return self._catalog

    # -- definitions -----------------------------------------------------------------------

    def definition(self, definition_id: str, reload: bool = False, version: str | None = None) -> Definition:
        """A stored definition: its current version, or version ``version`` (a content hash).

        Read from the catalog once, then cached (a version never changes; ``reload`` reads
        which version is current again, e.g. after another process applied a new one).
        InputError when unknown.
        """
        if version is not None:
            definition = self._versions.get((definition_id, version))
            if definition is None:
                found = self.catalog.get_version(definition_id, version)
                if found is None:
                    raise InputError(f"unknown version '{shown(version)}' of definition '{shown(definition_id)}'")
                definition = self.remember(_parse(found), current=False)
            return definition
        definition = None if reload else self._current.get(definition_id)
        if definition is None:
            found = self.catalog.get_version(definition_id)
            if found is None:
                raise InputError(f"unknown definition '{shown(definition_id)}'")
            definition = self.remember(self._versions.get((definition_id, found.hash)) or _parse(found),
                                       current=True)
        return definition

    def cached(self, definition_id: str, version: str | None = None) -> Definition | None:
        """The definition (its current version, or ``version``) if it was read or applied already."""
        return self._current.get(definition_id) if version is None else self._versions.get((definition_id, version))

    def is_current(self, definition: Definition) -> bool:
        """Whether ``definition`` is the one cached as its id's current version."""
        return self._current.get(definition.id) is definition

    def remember(self, definition: Definition, current: bool) -> Definition:
        """Cache a pinned definition by version (and as its id's current version)."""
        with self._lock:
            self._versions[(definition.id, definition.content_hash)] = definition
            if current:
                self._current[definition.id] = definition
        return definition

    def forget(self, definition_id: str) -> None:
        """Drop every cached version of ``definition_id`` (it was deleted)."""
        with self._lock:
            self._current.pop(definition_id, None)
            for key in [k for k in self._versions if k[0] == definition_id]:
                del self._versions[key]

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every opened store."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(found: Any) -> Definition:
    from ..definitions import parse_definition

    return parse_definition(found.body, default_id=found.definition_id).pin(found.hash)
