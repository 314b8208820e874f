"""What the stress clients send and when: arrival times, definition choice and inputs.

Pure functions of the scenario (no clock, no store), so every client process computes
its share of the same plan and tests can check the plan exactly.

* Closed model: start ``i`` (0 <= i < total) belongs to virtual user ``i % clients``;
  each virtual user sends its next start when the previous one returned.
* Open model: arrivals follow the rate curve: each ramp stage moves the rate linearly
  from the previous target (0 at the beginning) to its ``target`` over its ``duration``;
  after the stages the rate holds at ``rate`` (or the last target) until ``duration``.
  Arrival ``k`` is planned at the instant the integral of the rate reaches ``k``
  (evenly spaced at a constant rate, as wrk2's constant throughput), whatever the
  system's answers: a slow start makes later arrivals late, it never delays their plan.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

from .scenarios import InputSpec, Workload

#: The low-discrepancy step spreading start indices over the definitions' weights.
_GOLDEN = (math.sqrt(5) - 1) / 2


def rate_segments(workload: Workload) -> list[tuple[float, float, float, float]]:
    """The open model's rate curve as ``(t0, t1, rate0, rate1)`` linear segments."""
    segments = []
    t, rate = 0.0, 0.0
    for stage in workload.stages:
        if stage.duration > 0:
            segments.append((t, t + stage.duration, rate, stage.target))
        t += stage.duration
        rate = stage.target
    hold = workload.rate if workload.rate is not None else rate
    duration = workload.duration or t
    if duration > t:
        segments.append((t, duration, hold, hold))
    return segments


def arrival_offsets(workload: Workload) -> Iterator[float]:
    """Planned arrival times (seconds from the start) of an open-model workload, in order."""
    k = 0
    done = 0.0  # arrivals planned before the current segment (the integral so far)
    for t0, t1, r0, r1 in rate_segments(workload):
        span = t1 - t0
        slope = (r1 - r0) / span
        area = (r0 + r1) / 2 * span
        while k < done + area - 1e-9:
            need = k - done  # the integral inside this segment that arrival k needs
            if abs(slope) < 1e-12:
                dt = need / r0
            else:  # r0*dt + slope/2*dt^2 = need
                dt = (-r0 + math.sqrt(max(r0 * r0 + 2 * slope * need, 0.0))) / slope
            yield t0 + min(max(dt, 0.0), span)
            k += 1
        done += area


def planned_arrivals(workload: Workload) -> int:
    """How many arrivals the open-model plan holds."""
    return sum(1 for _ in arrival_offsets(workload))


def target_rate(workload: Workload) -> float | None:
    """The open model's mean planned arrival rate (per second); None for other models."""
    if workload.model != "open" or not workload.duration:
        return None
    return planned_arrivals(workload) / workload.duration


class DefinitionMix:
    """Picks the definition of start ``i`` by weight, deterministically and evenly spread;
    ``seed`` (None: 0) shifts the sequence."""

    def __init__(self, weighted: Sequence[tuple[str, float]], seed: int | None = None) -> None:
        if not weighted:
            raise ValueError("a definition mix needs at least one definition")
        self._offset = random.Random(seed or 0).random() if seed else 0.0
        self.ids = [d for d, _ in weighted]
        total = sum(w for _, w in weighted)
        acc, self._bounds = 0.0, []
        for _, weight in weighted:
            acc += weight / total
            self._bounds.append(acc)

    def pick(self, i: int) -> str:
        u = (self._offset + i * _GOLDEN) % 1.0
        return self.ids[min(bisect.bisect_right(self._bounds, u), len(self.ids) - 1)]


class InputMaker:
    """Builds the input of start ``i`` from an ``[input]`` table; ``limit`` is the engine's
    payload limit, which an oversized input (``oversize_every``) exceeds. Sized payloads are
    random hex text drawn from ``seed`` (so they do not compress to nothing)."""

    def __init__(self, spec: InputSpec, limit: int) -> None:
        self.spec = spec
        self.limit = limit
        self._text: dict[int, str] = {}
        if spec.generator == "loops":
            items = list(range(spec.iterations))
            self._loops = {"items": items, "rows": [items] * spec.rows}

    def _payload(self, size: int) -> str:
        """``size`` characters of hex text drawn from the seed (one per size and process)."""
        text = self._text.get(size)
        if text is None:
            text = self._text[size] = random.Random(self.spec.seed or 0).randbytes(size // 2 + 1).hex()[:size]
        return text

    def oversized(self, i: int) -> bool:
        every = self.spec.oversize_every
        return self.spec.generator == "sized" and every > 0 and (i + 1) % every == 0

    def make(self, i: int) -> dict[str, Any]:
        spec = self.spec
        if spec.generator == "fixed":
            return dict(spec.value)
        if spec.generator == "sequence":
            return {spec.field: i}
        if spec.generator == "loops":
            return {**self._loops, "n": i}
        size = self.limit + 1024 if self.oversized(i) else spec.size_bytes
        return {"n": i, spec.field: self._payload(size)}
