"""The scheduler loop against real SQLite files: a simulated day with three schedulers, a burst
on four shards, and a scheduler process killed with SIGKILL mid-burst."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from wfctl.engine import Engine
from wfctl.engine.worker import Worker
from wfctl.schedules import ScheduleState, slot_key
from wfctl.schedules.scheduler import Scheduler
from wfctl.store import DataDir, shard_for

from helpers import ROOT, FakeClock, wait_until

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MINUTES = 1440


def scheduled(definition_id, cron, *, overlap="skip", sleep_s=None, jitter=None, catchup=None):
    config = {"type": "scheduled", "schedule": cron, "overlap": overlap, "input": {"slot": "{{slot}}"}}
    if jitter is not None:
        config["jitter"] = jitter
    if catchup is not None:
        config["catchupWindow"] = catchup
    steps = [{"stepSlug": "tick", "name": "tick", "stepType": "trigger", "config": config,
              "nextSteps": {"success": "wait" if sleep_s else "done"}}]
    if sleep_s:
        steps.append({"stepSlug": "wait", "name": "wait", "stepType": "action",
                      "config": {"type": "sleep", "parameters": {"seconds": sleep_s}},
                      "nextSteps": {"success": "done"}})
    steps.append({"stepSlug": "done", "name": "done", "stepType": "output",
                  "config": {"mapping": {"slot": "{{input.slot}}"}}, "nextSteps": {}})
    return {"id": definition_id, "name": definition_id, "steps": steps}


def apply(engine, tmp_path, definitions):
    paths = []
    for d in definitions:
        path = tmp_path / f"{d['id']}.json"
        path.write_text(json.dumps(d))
        paths.append(path)
    engine.apply(paths)


def runs_of(engine, definition_id):
    return engine.list(definition=definition_id, limit=1_000_000)


# -- (a) a simulated day, three schedulers, six policies -----------------------------------------

POLICIES = {  # definition -> (overlap, run length in seconds)
    "skip": ("skip", 90), "buffer-one": ("buffer_one", 90), "buffer-all": ("buffer_all", 90),
    "cancel-other": ("cancel_other", 90), "allow-all": ("allow_all", 90), "plain-skip": ("skip", 20),
}


def test_simulated_day_three_schedulers(tmp_path):
    clock = FakeClock(START + 3)
    data = DataDir.init(tmp_path / "data", shards=2).path
    engines = [Engine(data, clock=clock) for _ in range(3)]
    apply(engines[0], tmp_path, [scheduled(d, "* * * * *", overlap=o, sleep_s=s) for d, (o, s) in POLICIES.items()])
    schedulers = [Scheduler(e, clock=clock) for e in engines]
    worker = Worker(engines[0], owner="sim-worker", lease_ttl=10 * 86400, sweep_interval=86400)
    rng = random.Random(7)
    started = time.monotonic()
    conflicts = 0

    def drain_worker():
        while worker.tick():
            pass

    pool = ThreadPoolExecutor(3)
    try:
        for minute in range(MINUTES):
            for offset in (0.0, 30.0):
                clock.now = START + minute * 60 + offset + (rng.uniform(0.5, 5.0) if offset == 0 else 0)
                drain_worker()
                if offset == 0:  # the three at once, in random order: their compare-and-sets race
                    order = rng.sample(schedulers, 3)
                    conflicts += sum(r.conflicts for r in pool.map(lambda s: s.tick(), order))
        clock.now += 1
        drain_worker()
    finally:
        pool.shutdown()
        worker.close()
    elapsed = time.monotonic() - started
    print(f"\nsimulated {MINUTES} minutes in {elapsed:.1f} s ({conflicts} compare-and-set conflicts)")

    eng = engines[0]
    first_slot, last_slot = START + 60, START + (MINUTES - 1) * 60
    all_slots = [first_slot + 60 * i for i in range(MINUTES - 1)]
    for definition_id, (overlap, length) in POLICIES.items():
        state = ScheduleState.from_dict(eng.schedule_state(definition_id))
        assert state.last_slot == last_slot and state.pending == () and state.cancel_slot is None
        runs = runs_of(eng, definition_id)
        per_slot = Counter(r["slot_time"] for r in runs)
        assert all(n == 1 for n in per_slot.values()), definition_id  # no slot doubled
        slots = sorted(r for r in (_epoch(r["slot_time"]) for r in runs))
        assert len(runs) == state.started
        assert all(s in set(all_slots) for s in slots)
        # every slot accounted for exactly once: started, skipped or still buffered
        assert (state.started + state.skipped_overlap + state.skipped_catchup + state.skipped_paused
                + len(state.buffered)) == len(all_slots), definition_id
        assert not set(slots) & set(state.buffered)
        assert state.skipped_catchup == 0 and state.skipped_paused == 0
        ordered = sorted(runs, key=lambda r: r["created_at"])
        overlaps = sum(1 for a, b in zip(ordered, ordered[1:])
                       if a["completed_at"] is None or a["completed_at"] > b["created_at"])
        for r in runs:
            assert r["fire_lag_ms"] is not None and r["fire_lag_ms"] >= 0
            if not overlap.startswith("buffer"):  # on time (a buffered slot starts when the previous run ends)
                assert r["fire_lag_ms"] <= 5_000
            assert r["execution_id"] == eng.key_run(definition_id, slot_key(definition_id, _epoch(r["slot_time"]))).execution_id
        statuses = Counter(r["status"] for r in runs)
        if overlap in ("skip", "buffer_one", "buffer_all"):
            assert overlaps == 0, definition_id
        if definition_id == "skip":
            assert state.skipped_overlap > 0 and state.started < len(all_slots)
        if definition_id == "plain-skip":
            assert state.started == len(all_slots) and state.skipped_overlap == 0
        if overlap == "buffer_one":
            assert state.skipped_overlap > 0 and len(state.buffered) <= 1
        if overlap == "buffer_all":
            assert state.skipped_overlap == 0 and len(state.buffered) > 0
            assert slots == sorted(slots) and slots == all_slots[:len(slots)]  # in order, none lost
        if overlap == "allow_all":
            assert state.started == len(all_slots) and overlaps > 0
            assert statuses["canceled"] == 0
        if overlap == "cancel_other":
            assert state.started == len(all_slots) and state.canceled > 0
            assert statuses["canceled"] > 0
            unfinished = [r for r in runs if r["status"] in ("pending", "running")]
            assert len(unfinished) <= 1
    for e in engines:
        e.close()


def _epoch(iso_text):
    from datetime import datetime

    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


# -- (b) a burst: 24 definitions due at the same second, four shards ------------------------------

def test_burst_24_definitions_four_shards(tmp_path, capsys):
    data = DataDir.init(tmp_path / "data", shards=4, route="definition").path
    engine = Engine(data)
    due = float(int(time.time()) + 3)
    t = time.gmtime(due)
    cron = f"{t.tm_sec} {t.tm_min} {t.tm_hour} {t.tm_mday} {t.tm_mon} *"
    ids_ = [f"burst-{n:02d}" for n in range(24)]
    apply(engine, tmp_path, [scheduled(d, cron) for d in ids_])
    scheduler = Scheduler(engine)
    scheduler.tick()  # the first plan: the schedules start from now
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, kwargs={"stop_event": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while engine.count(None, None) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    lags = []
    for d in ids_:
        [run] = runs_of(engine, d)
        assert run["shard"] == shard_for(d, 4)
        assert _epoch(run["slot_time"]) == due and run["fire_lag_ms"] is not None and run["fire_lag_ms"] >= 0
        lags.append(run["fire_lag_ms"])
    lags.sort()
    p50, p99 = statistics.median(lags), lags[min(len(lags) - 1, int(0.99 * len(lags)))]
    with capsys.disabled():  # the figures belong in the test output, not only on failure
        print(f"\nburst of 24 on 4 shards: fire lag p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lags[-1]:.1f} ms")
    engine.close()


# -- (c) kill -9 a scheduler process mid-burst, restart it --------------------------------------

def _scheduler_process(data):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "wfctl", "--data-dir", str(data), "scheduler"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_scheduler_killed_mid_burst_loses_and_doubles_nothing(tmp_path):
    n = 60
    data = DataDir.init(tmp_path / "data", shards=4, route="definition").path
    engine = Engine(data)
    ids_ = [f"every-second-{i:02d}" for i in range(n)]
    apply(engine, tmp_path, [scheduled(d, "* * * * * *", overlap="allow_all", jitter=0) for d in ids_])
    proc = _scheduler_process(data)
    mid_burst = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill while a second's burst is half done
            count = engine.count(None, None)
            if count > 2 * n and count % n:
                mid_burst = True
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.time()
        time.sleep(1.5)  # downtime: the slots of these seconds are caught up after the restart
        proc = _scheduler_process(data)
        restarted_at = time.time()

        def caught_up() -> bool:  # every schedule has fired a slot 2 s after the restart, so is past the downtime
            return all((ScheduleState.from_dict(engine.schedule_state(d)).last_slot or 0) >= restarted_at + 2
                       for d in ids_)

        assert wait_until(caught_up, timeout=120, interval=0.2), "the restarted scheduler did not catch up"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\nkilled mid-burst: {mid_burst}; {engine.count(None, None)} runs")
    for d in ids_:
        state = ScheduleState.from_dict(engine.schedule_state(d))
        runs = runs_of(engine, d)
        per_slot = Counter(r["slot_time"] for r in runs)
        assert max(per_slot.values()) == 1, d  # none doubled
        slots = sorted(_epoch(s) for s in per_slot)
        assert state.pending == () and state.skipped_catchup == 0
        assert slots == [slots[0] + i for i in range(int(state.last_slot - slots[0]) + 1)], d  # none lost
        assert slots[-1] > killed_at + 1 and state.started == len(runs)
    engine.close()
