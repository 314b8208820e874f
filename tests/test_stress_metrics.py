"""Stress metrics: HDR latency recorders, counters, error groups, throughput buckets."""

from __future__ import annotations

import json
import multiprocessing
import random

import pytest

from wfctl.errors import InputError
from wfctl.stress.metrics import (
    Counters,
    ErrorGroups,
    LatencyRecorder,
    RunMetrics,
    ThroughputBuckets,
    EXTRA_METRICS,
    known_metric_names,
)

PRECISION = 1e-3  # 3 significant digits


def close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= expected * PRECISION + 1e-3


def test_uniform_percentiles_within_hdr_precision():
    rec = LatencyRecorder()
    for us in range(1, 100_001):  # 1 µs .. 100 ms
        rec.record(us / 1_000_000)
    s = rec.summary()
    assert s["count"] == 100_000
    assert s["min"] == pytest.approx(0.001)
    assert close(s["max"], 100.0)
    assert close(s["mean"], 50.0)
    for name, pct in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9)):
        assert close(s[name], pct), (name, s[name])
        assert s[name] <= s["max"]


def test_known_skewed_distribution():
    rec = LatencyRecorder()
    for _ in range(990):
        rec.record(0.010)  # 10 ms
    for _ in range(10):
        rec.record(2.0)  # 2 s
    s = rec.summary()
    assert close(s["p50"], 10.0) and close(s["p99"], 10.0)
    assert close(s["p99_9"], 2000.0) and close(s["max"], 2000.0)
    assert close(s["mean"], (990 * 10 + 10 * 2000) / 1000)


def test_empty_summary_and_clamping():
    rec = LatencyRecorder()
    s = rec.summary()
    assert s["count"] == 0 and all(s[k] is None for k in s if k != "count")
    rec.record(-1)
    rec.record(10_000)  # beyond 1 h
    rec.record(float("inf"))
    assert rec.count == 3 and rec.clamped == 3
    assert close(rec.summary()["max"], 3600 * 1000.0)


def test_encode_decode_roundtrip_and_bad_input():
    rec = LatencyRecorder()
    for v in (0.001, 0.002, 0.5):
        rec.record(v)
    text = rec.encode()
    assert isinstance(text, str) and text.isascii()
    assert LatencyRecorder.decode(text).summary() == rec.summary()
    assert LatencyRecorder.decode(LatencyRecorder().encode()).count == 0
    with pytest.raises(InputError):
        LatencyRecorder.decode("not a histogram")


def _values(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.expovariate(1 / 0.02) for _ in range(5_000)]


def _record_in_child(seed: int) -> str:
    rec = LatencyRecorder()
    for v in _values(seed):
        rec.record(v)
    return rec.encode()


def test_merge_of_encoded_histograms_from_spawned_processes():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        encoded = pool.map(_record_in_child, [1, 2, 3])
    merged = LatencyRecorder()
    for text in encoded:
        merged.merge(LatencyRecorder.decode(text))
    single = LatencyRecorder()
    for seed in (1, 2, 3):
        for v in _values(seed):
            single.record(v)
    assert merged.count == 15_000
    assert merged.summary() == single.summary()
    assert merged.encode() == single.encode()


def test_coordinated_omission_backfill():
    rec = LatencyRecorder()
    rec.record_corrected(0.100, 0.010)  # 100 ms stall with 10 ms expected interval
    s = rec.summary()
    # the stalled sample plus back-filled 90, 80, ..., 10 ms
    assert s["count"] == 10
    assert close(s["min"], 10.0) and close(s["max"], 100.0)
    plain = LatencyRecorder()
    plain.record_corrected(0.005, 0.010)  # below the interval: nothing to back-fill
    plain.record_corrected(0.100, 0)  # no interval: plain record
    assert plain.count == 2


def test_memory_bounded_by_value_range_not_count():
    small = LatencyRecorder()
    for i in range(1000):
        small.record((i % 1000) / 10_000)
    big = LatencyRecorder()
    rng = random.Random(5)
    for _ in range(1_000_000):
        big.record(rng.random() / 10)  # 0..100 ms
    assert big.count == 1_000_000
    # Same bucket layout regardless of count; the encoding stays well under 64 KiB.
    assert len(big._hist.counts) == len(small._hist.counts)
    assert len(big.encode()) < 65_536


def test_counters_merge_and_guarded_success_rate():
    assert Counters().success_rate == 0.0
    a = Counters(started=10, completed=8, failed=1, stuck=1)
    b = Counters(started=10, completed=10, dropped=2, late=3)
    a.merge(b)
    assert a.to_dict() == {
        "started": 20, "completed": 18, "failed": 1, "canceled": 0, "stuck": 1, "dropped": 2, "late": 3, "rejected": 0,
    }
    assert a.success_rate == pytest.approx(0.9)
    assert Counters(completed=5).success_rate == 1.0  # started missing: ended is the denominator
    with pytest.raises(InputError):
        Counters(bogus=1)
    with pytest.raises(InputError):
        a.add("bogus")


def test_error_groups_cut_and_bounded():
    eg = ErrorGroups(max_groups=3)
    long = "x" * 150
    eg.add(long + "A")
    eg.add(long + "B")  # same first 100 chars
    assert eg.groups == {"x" * 100: 2}
    eg.add("line one\nline two")
    assert "line one line two" in eg.groups
    eg.add(ValueError("boom"))
    for i in range(10):
        eg.add(f"distinct {i}")
    assert len(eg.groups) == 3 and eg.other == 10 and eg.total == 14
    assert eg.most_common()[-1] == ("other", 10)
    other = ErrorGroups(max_groups=3)
    other.add("boom", 5)
    other.add("new one")
    eg.merge(other)
    assert eg.groups["boom"] == 6 and eg.other == 11 and eg.total == 20
    again = ErrorGroups.from_dict(json.loads(json.dumps(eg.to_dict())), max_groups=3)
    assert again.groups == eg.groups and again.other == eg.other


