"""The processes of a stress run: clients that start runs, workers that run them, schedulers.

Each is a spawned process (module-level entry points, picklable arguments) with its own
engine, so the contention on the shard files is real. Clients and workers record their
metrics in bounded structures (HDR histograms, per-interval timelines) and write them,
once, to a JSON file the harness merges (:func:`write_payload` / :func:`read_payload`).

Start-up handshake: every process releases ``ready`` once its engine is open; the harness
waits for all of them, writes the common start instant into ``origin`` and sets ``go``.
Every process (clients, workers, schedulers) does nothing until that instant, so all of a
variant's events, and every timeline, count from the same origin.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WfctlError
from .metrics import RunMetrics, Timeline

#: How often an open-model client re-reads the harness's count of unfinished runs.
IN_FLIGHT_REFRESH_S = 0.05


@dataclass(frozen=True)
class Sync:
    """Shared handshake objects (multiprocessing primitives from one spawn context)."""

    ready: Any  # Semaphore: released once per process when it is ready
    go: Any  # Event: set when the run begins
    origin: Any  # Value('d'): the start instant (epoch seconds), written before ``go``
    unfinished: Any  # Value('q'): unfinished runs, as the harness last sampled them
    stop: Any  # Event: clients stop sending (Ctrl-C)
    dropped: Any  # Value('q'): arrivals dropped so far, for the live view
    rejected: Any  # Value('q'): starts refused so far, for the live view


def _bump(counter: Any) -> None:
    with counter.get_lock():
        counter.value += 1


@dataclass(frozen=True)
class ClientPlan:
    """One client process's share of the workload."""

    index: int
    processes: int
    data_dir: str
    model: str  # "closed" | "open"
    definitions: list[tuple[str, float]]
    input: dict[str, Any]  # the scenario's [input] table
    users: list[int] = field(default_factory=list)  # closed: the virtual users this process runs
    clients: int = 1  # closed: virtual users in all
    total: int = 0  # closed: starts in all
    workload: dict[str, Any] = field(default_factory=dict)  # open: the [workload] table
    late_after: float = 1.0
    max_in_flight: int | None = None
    metrics_path: str = ""


def write_payload(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)


def read_payload(path: str | Path) -> tuple[RunMetrics, Timeline | None]:
    """The metrics and timeline a process wrote."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    timeline = Timeline.from_payload(data["timeline"]) if data.get("timeline") else None
    return RunMetrics.from_payload(data["metrics"]), timeline


def _one_line_errors(main: Any) -> Any:
    """A process's entry point: a wfctl error (a server gone, a damaged shard) ends the process
    with one line on stderr, naming it, and exit code 1, which the harness reports; no traceback."""
    @functools.wraps(main)
    def entry(*args: Any) -> None:
        try:
            main(*args)
        except WfctlError as exc:
            print(f"wfctl: error: {multiprocessing.current_process().name}: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    return entry


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the harness decides how to stop its processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wait_for_go(sync: Sync, stop: Any = None) -> float:
    """Signal ready, then sleep until the common start instant (or until ``stop`` is set: 0.0)."""
    sync.ready.release()
    while not sync.go.wait(0.1):
        if stop is not None and stop.is_set():
            return 0.0
    origin = sync.origin.value
    delay = origin - time.time()
    if delay > 0:
        time.sleep(delay)
    return origin


class _Recorder:
    """A client's metrics: starts, refusals, lateness (thread-safe for its virtual users)."""

    def __init__(self, origin: float, late_after: float, sync: Sync) -> None:
        self.sync = sync
        self.metrics = RunMetrics()
        self.timeline = Timeline(origin)
        self.late_after = late_after
        self.lock = threading.Lock()

    def start(self, engine: Any, definition: str, input: dict[str, Any], planned: float | None = None) -> None:
        """Start one run; its latency counts from ``planned`` (None: now, the closed model's call)."""
        if planned is None:
            planned = time.time()
        try:
            engine.start(definition, input, slot_time=planned)
        except WfctlError as exc:
            with self.lock:
                self.metrics.counters.rejected += 1
                self.metrics.errors.add(str(exc))
            _bump(self.sync.rejected)
            return
        done = time.time()
        latency = done - planned
        with self.lock:
            self.metrics.record_start(latency, done)
            self.timeline.count("starts", done)
            self.timeline.latency("start_latency", done, latency)
            if latency > self.late_after:
                self.metrics.counters.late += 1

    def payload(self) -> dict[str, Any]:
        return {"metrics": self.metrics.to_payload(), "timeline": self.timeline.to_payload()}


