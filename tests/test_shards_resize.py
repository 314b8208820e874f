"""``wfctl shards add`` / ``remove`` on a live deployment (SQLite and PostgreSQL), with real processes:
a worker running through the resize, starts before and after, keyed starts, lookups by id, removals
refused, done, and raced by a process that still routes by the old count."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from helpers import ROOT, step, wait_until, wfctl, wfctl_argv, wfctl_env
from pg import pg_project
from wfctl.engine import Engine
from wfctl.engine.ids import shard_of
from wfctl.store import DataDir, shard_for


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request, tmp_path):
    """``project(shards, route)``: the path of a fresh deployment of the backend under test."""
    with ExitStack() as stack:
        def make(shards: int = 2, route: str = "execution") -> Path:
            path = tmp_path / "project"
            if request.param == "sqlite":
                DataDir.init(path, shards=shards, route=route)
            else:
                stack.enter_context(pg_project(path, shards, tag="resize", route=route))
            return path

        yield make


def tracked(folder: Path) -> Path:
    """A definition whose one side-effecting step appends a line per call (tests/test_worker_effects.py)."""
    path = folder / "tracked.json"
    path.write_text(json.dumps({"id": "tracked", "name": "tracked", "steps": [
        step("start", "start", next_steps={"success": "effect"}),
        step("effect", "action", {"type": "test_worker_effects:tracked", "parameters": {"item": 1}},
             {"success": "out"}),
        step("out", "output", {"mapping": {"done": True}}),
    ]}))
    return path



def _definition_routed_to_shard_3_of_4(tmp_path):
    """A one-step definition (its id, its file) that routing by definition puts on shard 3 of 4."""
    name = next(f"d{n}" for n in range(200) if shard_for(f"d{n}", 4) == 3)
    file = tmp_path / f"{name}.json"
    file.write_text(json.dumps({"id": name, "name": name, "steps": [step("start", "start")]}))
    return name, file

def test_add_while_a_worker_runs_every_run_ends_once_on_the_shard_its_id_names(project, tmp_path):
    path = project(shards=2)
    calls = tmp_path / "calls.txt"
    env = wfctl_env(PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}", WFCTL_TEST_EFFECTS=str(calls))
    definition = tracked(tmp_path)
    with Engine(path, allow_modules=["test_worker_effects"]) as engine:
        ids = [engine.start(str(definition)).execution_id for _ in range(10)]
    stale = Engine(path, allow_modules=["test_worker_effects"])  # opened before the resize, used after it
    worker = subprocess.Popen(wfctl_argv(path, "worker", "--no-scheduler", "--allow-module", "test_worker_effects"),
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert wait_until(lambda: calls.exists() and len(calls.read_text().splitlines()) >= 2, 120), "no worker ran"
        added = wfctl(path, "shards", "add", "2", "--json", env=env)
        assert added.returncode == 0, added.stderr
        result = json.loads(added.stdout)
        assert (result["before"], result["after"], result["key_shards"]) == (2, 4, 2)
        assert [a["shard"] for a in result["added"]] == [2, 3]
        with Engine(path, allow_modules=["test_worker_effects"]) as engine:  # a new process's starts
            fresh = [engine.start("tracked") for _ in range(12)]
        assert {s.shard for s in fresh} == {0, 1, 2, 3}
        late = []  # the engine opened before the resize reads the count again within seconds

        def stale_reaches_a_new_shard():
            late.append(stale.start("tracked"))
            return late[-1].shard >= 2

        assert wait_until(stale_reaches_a_new_shard, 60, interval=0.2)
        ids += [s.execution_id for s in fresh + late]

        def all_done():
            with Engine(path) as engine:
                return all(engine.status(eid, steps=1)["status"] == "completed" for eid in ids)

        assert wait_until(all_done, 180), worker.stderr.read() if worker.poll() is not None else "runs unfinished"
    finally:
        stale.close()
        worker.terminate()
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    begun = Counter(line.split()[2] for line in calls.read_text().splitlines() if line.startswith("begin"))
    with Engine(path) as engine:  # a lookup by id, old or new, finds the run on the shard its id names
        for eid in ids:
            run = engine.status(eid)
            assert run["status"] == "completed" and run["output"] == {"done": True}, run
            assert run["shard"] == shard_of(eid, 4)[0]
            assert [s["slug"] for s in run["steps"] if s["status"] == "completed"] == ["start", "effect", "out"]
        assert {row["shard"] for row in engine.shards() if row["runs_by_status"]["completed"]} == {0, 1, 2, 3}
    assert begun == {eid: 1 for eid in ids}  # every effect ran once


@pytest.mark.parametrize("route", ["execution", "definition"])
def test_a_key_started_before_and_after_a_resize_starts_one_run(project, tmp_path, route):
    path = project(shards=2, route=route)
    definition = tracked(tmp_path)
    keys = [f"key-{n}" for n in range(24)]

    def start_all() -> dict[str, str]:
        out = {}
        for key in keys:
            proc = wfctl(path, "start", str(definition), "--idempotency-key", key,
                         "--allow-module", "test_worker_effects")
            assert proc.returncode == 0, proc.stderr
            out[key] = proc.stdout.split()[0]
        return out

    keys_before = keys[:12]
    with Engine(path, allow_modules=["test_worker_effects"]) as engine:  # a long-lived engine spans the resize
        first = {key: engine.start(str(definition), idempotency_key=key).execution_id for key in keys_before}
        assert wfctl(path, "shards", "add", "3").returncode == 0
        again = {key: engine.start(str(definition), idempotency_key=key) for key in keys_before}
    assert {key: s.execution_id for key, s in again.items()} == first
    assert not any(s.created for s in again.values())
    # A new key routes like the old ones (over the count before the first add), from a new process too.
    keyed = start_all()
    assert {k: keyed[k] for k in keys_before} == first
    assert all(shard_of(eid, 5)[0] < 2 for eid in keyed.values())
    with Engine(path) as engine:
        assert engine.count() == len(keys)
        assert all(engine.key_run("tracked", key).execution_id == eid for key, eid in keyed.items())


def test_remove_refuses_a_shard_with_runs_and_removes_empty_ones(project, tmp_path):
    path = project(shards=2, route="definition")
    before = json.loads((path / "wfctl.json").read_text())
    refused_keys = wfctl(path, "shards", "remove", "1")
    assert refused_keys.returncode == 2 and "keyed starts" in refused_keys.stderr
    assert wfctl(path, "shards", "add", "2").returncode == 0
    # a definition whose runs now go to shard 3
    name, file = _definition_routed_to_shard_3_of_4(tmp_path)
    with Engine(path) as engine:
        eid = engine.start(str(file)).execution_id
    assert shard_of(eid, 4)[0] == 3
    proc = wfctl(path, "shards", "remove", "2")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["wfctl: error: shard 3 holds 1 run(s), 1 unfinished: nothing removed (let them finish or "
                     "cancel them, then delete them with `wfctl cleanup`; `wfctl list --shard 3` shows them)"]
    with Engine(path) as engine:  # nothing changed
        assert engine.shard_count == 4 and engine.status(eid)["status"] == "pending"
    assert wfctl(path, "shards", "remove", "3").returncode == 2  # below the key count: refused
    assert wfctl(path, "cleanup", "--force", eid).returncode == 0
    removed = wfctl(path, "shards", "remove", "2", "--json")
    assert removed.returncode == 0, removed.stderr
    result = json.loads(removed.stdout)
    assert (result["before"], result["after"], result["removed"]) == (4, 2, [2, 3])
    with Engine(path) as engine:
        assert engine.shard_count == 2 and [row["shard"] for row in engine.shards()] == [0, 1]
        assert all("error" not in row for row in engine.shards())
    settings = json.loads((path / "wfctl.json").read_text())
    assert (settings["shards"], settings["key_shards"]) == (2, 2)
    assert {k: v for k, v in settings.items() if k not in ("key_shards", "secret_key_fingerprint")} == \
        {k: v for k, v in before.items() if k != "secret_key_fingerprint"}
    if settings["backend"] == "sqlite":
        assert sorted(p.name for p in path.glob("shard-*")) == ["shard-000.db", "shard-001.db"]
    # shards can be added again where removed ones were
    assert wfctl(path, "shards", "add", "2").returncode == 0
    with Engine(path) as engine:
        assert engine.start(str(file)).shard == 3


def test_a_start_from_a_process_that_still_routes_to_a_removed_shard_is_not_lost(project, tmp_path):
    path = project(shards=2, route="definition")
    assert wfctl(path, "shards", "add", "2").returncode == 0
    name, file = _definition_routed_to_shard_3_of_4(tmp_path)
    with Engine(path) as stale:
        assert stale.start(str(file)).shard == 3  # opens shard 3 and remembers 4 shards
        eid = stale.list()[0]["execution_id"]
        stale.cleanup([eid], force=True)
        assert wfctl(path, "shards", "remove", "2").returncode == 0  # another process
        stale.runtime._next_refresh = float("inf")  # it has not read the count again yet
        started = stale.start(name)  # its store of shard 3 is gone: started again over 2 shards
        assert started.shard == shard_for(name, 2) and started.created
        assert stale.shard_count == 2
    with Engine(path) as engine:
        assert engine.status(started.execution_id)["status"] == "pending"


def test_a_run_started_while_a_shard_is_removed_keeps_its_shard(project, tmp_path):
    """The race the order of the removal is for: a start landing after the emptiness check."""
    path = project(shards=2, route="definition")
    assert wfctl(path, "shards", "add", "2").returncode == 0
    name, file = _definition_routed_to_shard_3_of_4(tmp_path)
    with Engine(path) as stale:
        stale.start(str(file))
        stale.cleanup([stale.list()[0]["execution_id"]], force=True)
        datadir = DataDir.open(path, create=False)
        publish = datadir.backend.publish_shards
        raced = []

        def publish_then_a_stale_start(expected, shards, key_shards, placement=None):
            publish(expected, shards, key_shards, placement)
            if not raced:  # the count is lowered: a process that read it before starts on shard 3
                raced.append(stale.start(name))

        datadir.backend.publish_shards = publish_then_a_stale_start
        stale.runtime.refresh_shards = lambda every=None: False  # it has not read the count again yet
        from wfctl.errors import InputError

        with pytest.raises(InputError, match="a run started on shard 3 while it was being removed: kept shards "
                                             "0..3, removed none"):
            datadir.remove_shards(2)
    assert raced[0].shard == 3
    with Engine(path) as engine:
        assert engine.shard_count == 4
        assert engine.status(raced[0].execution_id)["status"] == "pending"


def test_shards_removed_and_added_again_under_a_running_worker_and_a_long_lived_engine(project, tmp_path):
    path = project(shards=2, route="definition")
    assert wfctl(path, "shards", "add", "2").returncode == 0
    name, file = _definition_routed_to_shard_3_of_4(tmp_path)
    worker = subprocess.Popen(wfctl_argv(path, "worker", "--no-scheduler"), env=wfctl_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with Engine(path) as engine:  # holds shard 3's store from before the removal
            first = engine.start(str(file)).execution_id
            assert wait_until(lambda: engine.status(first)["status"] == "completed", 120)
            assert engine.cleanup([first]) == 1
            assert wfctl(path, "shards", "remove", "2").returncode == 0
            assert wfctl(path, "shards", "add", "2").returncode == 0  # shard 3 anew: another file or schema
            again = engine.start(name)
            assert again.shard == 3 and again.created
            assert wait_until(lambda: engine.status(again.execution_id)["status"] == "completed", 120)
            assert engine.status(again.execution_id)["shard"] == 3
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0 and "unusable" not in err, err


def test_bad_input_is_one_line_and_changes_nothing(project, tmp_path):
    from helpers import refused

    path = project(shards=2)
    backend = json.loads((path / "wfctl.json").read_text())["backend"]
    files = sorted(p.name for p in path.iterdir())
    bad_place = ("2=host=elsewhere", "the sqlite backend keeps every shard in the data directory: placement is for "
                 "the postgresql backend") if backend == "sqlite" else (
        "2=host=elsewhere password=secret", "placement of shard 2")
    for args, message in [
        (["add", "0"], "Invalid value for 'count': 0 is not in the range x>=1."),
        (["add", "999"], "shards add 999: 2 + 999 is more than 1000 shards"),
        (["add", "2", "--place", "5=host=x"], "--place: shard 5 is not one of the new shards 2..3"),
        (["add", "2", "--place", bad_place[0]], bad_place[1]),
        (["add", "2", "--place", "nonsense"], "--place 'nonsense'...: expected FIRST-LAST=DSN or N=DSN"),
        (["remove", "1"], "shards remove 1: no shard can be removed"),
    ]:
        line = refused(wfctl(path, "shards", *args))
        assert message in line, (args, line)
        assert "secret" not in line
    assert sorted(p.name for p in path.iterdir()) == files
    with Engine(path) as engine:
        assert engine.shard_count == 2 and len(engine.shards()) == 2
    if backend == "postgresql":
        import psycopg

        prefix = json.loads((path / "wfctl.json").read_text())["postgresql"]["schema_prefix"]
        with psycopg.connect(json.loads((path / "wfctl.json").read_text())["postgresql"]["dsn"]) as conn:
            schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s",
                                   (prefix + "\\_shard\\_%",)).fetchone()[0]
        assert schemas == 2


def test_a_schedule_finds_its_slots_runs_across_a_resize(tmp_path):
    """A slot's run is started with the slot's idempotency key: after a resize the scheduler still finds
    it (overlap policy) and a re-issued slot start returns it."""
    from helpers import FakeClock
    from wfctl.engine import ids
    from wfctl.schedules import slot_key
    from wfctl.schedules.scheduler import Scheduler

    start = 1_767_225_600.0  # a minute boundary
    clock = FakeClock(start + 61)
    path = DataDir.init(tmp_path / "data", shards=2, route="execution").path
    definition = tmp_path / "every-minute.json"
    definition.write_text(json.dumps({"id": "every-minute", "name": "every-minute", "steps": [
        step("tick", "trigger", {"type": "scheduled", "schedule": "* * * * *", "overlap": "skip"},
             {"success": "done"}),
        step("done", "output", {"mapping": {"ok": True}}),
    ]}))
    with Engine(path, clock=clock) as engine:
        engine.apply([definition])
        scheduler = Scheduler(engine, clock=clock)
        scheduler.tick()  # the schedule's first state: its next slot
        clock.now = start + 121
        first = scheduler.tick()
        assert len(first.started) == 1
    key = slot_key("every-minute", start + 120)
    body = ids.new_body("every-minute", key)
    added = next(n for n in range(1, 20) if shard_for(body, 2 + n) != shard_for(body, 2))  # the key would move
    DataDir.open(path, create=False).add_shards(added)
    clock.now = start + 181
    with Engine(path, clock=clock) as engine:  # a scheduler of another process, after the resize
        assert engine.shard_count == 2 + added
        assert engine.key_unfinished("every-minute", key)
        report = Scheduler(engine, clock=clock).tick()
        assert report.started == [] and report.skipped == {"overlap": 1}  # the slot's run is still pending
        again = engine.start("every-minute", idempotency_key=key, slot_time=start + 120)
        assert (again.execution_id, again.created) == (first.started[0], False)
        assert engine.count() == 1


def test_a_process_that_has_not_read_the_new_count_finds_runs_on_added_shards_by_id(project, tmp_path):
    path = project(shards=2, route="definition")
    name, file = _definition_routed_to_shard_3_of_4(tmp_path)
    with Engine(path) as stale:
        old = stale.start(str(file)).execution_id
        stale.runtime._next_refresh = float("inf")  # it would read the count again only in a while
        assert wfctl(path, "shards", "add", "2").returncode == 0
        with Engine(path) as fresh:
            new = fresh.start(name).execution_id
        assert shard_of(new, 4)[0] == 3 and stale.shard_count == 2
        assert stale.status(new)["shard"] == 3 and stale.status(old)["status"] == "pending"
        assert sorted(stale.cancel([old, new])) == sorted([old, new])
        assert stale.cleanup([old, new]) == 2
