"""Real processes on one deployment: racing creators, claimers, workers, and cancel/cleanup racing a
busy worker. Children are spawned (a fresh interpreter, as on another machine) and open their own
stores from the pickled deployment."""

from __future__ import annotations

import multiprocessing
import time

from wfctl.store import CANCELED, COMPLETED, PENDING, RUNNING, UNFINISHED, JournalRow, StepCommit
from wfctl.store.base import STARTED
from wfctl.store.errors import FencingError

from helpers import canceled_run_problems, report, run_processes, wait_until

from .support import leased, state

CTX = multiprocessing.get_context("spawn")
DEADLINE_S = 120.0


# -- creators ---------------------------------------------------------------------------------

def _create_keyed(deployment, name, keys, barrier, results):
    def work():
        with deployment.open_shard(0) as store:
            barrier.wait()
            got = [store.create_run(f"{name}-{k}", "wf", {"by": name}, None, idempotency_key=k, now=time.time())
                   for k in keys]
        return [(run.execution_id, created) for run, created in got]
    report(results, name, work)


def test_processes_starting_with_the_same_keys_make_one_run_per_key(deploy):
    deployment = deploy(shards=1)
    keys = [f"key-{i}" for i in range(40)]
    out = run_processes([(_create_keyed, deployment, f"p{n}", keys) for n in range(8)], DEADLINE_S)
    for i, key in enumerate(keys):
        answers = [got[i] for got in out.values()]
        assert len({execution_id for execution_id, _ in answers}) == 1, key  # everyone got the same run
        assert sum(created for _, created in answers) == 1, key  # created by exactly one
    with deployment.open_shard(0) as store:
        assert store.count_runs() == len(keys) and store.progress().queue_depth == len(keys)
        run = store.get_run(out["p0"][0][0])
        assert run.input == {"by": run.execution_id.split("-")[0]}


def _create_many(deployment, shard, name, count, barrier, results):
    def work():
        with deployment.open_shard(shard) as store:
            barrier.wait()
            return sum(store.create_run(f"{name}-{i}", "wf", {"i": i}, None, now=time.time())[1]
                       for i in range(count))
    report(results, name, work)


def test_concurrent_creators_lose_nothing(deploy):
    deployment = deploy(shards=2)
    out = run_processes([(_create_many, deployment, n % 2, f"p{n}", 150) for n in range(4)], DEADLINE_S)
    assert out == {f"p{n}": 150 for n in range(4)}
    for shard in range(2):
        with deployment.open_shard(shard) as store:
            listed = [r.execution_id for r in store.list_runs(limit=1000)]
            assert len(listed) == len(set(listed)) == 300
            assert {eid.split("-")[0] for eid in listed} == {f"p{shard}", f"p{shard + 2}"}
            stats = store.stats()
            assert stats.runs_by_status == {PENDING: 300} and stats.queue_depth == 300 and stats.transactions > 0


# -- claimers and workers ---------------------------------------------------------------------

def _claim_all(deployment, name, generation, barrier, results):
    def work():
        claimed = []
        with deployment.open_shard(0) as store:
            barrier.wait()
            while batch := store.claim_ready(generation, now=time.time(), limit=7):
                claimed += [r.execution_id for r in batch]
        return claimed
    report(results, name, work)


def test_two_claimers_never_get_the_same_run(deploy):
    """Two processes claiming for one lease generation (one worker's connections) split the queue."""
    deployment = deploy(shards=1)
    with deployment.open_shard(0) as store:
        for i in range(300):
            store.create_run(f"e{i}", "wf", None, None, now=time.time())
        generation = leased(store)
    out = run_processes([(_claim_all, deployment, name, generation) for name in ("a", "b")], DEADLINE_S)
    assert not set(out["a"]) & set(out["b"])
    assert sorted(out["a"] + out["b"]) == sorted(f"e{i}" for i in range(300))


def _take_turns(deployment, owner, barrier, results):
    """A worker that takes the lease, completes a few runs, gives the lease up, and again; a commit
    rejected by fencing (its lease expired and was taken) is dropped, as a worker drops it."""
    def work():
        done, fenced = [], 0
        deadline = time.monotonic() + DEADLINE_S
        with deployment.open_shard(0) as store:
            barrier.wait()
            while store.progress().unfinished and time.monotonic() < deadline:
                generation = store.acquire_lease(owner, 1.0, now=time.time())
                if generation is None:
                    continue
                try:
                    batch = store.claim_ready(generation, now=time.time(), limit=5)
                    row = JournalRow("work", "action", COMPLETED, finished_at=time.time(), output={"by": owner})
                    skipped = store.commit_steps(generation, [
                        StepCommit(r.execution_id, COMPLETED, None, None, journal=[row], output=owner)
                        for r in batch], now=time.time())
                    done += [r.execution_id for r in batch if r.execution_id not in skipped]
                    store.release_lease(owner, generation)
                except FencingError:
                    fenced += 1
        return done, fenced
    report(results, owner, work)


