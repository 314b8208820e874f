"""Run stress scenarios against real shard files, with real worker, client and scheduler processes.

One *variant* is one measured run: a fresh data directory (``init`` with the variant's
shard count and routing), the scenario's definitions applied, worker processes (and
scheduler processes) started, then client processes that send the workload from a
common start instant. The harness samples the shard files while it runs (for the live
view and for the open model's in-flight bound), waits until every run finished or the
stuck limit passed, stops the processes, and then:

* merges the metrics each process recorded (HDR histograms, timelines);
* reads every shard file once, streaming: the runs and their statuses (the *cross-check*
  against the clients' and workers' own counts), end-to-end latency from each run's
  planned start (``slot_time``) to its completion, fire lag and slot coverage for
  scheduled runs, and per shard its retries and wait time by cause and its size;
* evaluates the thresholds.

A comparison scenario runs one variant per shard count, routing mode and definition
spread (see :func:`variants`) and adds a side-by-side table of ratios to the first.
With ``repeat`` N each variant runs N times in alternating order and is reported as the
median and spread of its repetitions (:mod:`wfctl.stress.repeat`); the machine's CPU load
is sampled while each variant runs (:mod:`wfctl.stress.machine`).
Memory depends on durations and shard counts, never on the number of runs.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine.processes import split_shards
from ..errors import WfctlError
from .agents import ClientPlan, Sync, client_main, read_payload, scheduler_main, worker_main
from .contention import RETRIES_PER_1000, WAIT_MS, causes_of, retries_label
from .machine import CpuSampler
from .metrics import RunMetrics, Timeline
from .repeat import aggregate, repetition_metrics, ratio_stats, run_order
from .scenarios import Scenario, definition_path
from .server import ServerSampler
from .thresholds import BREACH_EXIT_CODE, Threshold, combine_thresholds, evaluate_thresholds, parse_thresholds
from .workload import planned_arrivals, target_rate

from .compare import RESULT_SCHEMA

_log = logging.getLogger(__name__)
#: Client processes at most; more virtual users share them as threads.
MAX_CLIENT_PROCESSES = 64
#: How often the harness samples the shards while a variant runs.
SAMPLE_EVERY_S = 0.25
#: At most this many in-flight samples are kept per variant (thinned on long runs).
MAX_SAMPLES = 600
#: The live view's rates are averaged over at least this long.
RATE_WINDOW_S = 1.0
#: How long the processes may take to start before the run is abandoned.
READY_TIMEOUT_S = 120.0
#: Delay between the go signal and the start instant, so every process sleeps to the same instant.
GO_DELAY_S = 0.05
#: Time a scheduled variant waits after its last due slot (for duplicates to show), at least; it waits
#: on until every expected slot has a run, or until ``stuck_after`` (then the slots count as missed).
SLOT_GRACE_S = 2.0

#: Checked on every variant whatever the scenario says (source "harness").
HARNESS_THRESHOLDS = ("crosscheck.differences == 0",)
SCHEDULED_THRESHOLDS = ("slots.missed == 0", "slots.duplicates == 0")

COMPARISON_ROWS = (
    ("duration_s", "total time"),
    ("completions.rate", "completions/s"),
    ("starts.rate", "starts/s"),
    ("start_latency.mean", "start mean"),
    ("start_latency.p50", "start p50"),
    ("start_latency.p99", "start p99"),
    ("e2e_latency.p50", "completion p50"),
    ("e2e_latency.p95", "completion p95"),
    (RETRIES_PER_1000, "retries per 1k starts"),
    (f"{RETRIES_PER_1000}.serialization_failure", "conflicts per 1k starts"),
    (f"{RETRIES_PER_1000}.deadlock", "deadlocks per 1k starts"),
    ("server.lock_waits_per_1000", "lock waits per 1k starts"),
    ("server.lock_wait_s", "lock wait (s)"),
    ("success_rate", "success rate"),
    ("failed", "failed"),
    ("stuck", "stuck"),
)

Progress = Callable[[dict[str, Any]], None]


class StressAborted(WfctlError):
    """A variant could not run (a process failed to start or died)."""

    exit_code = 1


@dataclass(frozen=True)
class Variant:
    """One measured configuration of a scenario: shards, routing, one hot definition or spread,
    the shared hot row per shard, the isolation level (PostgreSQL; None: the backend's default)
    and how many servers the shards are placed over."""

    name: str
    shards: int
    route: str
    hot_definition: bool = False
    hot_rows: bool = False
    isolation: str | None = None
    servers: int = 1


_ROUTE_LABELS = {"definition": "def", "execution": "exec"}
_ISOLATION_LABELS = {"read committed": "rc", "serializable": "ser"}


def variants(scenario: Scenario, backend: str = "sqlite", servers: int = 1) -> list[Variant]:
    """The variants a scenario runs on ``backend`` with ``servers`` servers given.

    Without a comparison: one, ``main``, placed over every server given. A comparison (its
    ``[comparison.postgresql]`` table on PostgreSQL, if any) runs every shard count x routing
    mode (one mode for 1 shard, where routing changes nothing) x spread / hot definition x hot
    rows off / on x isolation level x server count (more than 1 only for several shards and
    when that many servers are given), named from the dimensions that vary:
    ``<shards>sh[/def|/exec]/spread|hot[/norow|/hotrow][/rc|/ser][/<n>srv]``
    (``4sh/exec/spread/hotrow/ser/2srv``: 4 shards, execution routing, starts spread over the
    definitions, the hot row on, serializable, two servers)."""
    engine, comparison = scenario.engine, scenario.comparison
    if comparison is None:
        return [Variant("main", engine.shards, engine.route, hot_rows=engine.hot_rows, isolation=engine.isolation,
                        servers=max(1, min(servers, engine.shards)))]
    dims = comparison.on(backend)
    hot_rows = dims.hot_rows or [engine.hot_rows]
    isolations = dims.isolation or [engine.isolation]
    out = []
    for shards in dims.shards:
        routes = dims.routes if shards > 1 else dims.routes[:1]
        counts = sorted({n for n in dims.servers if n == 1 or (shards >= n and servers >= n)}) or [1]
        hots = (False, True) if dims.hot_definition else (False,)
        for route, hot, rows, isolation, n in itertools.product(routes, hots, hot_rows, isolations, counts):
            parts = ["1sh" if shards == 1 else f"{shards}sh/{_ROUTE_LABELS[route]}", "hot" if hot else "spread"]
            if len(hot_rows) > 1 or rows:
                parts.append("hotrow" if rows else "norow")
            if isolation is not None and (len(isolations) > 1 or isolation == "serializable"):
                parts.append(_ISOLATION_LABELS[isolation])
            if len(counts) > 1 or n > 1:
                parts.append(f"{n}srv")
            out.append(Variant("/".join(parts), shards, route, hot, rows, isolation, n))
    return out


def baselines(found: Sequence[Variant]) -> dict[str, str]:
    """Each variant's baseline for ratios: the first 1-shard variant with the same hot rows and
    isolation level (else the first variant)."""
    out = {}
    for v in found:
        same = [b for b in found if b.shards == 1 and b.hot_rows == v.hot_rows and b.isolation == v.isolation]
        out[v.name] = (same or list(found))[0].name
    return out


def harness_thresholds(scenario: Scenario) -> list[str]:
    """The thresholds every variant of ``scenario`` must pass whatever its file says."""
    extra = SCHEDULED_THRESHOLDS if scenario.workload.model == "scheduled" else ()
    return [*HARNESS_THRESHOLDS, *extra]


# -- one variant ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a scenario's variants run: ``backend`` with its ``options``, and the ``servers``
    (DSNs) the shards of a variant are placed over, round-robin (the first holds the catalog);
    none: the backend's default server or the data directory."""

    backend: str = "sqlite"
    options: Mapping[str, Any] = field(default_factory=dict)
    servers: tuple[str, ...] = ()


def scenario_target(scenario: Scenario) -> Target:
    """The target of ``scenario`` (its ``[engine]`` table, overridden by the command line);
    InputError (one line) for a setting the backend does not have."""
    from ..errors import InputError

    engine = scenario.engine
    backend = engine.backend or "sqlite"
    if backend != "postgresql":
        if engine.dsn:
            raise InputError(f"{scenario.name}: dsn is for the postgresql backend (this run is on {backend})")
        if engine.isolation is not None or any(v.isolation for v in variants(scenario, backend)):
            raise InputError(f"{scenario.name}: isolation is for the postgresql backend (this run is on {backend})")
    servers = tuple(engine.dsn)
    return Target(backend, {"dsn": servers[0]} if servers else {}, servers)


class _VariantRun:
    """The processes and files of one variant while it runs."""

    def __init__(self, scenario: Scenario, variant: Variant, root: Path, progress: Progress | None,
                 target: Target) -> None:
        self.scenario = scenario
        self.target = target
        self.variant = variant
        self.root = root
        self.data = root / "data"
        self.metrics_dir = root / "metrics"
        self.progress = progress
        self.ctx = multiprocessing.get_context("spawn")
        self.sync = Sync(self.ctx.Semaphore(0), self.ctx.Event(), self.ctx.Value("d", 0.0),
                         self.ctx.Value("q", 0), self.ctx.Event(), self.ctx.Value("q", 0), self.ctx.Value("q", 0))
        self.workers: list[Any] = []
        self.schedulers: list[Any] = []
        self.clients: list[Any] = []
        self.client_files: list[Path] = []
        self.worker_files: list[Path] = []
        self.phase = "starting"
        self.origin = 0.0
        self._last_sample: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)
        self.samples: list[dict[str, float | int]] = []  # in-flight runs and queue depth, for the report
        self.probe: Any = None
        self.armed_at: float | None = None
        self.backend: Any = None  # the variant's deployment, once prepared

    # set-up

    def prepare(self) -> list[tuple[str, float]]:
        from ..engine import Engine
        from ..store import DataDir
        from ..store.backend import backend_class

        engine_cfg, variant, servers = self.scenario.engine, self.variant, self.target.servers
        options = backend_class(self.target.backend).throwaway_options(self.target.options)
        if variant.isolation is not None:
            options["isolation"] = variant.isolation
        placement = ({shard: servers[shard % variant.servers] for shard in range(variant.shards)}
                     if variant.servers > 1 else None)
        self.backend = DataDir.init(self.data, shards=variant.shards, route=variant.route,
                                    durability=engine_cfg.durability, backend=self.target.backend, options=options,
                                    placement=placement, hot_rows=variant.hot_rows).backend
        self.metrics_dir.mkdir()
        files, weighted = self._definition_files()
        with Engine(self.data) as engine:
            engine.apply(files)
            self.initial_bytes = {s["shard"]: s["size_bytes"] for s in engine.shards()}
        return weighted

    def arm_schedules(self) -> None:
        """The schedules' first plan: slots count from now. Called once every process is ready
        (they wait for the start instant), so no slot is due before the variant begins however
        long the processes took to start."""
        from ..engine import Engine
        from ..schedules.scheduler import Scheduler

        with Engine(self.data) as engine:
            Scheduler(engine).tick()
            self.armed_at = engine.clock()

    def _definition_files(self) -> tuple[list[Path], list[tuple[str, float]]]:
        folder = self.root / "definitions"
        folder.mkdir()
        files, weighted = [], []
        for ref in self.scenario.definitions:
            path = definition_path(ref, self.scenario.source)
            body = ref.inline if path is None else json.loads(path.read_text(encoding="utf-8"))
            base = str(body.get("id") or (path.stem if path is not None else "stress"))
            copies = 1 if self.variant.hot_definition else ref.copies
            for k in range(1, copies + 1):
                definition_id = base if copies == 1 else f"{base}-{k}"
                target = folder / f"{definition_id}.json"
                target.write_text(json.dumps({**body, "id": definition_id}), encoding="utf-8")
                files.append(target)
                weighted.append((definition_id, ref.weight))
            if self.variant.hot_definition:
                break  # one hot definition takes every start
        return files, weighted

    def spawn(self, weighted: list[tuple[str, float]]) -> None:
        scenario, sync = self.scenario, self.sync
        for n, group in enumerate(split_shards(list(range(self.variant.shards)), scenario.engine.workers)):
            path = self.metrics_dir / f"worker-{n}.json"
            self.worker_files.append(path)
            self.workers.append(self.ctx.Process(target=worker_main, args=(str(self.data), group, sync, str(path)),
                                                 name=f"wfctl-stress-worker-{n}", daemon=True))
        for n in range(scenario.engine.schedulers):
            self.schedulers.append(self.ctx.Process(target=scheduler_main, args=(str(self.data), sync),
                                                    name=f"wfctl-stress-scheduler-{n}", daemon=True))
        for plan in self._client_plans(weighted):
            self.client_files.append(Path(plan.metrics_path))
            self.clients.append(self.ctx.Process(target=client_main, args=(plan, sync),
                                                 name=f"wfctl-stress-client-{plan.index}", daemon=True))
        for proc in self.all_processes():
            proc.start()

    def _client_plans(self, weighted: list[tuple[str, float]]) -> list[ClientPlan]:
        workload = self.scenario.workload
        if workload.model == "scheduled":
            return []
        common = dict(data_dir=str(self.data), model=workload.model, definitions=weighted,
                      input=self.scenario.input.model_dump(mode="json"), late_after=workload.late_after)
        if workload.model == "closed":
            clients = min(workload.clients, workload.total)
            processes = min(clients, MAX_CLIENT_PROCESSES)
            return [ClientPlan(index=i, processes=processes, users=list(range(i, clients, processes)), clients=clients,
                               total=workload.total, metrics_path=str(self.metrics_dir / f"client-{i}.json"), **common)
                    for i in range(processes)]
        processes = workload.clients or 2
        return [ClientPlan(index=i, processes=processes, workload=workload.model_dump(mode="json"),
                           max_in_flight=workload.max_in_flight,
                           metrics_path=str(self.metrics_dir / f"client-{i}.json"), **common)
                for i in range(processes)]

    def all_processes(self) -> list[Any]:
        return [*self.workers, *self.schedulers, *self.clients]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in self.all_processes():
            while not self.sync.ready.acquire(timeout=0.2):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise StressAborted(f"the stress processes did not start within {READY_TIMEOUT_S:g} s")

    def _check_alive(self) -> None:
        for proc in [*self.workers, *self.schedulers]:
            if proc.exitcode is not None:
                raise StressAborted(f"{proc.name} exited with code {proc.exitcode} (see its log above)")
        for proc in self.clients:
            if proc.exitcode not in (None, 0):
                raise StressAborted(f"{proc.name} exited with code {proc.exitcode} (see its log above)")

    # the run

    def go(self, origin: float) -> float:
        """Release the processes: they start at ``origin`` (a moment from now)."""
        self.origin = origin
        self.sync.origin.value = self.origin
        self.sync.go.set()
        self.phase = "running"
        return self.origin

    def sample(self, target: int | None) -> tuple[int, int]:
        """Sample the shards: (runs created, unfinished); report a live snapshot."""
        from ..engine import Engine

        if self.probe is None:
            self.probe = Engine(self.data)  # read-only: kept open while the variant runs
        shards = []
        for n in range(self.variant.shards):
            p = self.probe.shard_store(n).progress()
            shards.append({"shard": n, "runs": p.runs, "unfinished": p.unfinished, "queue_depth": p.queue_depth,
                           "retries": p.retries, "wait_ms": p.wait_ms})
        runs = sum(s["runs"] for s in shards)
        unfinished = sum(s["unfinished"] for s in shards)
        self.sync.unfinished.value = unfinished
        now = time.time()
        if self._last_sample is None:
            self._last_sample = (now, runs, runs - unfinished)
        then, runs0, finished0 = self._last_sample
        if now - then >= RATE_WINDOW_S:  # rates over at least a second, not over the last sample
            self._rates = ((runs - runs0) / (now - then), ((runs - unfinished) - finished0) / (now - then))
            self._last_sample = (now, runs, runs - unfinished)
        starts_rate, completions_rate = self._rates
        self._keep_sample(now, unfinished, sum(s["queue_depth"] for s in shards))
        if self.progress is not None:
            self.progress({
                "scenario": self.scenario.name, "variant": self.variant.name, "phase": self.phase,
                "elapsed_s": max(now - self.origin, 0.0), "target": target, "started": runs,
                "finished": runs - unfinished, "unfinished": unfinished, "starts_per_s": starts_rate,
                "completions_per_s": completions_rate, "dropped": self.sync.dropped.value,
                "rejected": self.sync.rejected.value, "shards": shards,
            })
        return runs, unfinished

    def _keep_sample(self, now: float, in_flight: int, queue_depth: int) -> None:
        """Keep a sample of the running variant; past MAX_SAMPLES every other one is dropped."""
        if self.phase not in ("running", "draining") or now < self.origin:
            return
        self.samples.append({"t": round(now - self.origin, 3), "in_flight": in_flight, "queue_depth": queue_depth})
        if len(self.samples) > MAX_SAMPLES:
            self.samples = self.samples[::2]

    def run_until_done(self, target: int | None, deadline_slot: float | None) -> float:
        """Sample until the workload is sent and every run finished (or the stuck limit passed).
        Returns the instant the wait ended."""
        stuck_after = self.scenario.stuck_after
        sent_at: float | None = None
        while True:
            runs, unfinished = self.sample(target)
            now = time.time()
            if sent_at is None:
                self._check_alive()
                if deadline_slot is not None:  # a loaded machine may fire late: wait for the runs, not a time
                    sent = (now >= deadline_slot + SLOT_GRACE_S and runs >= (target or 0)
                            or now >= deadline_slot + SLOT_GRACE_S + stuck_after)
                else:
                    sent = all(proc.exitcode is not None for proc in self.clients)
                if sent:
                    sent_at = now
                    self.phase = "draining"
                    continue
            elif unfinished == 0 or now - sent_at >= stuck_after:
                return now
            time.sleep(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self.phase = "collecting"
        self.sync.stop.set()
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        for proc in [*self.schedulers, *self.workers]:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: in-flight steps commit, leases released, metrics written
        for proc in self.all_processes():
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _scheduled_window(data: Path, armed_at: float, slots: int) -> tuple[float, dict[str, list[float]]]:
    """The last due instant of the first ``slots`` slots after ``armed_at``, and every definition's
    due slots up to it."""
    from ..engine import Engine
    from ..schedules.cron import next_slots, slots_between
    from ..schedules.spec import schedule_of

    with Engine(data) as engine:
        specs = [spec for row in engine.definitions() if (spec := schedule_of(engine.definition(row["id"])))]
    if not specs:
        raise StressAborted("a scheduled scenario needs at least one definition with a scheduled trigger")
    deadline = max(next_slots(spec, armed_at, slots)[-1] + spec.jitter_s for spec in specs)
    return deadline, {spec.definition_id: slots_between(spec, armed_at, deadline) for spec in specs}


def run_variant(scenario: Scenario, variant: Variant, *, keep: Path | None = None,
                progress: Progress | None = None, target: Target = Target()) -> dict[str, Any]:
    """Run one variant and return its result (the ``variants[]`` entry of the JSON result).

    ``keep``: a folder under which the variant's data directory is kept (else it is deleted,
    with its deployment). ``target``: where the variant's deployment lives (a throwaway one
    of its own, see :meth:`Backend.throwaway_options`).
    """
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in variant.name).strip("-")
    root = Path(tempfile.mkdtemp(prefix=f"{scenario.name}-{slug}-", dir=keep))
    run = _VariantRun(scenario, variant, root, progress, target)
    started_at = time.time()
    sampler, server, observer = None, None, None
    try:
        weighted = run.prepare()
        observer = run.backend.observer()
        run.spawn(weighted)
        run.wait_ready()
        workload = scenario.workload
        deadline_slot, expected_slots = None, None
        if workload.model == "scheduled":
            run.arm_schedules()
            deadline_slot, expected_slots = _scheduled_window(run.data, run.armed_at, workload.slots)
        target_runs = (workload.total if workload.model == "closed"
                       else planned_arrivals(workload) if workload.model == "open"
                       else sum(len(v) for v in expected_slots.values()))
        sampler = CpuSampler([p.pid for p in run.all_processes()]).start()
        origin = time.time() + GO_DELAY_S
        server = ServerSampler(observer).start(origin) if observer is not None else None
        run.go(origin)
        ended = run.run_until_done(target_runs, deadline_slot)
        machine, sampler = sampler.stop(), None
        if server is not None:
            server.stop()
        run.stop()
        result = _collect(run, origin, ended, expected_slots, server)
        result.update(started_at=_iso(started_at), data_dir=str(run.data) if keep is not None else None,
                      machine=machine)
        return result
    finally:
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.stop()
        if observer is not None:
            observer.close()
        for proc in run.all_processes():
            if proc.is_alive():
                proc.kill()
                proc.join()
        if keep is None:
            _drop(run.data)
            shutil.rmtree(root, ignore_errors=True)


