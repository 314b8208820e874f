"""Stress-run metrics whose memory does not grow with the number of runs.

* :class:`LatencyRecorder` wraps an HDR histogram (microsecond resolution, 1 µs .. 1 h,
  3 significant digits). Values outside the range are clamped (and counted in
  ``clamped``) rather than silently dropped. Recorders travel between processes as HDR's
  compressed base64 text (:meth:`LatencyRecorder.encode` / :meth:`LatencyRecorder.decode`).
* :class:`Counters` holds run outcome counts; :class:`ErrorGroups` counts errors by the
  first 100 characters of their message, with a bounded number of groups plus an
  ``"other"`` bucket; :class:`ThroughputBuckets` counts events per wall-clock second in
  a dict whose size is bounded by a maximum number of seconds (oldest evicted).
* :class:`RunMetrics` bundles them; :meth:`RunMetrics.to_payload` / ``from_payload``
  give a JSON-safe form for inter-process transfer and :meth:`RunMetrics.to_dict` the
  flat metric namespace that thresholds and baseline comparison use.

Units in the flat namespace (see :func:`known_metric_names`):

* ``<name>_latency.<stat>``: milliseconds (``count`` is a sample count). Stats of an
  empty recorder are ``None``.
* ``starts.rate``: per second, over the start phase (``start_phase_s``: first start to last
  start); ``completions.rate``: per second, over ``duration_s`` (first start to last
  completion, or to the end of the wait when runs are stuck).
* ``success_rate``: a fraction in 0..1 (thresholds accept ``99.5%``).
* ``retries``: writes the shards retried (every cause); ``retries_per_1000``: per 1000 started
  runs; ``retries.<cause>`` / ``retries_per_1000.<cause>``: the same for each cause the shards
  reported (:mod:`wfctl.stress.contention`).
* everything else: plain counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

from wfctl.errors import InputError
from wfctl.stress.contention import RETRIES, RETRIES_PER_1000, WAIT_MS, cause_metric_names, retry_metrics

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000
SIGNIFICANT_DIGITS = 3

LATENCY_STATS = ("count", "min", "mean", "p50", "p90", "p95", "p99", "p99_9", "max")
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))

COUNTER_NAMES = ("started", "completed", "failed", "canceled", "stuck", "dropped", "late", "rejected")
LATENCY_METRICS = ("start_latency", "e2e_latency", "fire_lag")
_LATENCY_PREFIXES = tuple(f"{base}." for base in LATENCY_METRICS) + ("step_latency.",)
#: Figures sampled from a database server while a variant runs (PostgreSQL; see wfctl.stress.server).
SERVER_METRICS = (
    "server.samples",  # samples taken of the server's sessions
    "server.lock_waits",  # waits on a heavyweight (row, tuple, transaction) lock seen
    "server.lock_wait_s",  # session-seconds spent in those waits (s)
    "server.lock_waits_per_1000",  # lock waits per 1,000 starts
    "server.rollbacks",  # transactions the server rolled back (pg_stat_database)
    "server.deadlocks",  # deadlocks the server detected
    "server.wal_bytes",  # WAL the server wrote (bytes)
)
#: Figures the harness measures outside RunMetrics (shard files, schedules, cross-check); counts unless noted.
EXTRA_METRICS = (
    "starts.target_rate",  # open model: the arrival rate asked for (per second)
    WAIT_MS,  # time the shards spent waiting and retrying, every cause (ms)
    "stored_bytes",  # bytes of run inputs, states, outputs and spilled blobs in the shards
    "file_growth_bytes",  # growth of the shards (SQLite: files and WALs) during the run
    "slots.expected", "slots.fired", "slots.duplicates", "slots.missed",
    "crosscheck.differences",  # disagreements between the harness's counts and the shards
)

ERROR_MESSAGE_CHARS = 100
DEFAULT_MAX_ERROR_GROUPS = 100
OTHER_ERRORS = "other"
DEFAULT_MAX_STEP_TYPES = 64
OTHER_STEP_TYPE = "other"
DEFAULT_MAX_SECONDS = 86_400

_STEP_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def as_number(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (a bool is not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def is_latency_metric(name: str) -> bool:
    """Whether ``name`` is a latency stat (``start_latency.p99``, ``step_latency.llm.max``, ...)."""
    return name.startswith(_LATENCY_PREFIXES)


def _safe_div(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


class LatencyRecorder:
    """An HDR histogram of latencies recorded in seconds, stored in microseconds."""

    __slots__ = ("_hist", "clamped")

    def __init__(self, histogram: HdrHistogram | None = None) -> None:
        self._hist = histogram or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.clamped = 0

    @staticmethod
    def _to_us(seconds: float) -> tuple[int, bool]:
        if seconds != seconds:  # NaN
            return 0, True
        if not math.isfinite(seconds):
            return (HIGHEST_US if seconds > 0 else 0), True
        us = round(seconds * 1_000_000)
        if us < 0:
            return 0, True
        if us > HIGHEST_US:
            return HIGHEST_US, True
        return us, False

    @property
    def count(self) -> int:
        return self._hist.get_total_count()

    def record(self, seconds: float) -> None:
        us, clamped = self._to_us(seconds)
        self.clamped += clamped
        self._hist.record_value(us)

    def record_corrected(self, seconds: float, expected_interval_s: float) -> None:
        """Record ``seconds`` and back-fill the samples a stall hid (coordinated omission).

        With an expected interval ``i`` between samples, a latency ``v > i`` also records
        ``v - i``, ``v - 2i``, ... (HDR's ``record_corrected_value``).
        """
        us, clamped = self._to_us(seconds)
        self.clamped += clamped
        interval_us = round(expected_interval_s * 1_000_000) if expected_interval_s > 0 else 0
        if interval_us <= 0:
            self._hist.record_value(us)
        else:
            self._hist.record_corrected_value(us, interval_us)

    def merge(self, other: LatencyRecorder) -> LatencyRecorder:
        """Add ``other``'s samples to this recorder; returns ``self``."""
        if other.count:
            self._hist.add(other._hist)
        self.clamped += other.clamped
        return self

    def encode(self) -> str:
        """HDR's compressed base64 encoding (the ``clamped`` tally is not carried)."""
        return self._hist.encode().decode("ascii")

    @classmethod
    def decode(cls, text: str) -> LatencyRecorder:
        try:
            hist = HdrHistogram.decode(text)
        except Exception as exc:  # base64, zlib and HDR cookie errors
            raise InputError(f"cannot decode latency histogram: {exc}") from None
        recorder = cls()
        if hist.get_total_count():
            recorder._hist.add(hist)
        return recorder

    def value_at_percentile_ms(self, percentile: float) -> float | None:
        if not self.count:
            return None
        return self._hist.get_value_at_percentile(percentile) / 1000.0

    def summary(self) -> dict[str, float | int | None]:
        """count, min, mean, p50, p90, p95, p99, p99_9, max; latencies in ms (None if empty)."""
        count = self.count
        if not count:
            return {stat: (0 if stat == "count" else None) for stat in LATENCY_STATS}
        hist = self._hist
        out: dict[str, float | int | None] = {
            "count": count,
            "min": hist.get_min_value() / 1000.0,
            "mean": hist.get_mean_value() / 1000.0,
        }
        values = hist.get_percentile_to_value_dict([p for _, p in _PERCENTILES])
        for name, pct in _PERCENTILES:
            out[name] = values[pct] / 1000.0
        # HDR reports the highest equivalent value; never let a percentile exceed max.
        out["max"] = hist.get_max_value() / 1000.0
        for name, _ in _PERCENTILES:
            out[name] = min(out[name], out["max"])  # type: ignore[type-var]
        return out


class Counters:
    """Run outcome counts."""

    __slots__ = COUNTER_NAMES

    def __init__(self, **counts: int) -> None:
        unknown = set(counts) - set(COUNTER_NAMES)
        if unknown:
            raise InputError(f"unknown counter: {sorted(unknown)[0]}")
        for name in COUNTER_NAMES:
            setattr(self, name, int(counts.get(name, 0)))

    def add(self, name: str, n: int = 1) -> None:
        if name not in COUNTER_NAMES:
            raise InputError(f"unknown counter: {name}")
        setattr(self, name, getattr(self, name) + n)

    def merge(self, other: Counters) -> Counters:
        for name in COUNTER_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def success_rate(self) -> float:
        """completed / max(started, completed + failed + canceled + stuck); 0.0 when 0."""
        ended = self.completed + self.failed + self.canceled + self.stuck
        return _safe_div(self.completed, max(self.started, ended))

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> Counters:
        return cls(**{k: v for k, v in data.items() if k in COUNTER_NAMES})


class ErrorGroups:
    """Error counts keyed by the first 100 characters of the message, bounded in size.

    Once ``max_groups`` distinct messages are held, further new messages count under
    ``"other"`` (which does not take a group slot).
    """

    __slots__ = ("max_groups", "groups", "other")

    def __init__(self, max_groups: int = DEFAULT_MAX_ERROR_GROUPS) -> None:
        self.max_groups = max_groups
        self.groups: dict[str, int] = {}
        self.other = 0

    @staticmethod
    def key(message: object) -> str:
        text = " ".join(str(message).split())  # one line, collapsed whitespace
        return text[:ERROR_MESSAGE_CHARS]

    def add(self, message: object, n: int = 1) -> None:
        self._add_key(self.key(message), n)

    def _add_key(self, key: str, n: int) -> None:
        if key in self.groups:
            self.groups[key] += n
        elif len(self.groups) < self.max_groups:
            self.groups[key] = n
        else:
            self.other += n

    @property
    def total(self) -> int:
        return sum(self.groups.values()) + self.other

    def merge(self, other: ErrorGroups) -> ErrorGroups:
        # Largest groups first so the bound keeps the most frequent messages.
        for key, n in sorted(other.groups.items(), key=lambda kv: -kv[1]):
            self._add_key(key, n)
        self.other += other.other
        return self

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        items = sorted(self.groups.items(), key=lambda kv: (-kv[1], kv[0]))
        if self.other:
            items.append((OTHER_ERRORS, self.other))
        return items if n is None else items[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"groups": dict(self.groups), "other": self.other}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_groups: int = DEFAULT_MAX_ERROR_GROUPS) -> ErrorGroups:
        eg = cls(max_groups)
        eg.merge_raw(data.get("groups", {}), int(data.get("other", 0)))
        return eg

    def merge_raw(self, groups: Mapping[str, int], other: int = 0) -> None:
        for key, n in sorted(groups.items(), key=lambda kv: -kv[1]):
            self._add_key(self.key(key), int(n))
        self.other += other