@_one_line_errors
def client_main(plan: ClientPlan, sync: Sync) -> None:
    """A client process: its share of the closed or open workload, then its metrics file."""
    _ignore_interrupts()
    from ..engine import Engine
    from ..store import set_session_role

    set_session_role("client")
    from .scenarios import InputSpec, Workload
    from .workload import DefinitionMix, InputMaker, arrival_offsets

    mix = DefinitionMix(plan.definitions, plan.input.get("seed"))
    engines = [Engine(plan.data_dir) for _ in (plan.users or [0])]
    for engine in engines:
        engine.prepare(d for d, _ in plan.definitions)
    maker = InputMaker(InputSpec.model_validate(plan.input), engines[0].datadir.settings.max_payload_bytes)
    origin = _wait_for_go(sync, sync.stop)  # stopped before the start: sends nothing (loops check stop)
    recorder = _Recorder(origin, plan.late_after, sync)
    if plan.model == "closed":
        def user(vu: int, engine: Any) -> None:
            for i in range(vu, plan.total, plan.clients):
                if sync.stop.is_set():
                    return
                recorder.start(engine, mix.pick(i), maker.make(i))  # closed model: planned = the call

        threads = [threading.Thread(target=user, args=(vu, eng), daemon=True) for vu, eng in zip(plan.users, engines)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        engine = engines[0]
        workload = Workload.model_validate(plan.workload)
        in_flight, refreshed = 0, 0.0
        for k, offset in enumerate(arrival_offsets(workload)):
            if k % plan.processes != plan.index:
                continue
            if sync.stop.is_set():
                break
            planned = origin + offset
            delay = planned - time.time()
            if delay > 0:
                time.sleep(delay)
            if plan.max_in_flight is not None:
                now = time.time()
                if now - refreshed > IN_FLIGHT_REFRESH_S:
                    in_flight, refreshed = sync.unfinished.value, now
                if in_flight >= plan.max_in_flight:
                    recorder.metrics.counters.dropped += 1
                    _bump(sync.dropped)
                    continue
            # Open model: latency counts from the planned instant (no coordinated omission).
            recorder.start(engine, mix.pick(k), maker.make(k), planned)
    for engine in engines:
        engine.close()  # flushes this process's contention counters to the shards
    write_payload(plan.metrics_path, recorder.payload())


class _Observer:
    """A worker's metrics, fed by :class:`~wfctl.engine.worker.Worker` after each commit (its
    :class:`~wfctl.engine.worker.WorkerEvents`)."""

    def __init__(self, origin: float) -> None:
        self.metrics = RunMetrics()
        self.timeline = Timeline(origin)

    def claimed(self, record: Any) -> None:
        """Claims are not counted: a run's start and end are."""

    def committed(self, commits: Any, skipped: Any, now: float) -> None:
        timeline = self.timeline
        metrics = self.metrics
        for commit in commits:
            for row in commit.journal:
                if row.started_at is not None and row.finished_at is not None:
                    metrics.record_step(row.step_type or "unknown", row.finished_at - row.started_at)
            if commit.status == "completed":
                metrics.record_end("completed", None, now)
                timeline.count("completions", now)
            elif commit.status == "failed":
                metrics.record_end("failed", None, now, error=commit.error or "failed")

    def payload(self) -> dict[str, Any]:
        return {"metrics": self.metrics.to_payload(), "timeline": self.timeline.to_payload()}


@_one_line_errors
def worker_main(data_dir: str, shards: list[int], sync: Sync, metrics_path: str) -> None:
    """A worker process over ``shards`` until SIGTERM, then its metrics file."""
    _ignore_interrupts()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from ..engine import Engine
    from ..engine.worker import Worker

    engine = Engine(data_dir)
    engine.prepare(row["id"] for row in engine.definitions())
    observer = _Observer(_wait_for_go(sync, stop))
    worker = Worker(engine.runtime, shards, events=observer)
    code = worker.run(stop_event=stop)
    engine.close()
    write_payload(metrics_path, observer.payload())
    raise SystemExit(code)


@_one_line_errors
def scheduler_main(data_dir: str, sync: Sync) -> None:
    """A scheduler process (one of several racing on the same schedules) until SIGTERM."""
    _ignore_interrupts()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from ..engine import Engine
    from ..schedules.scheduler import Scheduler

    with Engine(data_dir) as engine:
        _wait_for_go(sync, stop)
        Scheduler(engine).run(stop_event=stop)
