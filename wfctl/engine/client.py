"""The public library object: start, inspect, cancel and clean up durable runs in a data directory.

Every method is a few calls on the storage interface (:mod:`wfctl.store`); the CLI and the
stress harness are thin layers over :class:`Engine`. A start is one transaction on one shard
file: the catalog is read once per definition and kept in memory, and the execution id
carries the shard (see :mod:`wfctl.engine.ids`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..definitions import SUFFIXES, Definition, find_definition_files, load_definition, parse_definition
from ..errors import DefinitionError, InputError
from ..store import DataDir, JournalRecord, RunRecord, ShardStore, StoreError, resolve_data_dir
from ..store.base import STARTED
from . import ids
from .keys import secret_box

_log = logging.getLogger("wfctl.engine")


@dataclass(frozen=True, slots=True)
class StartResult:
    """A started run: its id, its shard, and False when an idempotent start found an existing run."""

    execution_id: str
    shard: int
    created: bool


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as JSON (without its journal)."""
    return {
        "execution_id": run.execution_id, "definition_id": run.definition_id, "shard": run.shard,
        "status": run.status, "current_step": run.current_step, "input": run.input, "output": run.output,
        "error": run.error, "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
    }


def steps_list(journal: list[JournalRecord]) -> list[dict[str, Any]]:
    """The journal as JSON steps: a side-effecting step's ``started`` row is folded into its result.

    A ``started`` row with no result right after it is ``started`` when it is the last row (the
    step is in flight) and ``interrupted`` otherwise (its worker died; the step was run again).
    """
    steps: list[dict[str, Any]] = []
    for i, row in enumerate(journal):
        nxt = journal[i + 1] if i + 1 < len(journal) else None
        if row.status == STARTED and nxt is not None and (nxt.step_slug, nxt.attempt) == (row.step_slug, row.attempt):
            continue
        status = row.status
        started_at = row.started_at
        prev = journal[i - 1] if i else None
        if prev is not None and prev.status == STARTED and (prev.step_slug, prev.attempt) == (row.step_slug, row.attempt):
            started_at = prev.started_at
        elif status == STARTED and nxt is not None:
            status = "interrupted"
        steps.append({"slug": row.step_slug, "type": row.step_type, "status": status, "attempt": row.attempt,
                      "port": row.port, "output": row.output, "error": row.error,
                      "started_at": iso(started_at), "finished_at": iso(row.finished_at)})
    return steps