class ThroughputBuckets:
    """Event counts per whole second (epoch seconds), at most ``max_seconds`` buckets.

    When a new second would exceed the bound the oldest bucket is evicted into
    ``evicted``, so memory depends on run duration, never on the number of events.
    """

    __slots__ = ("max_seconds", "buckets", "evicted")

    def __init__(self, max_seconds: int = DEFAULT_MAX_SECONDS) -> None:
        if max_seconds < 1:
            raise InputError("max_seconds must be at least 1")
        self.max_seconds = max_seconds
        self.buckets: dict[int, int] = {}
        self.evicted = 0

    def add(self, at: float, n: int = 1) -> None:
        second = int(math.floor(at))
        if second in self.buckets:
            self.buckets[second] += n
            return
        if self.buckets and len(self.buckets) >= self.max_seconds:
            oldest = min(self.buckets)
            if second < oldest:
                self.evicted += n
                return
            self.evicted += self.buckets.pop(oldest)
        self.buckets[second] = n

    def merge(self, other: ThroughputBuckets) -> ThroughputBuckets:
        for second, n in sorted(other.buckets.items()):
            self.add(second, n)
        self.evicted += other.evicted
        return self

    @property
    def total(self) -> int:
        return sum(self.buckets.values()) + self.evicted

    @property
    def peak(self) -> int:
        return max(self.buckets.values(), default=0)

    def span_seconds(self) -> int:
        """Seconds from the first to the last bucket, inclusive (0 when empty)."""
        if not self.buckets:
            return 0
        return max(self.buckets) - min(self.buckets) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "evicted": self.evicted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_seconds: int = DEFAULT_MAX_SECONDS) -> ThroughputBuckets:
        tb = cls(max_seconds)
        for second, n in sorted((int(k), int(v)) for k, v in data.get("buckets", {}).items()):
            tb.add(second, n)
        tb.evicted += int(data.get("evicted", 0))
        return tb