def test_throughput_buckets_bounded_by_duration():
    tb = ThroughputBuckets(max_seconds=60)
    for i in range(100_000):
        tb.add(1000 + i * 0.0006)  # 60 s of events
    assert len(tb.buckets) <= 60 and tb.total == 100_000
    for i in range(1_000_000 // 100):
        tb.add(2000 + i * 0.05)  # 500 more seconds: the dict stays at 60 keys
    assert len(tb.buckets) == 60 and tb.evicted > 0
    assert tb.total == 100_000 + 10_000
    other = ThroughputBuckets(max_seconds=60)
    other.add(5000.2, 7)
    tb.merge(other)
    assert len(tb.buckets) == 60 and tb.buckets[5000] == 7 and tb.total == 110_007
    with pytest.raises(InputError):
        ThroughputBuckets(0)


def _run_metrics() -> RunMetrics:
    m = RunMetrics(duration_s=10.0)
    for i in range(100):
        m.record_start(0.004, at=100 + i * 0.1)
        m.record_step("action", 0.002)
        m.record_step("llm", 0.2)
        if i < 95:
            m.record_end("completed", 0.050, at=100 + i * 0.1 + 0.05)
        else:
            m.record_end("failed", None, at=110, error="step s1 failed: timeout")
    m.retries = {"lock_busy": 5}
    return m


def test_run_metrics_flat_namespace():
    d = _run_metrics().to_dict()
    # RunMetrics gives every known name except the figures the harness adds from the shard files.
    assert set(known_metric_names(["action", "llm"], causes=["lock_busy"])) - set(EXTRA_METRICS) == set(d)
    assert close(d["start_latency.p99"], 4.0)
    assert close(d["e2e_latency.p50"], 50.0)
    assert close(d["step_latency.llm.p99"], 200.0)
    assert d["completions.count"] == 95 and d["completions.rate"] == pytest.approx(9.5)
    assert d["failed"] == 5 and d["stuck"] == 0
    assert d["success_rate"] == pytest.approx(0.95)
    assert d["errors.count"] == 5
    assert d["retries"] == d["retries.lock_busy"] == 5
    assert d["retries_per_1000"] == d["retries_per_1000.lock_busy"] == pytest.approx(50.0)
    assert d["completions.peak_rate"] == 10


def test_run_metrics_retries_by_cause():
    m = _run_metrics()
    m.retries = {"serialization_failure": 3, "deadlock": 1, "lock_timeout": 0}
    d = m.to_dict()
    assert (d["retries"], d["retries_per_1000"]) == (4, pytest.approx(40.0))
    assert (d["retries.serialization_failure"], d["retries_per_1000.serialization_failure"]) == (3, pytest.approx(30.0))
    assert (d["retries.deadlock"], d["retries.lock_timeout"], d["retries_per_1000.lock_timeout"]) == (1, 0, 0.0)
    assert not any(name.endswith(".lock_busy") for name in d)  # only the causes the shards reported


def test_run_metrics_guarded_when_empty():
    d = RunMetrics().to_dict()
    assert d["completions.rate"] == 0.0 and d["success_rate"] == 0.0
    assert d["retries_per_1000"] == 0.0 and d["start_latency.p99"] is None
    assert not [name for name in d if name.startswith("retries.")]
    with pytest.raises(InputError):
        RunMetrics().record_end("exploded", 0.1, at=0)


def test_run_metrics_payload_roundtrip_and_merge():
    a, b = _run_metrics(), _run_metrics()
    wire = json.loads(json.dumps(b.to_payload()))
    merged = a.merge(RunMetrics.from_payload(wire))
    d = merged.to_dict()
    assert d["started"] == 200 and d["completions.count"] == 190
    assert d["start_latency.count"] == 200 and d["step_latency.action.count"] == 200
    assert d["errors.count"] == 10 and d["retries"] == d["retries.lock_busy"] == 10
    assert d["duration_s"] == 10.0
    with pytest.raises(InputError):
        RunMetrics.from_payload({"v": 2})


def test_step_types_bounded():
    m = RunMetrics(max_step_types=4)
    for i in range(50):
        m.record_step(f"type{i}", 0.001)
    m.record_step("bad type!", 0.001)
    assert len(m.step_latency) <= 5 and m.step_latency["other"].count == 47


def test_timeline_bounds_its_points_and_merges_across_processes():
    from wfctl.stress.metrics import Timeline

    a = Timeline(origin=100.0, max_points=10)
    for i in range(100):  # 50 s of events at 2/s: the interval doubles until 10 points cover them
        a.count("starts", 100 + i * 0.5)
        a.latency("start_latency", 100 + i * 0.5, 0.010)
    assert a.interval_s == 8.0 and len(a.points()) <= 10
    assert sum(p["starts"] for p in a.points()) == 100
    assert a.points()[0]["start_latency_p50"] == pytest.approx(10.0, rel=0.07)  # coarse: ~6 % resolution
    b = Timeline(origin=100.0, max_points=10)
    b.count("completions", 101.0, 5)
    merged = Timeline.from_payload(b.to_payload()).merge(Timeline.from_payload(a.to_payload()))
    assert merged.interval_s == 8.0
    assert merged.points()[0]["completions"] == 5 and sum(p["starts"] for p in merged.points()) == 100
    with pytest.raises(ValueError):  # an internal error, never reported as a usage error
        merged.merge(Timeline(origin=1.0))
