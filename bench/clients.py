"""Client processes of the benchmarks: a failure in one ends the run with one line, never a hang."""

from __future__ import annotations

import queue


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def report_failure(results, exc: BaseException) -> None:
    """Called by a client process that failed: the parent's :func:`gather` reports it."""
    results.put(("error", one_line(exc)))


def gather(procs, results, barrier) -> list[tuple]:
    """Each process's report from ``results``. A process that reported a failure or died without
    a report stops the others (the barrier is broken, the processes terminated) and ends the
    benchmark with one line."""
    outs: list[tuple] = []
    while len(outs) < len(procs):
        try:
            item = results.get(timeout=0.5)
        except queue.Empty:
            dead = next((p.exitcode for p in procs if p.exitcode not in (None, 0)), None)
            if dead is not None:
                _stop(procs, barrier, f"exited with code {dead}")
            continue
        if item[0] == "error":
            _stop(procs, barrier, item[1])
        outs.append(item)
    for proc in procs:
        proc.join()
    return outs


def _stop(procs, barrier, why: str) -> None:
    barrier.abort()
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
        proc.join()
    raise SystemExit(f"bench_engine: a client process failed: {why}")