def known_metric_names(step_types: Iterable[str] = (), causes: Iterable[str] = (), server: bool = False) -> list[str]:
    """Every flat metric name :meth:`RunMetrics.to_dict` always produces, plus those of ``step_types``,
    of retry ``causes`` and, with ``server``, the :data:`SERVER_METRICS` of a backend with servers."""
    names: list[str] = []
    for base in LATENCY_METRICS:
        names += [f"{base}.{stat}" for stat in LATENCY_STATS]
    for step_type in step_types:
        names += [f"step_latency.{step_type}.{stat}" for stat in LATENCY_STATS]
    names += list(COUNTER_NAMES)
    names += [
        "completions.count",
        "completions.rate",
        "completions.peak_rate",
        "starts.rate",
        "success_rate",
        "errors.count",
        RETRIES,
        RETRIES_PER_1000,
        "duration_s",
    ]
    names += list(EXTRA_METRICS)
    names += cause_metric_names(causes)
    if server:
        names += list(SERVER_METRICS)
    return names


def is_step_latency_metric(name: str) -> bool:
    """``step_latency.<type>.<stat>`` for any step type (types are known only at run time)."""
    parts = name.split(".")
    return (
        len(parts) == 3
        and parts[0] == "step_latency"
        and bool(_STEP_TYPE_RE.match(parts[1]))
        and parts[2] in LATENCY_STATS
    )


