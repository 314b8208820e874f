"""The worker: holds shard leases and drives runs through the interpreter, every transition journaled.

One loop per worker (a thread, usually a process's main thread):

1. Every ``lease_ttl / 3`` seconds, renew the leases it holds and try to take the others of
   its shards (a shard held by a live worker is skipped and retried; a dead worker's lease
   is taken over once it expires, with a new fencing generation). While :meth:`Worker.run`
   runs, a renewer thread with its own store connections also renews the held leases every
   ``lease_ttl / 3``: a pure step that keeps the loop busy longer than the TTL does not lose them.
2. Per held shard, ``claim_ready`` a batch, advance each run and commit all their
   transitions in one ``commit_steps`` (group commit), fenced by the lease generation.

Advancing a run: pure steps run in memory, up to ``max_pure_steps`` in a row. A
side-effecting step is never run after uncommitted steps: the run is committed and
re-queued, and the claim that picks it up next marks the step started (``mark_step_started``,
committed before the step runs) and runs it in a thread pool of ``max_parallel`` threads; its
result is committed (group commit) and the run re-queued. So after a crash no completed step
runs again, and an in-flight side-effecting step runs again with its attempt counted.

The ``attempt`` column of a run counts the attempts of its current step already started
(0 once a step is reached; a new run is ``pending``): the next attempt is that plus one.
A failed attempt that the retry policy retries re-queues the run at ``now + retry_in``; a
sleep re-queues it at its ``wake_at``. Runs whose definition's ``config.timeout`` passed
since their last update are given up on (``Interpreter.fail_step``) by a periodic sweep.

A shard whose server cannot be reached (:class:`UnreachableError`) is not broken: its lease
is dropped (the runs it had claimed are claimed anew under the next generation) and it is
tried again with backoff (:data:`UNREACHABLE_RETRY_S` doubling up to
:data:`UNREACHABLE_RETRY_CAP_S`), while the other shards go on: every store call of the
worker's threads is :func:`~wfctl.store.impatient` (one connection attempt, no waiting).
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..definitions import DEFAULT_TIMEOUT_MS, Definition
from ..errors import InputError, WfctlError
from ..interpreter import RunState, Transition
from ..store import (COMPLETED, FAILED, PENDING, RUNNING, UNFINISHED, CorruptShardError, DataDir, FencingError,
                     JournalRow,
                     PayloadTooLargeError, RunRecord, ShardStore, StepCommit, StoreError, UnreachableError,
                     impatient)
from ..store.base import RETRYING, STARTED
from ..store.roles import WORKER, set_session_role
from ..store.waker import Waker
from .engine import Engine
from .ids import default_owner
from .runtime import SHARD_REFRESH_S, Runtime

_log = logging.getLogger("wfctl.worker")

#: How long a run whose side-effecting step could not be marked started waits before it is retried.
REQUEUE_AFTER_ERROR_S = 1.0
#: How long a run whose secrets this worker's key cannot decrypt waits before it is tried again.
HOLD_UNDECRYPTABLE_S = 5.0
#: How often an idle listening worker checks its ``stop_event``.
STOP_CHECK_S = 0.1
#: How many future ready times of its own commits a listening worker keeps (later ones wait for a poll).
MAX_TIMERS = 10_000
#: How long after a shard's server was found unreachable it is tried again (then doubling).
UNREACHABLE_RETRY_S = 0.5
UNREACHABLE_RETRY_CAP_S = 5.0


class WorkerEvents(Protocol):
    """What a worker tells its ``events`` hook (:mod:`wfctl.engine.metrics` counts them), in its
    loop: each call must be quick and must not raise."""

    def claimed(self, record: RunRecord) -> None:
        """A run was claimed (``record.status`` pending: it begins executing)."""

    def committed(self, commits: Sequence[StepCommit], skipped: Collection[str], now: float) -> None:
        """``commits`` were committed (durable) at ``now``; those of ``skipped`` ids were not applied
        (canceled or finished meanwhile)."""


@dataclass(slots=True)
class _Run:
    """A claimed run being advanced: where it is and the attempt its current step runs with."""

    shard: int
    generation: int
    execution_id: str
    definition: Definition
    state: RunState
    attempt: int


class Worker:
    """Runs the work of ``shards`` (default: all) of a data directory; see the module docstring.

    ``source``: the :class:`~wfctl.engine.runtime.Runtime` whose stores, definitions,
    interpreter and clock it uses (an :class:`Engine`'s :attr:`~Engine.runtime` when given an
    engine), or a data directory (a path or a DataDir), for which it builds, and closes, its own.

    ``events`` (a :class:`WorkerEvents`), if given, is told in the worker loop of every claim and
    of every batch of :class:`StepCommit` once it is committed (the metrics and the stress harness
    count outcomes and step latencies with it). ``only``, if given, limits the
    worker to those runs (``start --wait``): the shards' other runs are left to other workers.

    Idle, the worker polls its shards every ``poll_interval`` seconds, unless the backend can
    wake it (:meth:`~wfctl.store.backend.Backend.waker`: PostgreSQL's LISTEN/NOTIFY; not for an
    ``only`` worker): then it waits for an announcement, the ready time of a run it re-queued
    (a sleep, a retry), a lease or sweep timer, or at most ``idle_poll`` seconds (announcements
    can be lost), and claims only on the shards announced or due.

    Without ``shards`` the worker serves every shard (or, with ``share=(index, of)``, the shards
    whose number modulo ``of`` is ``index``: :func:`~wfctl.engine.processes.run_workers` splits them
    so) and follows the shard count: every :data:`~wfctl.engine.runtime.SHARD_REFRESH_S` seconds it
    reads it again, takes the leases of added shards and lets go of removed ones. A worker given
    ``shards`` keeps them.
    """

    def __init__(self, source: Runtime | Engine | str | Path | DataDir, shards: list[int] | None = None,
                 owner: str | None = None, max_parallel: int = 8, lease_ttl: float = 5.0, batch: int = 64, *,
                 max_pure_steps: int = 64, poll_interval: float = 0.01, idle_poll: float = 1.0,
                 sweep_interval: float = 1.0,
                 events: WorkerEvents | None = None, only: Collection[str] | None = None,
                 share: tuple[int, int] = (0, 1)):
        if isinstance(source, Engine):
            source = source.runtime
        self._own_runtime = not isinstance(source, Runtime)
        self.runtime = Runtime.open(source) if self._own_runtime else source
        count = self.runtime.shard_count
        self._share = share if shards is None else None
        self.shards = self._followed() if shards is None else list(dict.fromkeys(shards))
        for shard in self.shards:
            if not (isinstance(shard, int) and 0 <= shard < count):
                raise InputError(f"shard {shard!r} is out of range 0..{count - 1}")
        if max_parallel < 1 or batch < 1 or lease_ttl <= 0:
            raise InputError("max_parallel and batch must be at least 1 and lease_ttl positive")
        self.owner = owner or default_owner()
        self.max_parallel = max_parallel
        self.lease_ttl = lease_ttl
        self.batch = batch
        self.max_pure_steps = max_pure_steps
        self.poll_interval = poll_interval
        self.idle_poll = idle_poll
        self.sweep_interval = sweep_interval
        self.events = events
        self.only = None if only is None else frozenset(only)
        self.clock = self.runtime.clock
        self.interpreter = self.runtime.interpreter
        self.leases: dict[int, int] = {}  # shard -> fencing generation
        self.broken: dict[int, str] = {}  # shard -> why it cannot be used
        self.held: dict[str, int] = {}  # execution id -> shard: runs whose secrets this key cannot decrypt
        self.unreachable: dict[int, tuple[float, float]] = {}  # shard -> (retry at, monotonic; backoff)
        self._inflight: set[str] = set()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._polling = self._waker = Waker()  # a listening one while run() runs, when the backend has it
        self._timers: list[tuple[float, int]] = []  # (ready_at, shard) of runs this worker re-queued for later
        self._deferred: set[int] = set()  # shards to claim on once steps in flight leave room
        self._next_poll = 0.0
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="wfctl-step")
        self._next_heartbeat = 0.0
        self._next_sweep = 0.0
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._reopened: set[int] = set()  # shards whose store was opened again after a failure (see _removed)
        self._reopen_for_renewer: set[int] = set()  # and that the renewer thread must open again too

    # -- the loop --------------------------------------------------------------------------

    def run(self, drain: bool = False, stop_event: threading.Event | None = None) -> int:
        """Work until ``stop_event`` is set (or, with ``drain``, until no unfinished run is left
        on its shards). In-flight steps finish and are committed, then the leases are released.

        Returns 0, or 1 when a shard could not be used or a run's secrets could not be
        decrypted (the error is logged; such a run is left unfinished, see :meth:`_load`).
        A worker serving shards names its process's database sessions ``worker``
        (:mod:`wfctl.store.roles`); an ``only`` worker runs its caller's runs in the caller's role.
        """
        if self.only is None:
            set_session_role(WORKER)
        stop_event = stop_event or threading.Event()
        self._stop_renewing.clear()
        self._renewer = threading.Thread(target=self._renew_leases, name="wfctl-lease-renewer", daemon=True)
        self._renewer.start()
        with impatient():
            return self._loop(drain, stop_event)

    def _loop(self, drain: bool, stop_event: threading.Event) -> int:
        try:
            if self.only is None:
                try:
                    self._waker = self.runtime.datadir.backend.waker(self.shards) or self._waker
                except StoreError as exc:  # e.g. the catalog's placement cannot be read now: poll
                    _log.warning("cannot listen for new runs, polling instead: %s", exc)
            focus: set[int] | None = None
            while True:
                stopping = stop_event.is_set()
                busy = self.tick(claim=not stopping, shards=focus)
                if not self._inflight and (stopping or (drain and not busy and self._drained())):
                    break
                focus = None if busy else self._idle(stop_event)
        finally:
            self.close()
        return 1 if self.broken or self.held else 0

    def close(self) -> None:
        """Wait for the steps in flight (their results are not committed), release the leases."""
        self._pool.shutdown(wait=True)
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join()
        self._waker.close()
        self.release()
        if self._own_runtime:
            self.runtime.close()

    def _idle(self, stop_event: threading.Event) -> set[int] | None:
        """Wait for work (see the class); the shards to claim on next (None: every held shard)."""
        if not self._waker.listening:
            self._waker.wait(self.poll_interval)
            self._deferred.clear()
            return None
        while True:
            now = self.clock()
            due = min(self._next_poll, self._next_heartbeat, self._next_sweep,
                      self._timers[0][0] if self._timers else self._next_poll)
            if due <= now or stop_event.is_set():
                woken: set[int] = set()
                break
            found = self._waker.wait(min(due - now, STOP_CHECK_S))
            if found is not None or not self._waker.listening:
                woken = found or set()
                break
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            woken.add(heapq.heappop(self._timers)[1])
        woken |= self._deferred
        self._deferred.clear()
        return None if now >= self._next_poll or not self._waker.listening else woken

    def _remember(self, shard: int, commits: Sequence[StepCommit], now: float) -> None:
        """Keep the future ready times of ``commits`` (a listening worker wakes for them)."""
        for commit in commits:
            if commit.ready_at is not None and commit.ready_at > now:
                heapq.heappush(self._timers, (commit.ready_at, shard))
        if len(self._timers) > 2 * MAX_TIMERS:
            self._timers = heapq.nsmallest(MAX_TIMERS, self._timers)

    def tick(self, claim: bool = True, shards: Collection[int] | None = None) -> bool:
        """One pass: leases, finished side-effecting steps, claims (on ``shards`` and the shards
        whose lease it just took; None: on every held shard), sweep, commits. True when something
        was done (a commit or a step started)."""
        now = self.clock()
        if now >= self._next_heartbeat:
            if self._share is not None:
                self._follow_count()
            held = set(self.leases)
            self.heartbeat(now)
            self._next_heartbeat = now + self.lease_ttl / 3
            if shards is not None:
                shards = set(shards) | (set(self.leases) - held)
        if claim and shards is None:
            self._next_poll = now + self.idle_poll
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + self.sweep_interval
        finished: dict[int, list[tuple[_Run, Any]]] = {}
        while True:
            try:
                item, outcome = self._results.get_nowait()
            except queue.Empty:
                break
            self._inflight.discard(item.execution_id)
            finished.setdefault(item.shard, []).append((item, outcome))
        busy = False
        for shard, generation in list(self.leases.items()):
            if self.leases.get(shard) != generation:
                continue  # let go meanwhile (a shard removed, see _removed)
            store = self.runtime.shard_store(shard)
            commits: list[StepCommit] = []
            effects: list[_Run] = []
            try:
                for item, outcome in finished.get(shard, ()):
                    if item.generation == generation:
                        self._finish_effect(item, outcome, now, commits, effects)
                if claim and (shards is None or shard in shards):
                    if len(self._inflight) < 2 * self.max_parallel:
                        for record in store.claim_ready(generation, now=now, limit=self.batch, only=self.only):
                            self._claimed(shard, generation, record, now, commits, effects)
                    else:
                        self._deferred.add(shard)
                if sweep:
                    self._sweep(shard, generation, store, now, commits, effects)
                if commits:
                    self._commit(store, generation, commits, self.clock())
                    if self._waker is not self._polling:
                        self._remember(shard, commits, now)
                self._reopened.discard(shard)
            except FencingError as exc:
                _log.warning("lost the lease of shard %d: %s", shard, exc)
                self.leases.pop(shard, None)
                continue
            except CorruptShardError as exc:  # a damaged shard: set aside, the other shards go on
                if not self._removed(shard):
                    self._break(shard, exc)
                continue
            except UnreachableError as exc:  # its server is down: later, with backoff
                self._unreachable(shard, exc)
                continue
            except StoreError as exc:
                if self._removed(shard):
                    continue
                # The runs claimed in this pass stay claimed by this generation: take the lease
                # again (a new generation) so that they are claimed anew.
                _log.error("shard %d: %s; taking its lease again", shard, exc)
                self.leases.pop(shard, None)
                self._next_heartbeat = now
                continue
            for item in effects:
                self._inflight.add(item.execution_id)
                self._pool.submit(self._run_effect, store, item)
            busy = busy or bool(commits or effects)
        return busy

    def _followed(self) -> list[int]:
        """The shards this worker serves under the shard count known now (its ``share`` of them)."""
        index, of = self._share
        return [shard for shard in range(self.runtime.shard_count) if shard % of == index]

    def _follow_count(self) -> None:
        """Read the shard count again (at most every few seconds): serve added shards, drop removed ones."""
        self.runtime.refresh_shards(every=SHARD_REFRESH_S)
        wanted = self._followed()
        if wanted == self.shards:
            return
        for shard in set(self.shards) - set(wanted):  # removed (empty): nothing to hand over
            self.leases.pop(shard, None)
            self.broken.pop(shard, None)
            self.unreachable.pop(shard, None)
        _log.warning("%s: the deployment has %d shards now; serving %s", self.owner, self.runtime.shard_count,
                     ",".join(map(str, wanted)))
        self.shards = wanted
        if self._waker is not self._polling:  # listen on the new shards' channels too
            old = self._waker
            try:
                self._waker = self.runtime.datadir.backend.waker(self.shards) or self._polling
            except StoreError as exc:
                _log.warning("cannot listen for new runs, polling instead: %s", exc)
                self._waker = self._polling
            old.close()

    def _removed(self, shard: int) -> bool:
        """Whether a shard that just failed did so because of ``wfctl shards remove``: removed (it is
        let go), or removed and added again since its store was opened (the store is opened again
        and its lease dropped, to be taken anew)."""
        if self._share is None or shard < self.runtime.datadir.settings.key_count:
            return False
        self.runtime.refresh_shards()
        if shard >= self.runtime.shard_count:
            self._follow_count()
            return True
        if shard in self._reopened or not self.runtime.reopen_shard(shard):
            return False  # failing again since: damaged
        self._reopened.add(shard)
        self._reopen_for_renewer.add(shard)
        self.leases.pop(shard, None)
        return True

    def heartbeat(self, now: float) -> None:
        """Renew the held leases; try to acquire the others (skipping held ones)."""
        for shard in self.shards:
            if shard in self.broken or self.unreachable.get(shard, (0.0,))[0] > time.monotonic():
                continue
            try:
                store = self.runtime.shard_store(shard)
                if shard in self.leases:
                    store.renew_lease(self.owner, self.leases[shard], self.lease_ttl, now=now)
                else:
                    generation = store.acquire_lease(self.owner, self.lease_ttl, now=now)
                    if generation is not None:
                        self.leases[shard] = generation
                        _log.info("%s holds shard %d (generation %d)", self.owner, shard, generation)
                if self.unreachable.pop(shard, None) is not None:
                    _log.warning("shard %d: its server is reachable again", shard)
            except FencingError as exc:
                _log.warning("lost the lease of shard %d: %s", shard, exc)
                self.leases.pop(shard, None)
            except (CorruptShardError, InputError) as exc:  # a damaged or missing shard
                if not self._removed(shard):
                    self._break(shard, exc)
            except UnreachableError as exc:
                self._unreachable(shard, exc)
            except StoreError as exc:
                if not self._removed(shard):
                    _log.error("shard %d: %s", shard, exc)

    def _unreachable(self, shard: int, exc: Exception) -> None:
        """Drop the lease of a shard whose server cannot be reached; try it again after a backoff."""
        self.leases.pop(shard, None)
        previous = self.unreachable.get(shard)
        delay = UNREACHABLE_RETRY_S if previous is None else min(previous[1] * 2, UNREACHABLE_RETRY_CAP_S)
        if previous is None:
            _log.warning("shard %d: %s; trying again with backoff, the other shards go on", shard, exc)
        self.unreachable[shard] = (time.monotonic() + delay, delay)

    def _renew_leases(self) -> None:
        """In the renewer thread: renew the held leases every ``lease_ttl / 3`` through its own
        store connections. A lease it cannot renew is left to the loop, whose next fenced write
        finds it lost."""
        stores: dict[int, ShardStore] = {}
        try:
            with impatient():
                while not self._stop_renewing.wait(self.lease_ttl / 3):
                    for shard in set(stores) - set(self.leases):  # let go of removed shards' files
                        stores.pop(shard).close()
                    while self._reopen_for_renewer:  # shards removed and added again (see _removed)
                        shard = self._reopen_for_renewer.pop()
                        if shard in stores:
                            stores.pop(shard).close()
                    for shard, generation in list(self.leases.items()):
                        try:
                            if shard not in stores:
                                stores[shard] = self.runtime.datadir.open_shard(shard)
                            stores[shard].renew_lease(self.owner, generation, self.lease_ttl, now=self.clock())
                        except WfctlError as exc:
                            _log.debug("shard %d: the renewer cannot renew generation %d: %s", shard, generation, exc)
        finally:
            for store in stores.values():
                store.close()

    def release(self) -> None:
        """Give up every held lease."""
        for shard, generation in list(self.leases.items()):
            try:
                self.runtime.shard_store(shard).release_lease(self.owner, generation)
            except StoreError as exc:
                _log.warning("shard %d: cannot release the lease: %s", shard, exc)
            del self.leases[shard]

    def _break(self, shard: int, exc: Exception) -> None:
        self.broken[shard] = str(exc)
        generation = self.leases.pop(shard, None)
        if generation is not None:
            try:
                self.runtime.shard_store(shard).release_lease(self.owner, generation)
            except StoreError:
                pass  # the damaged shard may refuse it: the lease expires
        where = self.runtime.datadir.location(shard)
        _log.error("shard %d is unusable, skipping it: %s", shard, exc if where in str(exc) else f"{where}: {exc}")

    def _drained(self) -> bool:
        for shard in self.shards:
            if shard in self.broken:
                continue
            held = sum(1 for s in self.held.values() if s == shard)
            try:
                if self.runtime.shard_store(shard).count_runs(UNFINISHED) > held:
                    return False
            except CorruptShardError as exc:
                self._break(shard, exc)
            except UnreachableError:
                return False  # unknown until its server is back
        return True

    # -- advancing runs --------------------------------------------------------------------

    def _claimed(self, shard: int, generation: int, record: RunRecord, now: float,
                 commits: list[StepCommit], effects: list[_Run]) -> None:
        if self.events is not None:
            self.events.claimed(record)
        item = self._load(shard, generation, record, now, commits)
        if item is not None:
            self._advance(item, None, now, commits, effects)

    def _load(self, shard: int, generation: int, record: RunRecord, now: float,
              commits: list[StepCommit]) -> _Run | None:
        """The run to advance, or None after committing its failure (no definition, no state), or
        after leaving it unfinished, with the error, when its secrets cannot be decrypted (a
        wrong key must not fail runs for good: they go on once a worker has the right key)."""
        attempt = 1 if record.status == PENDING else record.attempt + 1
        try:
            definition = self.runtime.definition(record.definition_id, version=record.definition_version)
            if record.state is None:
                raise InputError(f"run {record.execution_id} has no stored state")
            state = RunState.from_dict(record.state)
        except UnreachableError:  # the catalog's server is down: not the run's fault
            raise
        except WfctlError as exc:
            commits.append(StepCommit(record.execution_id, FAILED, record.state, record.current_step,
                                      max(attempt - 1, 0), error=str(exc), definition_id=record.definition_id))
            return None
        sealed = state.variables.get("secrets") if isinstance(state.variables, dict) else None
        if sealed:
            try:
                self.interpreter.secret_box.decrypt_map(sealed)
            except WfctlError as exc:
                if record.execution_id not in self.held:
                    _log.error("run %s waits for the right secret key: %s", record.execution_id, exc)
                self.held[record.execution_id] = shard
                commits.append(StepCommit(record.execution_id, RUNNING, record.state, record.current_step,
                                          max(attempt - 1, 0), ready_at=now + HOLD_UNDECRYPTABLE_S,
                                          error=f"waiting for the right secret key: {exc}", wake_at=record.wake_at,
                                          definition_id=record.definition_id))
                return None
            self.held.pop(record.execution_id, None)
        return _Run(shard, generation, record.execution_id, definition, state, attempt)

    def _step(self, item: _Run) -> tuple[Transition, float, float]:
        started = self.clock()
        try:
            t = self.interpreter.step(item.definition, item.state, item.attempt)
        except WfctlError as exc:  # e.g. a secret that cannot be decrypted
            t = self.interpreter.fail_step(item.definition, item.state, str(exc), item.attempt)
        return t, started, self.clock()

    def _advance(self, item: _Run, first: tuple[Transition, float, float] | None, now: float,
                 commits: list[StepCommit], effects: list[_Run]) -> None:
        """Run pure steps in memory; append the run's commit to ``commits``, or the run to
        ``effects`` to start its side-effecting step.

        A transition handed in as ``first`` (a side effect's result, a timeout) is committed
        alone: a run canceled meanwhile journals that result and nothing computed after it.
        """
        rows: list[JournalRow] = []
        pending = first
        steps = 0 if first is None else self.max_pure_steps
        while True:
            if pending is not None:
                t, started, ended = pending
                rows.append(_row(t, started, ended))
                if t.retry_in is not None:
                    commits.append(self._requeue(item, rows, now + t.retry_in, made=item.attempt))
                    return
                item.state, item.attempt = t.state, 1
                state = item.state
                if state.finished:
                    commits.append(StepCommit(item.execution_id, state.status, state.to_dict(), None, 0, rows,
                                              output=state.output, error=state.error,
                                              definition_id=item.definition.id))
                    return
                if state.wake_at is not None and state.wake_at > now:
                    commits.append(self._requeue(item, rows, state.wake_at))
                    return
            if not self.interpreter.is_pure(item.definition, item.state.current):
                if rows:  # commit what was done before starting a side effect
                    commits.append(self._requeue(item, rows, now))
                else:
                    effects.append(item)
                return
            if steps == self.max_pure_steps:
                commits.append(self._requeue(item, rows, now))
                return
            pending = self._step(item)
            steps += 1

    @staticmethod
    def _requeue(item: _Run, rows: list[JournalRow], ready_at: float, made: int | None = None) -> StepCommit:
        """The commit of a still-running run, queued at ``ready_at``; ``made`` attempts of its step started."""
        return StepCommit(item.execution_id, RUNNING, item.state.to_dict(), item.state.current,
                          item.attempt - 1 if made is None else made, rows, ready_at=ready_at,
                          wake_at=item.state.wake_at, definition_id=item.definition.id)

    def _run_effect(self, store: ShardStore, item: _Run) -> None:
        """In a pool thread: journal the step as started, run it, hand the result to the loop."""
        outcome: Any
        try:
            step = item.definition.step(item.state.current)
            row = JournalRow(item.state.current, step.step_type if step else None, STARTED, item.attempt,
                             started_at=self.clock())
            with impatient():
                marked = store.mark_step_started(item.generation, item.execution_id, row, now=row.started_at)
            if marked:
                t, _, ended = self._step(item)
                outcome = (t, row.started_at, ended)  # the attempt started when it was journaled as started
            else:
                outcome = None  # canceled, finished or deleted meanwhile: do not run it
        except Exception as exc:  # handed to the loop, which decides
            outcome = exc
        self._results.put((item, outcome))
        self._waker.wake()

    def _finish_effect(self, item: _Run, outcome: Any, now: float, commits: list[StepCommit],
                       effects: list[_Run]) -> None:
        if outcome is None:
            return
        if isinstance(outcome, (FencingError, UnreachableError)):
            raise outcome
        if isinstance(outcome, Exception):
            _log.error("run %s: cannot start step %r: %s", item.execution_id, item.state.current, outcome)
            commits.append(self._requeue(item, [], now + REQUEUE_AFTER_ERROR_S, made=item.attempt - 1))
            return
        self._advance(item, outcome, now, commits, effects)

    def _sweep(self, shard: int, generation: int, store: ShardStore, now: float,
               commits: list[StepCommit], effects: list[_Run]) -> None:
        """Give up on the runs inactive for longer than their timeout (not those advanced this pass)."""
        busy = self._inflight.union(c.execution_id for c in commits).union(e.execution_id for e in effects)
        for record in store.inactive_runs(now, DEFAULT_TIMEOUT_MS / 1000.0, limit=self.batch):
            if record.execution_id in busy or (self.only is not None and record.execution_id not in self.only):
                continue
            item = self._load(shard, generation, record, now, commits)
            if item is None:
                continue
            timeout = record.timeout_s if record.timeout_s is not None else DEFAULT_TIMEOUT_MS / 1000.0
            error = f"run timed out: no progress for {timeout:g} s (config.timeout)"
            started = self.clock()
            t = self.interpreter.fail_step(item.definition, item.state, error, item.attempt)
            self._advance(item, (t, started, started), now, commits, effects)

    def _commit(self, store: ShardStore, generation: int, commits: list[StepCommit], now: float) -> None:
        """Group-commit ``commits``; a run whose state or output is over the size limit fails alone.

        The ``events`` hook (if any) is handed each committed batch once it is durable.
        """
        try:
            skipped = store.commit_steps(generation, commits, now=now)
            committed = commits
        except PayloadTooLargeError:
            committed, skipped = [], []
            for commit in commits:
                try:
                    skipped += store.commit_steps(generation, [commit], now=now)
                except PayloadTooLargeError as exc:
                    rows = [replace(r, output=None) for r in commit.journal]
                    commit = StepCommit(commit.execution_id, FAILED, None, commit.current_step, commit.attempt, rows,
                                        error=str(exc), definition_id=commit.definition_id)
                    skipped += store.commit_steps(generation, [commit], now=now)
                committed.append(commit)
        if self.events is not None:
            self.events.committed(committed, skipped, now)


def _row(t: Transition, started: float, finished: float) -> JournalRow:
    status = RETRYING if t.retry_in is not None else FAILED if t.error else COMPLETED
    return JournalRow(t.slug or "", t.step_type, status, t.attempt, t.port, t.output, t.error, started, finished)
