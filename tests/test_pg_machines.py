"""Workers on several machines over 8 shards on two PostgreSQL servers, in real processes.

Each "machine" is a worker process of its own with its own lease owner name; shards 0-3 live
on the test server, 4-7 on a throwaway second one. A side-effecting step (``tracked`` in
``test_worker_effects``) appends ``begin``/``end`` lines with its pid to a calls file and can be
held at one item until a gate file exists, so a test knows for sure that a step is in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import ROOT, step, wait_until, wfctl
from pg import drop_prefix, pg_dsn, second_server, unique_prefix

TESTS = Path(__file__).resolve().parent
SHARDS = 8
#: A machine: a Worker in a process of its own (argv: project, owner, lease ttl, max_parallel).
#: ``$WFCTL_TEST_CLOCK_SKEW`` seconds are added to its clock (``time.time``) before wfctl loads.
#: ``$WFCTL_TEST_RECONNECT_S`` sets how long a command would wait for a server to come back.
#: It prints ``ready`` once its first heartbeat is done; SIGTERM stops it cleanly.
MACHINE = """
import logging, os, signal, sys, threading, time
skew = float(os.environ.get("WFCTL_TEST_CLOCK_SKEW") or 0)
if skew:
    _real = time.time
    time.time = lambda: _real() + skew