class Engine:
    """A data directory's runs and definitions.

    ``data_dir``: a path (created with default settings when missing) or None for
    ``$WFCTL_DATA_DIR`` / ``./.wfctl``. ``interpreter_factory(secret_box) -> Interpreter``
    builds the interpreter (stubs, a registry, an LLM provider); it must keep the given
    SecretBox, whose key is shared by every process (see :mod:`wfctl.engine.keys`).
    ``clock`` gives epoch seconds. Thread-safe; close it (or use ``with``) when done.
    """

    def __init__(self, data_dir: str | Path | DataDir | None = None, *,
                 interpreter_factory: Callable[..., Any] | None = None, clock: Callable[[], float] = time.time):
        self.datadir = data_dir if isinstance(data_dir, DataDir) else DataDir.open(
            resolve_data_dir(None if data_dir is None else str(data_dir)))
        self.clock = clock
        self.interpreter_factory = interpreter_factory
        self._stores: dict[int, ShardStore] = {}
        self._catalog = None
        self._definitions: dict[str, Definition] = {}
        self._files: dict[Path, tuple[int, int, str]] = {}
        self._interpreter = None
        self._lock = threading.RLock()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def shard_count(self) -> int:
        """How many shards the data directory has."""
        return self.datadir.shard_count

    @property
    def interpreter(self):
        """The interpreter (built on first use with the data directory's secret key)."""
        with self._lock:
            if self._interpreter is None:
                box = secret_box(self.datadir.path)
                if self.interpreter_factory is not None:
                    self._interpreter = self.interpreter_factory(box)
                else:
                    from ..interpreter import Interpreter

                    self._interpreter = Interpreter(secret_box=box, clock=self.clock)
            return self._interpreter

    def shard_store(self, shard: int) -> ShardStore:
        """Shard ``shard``'s store, opened once (CorruptShardError names a damaged file)."""
        store = self._stores.get(shard)
        if store is None:
            with self._lock:
                store = self._stores.get(shard)
                if store is None:
                    store = self._stores[shard] = self.datadir.open_shard(shard)
        return store

    @property
    def catalog(self):
        """The definition catalog, opened once."""
        with self._lock:
            if self._catalog is None:
                self._catalog = self.datadir.open_catalog()
            return self._catalog

    def close(self) -> None:
        """Close every opened file."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def locate(self, execution_id: str) -> int:
        """The shard an execution id names (shard 0, with a logged warning, for a legacy or bad id)."""
        if not isinstance(execution_id, str) or not execution_id:
            raise InputError(f"invalid execution id {execution_id!r}")
        shard, warning = ids.shard_of(execution_id, self.shard_count)
        if warning:
            _log.warning(warning)
        return shard

    def _run(self, execution_id: str) -> RunRecord:
        run = self.shard_store(self.locate(execution_id)).get_run(execution_id)
        if run is None:
            raise InputError(f"unknown execution id '{execution_id}'")
        return run

    def _by_shard(self, execution_ids: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for eid in dict.fromkeys(execution_ids):
            groups.setdefault(self.locate(eid), []).append(eid)
        return groups

    def _each_shard(self, shard: int | None = None) -> Iterable[ShardStore]:
        """The stores of every shard (or of ``shard``); a damaged file is skipped with a warning."""
        if shard is not None:
            self.datadir.shard_path(shard)  # validates the number
            yield self.shard_store(shard)
            return
        for n in range(self.shard_count):
            try:
                yield self.shard_store(n)
            except StoreError as exc:
                _log.warning("skipping shard %d: %s", n, exc)

    # -- definitions -----------------------------------------------------------------------

    def apply(self, paths: Iterable[str | Path]) -> list[tuple[str, bool]]:
        """Load and validate definition files (directories are searched) and store them.

        Every file is checked before anything is stored; DefinitionError on the first error.
        Returns ``(id, changed)`` per definition.
        """
        loaded: dict[str, Definition] = {}
        for path in find_definition_files(list(paths)):
            definition = load_definition(path)
            other = loaded.get(definition.id)
            if other is not None:
                raise DefinitionError(f"definition id '{definition.id}' is defined by both {other.source} and {path}")
            loaded[definition.id] = definition
        now = self.clock()
        applied = []
        for definition_id, definition in loaded.items():
            changed = self.catalog.put_definition(definition_id, definition.to_tale(), now=now)
            with self._lock:
                self._definitions[definition_id] = definition
            applied.append((definition_id, changed))
        return applied

    def definitions(self) -> list[dict[str, Any]]:
        """Summaries of the stored definitions: ``{id, name, version, updated_at, steps}``."""
        return [{**d, "updated_at": iso(d["updated_at"])} for d in self.catalog.list_definitions()]

    def definition(self, definition_id: str) -> Definition:
        """A stored definition (read from the catalog once, then cached); InputError when unknown."""
        definition = self._definitions.get(definition_id)
        if definition is None:
            body = self.catalog.get_definition(definition_id)
            if body is None:
                raise InputError(f"unknown definition '{definition_id}'")
            definition = parse_definition(body, default_id=definition_id)
            with self._lock:
                self._definitions[definition_id] = definition
        return definition

    def _resolve(self, ref: str | Path) -> Definition:
        """A registered id, or a definition file (applied when it is new or changed)."""
        path = Path(ref)
        if path.suffix.lower() in SUFFIXES and path.is_file():
            stat = path.stat()
            seen = self._files.get(path.resolve())
            if seen is not None and seen[:2] == (stat.st_mtime_ns, stat.st_size) and seen[2] in self._definitions:
                return self._definitions[seen[2]]
            [(definition_id, _)] = self.apply([path])
            self._files[path.resolve()] = (stat.st_mtime_ns, stat.st_size, definition_id)
            return self._definitions[definition_id]
        if not isinstance(ref, str) or not ref:
            raise InputError(f"invalid definition {ref!r}")
        try:
            return self.definition(ref)
        except InputError:
            raise InputError(f"unknown definition '{ref}' (not in the catalog, and no such definition file)") from None

    def delete_definition(self, definition_id: str, batch: int = 100) -> tuple[int, int]:
        """Delete a definition: cancel its unfinished runs, then delete all its runs, ``batch``
        per transaction on every shard. Returns ``(canceled, deleted)``."""
        known = self.catalog.delete_definition(definition_id)
        with self._lock:
            self._definitions.pop(definition_id, None)
        canceled = deleted = 0
        now = self.clock()
        for store in self._each_shard():
            canceled += store.cancel_matching(definition_id, now=now, batch=batch)
            while page := [r.execution_id for r in store.list_runs(definition_id=definition_id, limit=batch)]:
                n = store.delete_runs(page)
                if n == 0:  # runs started meanwhile: cancel them too
                    canceled += len(store.cancel_runs(page, now=now))
                    n = store.delete_runs(page)
                    if n == 0:
                        break
                deleted += n
        if not known and not (canceled or deleted):
            raise InputError(f"unknown definition '{definition_id}'")
        return canceled, deleted

    # -- runs ------------------------------------------------------------------------------

    def start(self, definition: str | Path, input: Any = None, idempotency_key: str | None = None) -> StartResult:
        """Start a run of ``definition`` (a registered id or a definition file) with ``input``
        (a JSON object or None): one transaction on one shard."""
        d = self._resolve(definition)
        if input is not None and not isinstance(input, dict):
            raise InputError(f"input must be a JSON object, got {type(input).__name__}")
        if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
            raise InputError(f"idempotency key must be a non-empty string, got {idempotency_key!r}")
        body = ids.new_body(d.id, idempotency_key)
        shard = self.datadir.shard_for(d.id, body)
        eid = ids.execution_id(shard, body)
        state = self.interpreter.new_run(d, input, eid).to_dict()
        run, created = self.shard_store(shard).create_run(
            eid, d.id, input, state, timeout_s=d.config.timeout / 1000.0, now=self.clock())
        return StartResult(run.execution_id, shard, created)

    def status(self, execution_id: str) -> dict[str, Any]:
        """The run and its steps (see :func:`run_dict` and :func:`steps_list`)."""
        run = self._run(execution_id)
        return {**run_dict(run), "steps": steps_list(self.shard_store(run.shard).journal(execution_id))}

    def list(self, statuses: Collection[str] | None = None, definition: str | None = None,
             shard: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Runs newest first, merged across shards (or from ``shard`` only)."""
        pages = [store.list_runs(statuses, definition, limit) for store in self._each_shard(shard)]
        merged = heapq.merge(*pages, key=lambda r: (r.created_at, r.execution_id), reverse=True)
        return [run_dict(r) for _, r in zip(range(limit), merged)]

    def _check_known(self, groups: dict[int, list[str]]) -> None:
        for shard, group in groups.items():
            store = self.shard_store(shard)
            for eid in group:
                if store.get_run(eid) is None:
                    raise InputError(f"unknown execution id '{eid}'")

    def count(self, statuses: Collection[str] | None = None, definition: str | None = None) -> int:
        """How many runs of ``definition`` (None: any) are in ``statuses`` (None: any), over every shard."""
        return sum(store.count_runs(statuses, definition) for store in self._each_shard())

    def count_finished_before(self, seconds: float, statuses: Collection[str] | None = None) -> int:
        """How many runs :meth:`cleanup_older_than` would delete now."""
        statuses = list(statuses) if statuses is not None else list(FINISHED)
        older_than = self.clock() - seconds
        return sum(store.count_runs(statuses, None, finished_before=older_than) for store in self._each_shard())

    def cancel(self, execution_ids: Iterable[str]) -> list[str]:
        """Cancel unfinished runs; returns the ids canceled (finished ones are left alone).

        InputError, before anything is canceled, when an id is unknown.
        """
        groups = self._by_shard(execution_ids)
        self._check_known(groups)
        now = self.clock()
        return [eid for shard, group in groups.items() for eid in self.shard_store(shard).cancel_runs(group, now=now)]

    def cancel_matching(self, definition: str | None, statuses: Collection[str] | None = None) -> int:
        """Cancel the runs of ``definition`` (None: any) in ``statuses`` (default: unfinished); the count."""
        now = self.clock()
        return sum(store.cancel_matching(definition, statuses, now=now) for store in self._each_shard())

    def cleanup(self, execution_ids: Iterable[str], force: bool = False) -> int:
        """Delete finished runs (``force``: cancel unfinished ones first); returns how many were deleted.

        InputError, before anything is deleted, when an id is unknown.
        """
        groups = self._by_shard(execution_ids)
        self._check_known(groups)
        deleted = 0
        for shard, group in groups.items():
            store = self.shard_store(shard)
            if force:
                store.cancel_runs(group, now=self.clock())
            deleted += store.delete_runs(group)
        return deleted

    def cleanup_older_than(self, seconds: float, statuses: Collection[str] | None = None) -> int:
        """Delete runs finished more than ``seconds`` ago in ``statuses`` (default: every finished one)."""
        older_than = self.clock() - seconds
        return sum(store.delete_finished(older_than, statuses) for store in self._each_shard())

    def wait(self, execution_id: str, timeout: float | None = None, poll: float = 0.02) -> dict[str, Any]:
        """Follow a run until it finishes or ``timeout`` seconds pass; returns its status.

        While no worker holds the run's shard lease, this process takes it and runs the
        shard's work itself (all of the shard's runs), releasing it when done.
        """
        from .worker import Worker

        run = self._run(execution_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        stop = threading.Event()
        worker = Worker(self, [run.shard], owner=None)
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
        return self.status(execution_id)

    def shards(self) -> list[dict[str, Any]]:
        """Per-shard statistics (:class:`~wfctl.store.ShardStats` fields, plus ``path``);
        a damaged shard gives ``{shard, path, error}``."""
        out = []
        for n in range(self.shard_count):
            path = str(self.datadir.shard_path(n))
            try:
                out.append({**asdict(self.shard_store(n).stats()), "path": path})
            except StoreError as exc:
                out.append({"shard": n, "path": path, "error": str(exc)})
        return out