def _drop(data: Path) -> None:
    """Drop a variant's deployment (PostgreSQL: its schemas; SQLite: its files); one warning when it cannot."""
    from ..store import DataDir

    if not (data / "wfctl.json").exists():
        return
    try:
        DataDir.open(data, create=False).backend.drop()
    except WfctlError as exc:
        _log.warning("cannot drop the deployment of %s: %s", data, exc)


# -- collecting ----------------------------------------------------------------------------


def _collect(run: _VariantRun, origin: float, ended: float, expected_slots: dict[str, list[float]] | None,
             server: ServerSampler | None = None) -> dict[str, Any]:
    from ..engine import Engine

    scenario, variant = run.scenario, run.variant
    clients, workers = RunMetrics(), RunMetrics()
    timeline = Timeline(origin)
    missing = []
    for files, into in ((run.client_files, clients), (run.worker_files, workers)):
        for path in files:
            try:
                metrics, tl = read_payload(path)
            except (OSError, ValueError, KeyError, WfctlError) as exc:
                missing.append(f"{path.name}: no metrics ({exc.__class__.__name__})")
                continue
            into.merge(metrics)
            if tl is not None:
                timeline.merge(tl)

    with Engine(run.data) as engine:
        scan = _scan(engine, variant.shards, timeline, scenario.workload.late_after, expected_slots is not None)
    merged = RunMetrics().merge(clients).merge(workers)
    merged.e2e_latency = scan.e2e
    merged.fire_lag = scan.fire_lag
    counts = merged.counters
    by_status = scan.by_status
    scheduled = scenario.workload.model == "scheduled"
    counts.started = sum(by_status.values()) if scheduled else clients.counters.started
    counts.completed = workers.counters.completed
    counts.failed = workers.counters.failed
    counts.canceled = by_status.get("canceled", 0)
    counts.stuck = by_status.get("pending", 0) + by_status.get("running", 0)
    if scheduled:
        counts.late = scan.late

    differences = missing + crosscheck(by_status, None if scheduled else clients.counters.started, workers.counters)

    shards = []
    for s in scan.shards:
        growth = s.size_bytes - run.initial_bytes.get(s.shard, 0)
        shards.append({"shard": s.shard, "runs": sum(s.runs_by_status.values()), "by_status": s.runs_by_status,
                       "queue_depth": s.queue_depth, "retries": dict(s.retries),
                       "wait_ms": {cause: round(ms, 3) for cause, ms in s.wait_ms.items()},
                       "transactions": s.transactions, "size_bytes": s.size_bytes, "details": dict(s.details),
                       "file_growth_bytes": growth})
        for cause, n in s.retries.items():
            merged.retries[cause] = merged.retries.get(cause, 0) + n
    # Both phases begin at the first start (its planned instant); the start phase ends at the last
    # start, the completion phase at the last completion, or at the end of the wait when runs are stuck.
    first = scan.first_start if scan.first_start is not None else origin
    last = scan.last_completed if counts.stuck == 0 and scan.last_completed else ended
    merged.duration_s = max(last - first, 1e-3)
    if scan.last_start is not None:
        merged.start_phase_s = max(scan.last_start - first, 1e-3)
    peak = timeline.peak_rate("completions", merged.duration_s / 10)
    merged.peak_rate = None if peak is None else max(peak, counts.completed / merged.duration_s)

    rolled_back = sum(s.details.get("rolled_back", 0) for s in scan.shards)  # a backend with servers counts them
    seen = None if server is None else server.finish(counts.started, merged.retries, rolled_back,
                                                     max(ended - origin, 1e-3))
    if seen is not None:
        differences += seen["differences"]
        for shard in shards:
            shard["server"] = seen["shards"].get(shard["shard"], {"lock_waits": 0, "lock_wait_s": 0.0, "waits": {}})

    metrics = merged.to_dict()
    if seen is not None:
        metrics.update(seen["metrics"])
    slots = None
    if expected_slots is not None:
        expected = sum(len(v) for v in expected_slots.values())
        fired = sum(1 for d, times in expected_slots.items() for t in times if scan.slot_runs.get((d, t), 0) >= 1)
        duplicates = sum(1 for n in scan.slot_runs.values() if n > 1)
        slots = {"expected": expected, "fired": fired, "duplicates": duplicates, "missed": expected - fired}
    metrics.update({
        "starts.target_rate": target_rate(scenario.workload),
        WAIT_MS: round(sum(s.total_wait_ms for s in scan.shards), 3),
        "stored_bytes": scan.stored_bytes,
        "file_growth_bytes": sum(s["file_growth_bytes"] for s in shards),
        "slots.expected": slots["expected"] if slots else 0,
        "slots.fired": slots["fired"] if slots else 0,
        "slots.duplicates": slots["duplicates"] if slots else 0,
        "slots.missed": slots["missed"] if slots else 0,
        "crosscheck.differences": len(differences),
    })
    return {
        "name": variant.name, "shard_count": variant.shards, "route": variant.route,
        "hot_definition": variant.hot_definition, "hot_rows": variant.hot_rows, "isolation": variant.isolation,
        "servers": variant.servers, "duration_s": round(merged.duration_s, 3),
        "metrics": metrics,
        "errors": [{"message": m, "count": n} for m, n in merged.errors.most_common()],
        "timeline": {"interval_s": timeline.interval_s, "points": timeline.points()},
        "samples": run.samples,
        "shards": shards,
        "crosscheck": {"ok": not differences, "differences": differences},
        "slots": slots,
        "server": seen["server"] if seen is not None else None,
    }


