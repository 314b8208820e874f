"""The public library object: start, inspect, cancel and clean up durable runs in a data directory.

Every method is a few calls on the storage interface (:mod:`wfctl.store`); the CLI and the
stress harness are thin layers over :class:`Engine`. A start is one transaction on one
shard: the catalog is read once per definition and kept in memory, and the execution id
carries the shard (see :mod:`wfctl.engine.ids`).
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durations import check_seconds
from ..errors import DefinitionError, InputError
from ..paths import is_file
from ..store import (FAILED, FINISHED, CatalogStore, CorruptShardError, DataDir, JournalRecord, RunRecord, ShardStore,
                     StoreError, UnreachableError, shard_for)
from ..store.payload import content_hash, encode
from ..store.resize import Resized
from ..store.shard_rules import checked_statuses
from . import ids
from .runtime import SHARD_REFRESH_S, Runtime
from .retry import RETRYABLE, StoredJournal, plan_retry
from .start_plan import StartPlan
from .views import MAX_LIST_LIMIT, check_limit, fold_steps, iso, run_dict, shown

if TYPE_CHECKING:  # the definition model (pydantic) is imported on first use: status/list never need it
    from ..definitions import Definition

#: Definition file suffixes (:data:`wfctl.definitions.SUFFIXES`, kept here so that the start
#: path and ``status``/``list`` do not import the definition model).
SUFFIXES = (".json", ".yaml", ".yml")

_log = logging.getLogger("wfctl.engine")


@dataclass(frozen=True, slots=True)
class Applied:
    """One definition stored by :meth:`Engine.apply`: its id, its version (content hash),
    whether that changed the current version, the version current before (None for a new
    definition) and the files both came from (absolute paths; None when unknown)."""

    id: str
    version: str
    changed: bool
    previous: str | None = None
    previous_source: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StartResult:
    """A started run: its id, its shard, and False when an idempotent start found an existing run."""

    execution_id: str
    shard: int
    created: bool


#: With execution routing, a client that found its shard busy (see :meth:`Engine.start`) stays on the shard
#: it moved to for this many starts (instead of moving on at every start).
STAY_AFTER_CONFLICT = 64


class Engine:
    """A data directory's runs and definitions.

    ``data_dir``: a path (created with default settings when missing, unless ``create`` is
    False: InputError then) or None for ``$WFCTL_DATA_DIR`` / ``./.wfctl``.
    ``interpreter_factory``, ``clock`` and ``allow_modules`` go to the engine's
    :class:`~wfctl.engine.runtime.Runtime` (:attr:`runtime`: its stores, definitions,
    interpreter and clock, which workers share); the resulting :attr:`action_policy` applies to
    validation and to the interpreter (whatever the factory built). Thread-safe; close it (or
    use ``with``) when done.
    """

    def __init__(self, data_dir: str | Path | DataDir | None = None, *,
                 interpreter_factory: Callable[..., Any] | None = None, clock: Callable[[], float] = time.time,
                 allow_modules: Collection[str] = (), create: bool = True):
        self.runtime = Runtime.open(data_dir, create=create, interpreter_factory=interpreter_factory, clock=clock,
                                    allow_modules=allow_modules)
        self.datadir = self.runtime.datadir
        self._damaged: dict[int, str] = {}  # shard -> why it is set aside (a damaged shard)
        self._files: dict[Path, tuple[int, int, Definition]] = {}
        self._lock = threading.RLock()
        self._plans: dict[str | tuple[str, str | None], StartPlan] = {}
        self._max_payload = self.datadir.settings.max_payload_bytes
        self._home = int.from_bytes(os.urandom(4), "big") % self.datadir.shard_count  # this client's current shard
        self._stay = 0

    # -- plumbing --------------------------------------------------------------------------

    @property
    def shard_count(self) -> int:
        """How many shards the data directory has."""
        return self.datadir.shard_count

    @property
    def clock(self) -> Callable[[], float]:
        """The runtime's clock (epoch seconds)."""
        return self.runtime.clock

    @property
    def action_policy(self):
        """The :class:`~wfctl.actions.ActionPolicy`: which ``module:function`` actions may run."""
        return self.runtime.action_policy

    @property
    def interpreter(self):
        """The interpreter (built on first use with the data directory's secret key)."""
        return self.runtime.interpreter

    def shard_store(self, shard: int) -> ShardStore:
        """Shard ``shard``'s store, opened once (CorruptShardError names a damaged shard)."""
        return self.runtime.shard_store(shard)

    @property
    def catalog(self) -> CatalogStore:
        """The definition catalog, opened once."""
        return self.runtime.catalog

    def close(self) -> None:
        """Close every opened store."""
        self.runtime.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def locate(self, execution_id: str) -> int:
        """The shard an execution id names (shard 0, with a logged warning, for a legacy or bad id)."""
        shard, warning = self._shard_of(execution_id)
        if warning:
            _log.warning(warning)
        return shard

    def _shard_of(self, execution_id: str) -> tuple[int, str | None]:
        if not isinstance(execution_id, str) or not execution_id:
            raise InputError(f"invalid execution id {execution_id!r}")
        found = ids.shard_of(execution_id, self.shard_count)
        if found[1] is not None and self.runtime.refresh_shards():  # a shard added since this engine read the count?
            found = ids.shard_of(execution_id, self.shard_count)
        return found

    def _run(self, execution_id: str) -> RunRecord:
        shard, warning = self._shard_of(execution_id)  # no warning about an id that names no run
        run = self._on_store(shard, lambda store: store.get_run(execution_id))
        if run is None:
            raise InputError(f"unknown execution id '{execution_id}'")
        if warning:
            _log.warning(warning)
        return run

    def _by_shard(self, execution_ids: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for eid in dict.fromkeys(execution_ids):
            groups.setdefault(self._shard_of(eid)[0], []).append(eid)
        return groups

    def _each_shard(self, shard: int | None = None) -> Iterable[ShardStore]:
        """The stores of every shard (or of ``shard``); a damaged one is skipped with a warning."""
        if shard is not None:
            self.datadir.check_shard(shard)
            yield self.shard_store(shard)
            return
        for n in range(self.shard_count):
            if n in self._damaged:
                continue
            try:
                yield self.shard_store(n)
            except UnreachableError as exc:  # down for now, not damaged: skipped this time only
                _log.warning("skipping shard %d: %s", n, exc)
            except StoreError as exc:
                self._set_aside(n, exc)

    def _over_shards(self, fn: Callable[[ShardStore], Any], shard: int | None = None) -> list[Any]:
        """``fn(store)`` for every shard (or ``shard``); a shard that turns out damaged
        (:class:`CorruptShardError`) is set aside with one warning and the others go on."""
        results = []
        for store in self._each_shard(shard):
            try:
                results.append(fn(store))
            except CorruptShardError as exc:
                if shard is not None:
                    raise
                self._set_aside(store.shard, exc)
        return results

    def _set_aside(self, shard: int, exc: Exception) -> None:
        if self.runtime.refresh_shards() and shard >= self.shard_count:
            return  # removed meanwhile (`wfctl shards remove`), not damaged
        if shard >= self.datadir.settings.key_count and self.runtime.reopen_shard(shard):
            _log.warning("skipping shard %d this time: %s", shard, exc)  # removed and added again: opened anew
            return
        if shard not in self._damaged:
            where = self.datadir.location(shard)
            self._damaged[shard] = str(exc) if where in str(exc) else f"{where}: {exc}"
            _log.warning("skipping shard %d: %s", shard, self._damaged[shard])

    # -- definitions -----------------------------------------------------------------------

    def apply(self, paths: Iterable[str | Path]) -> list[Applied]:
        """Load and validate definition files (directories are searched) and store each as a
        new version of its id, which becomes the current one (runs already started keep the
        version they started on).

        Every file is checked before anything is stored; DefinitionError on the first error.
        Returns an :class:`Applied` per definition.
        """
        from ..definitions import find_definition_files, load_definition

        loaded: dict[str, Definition] = {}
        for path in find_definition_files(list(paths)):
            definition = load_definition(path, policy=self.action_policy)
            other = loaded.get(definition.id)
            if other is not None:
                raise DefinitionError(f"definition id '{definition.id}' is defined by both {other.source} and {path}")
            loaded[definition.id] = definition
        now = self.clock()
        return [self._store(definition, now) for definition in loaded.values()]

    def _store(self, definition: Definition, now: float) -> Applied:
        """Store ``definition`` (loaded from a file) as the current version of its id."""
        body = definition.to_tale()
        version = content_hash(body)
        source = os.path.abspath(definition.source) if definition.source else None
        before = self.catalog.get_version(definition.id)
        changed = self.catalog.put_definition(definition.id, body, now=now, source=source)
        self.runtime.remember(definition.pin(version), current=True)
        return Applied(definition.id, version, changed, before and before.hash, before and before.source, source)

    def definitions(self) -> list[dict[str, Any]]:
        """Summaries of the stored definitions: ``{id, name, version, updated_at, steps, hash}``
        (``hash``: the current version)."""
        return [{**d, "updated_at": iso(d["updated_at"])} for d in self.catalog.list_definitions()]

    def definition(self, definition_id: str, reload: bool = False, version: str | None = None) -> Definition:
        """A stored definition: its current version, or version ``version`` (a content hash);
        read once, then cached (see :meth:`Runtime.definition`). InputError when unknown."""
        return self.runtime.definition(definition_id, reload, version)

    def definition_history(self, definition_id: str) -> list[dict[str, Any]]:
        """The stored versions of a definition, most recently applied first: ``{version,
        applied_at, name, definition_version (the body's version field), steps, source,
        current, runs}`` (runs: how many stored runs are pinned to it). InputError when unknown."""
        history = self.catalog.definition_history(definition_id)
        if not history:
            raise InputError(f"unknown definition '{shown(definition_id)}'")
        runs: dict[str | None, int] = {}
        for store in self._each_shard():
            for version, n in store.version_counts(definition_id).items():
                runs[version] = runs.get(version, 0) + n
        return [{"version": v.hash, "applied_at": iso(v.applied_at), "name": v.name, "definition_version": v.version,
                 "steps": v.steps, "source": v.source, "current": v.current, "runs": runs.get(v.hash, 0)}
                for v in history]

    def _resolve(self, ref: str | Path, replace: bool = False) -> Definition:
        """A registered id, or a definition file (see :meth:`_from_file`)."""
        path = Path(ref)
        if path.suffix.lower() in SUFFIXES and is_file(path):
            stat = path.stat()
            key = path.resolve()
            seen = self._files.get(key)
            if seen is not None and seen[:2] == (stat.st_mtime_ns, stat.st_size):
                d = seen[2]
                if (self.runtime.is_current(d) if replace
                        else self.runtime.cached(d.id, d.content_hash) is d):
                    return d
            definition = self._from_file(path, replace)
            self._files[key] = (stat.st_mtime_ns, stat.st_size, definition)
            return definition
        if not isinstance(ref, str) or not ref:
            raise InputError(f"invalid definition {ref!r}")
        if replace:
            raise InputError(f"--replace goes with a definition file, and '{shown(ref)}' is not one")
        try:
            return self.definition(ref)
        except InputError:
            raise InputError(f"unknown definition '{shown(ref)}' (not in the catalog, and no such definition file)") from None

    def _from_file(self, path: Path, replace: bool) -> Definition:
        """The definition a start of file ``path`` runs: the file's content, registered when its
        id is new (or with ``replace``), else the stored version with the same content.
        InputError when the id is registered with other content (``defs apply`` or ``replace``
        makes the file the current version)."""
        from ..definitions import load_definition

        definition = load_definition(path, policy=self.action_policy)
        if replace:
            self._store(definition, self.clock())
            return definition
        version = content_hash(definition.to_tale())
        known = self.runtime.cached(definition.id, version)
        if known is not None:
            return known
        current = self.catalog.get_version(definition.id)
        if current is None:
            if self.catalog.put_definition(definition.id, definition.to_tale(), now=self.clock(),
                                           source=os.path.abspath(path), replace=False):
                return self.runtime.remember(definition.pin(version), current=True)
            current = self.catalog.get_version(definition.id)  # registered meanwhile by another process
            if current is None:
                raise InputError(f"definition '{definition.id}' was registered and deleted meanwhile; start it again")
        if current.hash == version:
            return self.runtime.remember(definition.pin(version), current=True)
        if self.catalog.get_version(definition.id, version) is not None:
            return self.runtime.remember(definition.pin(version), current=False)
        source = os.path.abspath(path)
        where = f", applied from {shown(current.source, 200)}" if current.source and current.source != source else ""
        raise InputError(
            f"{shown(path.name)}: definition '{definition.id}' is already registered with other content (current "
            f"version {current.hash}{where}); `wfctl defs apply {shown(str(path), 200)}` makes this file its "
            f"current version, or start it with --replace")

    def delete_definition(self, definition_id: str, batch: int = 100) -> tuple[int, int]:
        """Delete a definition: cancel its unfinished runs, then delete all its runs, ``batch``
        per transaction on every shard. Returns ``(canceled, deleted)``."""
        known = self.catalog.delete_definition(definition_id)
        self.runtime.forget(definition_id)
        canceled = deleted = 0

        def delete(store: ShardStore) -> None:
            nonlocal canceled, deleted
            canceled += store.cancel_matching(definition_id, now=self.clock, batch=batch)
            while page := [r.execution_id for r in store.list_runs(definition_id=definition_id, limit=batch)]:
                n = store.delete_runs(page)
                if n == 0:  # runs started meanwhile: cancel them too
                    canceled += len(store.cancel_runs(page, now=self.clock))
                    n = store.delete_runs(page)
                    if n == 0:
                        break
                deleted += n

        self._over_shards(delete)
        if not known and not (canceled or deleted):
            raise InputError(f"unknown definition '{shown(definition_id)}'")
        return canceled, deleted

    # -- runs ------------------------------------------------------------------------------

    def start(self, definition: str | Path, input: Any = None, idempotency_key: str | None = None,
              slot_time: float | None = None, replace: bool = False) -> StartResult:
        """Start a run of ``definition`` (a registered id or a definition file) with ``input``
        (a JSON object or None): one transaction on one shard. The run is pinned to the
        definition version it starts on.

        A file whose id is new is registered; one whose content is a stored version of its id
        starts on that version; one whose id is registered with other content is refused
        (InputError) unless ``replace``, which makes the file the current version (as
        :meth:`apply` does).

        The input is encoded once and checked against the payload limit, and so is the run's
        initial state (built from a per-definition template, see :class:`~wfctl.engine.start_plan.StartPlan`), before
        anything is written.

        With execution routing and no idempotency key, the engine picks the shard and draws an
        id that hashes to it (:func:`ids.new_body_for_shard`): the next shard in turn (so one
        client spreads its runs over every shard). When the store can try a start
        (:attr:`ShardStore.can_try_start`; SQLite), the run is written there only if the shard is
        not busy (its write lock is free at once), else on the next shard that is not; when every
        one is busy it waits for the first. After such a conflict it stays on the shard it found
        free for :data:`STAY_AFTER_CONFLICT` starts: clients writing at the same time settle on
        different shards instead of queueing on one lock (and re-reading each other's pages).

        The shard count is read again every :data:`~wfctl.engine.runtime.SHARD_REFRESH_S` seconds
        (``wfctl shards add/remove``); a start that fails on a shard removed meanwhile is made again
        over the new count. A keyed start routes over the count keyed starts keep (see
        :mod:`wfctl.store.resize`).
        """
        self.runtime.refresh_shards(every=SHARD_REFRESH_S)
        try:
            return self._start(definition, input, idempotency_key, slot_time, replace)
        except (StoreError, InputError):
            count = self.shard_count
            if not self.runtime.refresh_shards() or self.shard_count >= count:
                raise
            return self._start(definition, input, idempotency_key, slot_time, replace)  # shards were removed

    def _start(self, definition: str | Path, input: Any, idempotency_key: str | None, slot_time: float | None,
               replace: bool) -> StartResult:
        plan = (self._plans.get(definition)
                if isinstance(definition, str) and not replace and not definition.lower().endswith(SUFFIXES)
                else None)
        if plan is None or not self.runtime.is_current(plan.definition):
            plan = self._plan(self._resolve(definition, replace))
        if input is not None and not isinstance(input, dict):
            raise InputError(f"input must be a JSON object, got {type(input).__name__}")
        if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
            raise InputError(f"idempotency key must be a non-empty string, got {idempotency_key!r}")
        d = plan.definition
        count = self.shard_count
        choose = (idempotency_key is None and plan.template is not None and 1 < count <= ids.MAX_CHOSEN_SHARDS
                  and self.datadir.settings.route == "execution")
        if choose:
            if self._stay > 0 and self._home < count:  # (shards may have been removed since)
                self._stay -= 1
            else:
                self._home = (self._home + 1) % count
            shard = self._home
            body = ids.new_body_for_shard(shard, count)
        else:
            body = ids.new_body(d.id, idempotency_key)
            shard = self.datadir.shard_for(d.id, body, keyed=idempotency_key is not None)
        eid = ids.execution_id(shard, body)
        input_json = encode(input, f"input of run {eid}", self._max_payload)
        interpreter = self.interpreter if plan.template is None else None
        state_json, current = plan.initial(interpreter, input, input_json, eid)
        now = self.clock()
        store = self.shard_store(shard)
        if choose and store.can_try_start:
            first = (shard, eid, state_json, current)
            for i in range(count):  # the current shard first, then the others that are not busy
                if i:
                    shard = (self._home + i) % count
                    store = self.shard_store(shard)
                    eid = ids.execution_id(shard, ids.new_body_for_shard(shard, count))
                    state_json, current = plan.initial(interpreter, input, input_json, eid)
                started = self._on_store(shard, lambda store: store.try_start(
                    eid, d.id, input_json, state_json, current_step=current, timeout_s=plan.timeout_s, now=now,
                    slot_time=slot_time, definition_version=plan.version))
                if started is not None:
                    if i:  # contention: stay on the shard found free
                        self._home, self._stay = shard, STAY_AFTER_CONFLICT
                    return StartResult(started[0], shard, started[1])
            shard, eid, state_json, current = first  # every shard busy: wait for the current one
            self._stay = STAY_AFTER_CONFLICT
        started = self._on_store(shard, lambda store: store.start_run(
            eid, d.id, input_json, state_json, current_step=current, idempotency_key=idempotency_key,
            timeout_s=plan.timeout_s, now=now, slot_time=slot_time, definition_version=plan.version))
        return StartResult(started[0], shard, started[1])

    def _on_store(self, shard: int, call: Callable[[ShardStore], Any]) -> Any:
        """``call(store)`` on shard ``shard``'s store; when the store of an added shard (beyond the key
        count) fails, it is opened again and called once more: the shard may have been removed and
        added again (``wfctl shards``) since it was opened. A start is idempotent by its id."""
        try:
            return call(self.shard_store(shard))
        except StoreError as exc:
            if (isinstance(exc, UnreachableError) or shard < self.datadir.settings.key_count
                    or not self.runtime.reopen_shard(shard)):
                raise
            return call(self.shard_store(shard))

    # -- schedules -------------------------------------------------------------------------

    def schedule_state(self, definition_id: str) -> dict[str, Any] | None:
        """The stored schedule state of ``definition_id`` (None before the scheduler's first write)."""
        return self.catalog.get_schedule_state(definition_id)

    def put_schedule_state(self, definition_id: str, expected_version: int, state: dict[str, Any]) -> bool:
        """Compare-and-set a schedule state (see :meth:`CatalogStore.put_schedule_state`)."""
        return self.catalog.put_schedule_state(definition_id, expected_version, state, now=self.clock())

    def key_run(self, definition_id: str, key: str) -> RunRecord | None:
        """The run started for ``definition_id`` with idempotency key ``key``, or None.

        Its id is derived from (definition id, key), so this reads one row on one shard.
        """
        body = ids.new_body(definition_id, key)
        shard = self.datadir.shard_for(definition_id, body, keyed=True)
        run = self.shard_store(shard).get_run(ids.execution_id(shard, body))
        return run if run is not None and run.idempotency_key == key else None

    def key_unfinished(self, definition_id: str, key: str) -> bool:
        """Whether the run started with idempotency key ``key`` exists and is pending or running."""
        run = self.key_run(definition_id, key)
        return run is not None and not run.finished

    def cancel_key(self, definition_id: str, key: str) -> bool:
        """Cancel the run started with idempotency key ``key`` if it is unfinished; whether it was."""
        run = self.key_run(definition_id, key)
        if run is None or run.finished:
            return False
        return bool(self.shard_store(run.shard).cancel_runs([run.execution_id], now=self.clock))

    def prepare(self, definition_ids: Iterable[str]) -> None:
        """Open every shard and build the start plans of ``definition_ids`` now, so that the
        first starts pay no set-up cost (loading, validating, imports); the stress clients
        call it before their start instant."""
        for n in range(self.shard_count):
            self.shard_store(n)
        for definition_id in definition_ids:
            self._plan(self._resolve(definition_id))
        from ..expressions import compile_expression

        compile_expression("0")  # the expression parser, which the first step would build

    def _plan(self, d: Definition) -> "StartPlan":
        """The start plan of ``d`` (built once per definition object, see :class:`StartPlan`;
        kept by id for the current version, by id and version for an older one)."""
        key = d.id if self.runtime.is_current(d) else (d.id, d.content_hash)
        plan = self._plans.get(key)
        if plan is None or plan.definition is not d:
            plan = StartPlan.build(d, self.interpreter)
            with self._lock:
                self._plans[key] = plan
        return plan

    def status(self, execution_id: str, steps: int | None = None, *, stream: bool = False) -> dict[str, Any]:
        """The run (see :func:`run_dict`), ``steps_total`` (its step count) and ``steps`` (see
        :func:`fold_steps`): the last ``steps`` of them (1 to
        :data:`~wfctl.engine.views.MAX_LIST_LIMIT`), or all of them when None. ``stream`` (with
        all steps): ``steps`` is an iterator reading the journal page by page, so that a long
        journal is never all in memory."""
        if steps is not None:
            check_limit(steps, "steps")
        run = self._run(execution_id)
        store = self.shard_store(run.shard)
        out = {**run_dict(run), "steps_total": store.journal_steps(execution_id)}
        if steps is None:
            rows = self._journal_rows(store, execution_id)
            out["steps"] = fold_steps(rows) if stream else list(fold_steps(rows))
        else:  # the last `steps` steps lie in the last 2 * steps rows (a step has 1 or 2), plus the row before
            window = 2 * steps + 1
            after = max(0, store.journal_count(execution_id) - window)
            out["steps"] = list(fold_steps(store.journal_page(execution_id, after_seq=after, limit=window)))[-steps:]
        return out

    @staticmethod
    def _journal_rows(store: ShardStore, execution_id: str, page: int = 1000) -> Iterator[JournalRecord]:
        """Every journal row of a run, oldest first, read ``page`` rows at a time."""
        after = 0
        while rows := store.journal_page(execution_id, after_seq=after, limit=page):
            yield from rows
            after = rows[-1].seq

    def list(self, statuses: Collection[str] | None = None, definition: str | None = None,
             shard: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Runs newest first, merged across shards (or from ``shard`` only); at most ``limit``
        (1 to :data:`~wfctl.engine.views.MAX_LIST_LIMIT`, else InputError); InputError for an
        unknown ``definition`` (see :meth:`require_definition`)."""
        check_limit(limit, "limit")
        self.require_definition(definition)
        pages = self._over_shards(lambda store: store.list_runs(statuses, definition, limit), shard)
        merged = heapq.merge(*pages, key=lambda r: (r.created_at, r.execution_id), reverse=True)
        return [run_dict(r) for _, r in zip(range(limit), merged)]

    def _check_known(self, groups: dict[int, list[str]]) -> None:
        for shard, group in groups.items():
            store = self.shard_store(shard)
            for eid in group:
                if store.get_run(eid) is None:
                    raise InputError(f"unknown execution id '{eid}'")

    def require_definition(self, definition_id: str | None) -> None:
        """InputError when ``definition_id`` (a filter; None: no filter) is neither registered
        nor the definition of a stored run: a filter that names nothing is a mistake."""
        if definition_id is None or self.catalog.get_version(definition_id) is not None:
            return
        if not any(store.count_runs(None, definition_id) for store in self._each_shard()):
            raise InputError(f"unknown definition '{shown(definition_id)}'")

    def count(self, statuses: Collection[str] | None = None, definition: str | None = None) -> int:
        """How many runs of ``definition`` (None: any) are in ``statuses`` (None: any), over every
        shard; InputError for an unknown ``definition``."""
        self.require_definition(definition)
        return sum(self._over_shards(lambda store: store.count_runs(statuses, definition)))

    def count_finished_before(self, seconds: float, statuses: Collection[str] | None = None) -> int:
        """How many runs :meth:`cleanup_older_than` would delete now."""
        statuses = list(statuses) if statuses is not None else list(FINISHED)
        older_than = self.clock() - seconds
        return sum(self._over_shards(lambda store: store.count_runs(statuses, None, finished_before=older_than)))

    def cancel(self, execution_ids: Iterable[str]) -> list[str]:
        """Cancel unfinished runs; returns the ids canceled (finished ones are left alone).

        InputError, before anything is canceled, when an id is unknown. A canceled run's
        ``completed_at`` is read once its shard's write lock is held (see :meth:`ShardStore.cancel_runs`).
        """
        groups = self._by_shard(execution_ids)
        self._check_known(groups)
        return [eid for shard, group in groups.items()
                for eid in self.shard_store(shard).cancel_runs(group, now=self.clock)]

    def cancel_matching(self, definition: str | None, statuses: Collection[str] | None = None) -> int:
        """Cancel the runs of ``definition`` (None: any) in ``statuses`` (default: unfinished); the
        count. InputError for an unknown ``definition``."""
        self.require_definition(definition)
        return sum(self._over_shards(lambda store: store.cancel_matching(definition, statuses, now=self.clock)))

    def cleanup(self, execution_ids: Iterable[str], force: bool = False) -> int:
        """Delete finished runs (``force``: cancel unfinished ones first); returns how many were deleted.

        InputError, before anything is deleted, when an id is unknown or (without ``force``)
        a run is not finished.
        """
        groups = self._by_shard(execution_ids)
        self._check_known(groups)
        if not force:
            unfinished = [eid for shard, group in groups.items() for eid in group
                          if not self.shard_store(shard).get_run(eid).finished]
            if len(unfinished) == 1:
                raise InputError(f"run {unfinished[0]} is not finished: not deleted (cancel it first, or give --force)")
            if unfinished:
                more = " ..." if len(unfinished) > 5 else ""
                raise InputError(f"{len(unfinished)} runs are not finished: nothing deleted (cancel them first, "
                                 f"or give --force): {', '.join(unfinished[:5])}{more}")
        deleted = 0
        for shard, group in groups.items():
            store = self.shard_store(shard)
            if force:
                store.cancel_runs(group, now=self.clock)
            deleted += store.delete_runs(group)
        return deleted

    def cleanup_older_than(self, seconds: float, statuses: Collection[str] | None = None) -> int:
        """Delete runs finished more than ``seconds`` ago in ``statuses`` (default: every finished one)."""
        older_than = self.clock() - seconds
        return sum(self._over_shards(lambda store: store.delete_finished(older_than, statuses)))

    def retry(self, execution_id: str, from_step: str | None = None) -> dict[str, Any]:
        """Put a failed or canceled run back to work from where it stopped, or from step
        ``from_step`` (a completed run too), with the state it had there, on its pinned definition
        version (see :mod:`wfctl.engine.retry`): ``{execution_id, shard, step, attempt}``. InputError,
        nothing changed, when it cannot be, or when the run changed meanwhile (another retry won)."""
        run = self._run(execution_id)
        store = self.shard_store(run.shard)
        definition = self.runtime.definition(run.definition_id, version=run.definition_version)
        plan = plan_retry(run, StoredJournal(store, execution_id), definition, from_step, self.clock())
        if not store.retry_run(plan.commit, expected=plan.expected, now=self.clock()):
            raise InputError(f"run {execution_id} changed while it was being retried (retried, advanced or "
                             "deleted meanwhile): nothing done")
        return {"execution_id": execution_id, "shard": run.shard, "step": plan.step, "attempt": plan.attempt}

    def retry_candidates(self, definition: str, statuses: Collection[str] = (FAILED,), since: float | None = None,
                         limit: int | None = None) -> list[str]:
        """The runs :meth:`retry_matching` would retry: those of ``definition`` in ``statuses`` (failed
        or canceled) that finished in the last ``since`` seconds (None: ever), newest first, at most
        ``limit``. InputError for an unknown ``definition`` or another status."""
        self.require_definition(definition)
        checked_statuses(statuses, RETRYABLE, "retry")
        if limit is not None:
            check_limit(limit, "limit")
        cutoff = None if since is None else self.clock() - check_seconds(since, "since")
        found: list[RunRecord] = []
        for store in self._each_shard():  # each shard's newest ``limit`` (all without one)
            before, ours = None, 0
            while (limit is None or ours < limit) and (
                    page := store.list_runs(statuses, definition, MAX_LIST_LIMIT, before, finished_since=cutoff)):
                found.extend(page)
                ours += len(page)
                before = (page[-1].created_at, page[-1].execution_id)
        found.sort(key=lambda r: (r.created_at, r.execution_id), reverse=True)
        return [r.execution_id for r in found[:limit]]

    def retry_matching(self, execution_ids: Iterable[str]) -> dict[str, Any]:
        """:meth:`retry` each of ``execution_ids`` (from :meth:`retry_candidates`) from where it stopped:
        ``{retried: [...], skipped: [{execution_id, error}]}`` (a run that cannot be retried, or changed
        meanwhile, is skipped; the others go on)."""
        retried, skipped = [], []
        for eid in execution_ids:
            try:
                retried.append(self.retry(eid))
            except InputError as exc:
                skipped.append({"execution_id": eid, "error": str(exc)})
        return {"retried": retried, "skipped": skipped}

    def wait(self, execution_id: str, timeout: float | None = None, poll: float = 0.02,
             steps: int | None = None) -> dict[str, Any]:
        """Follow a run until it finishes or ``timeout`` seconds pass; returns its status (with
        its last ``steps`` steps, or all of them when None: see :meth:`status`).

        While no worker holds the run's shard lease, this process takes it and runs this run
        alone (the shard's other runs wait for a worker), releasing the lease when done; while
        a worker holds it, the worker runs it.
        """
        from .worker import Worker

        if timeout is not None:
            check_seconds(timeout, "timeout")
        run = self._run(execution_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        stop = threading.Event()
        worker = Worker(self.runtime, [run.shard], owner=None, only=[run.execution_id])
        thread = threading.Thread(target=worker.run, kwargs={"stop_event": stop}, daemon=True,
                                  name=f"wfctl-wait-{execution_id}")
        thread.start()
        try:
            while not run.finished and (deadline is None or time.monotonic() < deadline) and thread.is_alive():
                time.sleep(poll)
                run = self._run(execution_id)
        finally:
            stop.set()
            thread.join()
        return self.status(execution_id, steps)

    def add_shards(self, count: int, placement: dict[int, str] | None = None) -> dict[str, Any]:
        """Add ``count`` shards to the live deployment (:meth:`DataDir.add_shards`): ``{before, after,
        key_shards, route, added: [{shard, location}], moved: [{definition, from, to}]}``; ``moved``:
        with definition routing, the stored definitions whose new runs now start on another shard
        (their runs already started stay where their ids say)."""
        self.runtime.refresh_shards()
        resized = self.datadir.add_shards(count, placement=placement)
        return {**self._resized(resized), "added": [{"shard": s, "location": where}
                                                     for s, where in resized.locations.items()]}

    def remove_shards(self, count: int) -> dict[str, Any]:
        """Remove the ``count`` highest-numbered shards once they hold no run (:meth:`DataDir.remove_shards`):
        as :meth:`add_shards`, with ``removed`` (their numbers)."""
        self.runtime.refresh_shards()
        resized = self.datadir.remove_shards(count)
        return {**self._resized(resized), "removed": list(range(resized.after, resized.before))}

    def _resized(self, resized: Resized) -> dict[str, Any]:
        self.runtime.close_removed_shards()
        route = self.datadir.settings.route
        moved = []
        if route == "definition":
            for d in self.catalog.list_definitions():
                before, after = (shard_for(d["id"], n) for n in (resized.before, resized.after))
                if before != after:
                    moved.append({"definition": d["id"], "from": before, "to": after})
        return {"before": resized.before, "after": resized.after, "key_shards": resized.key_shards, "route": route,
                "moved": moved}

    def shards(self, check: bool = False) -> list[dict[str, Any]]:
        """Per-shard statistics (:class:`~wfctl.store.ShardStats` fields, plus ``location``,
        where the shard lives, and the backend's own keys, e.g. SQLite's ``path``); a damaged
        shard gives ``{shard, location, ..., error}``. ``check`` checks each shard's integrity
        (reading all of it) so that damage is found even where the statistics do not read."""
        out = []
        for n in range(self.shard_count):
            where = self.datadir.backend.location_details(n)
            try:
                if n in self._damaged:
                    raise CorruptShardError(self._damaged[n])
                store = self.shard_store(n)
                if check:
                    store.check()
                out.append({**asdict(store.stats()), **where})
            except StoreError as exc:
                out.append({"shard": n, **where, "error": str(exc)})
        return out
