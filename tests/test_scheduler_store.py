"""The engine API of schedules: slot_time, key lookups, a re-applied definition, overlap policies (the
catalog's compare-and-set is tested on every backend in tests/contract/test_catalog.py)."""

from __future__ import annotations

from wfctl.engine import Engine
from wfctl.store import DataDir

from helpers import FakeClock, minutely_sleeper, step, write_definition


def test_slot_time_key_lookup_and_cancel(tmp_path):
    clock = FakeClock(1_000_000.0)
    with Engine(DataDir.init(tmp_path / "data", shards=4).path, clock=clock) as eng:
        eng.apply([minutely_sleeper(tmp_path)])
        plain = eng.start("d")
        by_hand = eng.status(plain.execution_id)
        assert by_hand["slot_time"] is None and by_hand["fire_lag_ms"] is None  # started by hand
        started = eng.start("d", {}, idempotency_key="k1", slot_time=clock.now - 1.5)
        status = eng.status(started.execution_id)
        assert status["slot_time"] == "1970-01-12T13:46:38.500Z" and status["fire_lag_ms"] == 1500.0
        assert eng.key_unfinished("d", "k1") and not eng.key_unfinished("d", "other")
        assert not eng.key_unfinished("nope", "k1")
        assert eng.cancel_key("d", "k1") and not eng.cancel_key("d", "k1")
        assert not eng.key_unfinished("d", "k1")
        assert eng.status(started.execution_id)["status"] == "canceled"
        listed = {r["execution_id"]: r for r in eng.list()}
        assert listed[started.execution_id]["fire_lag_ms"] == 1500.0


def test_scheduler_follows_a_reapplied_definition(tmp_path):
    from wfctl.schedules.scheduler import Scheduler

    clock = FakeClock(1_767_225_600.0 + 1)  # 2026-01-01T00:00:01Z
    with Engine(DataDir.init(tmp_path / "data", shards=2).path, clock=clock) as eng:
        def write(definition_id, cron, template="{{slot}}"):
            trigger = {"type": "scheduled", "schedule": cron, "input": {"s": template}}
            return write_definition(tmp_path, definition_id, [step("t", "trigger", trigger)])

        eng.apply([write("a", "0 * * * *")])
        other = Engine(eng.datadir.path, clock=clock)
        scheduler = Scheduler(other)
        scheduler.tick()
        clock.now += 120
        assert scheduler.tick().started == []  # hourly: nothing due
        eng.apply([write("a", "* * * * *")])  # applied again elsewhere: minutely now
        clock.now += 60
        report = scheduler.tick()
        assert len(report.started) == 1 and eng.count(None, "a") == 1
        other.close()


def _overlap_definition(tmp_path, overlap):
    trigger = {"type": "scheduled", "schedule": "0 0 1 1 *", "overlap": overlap}
    return write_definition(tmp_path, overlap.replace("_", "-"), [step("t", "trigger", trigger)], name=overlap)


def test_trigger_follows_the_overlap_policy(tmp_path):
    from wfctl.schedules import schedule_of
    from wfctl.schedules.scheduler import Scheduler

    clock = FakeClock(2_000_000.0)
    with Engine(DataDir.init(tmp_path / "data", shards=2).path, clock=clock) as eng:
        outcomes = {}
        for overlap in ("skip", "buffer_one", "cancel_other", "allow_all"):
            eng.apply([_overlap_definition(tmp_path, overlap)])
            spec = schedule_of(eng.definition(overlap.replace("_", "-")))
            scheduler = Scheduler(eng)
            first = scheduler.trigger(spec)          # no previous run: starts
            clock.now += 1
            second = scheduler.trigger(spec)         # the first run is unfinished (no worker ran it)
            clock.now += 1
            outcomes[overlap] = (first.action, second.action)
            if overlap == "cancel_other":
                assert eng.status(first.started.execution_id)["status"] == "canceled"
                assert eng.status(second.started.execution_id)["status"] == "pending"
            if overlap == "buffer_one":
                assert second.started is None and len(scheduler.state(spec.definition_id).buffered) == 1
        assert outcomes == {"skip": ("start", "skip"), "buffer_one": ("start", "buffer"),
                            "cancel_other": ("start", "cancel_previous_and_start"), "allow_all": ("start", "start")}