def crosscheck(by_status: dict[str, int], started: int | None, workers: Any) -> list[str]:
    """Where the shards disagree with the harness's own counts: runs the clients started
    (None when schedulers started them) and runs the workers reported completed or failed."""
    differences = []
    runs = sum(by_status.values())
    if started is not None and runs != started:
        differences.append(f"the shards hold {runs} runs; the clients started {started}")
    for status in ("completed", "failed"):
        mine, files = getattr(workers, status), by_status.get(status, 0)
        if mine != files:
            differences.append(f"the shards hold {files} {status} runs; the workers reported {mine}")
    return differences


@dataclass
class _Scan:
    by_status: dict[str, int]
    e2e: Any
    fire_lag: Any
    late: int
    last_completed: float | None
    first_start: float | None  # the earliest planned start (slot_time, else created_at) of any run
    last_start: float | None  # the latest created_at of any run
    slot_runs: dict[tuple[str, float], int]
    stored_bytes: int
    shards: list[Any]  # ShardStats per shard, read after every process stopped


def _scan(engine: Any, shard_count: int, timeline: Timeline, late_after: float, scheduled: bool) -> _Scan:
    """Read every run of every shard once (streaming), and each shard's statistics."""
    from .metrics import LatencyRecorder

    e2e, fire_lag = LatencyRecorder(), LatencyRecorder()
    by_status: dict[str, int] = {}
    slot_runs: dict[tuple[str, float], int] = {}
    late = stored = 0
    last: float | None = None
    first_start: float | None = None
    last_start: float | None = None
    stats = []
    for n in range(shard_count):
        store = engine.shard_store(n)
        stats.append(store.stats())
        stored += store.stored_bytes()
        for r in store.scan_runs():
            by_status[r.status] = by_status.get(r.status, 0) + 1
            planned = r.created_at if r.slot_time is None else min(r.slot_time, r.created_at)
            first_start = planned if first_start is None else min(first_start, planned)
            last_start = r.created_at if last_start is None else max(last_start, r.created_at)
            if r.status == "completed" and r.completed_at is not None:
                last = r.completed_at if last is None else max(last, r.completed_at)
                if r.slot_time is not None:
                    e2e.record(r.completed_at - r.slot_time)
                    timeline.latency("e2e_latency", r.completed_at, r.completed_at - r.slot_time)
            if scheduled and r.slot_time is not None:
                lag = r.created_at - r.slot_time
                fire_lag.record(lag)
                late += lag > late_after
                key = (r.definition_id, r.slot_time)
                slot_runs[key] = slot_runs.get(key, 0) + 1
    return _Scan(by_status, e2e, fire_lag, late, last, first_start, last_start, slot_runs, stored, stats)


