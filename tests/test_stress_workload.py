"""The stress workload plan: open-model arrival times, definition choice, generated inputs."""

from __future__ import annotations

from collections import Counter

import pytest

from wfctl.stress.scenarios import InputSpec, Workload
from wfctl.stress.workload import (DefinitionMix, InputMaker, arrival_offsets, planned_arrivals, rate_segments,
                                   target_rate)


def open_workload(**kw) -> Workload:
    return Workload.model_validate({"model": "open", **kw})


def test_constant_rate_arrivals_are_evenly_spaced():
    offsets = list(arrival_offsets(open_workload(rate=4, duration=2.5)))
    assert offsets == pytest.approx([i * 0.25 for i in range(10)])
    assert target_rate(open_workload(rate=4, duration=2.5)) == pytest.approx(4.0)


def test_a_ramp_plans_the_integral_of_its_rate():
    w = open_workload(stages=[{"duration": 10, "target": 10}, {"duration": 10, "target": 10}])
    assert rate_segments(w) == [(0.0, 10.0, 0.0, 10.0), (10.0, 20.0, 10.0, 10.0)]
    offsets = list(arrival_offsets(w))
    assert len(offsets) == 50 + 100  # a ramp 0 -> 10/s over 10 s is 50 arrivals, then 10/s for 10 s
    assert offsets == sorted(offsets) and offsets[-1] < 20
    # arrival k of the ramp is where t^2 / 2 (the integral of a rate t/s) reaches k
    assert offsets[8] == pytest.approx((2 * 8) ** 0.5)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert gaps[10] > gaps[40] > gaps[-1] - 1e-9  # arrivals get denser as the rate climbs


def test_the_rate_holds_after_the_stages_until_the_duration():
    w = open_workload(rate=2, duration=10, stages=[{"duration": 4, "target": 2}])
    assert rate_segments(w)[-1] == (4.0, 10.0, 2.0, 2.0)
    assert planned_arrivals(w) == 4 + 12
    assert target_rate(Workload.model_validate({"model": "closed", "clients": 1, "total": 1})) is None


def test_definition_mix_follows_the_weights_and_the_seed():
    mix = DefinitionMix([("a", 1), ("b", 1), ("c", 2)])
    counts = Counter(mix.pick(i) for i in range(4000))
    assert counts["c"] == pytest.approx(2000, abs=10) and counts["a"] == pytest.approx(1000, abs=10)
    assert [mix.pick(i) for i in range(20)] == [mix.pick(i) for i in range(20)]
    other = DefinitionMix([("a", 1), ("b", 1), ("c", 2)], seed=7)
    assert [other.pick(i) for i in range(20)] != [mix.pick(i) for i in range(20)]


def test_inputs_per_generator():
    assert InputMaker(InputSpec(generator="sequence", field="k"), 100).make(3) == {"k": 3}
    assert InputMaker(InputSpec(generator="fixed", value={"x": 1}), 100).make(9) == {"x": 1}
    loops = InputMaker(InputSpec(generator="loops", iterations=3, rows=2), 100).make(1)
    assert loops == {"items": [0, 1, 2], "rows": [[0, 1, 2], [0, 1, 2]], "n": 1}


def test_sized_inputs_and_the_oversized_one():
    spec = InputSpec(generator="sized", field="payload", size_bytes=1000, oversize_every=3, seed=5)
    maker = InputMaker(spec, limit=5000)
    sizes = [len(maker.make(i)["payload"]) for i in range(6)]
    assert sizes == [1000, 1000, 6024, 1000, 1000, 6024]  # every 3rd is over the 5000-byte limit
    assert [maker.oversized(i) for i in range(3)] == [False, False, True]
    same = InputMaker(spec, limit=5000).make(0)["payload"]
    assert same == maker.make(0)["payload"] and len(set(same)) > 10  # seeded random text, not a repeated byte
    reseeded = InputMaker(spec.model_copy(update={"seed": 6}), limit=5000).make(0)["payload"]
    assert reseeded != same
