"""Engine benchmark: start throughput and latency, and durable end-to-end runs, per backend, real processes.

    python bench/bench_engine.py [--backend sqlite|postgresql|dbos|all ...] [--dsn DSN [--dsn DSN2 | --second-server]]
                                 [--starts 40000] [--runs 20000] [--repeat 3] [--only start|e2e] [--json]

An arm is a backend: ``sqlite`` (wfctl, one SQLite file per shard), ``postgresql`` (wfctl, one
schema per shard on the servers of ``--dsn``), ``dbos`` (DBOS Transact 3.4 with its system
database on the first ``--dsn`` server: the peer, see bench/bench_dbos.py). The arms chosen run
side by side: every repetition runs every configuration of every arm in turn (interleaved, so
a noisy minute hits them alike), and the report gives each configuration's best repetition,
the spread (min-max) and ratios measured in this run.

Start throughput: client processes wait on a barrier, then each starts its share of
``--starts`` runs of ``bench/workflows/bench-3step.json`` one after the other, timing every
call (wfctl: the library call ``Engine.start``, one transaction on one shard per start; DBOS:
``DBOSClient.enqueue`` on a queue, one durable row per start). Each configuration gets a fresh
deployment: wfctl with 1 and 8 client processes against 1 and 4 shards routed by execution
(runs spread over the shards), plus 8 processes against 4 shards routed by definition (every
run on one shard) for contrast; PostgreSQL also 8 shards on one server and, with a second
server, 8 shards over two (0-3 on the first, 4-7 on the second); DBOS 1 and 8 processes.
Reported: starts/s (all starts over the wall time from the first start to the last end),
p50/p99/max start latency (HdrHistogram), write retries per 1,000 starts (the shards'
counters, ``Engine.shards()``, before and after).

Durable end-to-end: worker processes (wfctl: ``run_workers``, holding the shards' leases first;
DBOS: executor processes consuming the queue) run; then client processes start ``--runs`` runs
(start -> set_variables -> condition -> output; for DBOS three ``@DBOS.step`` functions doing
the same) while the workers drain them. Reported: completed runs/s = runs / (last completion -
first creation, read from the stores: wfctl ``ShardStore.scan_runs``, DBOS its
``workflow_status`` table), the start rate seen by the clients, and the completed runs per shard.

Each PostgreSQL configuration uses fresh databases (``bench_wfctl_<pid>_<n>``,
``bench_dbos_<pid>_<n>``) created on the servers and dropped after. The load average before
each run is printed with it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from clients import gather, report_failure
from hdrh.histogram import HdrHistogram

from wfctl.engine import Engine, run_workers
from wfctl.errors import WfctlError
from wfctl.store import UNFINISHED, DataDir

BENCH = Path(__file__).resolve().parent
WORKFLOW = BENCH / "workflows" / "bench-3step.json"
DEFINITION_ID = "bench-3step"
INPUT = {"amount": 150, "country": "DE", "order": 7, "items": [1, 2, 3]}
DEFAULT_DSN = os.environ.get("WFCTL_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ARMS = ("sqlite", "postgresql", "dbos")

START_CONFIGS = [  # (client processes, shards, route)
    (1, 1, "execution"), (1, 4, "execution"), (8, 1, "execution"), (8, 4, "execution"), (8, 4, "definition"),
]
LATENCY_MAX_US = 60_000_000  # 60 s


@dataclass(frozen=True)
class Case:
    """One configuration of one arm: ``servers`` is how many PostgreSQL servers hold the shards."""

    arm: str
    processes: int  # client processes (starts) / worker processes (end-to-end)
    shards: int | None = None
    route: str = "execution"
    servers: int = 1


def histogram() -> HdrHistogram:
    """Latencies in microseconds, 3 significant digits."""
    return HdrHistogram(1, LATENCY_MAX_US, 3)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# ---- wfctl deployments ------------------------------------------------------------------------

class Deployments:
    """Fresh wfctl deployments for the sqlite and postgresql arms (``dsns``: the servers)."""

    def __init__(self, dsns: list[str]):
        self.dsns = dsns
        self.made = 0

    @contextmanager
    def fresh(self, case: Case) -> Iterator[str]:
        """A new data directory for ``case`` with the benchmark definition applied; its path."""
        with tempfile.TemporaryDirectory(prefix="wfctl-bench-") as tmp, ExitStack() as stack:
            path = str(Path(tmp) / "data")
            if case.arm == "sqlite":
                DataDir.init(path, shards=case.shards, route=case.route)
            else:
                from pg_server import fresh_database

                self.made += 1
                dsns = [stack.enter_context(fresh_database(dsn, f"bench_wfctl_{os.getpid()}_{self.made}"))
                        for dsn in self.dsns[:case.servers]]
                extra = {}
                if case.servers > 1:  # shards split in equal ranges over the servers, in order
                    per = -(-case.shards // case.servers)
                    extra["placement"] = {n: dsns[n // per] for n in range(case.shards)}
                DataDir.init(path, shards=case.shards, route=case.route, backend="postgresql",
                             options={"dsn": dsns[0], "schema_prefix": "bench"}, **extra)
            with Engine(path) as engine:
                engine.apply([WORKFLOW])
            yield path


def write_retries(path: str) -> int:
    """Write retries over every shard, every cause."""
    with Engine(path) as engine:
        shards = engine.shards()
    return sum(sum(s["retries"].values()) for s in shards)


def start_client(path: str, count: int, barrier, results) -> None:
    """Start ``count`` runs with Engine.start; report (first start, last end, encoded histogram)."""
    try:
        engine = Engine(path)
        engine.definition(DEFINITION_ID)  # warm up: definition, interpreter, every shard opened
        _ = engine.interpreter
        for shard in range(engine.shard_count):
            engine.shard_store(shard)
        hist = histogram()
        record = hist.record_value
        start = engine.start
        clock = time.perf_counter
        barrier.wait()
        began = clock()
        for _ in range(count):
            t0 = clock()
            start(DEFINITION_ID, INPUT)
            record(max(1, int((clock() - t0) * 1e6)))
        ended = clock()
        engine.close()  # persists the retry counters
    except Exception as exc:
        report_failure(results, exc)
        raise SystemExit(1)
    results.put((began, ended, hist.encode()))


def run_clients(path: str, processes: int, total: int) -> list[tuple[float, float, bytes]]:
    """``processes`` start clients sharing ``total`` starts; their reports."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    share = total // processes
    procs = [ctx.Process(target=start_client, args=(path, share, barrier, results)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    return gather(procs, results, barrier)


def start_figures(case: Case, outs: list[tuple[float, float, bytes]], total: int) -> dict:
    wall = max(o[1] for o in outs) - min(o[0] for o in outs)
    hist = histogram()
    for o in outs:
        hist.add(HdrHistogram.decode(o[2]))
    return {
        "arm": case.arm, "processes": case.processes, "shards": case.shards, "route": case.route,
        "servers": case.servers, "starts": total, "seconds": round(wall, 3), "starts_per_s": round(total / wall),
        "p50_ms": hist.get_value_at_percentile(50) / 1000, "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "max_ms": hist.get_max_value() / 1000,
    }


def shard_times(path: str) -> tuple[list[int], float, float, int]:
    """(completed runs per shard, first created_at, last completed_at, runs not completed)."""
    counts, firsts, lasts, others = [], [], [], 0
    with Engine(path) as engine:
        for shard in range(engine.shard_count):
            n = 0
            for run in engine.shard_store(shard).scan_runs():
                if run.status != "completed":
                    others += 1
                    continue
                n += 1
                firsts.append(run.created_at)
                lasts.append(run.completed_at)
            counts.append(n)
    return counts, min(firsts), max(lasts), others


class WfctlArm:
    """wfctl on SQLite or PostgreSQL, through the public library only."""

    def __init__(self, deployments: Deployments):
        self.deployments = deployments

    def starts(self, case: Case, starts: int) -> dict:
        with self.deployments.fresh(case) as path:
            load = load_average()
            before = write_retries(path)
            outs = run_clients(path, case.processes, starts)
            retries = write_retries(path) - before
            with Engine(path) as engine:
                per_shard = [sum(s["runs_by_status"].values()) for s in engine.shards()]
        total = (starts // case.processes) * case.processes
        return {**start_figures(case, outs, total), "retries_per_1000": round(retries * 1000 / total, 1),
                "runs_per_shard": per_shard, "load_before": load}

    def e2e(self, case: Case, runs: int, clients: int) -> dict:
        with self.deployments.fresh(case) as path:
            load = load_average()
            stop = threading.Event()
            codes: list[int] = []
            thread = threading.Thread(target=lambda: codes.append(
                run_workers(path, processes=case.processes, stop_event=stop, owner="bench")), daemon=True)
            thread.start()
            try:
                with Engine(path) as engine:  # wait for the workers to hold every lease
                    deadline = time.monotonic() + 60
                    while not all(s.get("lease_owner") for s in engine.shards()):
                        if time.monotonic() > deadline:
                            raise SystemExit("the workers did not take the shard leases within 60 s")
                        time.sleep(0.05)
                outs = run_clients(path, clients, runs)
                with Engine(path) as engine:
                    deadline = time.monotonic() + max(600, runs / 50)
                    while engine.count(UNFINISHED):
                        if time.monotonic() > deadline:
                            raise SystemExit("the workers did not finish the runs in time")
                        time.sleep(0.05)
            finally:
                stop.set()
                thread.join()
            counts, first, last, others = shard_times(path)
        return e2e_figures(case, runs, clients, outs, sum(counts), last - first, others, load,
                           per_shard=counts, workers_exit_code=codes[0] if codes else None)


def e2e_figures(case: Case, runs: int, clients: int, outs, completed: int, wall: float, others: int,
                load: float, **extra) -> dict:
    total = (runs // clients) * clients
    started_wall = max(o[1] for o in outs) - min(o[0] for o in outs)
    return {
        "arm": case.arm, "runs": total, "shards": case.shards, "servers": case.servers,
        "worker_processes": case.processes, "client_processes": clients, "seconds": round(wall, 3),
        "completed_per_s": round(completed / wall), "starts_per_s": round(total / started_wall),
        "not_completed": others, "load_before": load, **extra,
    }


# ---- DBOS -------------------------------------------------------------------------------------

class DbosArm:
    """DBOS Transact with its system database on the first server (bench/bench_dbos.py)."""

    def __init__(self, dsn: str, concurrency: int, poll: float, synchronous_commit: str):
        self.dsn, self.concurrency, self.poll, self.synchronous_commit = dsn, concurrency, poll, synchronous_commit
        self.made = 0

    @contextmanager
    def fresh(self) -> Iterator[str]:
        import bench_dbos

        self.made += 1
        with bench_dbos.fresh_database(self.dsn, str(self.made), self.synchronous_commit) as url:
            bench_dbos.prepare(url)
            yield url

    def starts(self, case: Case, starts: int) -> dict:
        import bench_dbos

        with self.fresh() as url:
            load = load_average()
            outs = bench_dbos.run_clients(url, case.processes, starts, INPUT)
        total = (starts // case.processes) * case.processes
        return {**start_figures(case, outs, total), "retries_per_1000": None, "runs_per_shard": None,
                "load_before": load}

    def e2e(self, case: Case, runs: int, clients: int) -> dict:
        import bench_dbos

        with self.fresh() as url:
            load = load_average()
            procs, stop = bench_dbos.start_workers(url, case.processes, self.concurrency, self.poll)
            try:
                outs = bench_dbos.run_clients(url, clients, runs, INPUT)
                bench_dbos.wait_done(url, (runs // clients) * clients, max(600, runs / 20), procs)
            finally:
                codes = bench_dbos.stop_workers(procs, stop)
            done, _, others, first, last = bench_dbos.status_counts(url)
        return e2e_figures(case, runs, clients, outs, done, last - first, others, load, per_shard=None,
                           workers_exit_code=next((c for c in codes if c), 0),
                           worker_concurrency=self.concurrency, poll_s=self.poll,
                           synchronous_commit=self.synchronous_commit)


# ---- the run ----------------------------------------------------------------------------------

def start_cases(arms: list[str], servers: int) -> list[Case]:
    cases = []
    for arm in arms:
        if arm == "dbos":
            cases += [Case("dbos", 1), Case("dbos", 8)]
            continue
        cases += [Case(arm, p, s, r) for p, s, r in START_CONFIGS]
        if arm == "postgresql":
            cases.append(Case(arm, 8, 8))
            if servers > 1:
                cases += [Case(arm, 1, 8, servers=2), Case(arm, 8, 8, servers=2)]
    return cases


def e2e_cases(arms: list[str], servers: int, workers: list[int]) -> list[Case]:
    cases = []
    for arm in arms:
        for w in workers:
            cases.append(Case(arm, w) if arm == "dbos" else Case(arm, w, 4))
            if arm == "postgresql" and servers > 1:
                cases.append(Case(arm, w, 8, servers=2))
    return cases


def interleaved(cases: list[Case], repeat: int, measure, key: str) -> list[dict]:
    """Run every case ``repeat`` times, one repetition of all cases after the other; per case the
    best repetition, with every try and the spread (min, max) of ``key``."""
    tries: dict[Case, list[dict]] = {case: [] for case in cases}
    for _ in range(repeat):
        for case in cases:
            tries[case].append(measure(case))
    out = []
    for case in cases:
        values = [t[key] for t in tries[case]]
        out.append({**max(tries[case], key=lambda t: t[key]), "all_tries": values,
                    "spread": [min(values), max(values)]})
    return out


def ratio(a: int | None, b: int | None) -> float | None:
    return round(a / b, 2) if a and b else None


def start_ratios(rows: list[dict]) -> dict[str, float]:
    by = {(r["arm"], r["processes"], r["shards"], r["route"], r["servers"]): r["starts_per_s"] for r in rows}
    out = {}
    for arm in ("sqlite", "postgresql"):
        out[f"{arm}: 4 shards / 1 shard, 8 processes"] = ratio(by.get((arm, 8, 4, "execution", 1)),
                                                               by.get((arm, 8, 1, "execution", 1)))
    out["postgresql: 8 shards on 2 servers / 8 shards on 1, 8 processes"] = ratio(
        by.get(("postgresql", 8, 8, "execution", 2)), by.get(("postgresql", 8, 8, "execution", 1)))
    for procs in (1, 8):
        for arm in ("sqlite", "postgresql"):
            out[f"{arm} 4 shards / dbos, {procs} process{'es' if procs > 1 else ''}"] = ratio(
                by.get((arm, procs, 4, "execution", 1)), by.get(("dbos", procs, None, "execution", 1)))
        out[f"postgresql / sqlite, 4 shards, {procs} process{'es' if procs > 1 else ''}"] = ratio(
            by.get(("postgresql", procs, 4, "execution", 1)), by.get(("sqlite", procs, 4, "execution", 1)))
    return {k: v for k, v in out.items() if v is not None}


def e2e_ratios(rows: list[dict]) -> dict[str, float]:
    by = {(r["arm"], r["worker_processes"], r["servers"]): r["completed_per_s"] for r in rows}
    out = {}
    for w in sorted({r["worker_processes"] for r in rows}):
        for arm in ("sqlite", "postgresql"):
            out[f"{arm} / dbos, {w} workers"] = ratio(by.get((arm, w, 1)), by.get(("dbos", w, 1)))
        out[f"postgresql / sqlite, {w} workers"] = ratio(by.get(("postgresql", w, 1)), by.get(("sqlite", w, 1)))
        out[f"postgresql: 8 shards on 2 servers / 4 shards on 1, {w} workers"] = ratio(
            by.get(("postgresql", w, 2)), by.get(("postgresql", w, 1)))
    return {k: v for k, v in out.items() if v is not None}


def check_arms(arms: list[str], dsns: list[str]) -> None:
    """One line and exit when a chosen arm cannot run here."""
    if "postgresql" in arms and "backend" not in inspect.signature(DataDir.init).parameters:
        raise SystemExit("bench_engine: --backend postgresql: this wfctl has no PostgreSQL backend"
                         " (the backend 'postgresql' is unknown: DataDir.init takes no backend)")
    if "dbos" in arms:
        import bench_dbos

        if why := bench_dbos.available():
            raise SystemExit(f"bench_engine: --backend dbos: {why}")
    if {"postgresql", "dbos"} & set(arms):
        try:
            import psycopg
        except ImportError:
            raise SystemExit("bench_engine: the postgresql and dbos arms need psycopg: pip install 'psycopg[binary]'")
        for dsn in dsns:
            try:
                psycopg.connect(dsn, connect_timeout=10).close()
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SystemExit(f"bench_engine: cannot connect to --dsn {redacted(dsn)}: {first}")


def redacted(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "(unparsable DSN)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def server_version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def print_report(args, machine: dict, starts: list[dict], e2e: list[dict], ratios: dict) -> None:
    line = f"{machine['cpus']} CPUs ({machine['machine']}), Python {machine['python']}, SQLite {machine['sqlite']}"
    if machine.get("postgresql"):
        line += f", PostgreSQL {machine['postgresql']}"
    if machine.get("dbos"):
        line += f", DBOS Transact {machine['dbos']}"
    print(line)
    print(f"arms: {', '.join(args.arms)}; servers: {', '.join(machine.get('servers', [])) or '-'};"
          f" best of {args.repeat} interleaved repetitions, spread min-max")
    if "dbos" in args.arms:
        print(f"dbos: queue worker_concurrency {args.dbos_concurrency} per executor process, polling every"
              f" {args.dbos_poll} s, synchronous_commit {args.dbos_synchronous_commit}")
    if starts:
        print(f"\nStarts, {args.starts} per configuration (wfctl: Engine.start; dbos: DBOSClient.enqueue)")
        print(f"{'arm':>10} {'procs':>5} {'shards':>6} {'srv':>3} {'route':>10} {'starts/s':>9} {'p50 ms':>7}"
              f" {'p99 ms':>7} {'max ms':>7} {'retries/1k':>10}  spread")
        for r in starts:
            retries = "-" if r["retries_per_1000"] is None else r["retries_per_1000"]
            shards, route = ("-", "-") if r["shards"] is None else (r["shards"], r["route"])
            print(f"{r['arm']:>10} {r['processes']:>5} {shards:>6} {r['servers']:>3} {route:>10}"
                  f" {r['starts_per_s']:>9,} {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['max_ms']:>7.1f}"
                  f" {retries:>10}  {r['spread'][0]:,}-{r['spread'][1]:,} (load {r['load_before']})")
    if e2e:
        print(f"\nDurable end-to-end, {args.runs} runs of {DEFINITION_ID}, {args.clients} client processes")
        print(f"{'arm':>10} {'shards':>6} {'srv':>3} {'workers':>7} {'completed/s':>11} {'starts/s':>9}"
              f" {'seconds':>8}  spread / per shard")
        for r in e2e:
            missing = f" NOT COMPLETED: {r['not_completed']}" if r["not_completed"] else ""
            per_shard = f" / {r['per_shard']}" if r.get("per_shard") else ""
            print(f"{r['arm']:>10} {r['shards'] or '-':>6} {r['servers']:>3} {r['worker_processes']:>7}"
                  f" {r['completed_per_s']:>11,} {r['starts_per_s']:>9,} {r['seconds']:>8}"
                  f"  {r['spread'][0]:,}-{r['spread'][1]:,}{per_shard} (load {r['load_before']}){missing}")
    if ratios:
        print("\nRatios (best against best, this run)")
        for name, value in ratios.items():
            print(f"  {name}: {value}x")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=(*ARMS, "all"),
                        help="an arm to run (repeatable; all: every arm; default sqlite)")
    parser.add_argument("--dsn", action="append",
                        help=f"a PostgreSQL server for the postgresql and dbos arms (repeatable: a second server"
                             f" adds 8 shards over two servers; default {DEFAULT_DSN})")
    parser.add_argument("--second-server", action="store_true",
                        help="start a throwaway second PostgreSQL server for the two-server configurations")
    parser.add_argument("--starts", type=int, default=40000, help="runs started per start configuration")
    parser.add_argument("--runs", type=int, default=20000, help="runs in the end-to-end benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4], help="worker processes (end-to-end)")
    parser.add_argument("--clients", type=int, default=2, help="client processes starting runs (end-to-end)")
    parser.add_argument("--dbos-concurrency", type=int, default=64,
                        help="dbos arm: workflows one executor process runs at once (the queue's worker_concurrency;"
                             " 0: no limit, DBOS's default)")
    parser.add_argument("--dbos-poll", type=float, default=0.1, help="dbos arm: the queue's polling interval, seconds")
    parser.add_argument("--dbos-synchronous-commit", choices=("off", "on"), default="off",
                        help="dbos arm: its database's synchronous_commit (off: the promise of wfctl's durability"
                             " normal, the default; on: DBOS's own default)")
    parser.add_argument("--only", choices=("start", "e2e"), help="run one part only")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still drop the databases, stop the server
    chosen = args.backend or ["sqlite"]
    args.arms = list(ARMS) if "all" in chosen else [a for a in ARMS if a in chosen]
    for name in ("starts", "runs", "repeat", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.workers) < 1 or args.dbos_concurrency < 0 or args.dbos_poll <= 0:
        parser.error("--workers must be at least 1, --dbos-concurrency at least 0 and --dbos-poll positive")
    dsns = args.dsn or [DEFAULT_DSN]
    if len(dsns) > 2 or (args.second_server and len(dsns) > 1):
        parser.error("at most two servers: one or two --dsn, or one --dsn and --second-server")
    check_arms(args.arms, dsns)

    with ExitStack() as stack:
        if args.second_server and "postgresql" in args.arms:
            from pg_server import throwaway_server

            dsns = [*dsns, stack.enter_context(throwaway_server())]
        try:
            run(args, dsns)
        except WfctlError as exc:
            raise SystemExit(f"bench_engine: {exc}")


def run(args, dsns: list[str]) -> None:
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
               "machine": platform.machine(), "load_at_start": list(os.getloadavg())}
    if {"postgresql", "dbos"} & set(args.arms):
        machine["postgresql"] = server_version(dsns[0])
        machine["servers"] = [redacted(d) for d in (dsns if "postgresql" in args.arms else dsns[:1])]
    if "dbos" in args.arms:
        from importlib.metadata import version

        machine["dbos"] = version("dbos")
    servers = len(dsns) if "postgresql" in args.arms else 1
    wfctl = WfctlArm(Deployments(dsns))
    dbos = DbosArm(dsns[0], args.dbos_concurrency, args.dbos_poll, args.dbos_synchronous_commit) if "dbos" in args.arms else None

    def arm(case: Case):
        return dbos if case.arm == "dbos" else wfctl

    starts: list[dict] = []
    e2e: list[dict] = []
    if args.only != "e2e":
        starts = interleaved(start_cases(args.arms, servers), args.repeat,
                             lambda c: arm(c).starts(c, args.starts), "starts_per_s")
    if args.only != "start":
        e2e = interleaved(e2e_cases(args.arms, servers, args.workers), args.repeat,
                          lambda c: arm(c).e2e(c, args.runs, args.clients), "completed_per_s")
    ratios = {**start_ratios(starts), **e2e_ratios(e2e)}
    if args.json:
        print(json.dumps({"machine": machine, "arms": args.arms, "starts": starts, "end_to_end": e2e,
                          "ratios": ratios}, indent=2))
        return
    print_report(args, machine, starts, e2e, ratios)


if __name__ == "__main__":
    main()