# -- scenarios and the whole run -------------------------------------------------------------


def comparison_table(results: Sequence[dict[str, Any]], baseline_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Each comparison metric per variant (rows no variant has are left out), with its ratio to
    the variant's baseline (``baseline_of``: variant -> baseline name; default the first
    variant); None when either value is missing or the baseline is 0. With repetitions the
    ratio is taken per repetition, then the median (``ratios``) and the spread
    (``ratio_spread``) of those."""
    from .compare import higher_is_better

    by_name = {r["name"]: r for r in results}
    baseline_of = {r["name"]: (baseline_of or {}).get(r["name"], results[0]["name"]) for r in results}
    repeated = all(r.get("repeats") for r in results)
    causes = causes_of(m for result in results for m in result["metrics"])
    rows = []
    for metric, label in COMPARISON_ROWS:
        if all(result["metrics"].get(metric) is None for result in results):
            continue
        if metric == RETRIES_PER_1000:
            label = f"{retries_label(causes)} per 1k starts"
        values, ratios, spreads = {}, {}, {}
        for result in results:
            values[result["name"]] = result["metrics"].get(metric)
            ratios[result["name"]], spreads[result["name"]] = ratio_stats(result, by_name[baseline_of[result["name"]]],
                                                                          metric)
        row = {"metric": metric, "label": label, "higher_is_better": higher_is_better(metric),
               "values": values, "ratios": ratios}
        if repeated:  # ratios per repetition, then their median (ratios) and spread
            row["ratio_spread"] = spreads
        rows.append(row)
    return {"baseline": results[0]["name"], "baselines": baseline_of, "rows": rows}


def scenario_thresholds(scenario: Scenario, extra: Iterable[Threshold]) -> list[tuple[Threshold, str]]:
    """The thresholds of a scenario with their source: the file's defaults, replaced per metric
    by the command line's, plus the harness's own."""
    defaults = parse_thresholds(scenario.thresholds.defaults)
    extra = list(extra)
    out = [(t, "command line" if t in extra else "scenario") for t in combine_thresholds(defaults, extra)]
    return out + [(t, "harness") for t in parse_thresholds(harness_thresholds(scenario))]


def run_scenario(scenario: Scenario, thresholds: Iterable[Threshold] = (), *, keep: Path | None = None,
                 progress: Progress | None = None, target: Target | None = None,
                 servers: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Run every variant of ``scenario`` (where ``target`` says, default :func:`scenario_target`);
    the ``scenarios[]`` entry of the JSON result. ``servers``: what the backend said of its
    servers (:meth:`Backend.describe`), recorded in the settings."""
    target = target or scenario_target(scenario)
    checks = scenario_thresholds(scenario, thresholds)
    found = variants(scenario, target.backend, len(target.servers))
    began = time.time()
    runs: dict[str, list[dict[str, Any]]] = {}
    for rep, variant in run_order(found, scenario.repeat):
        shown = progress if progress is None or scenario.repeat == 1 else _labelled(progress, rep, scenario.repeat)
        runs.setdefault(variant.name, []).append(run_variant(scenario, variant, keep=keep, progress=shown,
                                                             target=target))
    results = [aggregate(runs[v.name]) for v in found]
    evaluated = []
    for result in results:
        evaluated += _evaluate(checks, result)
    return {
        "name": scenario.name, "description": scenario.description, "shows": scenario.shows,
        "source": str(scenario.source) if scenario.source else None, "smoke": scenario.smoked,
        "settings": {
            "stuck_after_s": scenario.stuck_after,
            "engine": scenario.engine.model_dump(mode="json") | {"backend": target.backend,
                                                                 "dsn": [d.get("server") for d in servers] if target.servers else []},
            "backend": {"name": target.backend, "servers": [s for s in servers if s.get("server")]},
            "workload": scenario.workload.model_dump(mode="json"),
            "input": scenario.input.model_dump(mode="json", exclude_defaults=True) | {"generator": scenario.input.generator},
            "definitions": scenario.definition_count(),
            "repeat": scenario.repeat,
        },
        "duration_s": round(time.time() - began, 3),
        "passed": all(t["passed"] for t in evaluated),
        "variants": results,
        "comparison": comparison_table(results, baselines(found)) if scenario.comparison is not None else None,
        "thresholds": evaluated,
    }


