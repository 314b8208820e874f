"""``wfctl worker``: run the work of the data directory's shards."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .output import ALLOW_MODULE_HELP

METRICS_PORT_HELP = "Serve Prometheus metrics on this port (0: a free one); the address is printed on stderr."
METRICS_HOST_HELP = "The address the metrics are served on."


def _shard_list(text: Optional[str]) -> list[int] | None:
    from ..errors import InputError

    if text is None:
        return None
    try:
        shards = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InputError(f"--shards: expected a comma-separated list of shard numbers, got '{text}'") from None
    if not shards or shards[0] < 0:
        raise InputError(f"--shards: expected shard numbers >= 0, got '{text}'")
    return shards


def worker_command(
    ctx: typer.Context,
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes; the shards are split between them."),
    shards: Optional[str] = typer.Option(None, "--shards", help="Only these shards, e.g. 0,2 (default: all)."),
    max_parallel: int = typer.Option(8, "--max-parallel", min=1, help="Side-effecting steps run at once per process."),
    drain: bool = typer.Option(False, "--drain", help="Exit once no pending, running or retrying work remains."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler",
                                   help="Also run the scheduler (a thread in this process) that starts scheduled definitions."),
    stubs: Optional[Path] = typer.Option(
        None, "--stubs", help="A stubs file answering tale platform actions (rag, customer, ...) in every worker process."),
    allow_module: Optional[List[str]] = typer.Option(None, "--allow-module", help=ALLOW_MODULE_HELP),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", min=0, max=65535, help=METRICS_PORT_HELP),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help=METRICS_HOST_HELP),
) -> None:
    """Execute runs: hold each shard's lease (one worker per shard at a time), advance runs step by step, journal every step.

    A dead worker's shards are taken over when its lease expires. Ctrl-C or SIGTERM stops cleanly and releases the leases.
    --metrics-port serves the metrics of every worker process, their shards and the scheduler (docs/engine.md).
    """
    import signal
    import threading

    from ..engine.processes import check_workers, run_workers
    from ..store import resolve_data_dir

    root = ctx.find_root()
    path = resolve_data_dir((root.obj or {}).get("data_dir"))
    factory = None
    if stubs is not None:
        from ..engine.factories import with_stubs

        factory = with_stubs(stubs)  # a malformed file stops here, before any process starts
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # Ctrl-C is handled by run_workers (exit 130)
    chosen = _shard_list(shards)
    datadir, _ = check_workers(path, chosen, tuple(allow_module or ()))  # before the scheduler starts
    endpoint = None
    if metrics_port is not None:  # before the scheduler and the workers, which count in its directory
        from ..engine.metrics import MetricsEndpoint, SchedulerMetrics, WorkerMetrics

        endpoint = MetricsEndpoint.start(metrics_host, metrics_port, datadir=datadir, shards=chosen)
    sched_stop = threading.Event()
    thread = None
    try:
        if scheduler and not drain:  # a draining worker exits when its work is done: no new slots
            events = SchedulerMetrics() if endpoint else None
            thread = threading.Thread(target=_run_scheduler, args=(path, sched_stop, events), daemon=True,
                                      name="wfctl-scheduler")
            thread.start()
        code = run_workers(datadir, processes=processes, shards=chosen, drain=drain,
                           max_parallel=max_parallel, stop_event=stop, interpreter_factory=factory,
                           allow_modules=tuple(allow_module or ()), events=WorkerMetrics() if endpoint else None,
                           started=endpoint.collector.workers_started if endpoint else None)
    finally:
        sched_stop.set()
        if thread is not None:
            thread.join(10)
        if endpoint is not None:
            endpoint.close()
    raise typer.Exit(code)


def _run_scheduler(path, stop, events=None) -> None:
    import logging

    from ..engine import Engine
    from ..schedules.scheduler import Scheduler

    try:
        with Engine(path) as eng:
            Scheduler(eng, events=events).run(stop_event=stop)
    except Exception as exc:  # the workers go on; the scheduler's failure is reported
        logging.getLogger("wfctl.scheduler").error("scheduler stopped: %s", exc)