class RunMetrics:
    """All metrics of one stress run (or one process's share of it)."""

    def __init__(
        self,
        *,
        max_error_groups: int = DEFAULT_MAX_ERROR_GROUPS,
        max_step_types: int = DEFAULT_MAX_STEP_TYPES,
        max_seconds: int = DEFAULT_MAX_SECONDS,
        duration_s: float | None = None,
    ) -> None:
        #: Set by the harness: the start phase (first start to last start) and the peak completion
        #: rate from its timeline; without them ``starts.rate`` uses ``duration_s`` and the peak the
        #: per-second buckets.
        self.start_phase_s: float | None = None
        self.peak_rate: float | None = None
        self.start_latency = LatencyRecorder()
        self.e2e_latency = LatencyRecorder()
        self.fire_lag = LatencyRecorder()
        self.step_latency: dict[str, LatencyRecorder] = {}
        self.counters = Counters()
        self.errors = ErrorGroups(max_error_groups)
        self.completions = ThroughputBuckets(max_seconds)
        self.starts = ThroughputBuckets(max_seconds)
        #: Retries by cause, as the shards counted them (set by the harness).
        self.retries: dict[str, int] = {}
        self.duration_s = duration_s
        self.max_step_types = max_step_types
        self.max_seconds = max_seconds

    # -- recording -----------------------------------------------------------------

    def step_recorder(self, step_type: str) -> LatencyRecorder:
        key = step_type if _STEP_TYPE_RE.match(step_type or "") else OTHER_STEP_TYPE
        recorder = self.step_latency.get(key)
        if recorder is None:
            if len(self.step_latency) >= self.max_step_types:
                key = OTHER_STEP_TYPE
                recorder = self.step_latency.get(key)
            if recorder is None:
                recorder = self.step_latency[key] = LatencyRecorder()
        return recorder

    def record_step(self, step_type: str, seconds: float) -> None:
        self.step_recorder(step_type).record(seconds)

    def record_start(self, latency_s: float, at: float) -> None:
        """A run was started (committed) ``latency_s`` after the start call, at time ``at``."""
        self.counters.started += 1
        self.start_latency.record(latency_s)
        self.starts.add(at)

    def record_end(
        self,
        status: str,
        e2e_s: float | None,
        at: float,
        *,
        error: object | None = None,
        expected_interval_s: float | None = None,
    ) -> None:
        """A run ended with ``status`` (completed, failed, canceled or stuck).

        ``e2e_s`` counts from the intended start (open model). For a closed model pass
        ``expected_interval_s`` to correct for coordinated omission.
        """
        if status not in ("completed", "failed", "canceled", "stuck"):
            raise InputError(f"unknown run status for metrics: {status}")
        self.counters.add(status)
        if e2e_s is not None and status == "completed":
            if expected_interval_s:
                self.e2e_latency.record_corrected(e2e_s, expected_interval_s)
            else:
                self.e2e_latency.record(e2e_s)
        if status == "completed":
            self.completions.add(at)
        if error is not None:
            self.errors.add(error)

    # -- combining -----------------------------------------------------------------

    def merge(self, other: RunMetrics) -> RunMetrics:
        for base in LATENCY_METRICS:
            getattr(self, base).merge(getattr(other, base))
        for step_type, recorder in other.step_latency.items():
            self.step_recorder(step_type).merge(recorder)
        self.counters.merge(other.counters)
        self.errors.merge(other.errors)
        self.completions.merge(other.completions)
        self.starts.merge(other.starts)
        for cause, n in other.retries.items():
            self.retries[cause] = self.retries.get(cause, 0) + n
        if other.duration_s is not None:
            self.duration_s = max(self.duration_s or 0.0, other.duration_s)
        return self

    def to_payload(self) -> dict[str, Any]:
        """JSON-safe form for sending to the parent process."""
        return {
            "v": 1,
            **{base: getattr(self, base).encode() for base in LATENCY_METRICS},
            "step_latency": {k: r.encode() for k, r in self.step_latency.items()},
            "counters": self.counters.to_dict(),
            "errors": self.errors.to_dict(),
            "completions": self.completions.to_dict(),
            "starts": self.starts.to_dict(),
            "retries": dict(self.retries),
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any], **kwargs: Any) -> RunMetrics:
        if not isinstance(data, Mapping) or data.get("v") != 1:
            raise InputError("unsupported stress metrics payload")
        m = cls(**kwargs)
        for base in LATENCY_METRICS:
            if base in data:
                setattr(m, base, LatencyRecorder.decode(data[base]))
        for step_type, text in data.get("step_latency", {}).items():
            m.step_recorder(step_type).merge(LatencyRecorder.decode(text))
        m.counters = Counters.from_dict(data.get("counters", {}))
        m.errors = ErrorGroups.from_dict(data.get("errors", {}), m.errors.max_groups)
        m.completions = ThroughputBuckets.from_dict(data.get("completions", {}), m.max_seconds)
        m.starts = ThroughputBuckets.from_dict(data.get("starts", {}), m.max_seconds)
        m.retries = {str(cause): int(n) for cause, n in data.get("retries", {}).items()}
        m.duration_s = data.get("duration_s")
        return m

    # -- reporting -----------------------------------------------------------------

    def effective_duration_s(self) -> float:
        """``duration_s`` if set, else the span of the per-second buckets."""
        if self.duration_s is not None:
            return float(self.duration_s)
        return float(max(self.completions.span_seconds(), self.starts.span_seconds()))

    def to_dict(self) -> dict[str, float | int | None]:
        """The flat metric namespace (see the module docstring for units)."""
        out: dict[str, float | int | None] = {}
        for base in LATENCY_METRICS:
            for stat, value in getattr(self, base).summary().items():
                out[f"{base}.{stat}"] = value
        for step_type in sorted(self.step_latency):
            for stat, value in self.step_latency[step_type].summary().items():
                out[f"step_latency.{step_type}.{stat}"] = value
        c = self.counters
        out.update(c.to_dict())
        duration = self.effective_duration_s()
        out["completions.count"] = c.completed
        out["completions.rate"] = _safe_div(c.completed, duration)
        out["completions.peak_rate"] = self.completions.peak if self.peak_rate is None else self.peak_rate
        start_phase = duration if self.start_phase_s is None else self.start_phase_s
        out["starts.rate"] = _safe_div(c.started, start_phase)
        out["success_rate"] = c.success_rate
        out["errors.count"] = self.errors.total
        out.update(retry_metrics(self.retries, c.started))
        out["duration_s"] = duration
        return out