def _labelled(progress: Progress, rep: int, repeat: int) -> Progress:
    """``progress`` with the repetition in the variant's name (``4sh/def/hot (2/3)``)."""
    return lambda snapshot: progress({**snapshot, "variant": f"{snapshot['variant']} ({rep + 1}/{repeat})"})


def _evaluate(checks: list[tuple[Threshold, str]], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every threshold on every repetition of a variant: it passes when it held in each; its
    value is that of the first repetition where it failed, else the variant's median."""
    per_run = [evaluate_thresholds([t for t, _ in checks], m)[0] for m in repetition_metrics(result)]
    median_outcomes = evaluate_thresholds([t for t, _ in checks], result["metrics"])[0]
    out = []
    for i, (threshold, source) in enumerate(checks):
        failed = [outcomes[i] for outcomes in per_run if not outcomes[i].passed]
        shown = failed[0] if failed else median_outcomes[i]
        out.append({"expression": threshold.text, "metric": threshold.metric, "variant": result["name"],
                    "value": shown.actual, "passed": not failed, "source": source})
    return out


def run_stress(scenarios: Sequence[Scenario], thresholds: Iterable[Threshold] = (), *, keep: Path | None = None,
               progress: Progress | None = None, command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``scenarios`` in order, each variant on a throwaway deployment where the scenario's
    ``[engine]`` table says (:func:`scenario_target`); the whole JSON result (``docs/stress.md``
    documents it). Every target is checked, and every server reached, before anything runs."""
    from .. import __version__
    from ..store import set_session_role

    set_session_role("harness")
    thresholds = list(thresholds)
    targets = [scenario_target(s) for s in scenarios]
    described: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for t in targets:  # before anything runs
        if (t.backend, t.servers) not in described:
            described[t.backend, t.servers] = describe_target(t)
    results = [run_scenario(s, thresholds, keep=keep, progress=progress, target=t, servers=described[t.backend, t.servers])
               for s, t in zip(scenarios, targets)]
    passed = all(r["passed"] for r in results)
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    for (backend, _), servers in described.items():
        machine.setdefault(backend, servers[0].get("version", "") if servers else "")
    names = sorted({t.backend for t in targets})
    return {
        "schema": RESULT_SCHEMA,
        "wfctl_version": __version__,
        "created_at": _iso(time.time()),
        "command": list(command) if command is not None else None,
        "machine": {**machine, "platform": platform.platform()},
        "backend": {"name": names[0] if len(names) == 1 else "mixed",
                    "servers": [s for servers in described.values() for s in servers if s.get("server")]},
        "passed": passed,
        "exit_code": 0 if passed else BREACH_EXIT_CODE,
        "scenarios": results,
    }


def describe_target(target: Target) -> list[dict[str, Any]]:
    """What the backend says of each server of ``target`` (:meth:`Backend.describe` less the
    backend's name; one entry for a target without servers); InputError or UnreachableError (one line) when the settings are
    invalid or a server cannot be reached."""
    from ..store import Settings, open_backend

    out = []
    for dsn in target.servers or (None,):
        options = {**target.options, **({"dsn": dsn} if dsn is not None else {})}
        settings = Settings(backend=target.backend, options=options).validate("stress")
        described = open_backend(Path(tempfile.gettempdir()), settings).describe()
        out.append({k: v for k, v in described.items() if k != "backend"})
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
