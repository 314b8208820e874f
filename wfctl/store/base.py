"""The storage interface the engine uses: records, one shard's store, the definition catalog.

The engine never writes SQL: a backend (SQLite today, PostgreSQL later) implements
:class:`ShardStore` and :class:`CatalogStore`. Times are epoch seconds (float) passed in by
the caller (``now``), so the engine and tests control the clock. Values (inputs, outputs,
states) are JSON-serializable and limited in size (:class:`~wfctl.store.errors.PayloadTooLargeError`,
raised before anything is written).

A shard holds runs, their journals and a ready queue, plus one status row: the worker lease
(owner, expiry, fencing generation) and contention counters (retries and wait time by cause). Exactly one worker holds a
shard's lease; every write it makes carries the lease generation and is rejected with
:class:`~wfctl.store.errors.FencingError` once another worker has acquired the lease.
Clients (start, cancel, cleanup) write without a lease.

Optional capabilities a backend declares (the engine uses them only then): a store with
``can_try_start`` has ``try_start`` (see :meth:`ShardStore.start_run`); a backend whose
:meth:`~wfctl.store.backend.Backend.waker` gives a listening :class:`~wfctl.store.waker.Waker`
announces new ready runs (PostgreSQL: each start sends a NOTIFY after its commit, which the
waker's LISTEN connection turns into ``wake(shard)``), so an idle worker waits on it, with a slow
poll as the fallback, instead of querying every shard every ``poll_interval``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

SCHEMA_VERSION = 1
"""The layout of a data directory and of its files; a newer one is refused."""

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
UNFINISHED = (PENDING, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELED)
RUN_STATUSES = UNFINISHED + FINISHED

STARTED = "started"
RETRYING = "retrying"
JOURNAL_STATUSES = (STARTED, COMPLETED, FAILED, RETRYING)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored on its shard.

    ``status`` is one of :data:`RUN_STATUSES`. ``state`` is ``RunState.to_dict()`` (None in
    :meth:`ShardStore.list_runs` results, which leave it unloaded). ``timeout_s`` is the
    run's inactivity timeout (None: the engine's default). ``wake_at`` holds the run back
    after a sleep step. ``slot_time`` is the schedule slot the run was started for (None
    for a run started by hand). ``definition_version`` is the content hash of the definition
    version the run is pinned to (None for a run stored before versions: it follows the
    current version).
    """

    execution_id: str
    definition_id: str
    shard: int
    status: str
    input: Any
    output: Any
    error: str | None
    state: dict[str, Any] | None
    current_step: str | None
    attempt: int
    idempotency_key: str | None
    timeout_s: float | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    updated_at: float
    wake_at: float | None
    slot_time: float | None = None
    definition_version: str | None = None

    @property
    def finished(self) -> bool:
        """True once the run completed, failed or was canceled."""
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create (see :meth:`ShardStore.create_runs`)."""

    execution_id: str
    definition_id: str
    input: Any
    state: dict[str, Any] | None
    idempotency_key: str | None = None
    timeout_s: float | None = None
    slot_time: float | None = None
    definition_version: str | None = None


@dataclass(frozen=True, slots=True)
class JournalRow:
    """A journal row to append: one attempt of one step (``status`` in :data:`JOURNAL_STATUSES`)."""

    step_slug: str
    step_type: str | None
    status: str
    attempt: int = 1
    port: str | None = None
    output: Any = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """A stored journal row; ``seq`` counts from 1 within the run."""

    execution_id: str
    seq: int
    step_slug: str
    step_type: str | None
    attempt: int
    status: str
    port: str | None
    output: Any
    error: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class StepCommit:
    """One run's transition, applied by :meth:`ShardStore.commit_steps`.

    ``status`` is ``running``, ``completed`` or ``failed``; ``output`` and ``error`` are the
    run's result once finished. ``journal`` rows are appended in order. ``ready_at`` puts the
    run back in the ready queue at that time; None removes it from the queue (finished, or
    waiting for something else to re-queue it). ``started_at`` is set by the store on the
    run's first commit and ``completed_at`` on its finishing one (both to ``now``).
    """

    execution_id: str
    status: str
    state: dict[str, Any] | None
    current_step: str | None
    attempt: int = 1
    journal: Sequence[JournalRow] = ()
    ready_at: float | None = None
    output: Any = None
    error: str | None = None
    wake_at: float | None = None
    #: The run's definition, for the worker's observers (the store does not write it: the run has it).
    definition_id: str | None = None


LOCK_BUSY = "lock_busy"
"""Retry cause: another writer held the lock the write needed (SQLite: the file's write lock)."""
SERIALIZATION_FAILURE = "serialization_failure"
"""Retry cause: the database refused a transaction that conflicts with a concurrent one (SQLSTATE 40001)."""
DEADLOCK = "deadlock"
"""Retry cause: the database broke a deadlock by aborting the transaction (SQLSTATE 40P01)."""
LOCK_TIMEOUT = "lock_timeout"
"""Retry cause: a row or table lock was not granted in time (SQLSTATE 55P03)."""
CONNECTION_LOST = "connection_lost"
"""Retry cause: the connection broke or the server went away (SQLSTATE 08xxx, 57P01 ...)."""
RETRY_CAUSES = (LOCK_BUSY, SERIALIZATION_FAILURE, DEADLOCK, LOCK_TIMEOUT, CONNECTION_LOST)
"""Every cause a backend may count retries under (a backend reports the ones it can meet)."""


class _Contention:
    """The totals of a record's ``retries`` and ``wait_ms`` (by cause)."""

    __slots__ = ()
    retries: dict[str, int]
    wait_ms: dict[str, float]

    @property
    def total_retries(self) -> int:
        """Retries of every cause."""
        return sum(self.retries.values())

    @property
    def total_wait_ms(self) -> float:
        """Time waited for every cause (ms)."""
        return sum(self.wait_ms.values())


@dataclass(frozen=True, slots=True)
class ShardStats(_Contention):
    """A shard's counts, contention counters, lease and size.

    ``retries`` counts the writes retried and ``wait_ms`` the time spent waiting and retrying,
    each by cause (:data:`RETRY_CAUSES`: a backend reports every cause it can meet, 0 included),
    and ``transactions`` the write transactions committed, summed over every process since the
    shard was created (this process's not yet persisted share included). ``size_bytes`` is what
    the shard occupies; ``details`` holds the backend's own figures (SQLite: ``file_bytes`` and
    ``wal_bytes``) and, in every backend's, ``hot_row_count``: the runs started plus those finished
    or canceled while the deployment's ``hot_rows`` setting was on (see :class:`~wfctl.store.Settings`).
    """

    shard: int
    runs_by_status: dict[str, int]
    queue_depth: int
    retries: dict[str, int]
    wait_ms: dict[str, float]
    transactions: int
    lease_owner: str | None
    lease_expires_at: float | None
    generation: int
    heartbeat_at: float | None
    size_bytes: int
    details: dict[str, Any]
    #: Unfinished runs that carry an error: a worker could not advance them (their secrets
    #: cannot be decrypted with its key) and left them waiting; ``waiting_error`` is one such error.
    waiting: int = 0
    waiting_error: str | None = None


@dataclass(frozen=True, slots=True)
class ShardProgress(_Contention):
    """What a shard holds now, cheap enough to sample several times a second under load.

    ``runs`` is how many runs were ever created on the shard (deleted runs included);
    ``unfinished`` how many are pending or running; the counters are those of :class:`ShardStats`.
    """

    shard: int
    runs: int
    unfinished: int
    queue_depth: int
    retries: dict[str, int]
    wait_ms: dict[str, float]
    transactions: int


@dataclass(frozen=True, slots=True)
class ShardHealth(_Contention):
    """What an operator watches on a shard now, cheap to read at every metrics scrape.

    ``queue_depth`` counts every queue entry (ready, being worked on, or waiting for a later
    time: sleeps and retries); ``ready`` those ready at ``now`` that the lease holder did not
    claim (a released lease's claims are ready again), the oldest ready since ``oldest_ready_at``
    (None: none ready); the lease and the counters are those of :class:`ShardStats`.
    ``lease_now`` is the time on the clock of the lease times when they were read (``now`` on
    SQLite; the server's clock on PostgreSQL), so their ages are right whatever this machine's
    clock says.
    """

    shard: int
    queue_depth: int
    ready: int
    oldest_ready_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    generation: int
    heartbeat_at: float | None
    retries: dict[str, int]
    wait_ms: dict[str, float]
    lease_now: float


@dataclass(frozen=True, slots=True)
class RunTimes:
    """The timestamps and outcome of one run, as :meth:`ShardStore.scan_runs` yields them."""

    definition_id: str
    status: str
    created_at: float
    completed_at: float | None
    slot_time: float | None
    error: str | None


class ShardStore(ABC):
    """One shard: runs, journals, the ready queue, the worker lease, counters.

    Every write is one transaction. Methods taking ``generation`` are the lease holder's:
    they raise :class:`~wfctl.store.errors.FencingError` when the shard's generation moved on.
    """

    shard: int
    #: Whether the store has ``try_start`` (see :meth:`start_run`).
    can_try_start: ClassVar[bool] = False

    # -- clients ---------------------------------------------------------------------------

    def create_run(self, execution_id: str, definition_id: str, input: Any,
                   state: dict[str, Any] | None, *, idempotency_key: str | None = None,
                   timeout_s: float | None = None, now: float,
                   slot_time: float | None = None, definition_version: str | None = None) -> tuple[RunRecord, bool]:
        """Create a pending run and its queue entry (ready at ``now``) in one transaction.

        Returns ``(run, created)``. When a run with the same idempotency key (or the same
        execution id) exists on this shard, returns it with ``created`` False: keys are
        unique per shard, so the engine routes a keyed start by its key. ``slot_time``: the
        schedule slot the run is started for (None for a start by hand); ``definition_version``:
        the definition version the run is pinned to.
        """
        run = NewRun(execution_id, definition_id, input, state, idempotency_key, timeout_s, slot_time,
                     definition_version)
        return self.create_runs([run], now=now)[0]

    @abstractmethod
    def create_runs(self, runs: Sequence[NewRun], *, now: float) -> list[tuple[RunRecord, bool]]:
        """:meth:`create_run` for many runs in one transaction (group commit), in order."""

    @abstractmethod
    def start_run(self, execution_id: str, definition_id: str, input_json: tuple[str | None, int],
                  state_json: tuple[str | None, int], *, current_step: str | None,
                  idempotency_key: str | None = None, timeout_s: float | None = None, now: float,
                  slot_time: float | None = None, definition_version: str | None = None) -> tuple[str, bool]:
        """:meth:`create_run` for a caller that encoded the input and the state itself (what the
        engine's start path calls): ``input_json`` and ``state_json`` are ``(JSON text or None,
        size in UTF-8 bytes)`` as :mod:`wfctl.store.payload` makes them, and ``current_step`` is
        the state's first step. The size limit is checked before anything is written.

        Returns ``(execution id, created)``: the id of the existing run, and False, when the
        id or the idempotency key is taken.

        A store that declares :attr:`can_try_start` also has ``try_start``, taking the same
        arguments: a start that returns None at once, writing nothing, when the shard is busy
        (SQLite: its write lock is held elsewhere; counted as a retry), so that the engine
        can try another shard instead of waiting.
        """

    @abstractmethod
    def get_run(self, execution_id: str) -> RunRecord | None:
        """The run with its input, state and output, or None."""

    @abstractmethod
    def journal(self, execution_id: str) -> list[JournalRecord]:
        """The run's journal, oldest first (empty for an unknown run)."""

    def journal_page(self, execution_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[JournalRecord]:
        """Up to ``limit`` rows of the run's journal with ``seq > after_seq``, oldest first: read a
        long journal page by page (the next page starts after the last ``seq`` of this one)."""
        return [r for r in self.journal(execution_id) if r.seq > after_seq][:limit]

    def journal_of_step(self, execution_id: str, step_slug: str) -> list[JournalRecord]:
        """The rows of one step of the run's journal, oldest first."""
        return [r for r in self.journal(execution_id) if r.step_slug == step_slug]

    def journal_count(self, execution_id: str) -> int:
        """How many rows the run's journal holds (0 for an unknown run)."""
        return len(self.journal(execution_id))

    def journal_steps(self, execution_id: str) -> int:
        """How many steps the run's journal holds: its rows, less each ``started`` row directly
        followed by the row of the same step and attempt that finishes it."""
        rows = self.journal(execution_id)
        folded = sum(1 for a, b in zip(rows, rows[1:])
                     if a.status == STARTED and (a.step_slug, a.attempt) == (b.step_slug, b.attempt))
        return len(rows) - folded

    @abstractmethod
    def list_runs(self, statuses: Collection[str] | None = None, definition_id: str | None = None,
                  limit: int = 100, before: tuple[float, str] | None = None,
                  finished_since: float | None = None) -> list[RunRecord]:
        """Runs newest first (by ``created_at``, then execution id), with ``state`` left None.

        ``before`` is the ``(created_at, execution_id)`` of the last run of the previous page;
        ``finished_since``: only runs finished at or after that time.
        """

    @abstractmethod
    def count_runs(self, statuses: Collection[str] | None = None,
                   definition_id: str | None = None, finished_before: float | None = None) -> int:
        """How many runs match (``finished_before``: only runs finished before that time)."""

    @abstractmethod
    def cancel_runs(self, execution_ids: Collection[str], *, now: float | Callable[[], float]) -> list[str]:
        """Cancel the unfinished runs among ``execution_ids``; returns the ids canceled.

        A canceled run leaves the queue and its ``completed_at`` is the cancel time: ``now``,
        or, when ``now`` is a clock (what the engine passes), the clock read inside the write
        transaction, once it holds what it writes, so that no step committed before the
        cancel is later than it. A worker's in-flight result for it is journaled but not
        applied (see :meth:`commit_steps`).
        """

    @abstractmethod
    def cancel_matching(self, definition_id: str | None, statuses: Collection[str] | None = None,
                        *, now: float | Callable[[], float], batch: int = 100) -> int:
        """Cancel the runs of ``definition_id`` (None: any) in ``statuses`` (default: every
        unfinished status), ``batch`` per transaction (``now`` as for :meth:`cancel_runs`,
        a clock read in each); returns how many were canceled."""

    @abstractmethod
    def delete_runs(self, execution_ids: Collection[str]) -> int:
        """Delete finished runs (with journal, blobs, queue entry), 100 per transaction.

        Unfinished runs among ``execution_ids`` are left alone. Returns how many were deleted.
        """

    @abstractmethod
    def delete_finished(self, older_than: float, statuses: Collection[str] | None = None,
                        *, batch: int = 100) -> int:
        """Delete runs finished before ``older_than`` in ``statuses`` (default: every finished
        status), ``batch`` per transaction; returns how many were deleted."""

    @abstractmethod
    def inactive_runs(self, now: float, default_timeout_s: float, limit: int = 100) -> list[RunRecord]:
        """Unfinished runs inactive for longer than their timeout, least recently active first.

        A run is inactive when ``max(updated_at, wake_at) + timeout < now``, where timeout is
        the run's ``timeout_s`` or ``default_timeout_s``. A sleeping run counts from its wake-up.
        """

    @abstractmethod
    def stats(self) -> ShardStats:
        """Counts, counters by cause, lease and size."""

    @abstractmethod
    def progress(self) -> ShardProgress:
        """Runs created and unfinished, queue depth and contention counters (cheap; see :class:`ShardProgress`)."""

    @abstractmethod
    def health(self, *, now: float) -> ShardHealth:
        """Queue depth, the runs ready at ``now`` and the oldest one's ready time, lease and
        contention counters (cheap; see :class:`ShardHealth`)."""

    @abstractmethod
    def scan_runs(self, batch: int = 1000) -> Iterator[RunTimes]:
        """Every run's timestamps and outcome, streamed in batches (memory does not grow with the runs)."""

    def check(self) -> None:
        """Raise CorruptShardError when the shard is damaged (reads all of it)."""

    @abstractmethod
    def version_counts(self, definition_id: str) -> dict[str | None, int]:
        """How many runs of ``definition_id`` each definition version has (None: runs stored before versions)."""

    @abstractmethod
    def stored_bytes(self) -> int:
        """Bytes of run inputs, states, outputs and out-of-line payloads held by the shard."""

    # -- the lease holder ------------------------------------------------------------------

    @abstractmethod
    def acquire_lease(self, owner: str, ttl_s: float, *, now: float) -> int | None:
        """Take the shard's lease when it is free or expired: the new fencing generation.

        Every acquisition increments the generation (an owner re-acquiring its own live
        lease gets a new one too). None when another owner holds a live lease.
        """

    @abstractmethod
    def renew_lease(self, owner: str, generation: int, ttl_s: float, *, now: float) -> float:
        """Extend the lease to ``now + ttl_s`` and return that expiry.

        Raises FencingError when another owner acquired the lease meanwhile. A lease that
        expired but was not taken over is still renewable.
        """

    @abstractmethod
    def release_lease(self, owner: str, generation: int) -> bool:
        """Give the lease up (it becomes free at once); False when it was already lost."""

    @abstractmethod
    def claim_ready(self, generation: int, *, now: float, limit: int,
                    only: Collection[str] | None = None) -> list[RunRecord]:
        """Up to ``limit`` runs whose queue entry is ready (``ready_at <= now``), oldest first.

        Entries stay queued but are marked claimed by ``generation``: the same lease holder
        does not get them again until a commit re-queues them, while a worker that takes the
        lease over (a new generation) gets them back at once. ``only``: claim none but these
        runs (``start --wait`` runs its own run, not the rest of the shard).
        """

    @abstractmethod
    def mark_step_started(self, generation: int, execution_id: str, row: JournalRow, *,
                          now: float) -> bool:
        """Journal a side-effecting step as started before it runs (the run turns running).

        The row also keeps the run's stored state, which is its state just before the step (the
        engine commits a run before it starts a side effect): :meth:`step_state` reads it back.
        False (nothing written) when the run is canceled, finished or gone: do not run it.
        """

    @abstractmethod
    def commit_steps(self, generation: int, updates: Sequence[StepCommit], *, now: float) -> list[str]:
        """Apply many runs' transitions in one transaction (group commit).

        Returns the ids not applied because the run was canceled, finished or deleted
        meanwhile: state, status and queue are left as they are, and of their journal rows
        (when the run exists) only those of steps ended by the run's ``completed_at`` are
        appended, and the result of the side-effecting step journaled as started before it
        (in flight at the cancel); nothing computed after the cancel is.
        """

    # -- retries (clients) ------------------------------------------------------------------

    @abstractmethod
    def step_state(self, execution_id: str, seq: int) -> dict[str, Any] | None:
        """The run state journal row ``seq`` of the run keeps (a ``started`` row: the state just
        before that step, see :meth:`mark_step_started`), or None (another row, or written before
        rows kept it)."""

    @abstractmethod
    def retry_run(self, commit: StepCommit, *, expected: tuple[str, float], now: float) -> bool:
        """Put a finished run back to work: apply ``commit`` (status running, its restored state,
        step and attempts made, ``ready_at``; its journal rows, if any, appended) and queue it, in
        one write transaction, only while the run still has the status and ``updated_at`` of
        ``expected`` (a finished status; read and compared inside the transaction). False, writing
        nothing, when the run is gone or changed meanwhile (another retry, a worker, a cleanup)."""

    # -- lifetime --------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Persist pending counters and close the shard."""

    def __enter__(self) -> "ShardStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class DefinitionVersion:
    """One stored version of a definition.

    ``hash`` is its content hash (:func:`wfctl.store.payload.content_hash`), ``applied_at``
    when it was last made current, ``name``/``version``/``steps`` (a count) from the body,
    ``source`` the file it was applied from (None when unknown), ``current`` whether it is the
    definition's current version; ``body`` is loaded by :meth:`CatalogStore.get_version` only.
    """

    definition_id: str
    hash: str
    applied_at: float
    name: str | None
    version: str | None
    steps: int
    source: str | None
    current: bool
    body: dict[str, Any] | None = None


class CatalogStore(ABC):
    """Workflow definitions by id, each with its immutable versions (by content hash).

    Written rarely and never on the start path. Applying a body stores it as a version (once
    per content) and makes it the definition's current version; runs are pinned to the
    version they started on and read it back with :meth:`get_version`.
    """

    @abstractmethod
    def put_definition(self, definition_id: str, body: dict[str, Any], *, now: float,
                       source: str | None = None, replace: bool = True) -> bool:
        """Store ``body`` (tale JSON) as a version of ``definition_id`` and make it current;
        False when it already was current. ``source``: the file it came from. With
        ``replace`` False, only a new id is written: False, writing nothing, when the id
        already has a current version (of any content)."""

    @abstractmethod
    def get_definition(self, definition_id: str) -> dict[str, Any] | None:
        """The current body, or None."""

    @abstractmethod
    def get_version(self, definition_id: str, content_hash: str | None = None) -> DefinitionVersion | None:
        """Version ``content_hash`` of ``definition_id`` (None: the current one) with its body, or None."""

    @abstractmethod
    def definition_history(self, definition_id: str) -> list[DefinitionVersion]:
        """Every stored version of ``definition_id`` (without bodies), most recently applied first."""

    @abstractmethod
    def list_definitions(self) -> list[dict[str, Any]]:
        """Summaries sorted by id: ``{id, name, version, updated_at, steps, hash}`` (steps: a
        count; hash: the current version)."""

    @abstractmethod
    def delete_definition(self, definition_id: str) -> bool:
        """Delete a definition and all its versions; False when there was none."""

    @abstractmethod
    def get_schedule_state(self, definition_id: str) -> dict[str, Any] | None:
        """The schedule state of ``definition_id`` (the scheduler's JSON), or None before its first write."""

    @abstractmethod
    def put_schedule_state(self, definition_id: str, expected_version: int, state: dict[str, Any], *,
                           now: float) -> bool:
        """Compare-and-set the schedule state, in one write transaction.

        ``expected_version`` 0 means "no state yet": the row is inserted only if absent.
        Otherwise the row is replaced only while its version is ``expected_version``. The
        stored version becomes ``expected_version + 1`` (as ``state["version"]`` says). False,
        writing nothing, when another writer got there first.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the catalog."""

    def __enter__(self) -> "CatalogStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
