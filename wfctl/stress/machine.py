"""How busy the whole machine was while a variant ran, so a reader knows when a figure is CPU-bound.

:class:`CpuSampler` reads ``/proc/stat`` (the whole machine's CPU time: busy = everything but
idle and iowait) and ``/proc/<pid>/stat`` of the variant's own processes at the start
instant, every :data:`SAMPLE_EVERY_S` while the variant runs, and at its end. The summary
(:meth:`CpuSampler.stop`) is the ``machine`` object of a variant in the JSON result:

* ``cpu_busy``: fraction of the machine's CPU time that was busy over the run (0..1);
* ``cpu_busy_peak``: the busiest sampling interval;
* ``own_cpu``: the part of the machine's CPU time the variant's processes (and the harness)
  used; ``cpu_busy - own_cpu`` was used by other processes on the machine;
* ``processes``: the variant's processes (workers, schedulers, clients) against ``cpus``;
* ``runnable_peak``: the most runnable threads the kernel reported (``procs_running``);
* ``saturated``: ``cpu_busy >= SATURATED_BUSY``: the processes waited for a CPU, so
  throughput and latency ratios measure CPU scheduling more than lock contention.

Where ``/proc`` is not available (not Linux) every figure is ``None``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

#: A run whose machine was at least this busy is reported as saturated.
SATURATED_BUSY = 0.9
SAMPLE_EVERY_S = 0.25


def read_cpu_times(path: str = "/proc/stat") -> tuple[float, float, int | None] | None:
    """(busy ticks, total ticks, runnable threads) of the whole machine; None without ``/proc``."""
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return None
    busy = total = 0.0
    running = None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [float(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
            total = sum(ticks)
            busy = total - ticks[3] - (ticks[4] if len(ticks) > 4 else 0.0)
        elif fields and fields[0] == "procs_running":
            running = int(fields[1])
    return (busy, total, running) if total else None


def process_cpu_ticks(pid: int) -> float | None:
    """User + system CPU ticks of process ``pid`` (None when it is gone or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after the command name, which may hold spaces
    try:
        return float(fields[11]) + float(fields[12])  # utime, stime (fields 14 and 15 of the line)
    except (IndexError, ValueError):
        return None


def summarise(start: tuple[float, float, int | None] | None, end: tuple[float, float, int | None] | None,
              peak: float | None, runnable_peak: int | None, own_ticks: float | None, processes: int,
              cpus: int | None) -> dict[str, Any]:
    """The ``machine`` object from two ``/proc/stat`` readings and the figures sampled between."""
    busy = own = None
    if start is not None and end is not None and end[1] > start[1]:
        total = end[1] - start[1]
        busy = round(min(max((end[0] - start[0]) / total, 0.0), 1.0), 3)
        if own_ticks is not None:
            # /proc/<pid>/stat counts in clock ticks per CPU; /proc/stat sums every CPU's ticks.
            own = round(min(max(own_ticks / total, 0.0), 1.0), 3)
    return {
        "cpus": cpus,
        "processes": processes,
        "cpu_busy": busy,
        "cpu_busy_peak": round(max(peak, busy), 3) if peak is not None and busy is not None else busy,
        "own_cpu": own,
        "runnable_peak": runnable_peak,
        "saturated": None if busy is None else busy >= SATURATED_BUSY,
    }


class CpuSampler:
    """Samples the machine's CPU while a variant runs (a daemon thread in the harness process)."""

    def __init__(self, pids: Sequence[int], *, interval: float = SAMPLE_EVERY_S) -> None:
        self.pids = [*pids, os.getpid()]
        self.processes = len(pids)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start: tuple[float, float, int | None] | None = None
        self._last: tuple[float, float, int | None] | None = None
        self._peak: float | None = None
        self._runnable: int | None = None
        self._first: dict[int, float] = {}
        self._latest: dict[int, float] = {}

    def start(self) -> "CpuSampler":
        self._start = self._last = read_cpu_times()
        self._read_processes()
        self._thread = threading.Thread(target=self._loop, name="wfctl-stress-cpu", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> tuple[float, float, int | None] | None:
        now = read_cpu_times()
        if now is None:
            return None
        if self._last is not None and now[1] > self._last[1]:
            busy = (now[0] - self._last[0]) / (now[1] - self._last[1])
            self._peak = busy if self._peak is None else max(self._peak, busy)
        if now[2] is not None:
            self._runnable = now[2] if self._runnable is None else max(self._runnable, now[2])
        self._last = now
        self._read_processes()
        return now

    def _read_processes(self) -> None:
        for pid in self.pids:
            ticks = process_cpu_ticks(pid)
            if ticks is not None:
                self._first.setdefault(pid, ticks)
                self._latest[pid] = ticks

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the summary (see the module docstring)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        end = self._sample()
        own = sum(self._latest[p] - self._first[p] for p in self._latest) if self._latest else None
        return summarise(self._start, end, self._peak, self._runnable, own, self.processes, os.cpu_count())