TIMELINE_POINTS = 300
#: The finest interval (1/128 s): a sub-second run still gets several points, and doubling
#: reaches round intervals (0.25 s, 0.5 s, 1 s, 2 s, ...) as a run gets longer.
TIMELINE_INTERVAL_S = 1 / 128
TIMELINE_DIGITS = 1  # ~6% resolution: enough for a chart, ~4 KB per interval and series


class Timeline:
    """Counts and coarse latency percentiles per interval since ``origin`` (for charts).

    At most ``max_points`` intervals are kept: when a later event would need more, the
    interval doubles and neighbouring intervals merge, so memory is bounded whatever the
    run's length or number of events, and the interval always fits the run's length.
    Processes given the same ``origin`` merge exactly.
    """

    __slots__ = ("origin", "interval_s", "max_points", "counts", "latencies")

    def __init__(self, origin: float, interval_s: float = TIMELINE_INTERVAL_S,
                 max_points: int = TIMELINE_POINTS) -> None:
        if interval_s <= 0 or max_points < 2:
            raise InputError("a timeline needs a positive interval and at least 2 points")
        self.origin = origin
        self.interval_s = interval_s
        self.max_points = max_points
        self.counts: dict[str, dict[int, int]] = {}
        self.latencies: dict[str, dict[int, HdrHistogram]] = {}

    def _index(self, at: float) -> int:
        index = max(0, int((at - self.origin) // self.interval_s))
        while index >= self.max_points:
            self._coarsen()
            index = max(0, int((at - self.origin) // self.interval_s))
        return index

    def _coarsen(self) -> None:
        self.interval_s *= 2
        for series in self.counts.values():
            merged: dict[int, int] = {}
            for index, n in series.items():
                merged[index // 2] = merged.get(index // 2, 0) + n
            series.clear()
            series.update(merged)
        for series in self.latencies.values():
            merged_h: dict[int, HdrHistogram] = {}
            for index, hist in sorted(series.items()):
                if index // 2 in merged_h:
                    merged_h[index // 2].add(hist)
                else:
                    merged_h[index // 2] = hist
            series.clear()
            series.update(merged_h)

    def count(self, name: str, at: float, n: int = 1) -> None:
        """Add ``n`` events of series ``name`` at time ``at``."""
        series = self.counts.setdefault(name, {})
        index = self._index(at)
        series[index] = series.get(index, 0) + n

    def latency(self, name: str, at: float, seconds: float) -> None:
        """Record a latency of series ``name`` observed at time ``at``."""
        series = self.latencies.setdefault(name, {})
        index = self._index(at)
        hist = series.get(index)
        if hist is None:
            hist = series[index] = HdrHistogram(LOWEST_US, HIGHEST_US, TIMELINE_DIGITS)
        hist.record_value(min(max(round(seconds * 1_000_000), 0), HIGHEST_US))

    def merge(self, other: Timeline) -> Timeline:
        """Add ``other``'s events (same origin; the coarser interval wins)."""
        if abs(other.origin - self.origin) > 1e-6:  # a harness bug, not a user's mistake
            raise ValueError(f"timelines with different origins cannot be merged ({self.origin} vs {other.origin})")
        while self.interval_s < other.interval_s - 1e-12:
            self._coarsen()
        factor = max(1, round(self.interval_s / other.interval_s))
        for name, series in other.counts.items():
            mine = self.counts.setdefault(name, {})
            for index, n in series.items():
                mine[index // factor] = mine.get(index // factor, 0) + n
        for name, series in other.latencies.items():
            mine_h = self.latencies.setdefault(name, {})
            for index, hist in series.items():
                target = mine_h.get(index // factor)
                if target is None:
                    target = mine_h[index // factor] = HdrHistogram(LOWEST_US, HIGHEST_US, TIMELINE_DIGITS)
                target.add(hist)
        return self

    def peak_rate(self, name: str, window_s: float) -> float | None:
        """The highest events per second of series ``name`` over any window of ``window_s``
        (rounded to whole intervals, at least one); None when the series has no events."""
        series = self.counts.get(name)
        if not series:
            return None
        k = max(1, round(window_s / self.interval_s))
        first, last = min(series), max(series)
        window = best = sum(series.get(i, 0) for i in range(first, first + k))
        for i in range(first + k, last + 1):
            window += series.get(i, 0) - series.get(i - k, 0)
            best = max(best, window)
        return best / (k * self.interval_s)

    def to_payload(self) -> dict[str, Any]:
        return {
            "origin": self.origin, "interval_s": self.interval_s, "max_points": self.max_points,
            "counts": {name: {str(i): n for i, n in s.items()} for name, s in self.counts.items()},
            "latencies": {name: {str(i): h.encode().decode("ascii") for i, h in s.items()}
                          for name, s in self.latencies.items()},
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Timeline:
        timeline = cls(float(data["origin"]), float(data["interval_s"]), int(data["max_points"]))
        timeline.counts = {name: {int(i): int(n) for i, n in s.items()} for name, s in data["counts"].items()}
        try:
            timeline.latencies = {name: {int(i): HdrHistogram.decode(text) for i, text in s.items()}
                                  for name, s in data["latencies"].items()}
        except Exception as exc:
            raise InputError(f"cannot decode timeline histogram: {exc}") from None
        return timeline

    def points(self) -> list[dict[str, Any]]:
        """One dict per interval from 0 to the last with data: ``t`` (seconds from the origin),
        each count series, and ``<latency series>_p50`` / ``_p99`` in ms (None when empty)."""
        last = max((i for s in (*self.counts.values(), *self.latencies.values()) for i in s), default=-1)
        out = []
        for index in range(last + 1):
            point: dict[str, Any] = {"t": round(index * self.interval_s, 6)}
            for name, series in sorted(self.counts.items()):
                point[name] = series.get(index, 0)
            for name, series in sorted(self.latencies.items()):
                hist = series.get(index)
                for label, pct in (("p50", 50.0), ("p99", 99.0)):
                    point[f"{name}_{label}"] = (None if hist is None or not hist.get_total_count()
                                                else hist.get_value_at_percentile(pct) / 1000.0)
            out.append(point)
        return out
