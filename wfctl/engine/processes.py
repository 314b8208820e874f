"""Worker processes: the shards split between N processes (spawned), each running a :class:`Worker`.

A worker process lives no longer than the process that started it: when its parent dies,
even by ``kill -9``, it stops as on SIGTERM (in-flight steps commit, leases released).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from ..store import DataDir, resolve_data_dir


def split_shards(shards: list[int], processes: int) -> list[list[int]]:
    """Round-robin ``shards`` over at most ``processes`` non-empty groups."""
    n = max(1, min(processes, len(shards)))
    return [shards[i::n] for i in range(n)]


def _stop_with_parent(stop: threading.Event) -> None:
    """Set ``stop`` when the parent process dies: it held the write end of a pipe whose read end
    (the parent's sentinel) this process watches; on Linux the kernel also sends SIGTERM
    (``PR_SET_PDEATHSIG``). Call it after installing the SIGTERM handler."""
    import multiprocessing.connection
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    parent = multiprocessing.parent_process()
    if parent is not None:  # already gone: the sentinel is readable at once
        threading.Thread(target=lambda: (multiprocessing.connection.wait([parent.sentinel]), stop.set()),
                         daemon=True, name="wfctl-parent-watch").start()


def _worker_main(data_dir: str, shards: list[int] | None, drain: bool, options: dict[str, Any]) -> None:
    """A worker process: SIGTERM/SIGINT, or its parent's death, stop it cleanly (in-flight
    steps commit, leases released)."""
    import logging
    import sys

    from .runtime import Runtime
    from .worker import Worker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(processName)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _stop_with_parent(stop)
    from ..errors import WfctlError

    try:
        runtime = Runtime.open(data_dir, create=False, interpreter_factory=options.pop("interpreter_factory", None),
                               allow_modules=options.pop("allow_modules", ()))
        worker = Worker(runtime, shards, **options)
    except WfctlError as exc:  # e.g. the key changed since the parent checked it: one line, no traceback
        print(f"wfctl: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    code = worker.run(drain=drain, stop_event=stop)
    runtime.close()
    # Stopped and leases released: a second SIGTERM (the parent's, or the whole process group's)
    # must not kill the interpreter while it shuts down.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def check_workers(data_dir: str | Path | None, shards: list[int] | None,
                  allow_modules: tuple[str, ...] = ()) -> tuple[DataDir, list[int]]:
    """The data directory and the shards (default: all) :func:`run_workers` would work on, checked
    before any process starts: a bad directory, key, shard or module prefix is one line here,
    not one per process."""
    from ..actions.policy import ActionPolicy
    from .keys import secret_box

    datadir = DataDir.open(resolve_data_dir(None if data_dir is None else str(data_dir)), create=False)
    secret_box(datadir)
    chosen = _chosen(datadir, shards)
    for shard in chosen:
        datadir.check_shard(shard)
    ActionPolicy.resolve(allow_modules, setting=datadir.settings.allow_modules)
    return datadir, chosen


def _chosen(datadir: DataDir, shards: list[int] | None) -> list[int]:
    return list(range(datadir.shard_count)) if shards is None else list(shards)


def run_workers(data_dir: str | Path | DataDir | None = None, processes: int = 1, shards: list[int] | None = None,
                drain: bool = False, *, stop_event: threading.Event | None = None,
                interpreter_factory: Callable[..., Any] | None = None, owner: str | None = None,
                allow_modules: tuple[str, ...] = (), started: Callable[[list[int]], None] | None = None,
                **worker_options: Any) -> int:
    """Run ``processes`` worker processes over ``shards`` (default: all, and those added while they run:
    each process serves the shards whose number modulo the process count is its own) and wait for them.
    ``data_dir`` is a path, checked by :func:`check_workers`, or the :class:`DataDir` that
    :func:`check_workers` returned (not checked again).

    Setting ``stop_event`` (or Ctrl-C, which returns 130) sends them SIGTERM and waits for
    them. ``interpreter_factory`` must be picklable (a module-level function); ``owner``
    names the leases (``<owner>-<n>`` per process); ``allow_modules`` go to each process's
    :class:`~wfctl.engine.runtime.Runtime` (module prefixes for ``module:function`` actions);
    ``started``, if given, is called with the processes' pids once they started (the metrics
    tell their leases by them); ``worker_options`` go to :class:`Worker` (max_parallel, lease_ttl, batch, ...).
    Returns 0 when every process exited with 0, else the first non-zero exit code
    (128 + signal number for a process killed by a signal).
    """
    if isinstance(data_dir, DataDir):
        datadir, chosen = data_dir, _chosen(data_dir, shards)
    else:
        datadir, chosen = check_workers(data_dir, shards, allow_modules)
    groups = split_shards(chosen, processes)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for n, group in enumerate(groups):
        options = dict(worker_options, interpreter_factory=interpreter_factory,
                       owner=f"{owner}-{n}" if owner else None, allow_modules=tuple(allow_modules))
        if shards is None:  # every shard: each process follows the count (added shards are served)
            group, options["share"] = None, (n, len(groups))
        procs.append(ctx.Process(target=_worker_main, args=(str(datadir.path), group, drain, options),
                                 name=f"wfctl-worker-{n}"))
    for proc in procs:
        proc.start()
    if started is not None:
        started([proc.pid for proc in procs])
    interrupted = False
    try:
        while any(proc.is_alive() for proc in procs) and not (stop_event is not None and stop_event.is_set()):
            for proc in procs:
                proc.join(0.1)
    except KeyboardInterrupt:  # Ctrl-C reached the children too: they stop cleanly
        interrupted = True
    stopped = [proc for proc in procs if proc.is_alive()]
    for proc in stopped:
        proc.terminate()  # SIGTERM: in-flight steps commit, leases are released
    for proc in procs:
        proc.join()
    if interrupted:
        return 130
    # A process told to stop before it set its SIGTERM handler (still starting) ends by the signal: a clean stop.
    codes = [0 if proc in stopped and proc.exitcode == -signal.SIGTERM else proc.exitcode for proc in procs]
    return next((128 - code if code < 0 else code for code in codes if code), 0)