from wfctl.engine import Worker
from wfctl.store.postgresql import connection
connection.RECONNECT_DEADLINE_S = float(os.environ.get("WFCTL_TEST_RECONNECT_S") or connection.RECONNECT_DEADLINE_S)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
worker = Worker(sys.argv[1], owner=sys.argv[2], lease_ttl=float(sys.argv[3]), max_parallel=int(sys.argv[4]))
worker.heartbeat(worker.clock())
print("ready", flush=True)
sys.exit(worker.run(stop_event=stop))
"""
ITEMS = [1, 2, 3]


@dataclass
class Deployment:
    """A project on two servers, its calls file and the machines started on it."""

    project: Path
    prefix: str
    servers: dict[int, str]  # shard -> DSN
    server: object  # the second server (ThrowawayServer)
    calls: Path
    tmp: Path
    machines: list = field(default_factory=list)

    def machine(self, owner: str, *, ttl: float = 3.0, max_parallel: int = 4, **env: str) -> subprocess.Popen:
        """Start a machine named ``owner``; its stdout/stderr go to files in the temp dir."""
        environ = {**os.environ, "WFCTL_TEST_EFFECTS": str(self.calls), "WFCTL_ALLOW_MODULES": "test_worker_effects",
                   "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]), **env}
        environ.pop("WFCTL_DATA_DIR", None)
        out = open(self.tmp / f"{owner}.out", "w")
        err = open(self.tmp / f"{owner}.err", "w")
        proc = subprocess.Popen([sys.executable, "-c", MACHINE, str(self.project), owner, str(ttl), str(max_parallel)],
                                env=environ, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        proc.owner = owner  # type: ignore[attr-defined]
        self.machines.append(proc)
        return proc

    def ready(self, proc) -> bool:
        return "ready" in (self.tmp / f"{proc.owner}.out").read_text()

    def log(self, proc) -> str:
        return (self.tmp / f"{proc.owner}.err").read_text()

    def leases(self, shards=range(SHARDS)) -> dict[int, tuple]:
        """shard -> (owner, generation, expires_at, heartbeat_at, the server's clock now)."""
        import psycopg

        out = {}
        for dsn in sorted({self.servers[shard] for shard in shards}):
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                for shard in (s for s, d in self.servers.items() if d == dsn and s in shards):
                    out[shard] = conn.execute(
                        f"SELECT lease_owner, generation, lease_expires_at, heartbeat_at,"
                        f" extract(epoch FROM clock_timestamp())::float8 FROM {self.prefix}_shard_{shard:03d}.shard_status"
                        " WHERE id = 1").fetchone()
        return out

    def held_by(self, owner: str) -> set[int]:
        return {shard for shard, lease in self.leases().items() if lease[0] == owner}

    def calls_by(self, kind: str, pid: int | None = None) -> list[tuple[int, str, str, int]]:
        """``(pid, execution id, item, attempt)`` of the calls file's ``kind`` lines (begin, end)."""
        if not self.calls.exists():
            return []
        rows = [line.split() for line in self.calls.read_text().splitlines()]
        return [(int(p), e, i, int(a)) for k, p, e, i, a in rows if k == kind and (pid is None or int(p) == pid)]

    def start_runs(self, count: int, sleep: float = 0.05, skew: float = 0.0) -> list[str]:
        """Start ``count`` runs from a client whose clock is ``skew`` seconds off (ready times are
        the client's clock: a machine whose clock is behind only claims runs its own past made ready)."""
        from wfctl.engine import Engine

        path = self.tmp / "tracked.json"
        path.write_text(json.dumps({"id": "tracked", "name": "tracked", "steps": [
            step("start", "start", next_steps={"success": "each"}),
            step("each", "loop", {"items": "{{input.items}}"}, {"loop": "effect", "done": "out"}),
            step("effect", "action", {"type": "test_worker_effects:tracked",
                                      "parameters": {"item": "{{loop.item}}", "sleep": "{{input.sleep}}"}}, {"success": "each"}),
            step("out", "output", {"mapping": {"done": True}}),
        ]}))
        with Engine(self.project, allow_modules=["test_worker_effects"], clock=lambda: time.time() + skew) as engine:
            return [engine.start(str(path), {"items": ITEMS, "sleep": sleep}).execution_id for _ in range(count)]

    def unfinished(self, ids) -> list[str]:
        from wfctl.engine import Engine

        with Engine(self.project) as engine:
            return [eid for eid in ids if engine.status(eid, steps=1)["status"] != "completed"]

    def stop_all(self) -> None:
        for proc in self.machines:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.machines:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def deployment(tmp_path):
    from wfctl.store import DataDir

    main = pg_dsn()
    with second_server() as server:
        prefix = unique_prefix("machines")
        placement = {shard: server.dsn for shard in range(4, SHARDS)}
        servers = {shard: placement.get(shard, main) for shard in range(SHARDS)}
        project = tmp_path / "project"
        dep = Deployment(project, prefix, servers, server, tmp_path / "calls.txt", tmp_path)
        try:
            DataDir.init(project, shards=SHARDS, route="execution", backend="postgresql",
                         options={"dsn": main, "schema_prefix": prefix}, placement=placement)
            yield dep
        finally:
            dep.stop_all()
            drop_prefix(main, prefix)


def exactly_once(dep: Deployment, ids: list[str]) -> dict[str, list[dict]]:
    """Check that every run completed once, no completed step ran again, every call made is a
    journaled attempt and the one completed attempt of each effect was called once; returns
    each run's effect steps as ``status --steps`` shows them."""
    from wfctl.engine import Engine

    begun: dict[tuple[str, str], list[int]] = defaultdict(list)
    for _, eid, item, attempt in dep.calls_by("begin"):
        begun[eid, item].append(attempt)
    effects = {}
    with Engine(dep.project) as engine:
        for eid in ids:
            status = engine.status(eid)
            assert status["status"] == "completed" and status["output"] == {"done": True}, status
            done = defaultdict(int)
            for s in status["steps"]:
                if s["status"] == "completed":
                    done[s["slug"]] += 1
            assert done == {"start": 1, "each": len(ITEMS) + 1, "effect": len(ITEMS), "out": 1}, (eid, done)
            steps = [s for s in status["steps"] if s["slug"] == "effect"]
            effects[eid] = steps
            item, journaled = 0, []
            for s in steps:
                assert s["status"] in ("completed", "interrupted"), (eid, s)
                journaled.append(s["attempt"])
                if s["status"] == "completed":
                    item += 1
                    calls = begun[eid, str(item)]
                    # each call is a journaled attempt of this item; the completed one was called once
                    assert len(calls) == len(set(calls)) and set(calls) <= set(journaled), (eid, item, calls, steps)
                    assert calls.count(s["attempt"]) == 1 and s["output"]["data"]["attempt"] == s["attempt"]
                    journaled = []
    return effects


def test_kill_9_one_machine_mid_step_the_other_takes_its_shards_and_runs_end_once(deployment):
    dep, ttl = deployment, 3.0
    ids = dep.start_runs(24)
    a = dep.machine("machine-a", ttl=ttl, WFCTL_TEST_HOLD_ITEM="3")  # holds every item-3 step until killed
    assert wait_until(lambda: dep.held_by("machine-a") == set(range(SHARDS)), timeout=120), dep.log(a)
    b = dep.machine("machine-b", ttl=ttl)
    assert wait_until(lambda: dep.ready(b), timeout=120), dep.log(b)
    assert dep.held_by("machine-b") == set()  # every lease is live: nothing to take
    # kill once machine A is demonstrably inside item-3 steps (its results journaled before)
    assert wait_until(lambda: len({(e, i) for _, e, i, _ in dep.calls_by("begin", a.pid) if i == "3"}) >= 3,
                      timeout=120), dep.log(a)
    before = dep.leases()
    a.kill()
    assert a.wait(30) == -signal.SIGKILL
    in_flight = {e for _, e, i, _ in dep.calls_by("begin", a.pid) if i == "3"}
    killed_at = time.monotonic()
    assert wait_until(lambda: dep.held_by("machine-b") == set(range(SHARDS)), timeout=120), dep.log(b)
    took = time.monotonic() - killed_at
    after = dep.leases()
    for shard in range(SHARDS):  # taken over with a new generation once A's lease expired on the server's clock
        assert after[shard][1] > before[shard][1]
    assert wait_until(lambda: not dep.unfinished(ids), timeout=120), dep.log(b)
    effects = exactly_once(dep, ids)
    for eid in in_flight:  # the steps A was in are journaled as interrupted, then done by B
        third = [s for s in effects[eid] if s["status"] == "interrupted"]
        assert third and effects[eid][-1]["output"]["data"]["pid"] == b.pid, effects[eid]
    for eid in in_flight:  # A did items 1 and 2 of the runs it was inside item 3 of; B did not run them again
        done = [s for s in effects[eid] if s["status"] == "completed"]
        assert [s["output"]["data"]["pid"] for s in done[:2]] == [a.pid, a.pid], effects[eid]
    print(f"takeover after kill -9: {took:.1f} s (lease ttl {ttl} s)")
    assert took < ttl + 30  # the lease time plus a loaded machine's slack


def test_sigstopped_machine_writes_nothing_after_losing_its_leases(deployment):
    from wfctl.store import DataDir, FencingError, StepCommit

    dep, ttl = deployment, 3.0
    ids = dep.start_runs(16)
    gate = dep.tmp / "gate"
    a = dep.machine("machine-a", ttl=ttl, max_parallel=2, WFCTL_TEST_HOLD_ITEM="1", WFCTL_TEST_HOLD_UNTIL=str(gate))
    assert wait_until(lambda: dep.held_by("machine-a") == set(range(SHARDS)), timeout=120), dep.log(a)
    b = dep.machine("machine-b", ttl=ttl)
    assert wait_until(lambda: dep.ready(b), timeout=120), dep.log(b)
    # A's two step threads are inside held steps; more of its claimed runs wait for a thread
    assert wait_until(lambda: len(dep.calls_by("begin", a.pid)) == 2, timeout=120), dep.log(a)
    generations = {shard: lease[1] for shard, lease in dep.leases().items()}
    a.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    assert wait_until(lambda: dep.held_by("machine-b") == set(range(SHARDS)), timeout=120), dep.log(b)
    took = time.monotonic() - stopped_at
    held = dep.calls_by("begin", a.pid)
    gate.touch()  # B runs the held items again; A's held steps may finish once it resumes
    a.send_signal(signal.SIGCONT)
    # A resumes: its held steps end, and it finds every lease gone
    assert wait_until(lambda: len(dep.calls_by("end", a.pid)) == 2, timeout=120), dep.log(a)
    assert wait_until(lambda: dep.log(a).count("lost the lease of shard") >= 1, timeout=120), dep.log(a)
    assert wait_until(lambda: not dep.unfinished(ids), timeout=120), dep.log(b)
    assert dep.held_by("machine-a") == set() and a.poll() is None
    assert dep.calls_by("begin", a.pid) == held  # no further step started by A: its marks were refused
    effects = exactly_once(dep, ids)
    by_a = [s for steps in effects.values() for s in steps if s["output"] and s["output"]["data"]["pid"] == a.pid]
    assert by_a == []  # its two finished steps were not journaled: B's attempts were
    for _, eid, _, attempt in held:
        assert [s["status"] for s in effects[eid] if s["attempt"] == attempt][0] == "interrupted"
    # a commit under A's last generation is refused by the fence on every shard
    datadir = DataDir.open(dep.project, create=False)
    for shard in (0, 4):
        with datadir.open_shard(shard) as store:
            with pytest.raises(FencingError):
                store.commit_steps(generations[shard], [StepCommit(ids[0], "running", None, "effect", ready_at=0.0)],
                                   now=time.time())
    print(f"takeover after SIGSTOP: {took:.1f} s (lease ttl {ttl} s)")


def test_a_server_down_and_restarted_mid_run_loses_and_duplicates_nothing(deployment):
    dep, ttl = deployment, 5.0
    ids = dep.start_runs(32)
    gate = dep.tmp / "gate"
    # a worker that waited for the down server (as a command does) would stall far past every deadline here
    hold = {"WFCTL_TEST_HOLD_ITEM": "2", "WFCTL_TEST_HOLD_UNTIL": str(gate), "WFCTL_TEST_RECONNECT_S": "600"}
    machines = [dep.machine(name, ttl=ttl, max_parallel=8, **hold) for name in ("machine-a", "machine-b")]
    assert wait_until(lambda: all(dep.ready(m) for m in machines), timeout=120)
    assert wait_until(lambda: len(dep.calls_by("begin")) >= 32, timeout=120)  # every run is in or past item 1
    upper = [eid for eid in ids if _shard(dep, eid) >= 4]
    lower = [eid for eid in ids if eid not in upper]
    assert upper and lower
    held = {shard: lease[:2] for shard, lease in dep.leases(range(4)).items()}
    assert {owner for owner, _ in held.values()} <= {"machine-a", "machine-b"} and None not in held.values()
    dep.server.stop()
    down_at = time.monotonic()
    gate.touch()
    # while shards 4-7 are unreachable, the runs of shards 0-3 complete
    assert wait_until(lambda: not dep.unfinished(lower), timeout=120), [dep.log(m) for m in machines]
    lower_done = time.monotonic() - down_at
    # ... under the same leases: no machine stalled on the down server long enough to lose them
    assert {shard: lease[:2] for shard, lease in dep.leases(range(4)).items()} == held
    shards = wfctl(dep.project, "shards", "--json", timeout=300)
    assert shards.returncode == 0, shards.stderr
    rows = {row["shard"]: row for row in json.loads(shards.stdout)}
    for shard in range(4, SHARDS):
        assert "cannot reach the server" in rows[shard]["error"], rows[shard]
        assert "damaged" not in rows[shard]["error"] and "broken" not in rows[shard]["error"]
    assert all("error" not in rows[shard] for shard in range(4))
    table = wfctl(dep.project, "shards", "--no-check", timeout=300)
    assert table.returncode == 0 and " ".join(table.stdout.split()).count("cannot reach the server") == 4, table.stdout
    dep.server.start()
    assert wait_until(lambda: not dep.unfinished(upper), timeout=180), [dep.log(m) for m in machines]
    # a fast restart in the middle of a second batch
    more = dep.start_runs(16, sleep=0.2)
    assert wait_until(lambda: len({e for _, e, _, _ in dep.calls_by("begin") if e in more}) >= 4, timeout=120)
    dep.server.restart()
    assert wait_until(lambda: not dep.unfinished(ids + more), timeout=180), [dep.log(m) for m in machines]
    assert all(m.poll() is None for m in machines)
    exactly_once(dep, ids + more)
    print(f"shards 0-3 finished {lower_done:.1f} s into the outage of shards 4-7")


def _shard(dep: Deployment, execution_id: str) -> int:
    from wfctl.engine.ids import shard_of

    return shard_of(execution_id, SHARDS)[0]


def test_lease_expiry_is_on_the_database_clock_whatever_the_machines_clocks_say(deployment):
    dep, ttl, hour = deployment, 3.0, 3600.0
    ids = dep.start_runs(16, sleep=0.2, skew=-hour)
    slow = dep.machine("slow", ttl=ttl, WFCTL_TEST_CLOCK_SKEW=str(-hour))  # its clock an hour behind
    assert wait_until(lambda: dep.held_by("slow") == set(range(SHARDS)), timeout=120), dep.log(slow)
    generations = {shard: lease[1] for shard, lease in dep.leases().items()}
    fast = dep.machine("fast", ttl=ttl, WFCTL_TEST_CLOCK_SKEW=str(hour))  # an hour ahead: every lease looks expired
    assert wait_until(lambda: dep.ready(fast), timeout=120), dep.log(fast)
    ready = dep.leases()[0][4]
    # three lease times on the server's clock: the fast machine tried every ttl/3, the slow one renewed
    assert wait_until(lambda: dep.leases()[0][4] > ready + 3 * ttl, timeout=120)
    leases = dep.leases()
    assert {shard: (lease[0], lease[1]) for shard, lease in leases.items()} == \
        {shard: ("slow", generations[shard]) for shard in range(SHARDS)}  # nothing stolen
    assert all(lease[3] > ready for lease in leases.values())  # renewed meanwhile, on the server's clock
    slow.send_signal(signal.SIGSTOP)
    assert wait_until(lambda: dep.held_by("fast") == set(range(SHARDS)), timeout=120), dep.log(fast)
    taken = dep.leases()
    for shard in range(SHARDS):  # not before the slow machine's last renewal + ttl on the server's clock
        assert taken[shard][3] >= leases[shard][3] + ttl - 0.5
    slow_rows = _rows_stamped_before(dep, time.time() - hour / 2)  # the slow machine's clock stamps its rows
    assert slow_rows > 0
    slow.send_signal(signal.SIGCONT)
    assert wait_until(lambda: dep.log(slow).count("lost the lease of shard") >= 1, timeout=120), dep.log(slow)
    assert wait_until(lambda: not dep.unfinished(ids), timeout=120), dep.log(fast)
    assert dep.held_by("slow") == set() and slow.poll() is None
    assert _rows_stamped_before(dep, time.time() - hour / 2) == slow_rows  # nothing written after it lost them
    exactly_once(dep, ids)


def _rows_stamped_before(dep: Deployment, when: float) -> int:
    import psycopg

    total = 0
    for dsn in sorted(set(dep.servers.values())):
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            for shard in (s for s, d in dep.servers.items() if d == dsn):
                total += conn.execute(f"SELECT count(*) FROM {dep.prefix}_shard_{shard:03d}.journal"
                                      " WHERE COALESCE(finished_at, started_at) < %s", (when,)).fetchone()[0]
    return total