def test_workers_taking_turns_complete_every_run_once(deploy):
    deployment = deploy(shards=1)
    with deployment.open_shard(0) as store:
        for i in range(120):
            store.create_run(f"e{i}", "wf", None, state(), now=time.time())
    out = run_processes([(_take_turns, deployment, owner) for owner in ("w1", "w2")], DEADLINE_S)
    (done_1, _), (done_2, _) = out["w1"], out["w2"]
    assert not set(done_1) & set(done_2)
    assert sorted(done_1 + done_2) == sorted(f"e{i}" for i in range(120))
    with deployment.open_shard(0) as store:
        assert store.stats().runs_by_status == {COMPLETED: 120}
        for eid in done_1[:20] + done_2[:20]:
            run = store.get_run(eid)
            assert [j.output["by"] for j in store.journal(eid)] == [run.output]  # one commit applied, by its worker


# -- cancel and cleanup racing a busy worker ---------------------------------------------------

STEPS = 9
RACERS = 100


def _busy_worker(deployment, barrier, results):
    """Advance every run one step per commit (every third step side-effecting: journaled as started
    first), in batches, until no run is left unfinished."""
    def work():
        commits = 0
        deadline = time.monotonic() + DEADLINE_S
        with deployment.open_shard(0) as store:
            generation = leased(store, "busy")
            barrier.wait()
            while store.progress().unfinished and time.monotonic() < deadline:
                updates = []
                for run in store.claim_ready(generation, now=time.time(), limit=20):
                    n = run.state["variables"].get("n", 0)
                    began = time.time()
                    if n % 3 == 1 and not store.mark_step_started(
                            generation, run.execution_id, JournalRow(f"s{n}", "action", STARTED, started_at=began),
                            now=began):
                        continue  # canceled meanwhile: do not run it
                    if n % 3 == 1:
                        time.sleep(0.002)  # the workload: a side effect takes a while (not a synchronization)
                    row = JournalRow(f"s{n}", "action", COMPLETED, started_at=began, finished_at=time.time())
                    if n + 1 == STEPS:
                        updates.append(StepCommit(run.execution_id, COMPLETED, None, None, journal=[row],
                                                  output={"n": n + 1}))
                    else:
                        updates.append(StepCommit(run.execution_id, RUNNING, state(f"s{n + 1}", n=n + 1),
                                                  f"s{n + 1}", journal=[row], ready_at=time.time()))
                if updates:
                    store.commit_steps(generation, updates, now=time.time())
                    commits += 1
        return commits
    report(results, "worker", work)


def test_cancel_and_cleanup_racing_a_busy_worker_leave_consistent_records(deploy):
    deployment = deploy(shards=1)
    with deployment.open_shard(0) as store:
        for i in range(RACERS):
            store.create_run(f"a-{i}", "a", None, state(), now=time.time())
            store.create_run(f"b-{i}", "b", None, state(), now=time.time())
    results = CTX.Queue()
    barrier = CTX.Barrier(2)
    worker = CTX.Process(target=_busy_worker, args=(deployment, barrier, results))
    worker.start()
    try:
        with deployment.open_shard(0) as store:
            barrier.wait(timeout=DEADLINE_S)
            assert wait_until(lambda: store.count_runs([RUNNING], "a") >= 20, interval=0.01), "the worker is idle"
            by_id = store.cancel_runs([f"a-{i}" for i in range(0, RACERS, 2)], now=time.time)
            by_definition = store.cancel_matching("a", now=time.time, batch=10)
            deleted = 0
            while worker.is_alive() and results.empty():  # cleanup while the worker commits
                deleted += store.delete_finished(time.time(), [COMPLETED], batch=10)
        _, commits, error = results.get(timeout=DEADLINE_S)
        worker.join(timeout=DEADLINE_S)
    finally:
        worker.kill()
    assert error is None and worker.exitcode == 0
    assert commits > 0
    with deployment.open_shard(0) as store:
        canceled = store.list_runs([CANCELED], limit=1000)
        assert len(canceled) == len(by_id) + by_definition > 0 and {r.definition_id for r in canceled} == {"a"}
        assert any(run.started_at is not None for run in canceled)  # the cancels met runs in progress
        problems = {run.execution_id: p for run in canceled
                    if (p := canceled_run_problems(run, store.journal(run.execution_id)))}
        assert not problems, f"{len(problems)} inconsistent canceled runs, e.g. {next(iter(problems.items()))}"
        assert store.count_runs(UNFINISHED) == 0 and store.progress().queue_depth == 0
        completed = store.list_runs([COMPLETED], limit=1000)
        assert len(completed) + deleted + len(canceled) == 2 * RACERS  # nothing lost, nothing left unfinished
        for run in completed:
            finished = [j.step_slug for j in store.journal(run.execution_id) if j.status == COMPLETED]
            assert (run.output, finished) == ({"n": STEPS}, [f"s{n}" for n in range(STEPS)])
