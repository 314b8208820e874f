"""The worker lease, fencing and the ready queue's claims.

Lease times are the real clock's: a backend may take lease expiry from its own clock (PostgreSQL:
the server's ``now()``) and ignore the caller's ``now``, so these tests pass ``time.time()``, use
short real TTLs and wait for expiry with ``wait_until``. (SQLite's lease on the caller's clock is
tested in tests/test_sqlite_shard.py.) Queue times (``ready_at``) are the caller's on every backend.
"""

from __future__ import annotations

import time

import pytest

from helpers import wait_until
from wfctl.store import COMPLETED, RUNNING, JournalRow, StepCommit
from wfctl.store.errors import FencingError

from .support import LEASE_S, T0, ids, leased, make_runs, state


def _taken_over(store, owner, ttl_s=LEASE_S):
    """Wait until ``owner`` acquires the shard's lease (once the current one has expired); its generation."""
    generation = wait_until(lambda: store.acquire_lease(owner, ttl_s, now=time.time()), interval=0.05)
    assert generation, f"{owner} could not take the lease over"
    return generation


def test_a_live_lease_is_exclusive(backend):
    with backend.open_shard(0) as one, backend.open_shard(0) as other:
        before = time.time()
        g1 = one.acquire_lease("w1", LEASE_S, now=time.time())
        assert isinstance(g1, int) and g1 >= 1
        assert other.acquire_lease("w2", LEASE_S, now=time.time()) is None
        assert one.acquire_lease("w2", LEASE_S, now=time.time()) is None
        stats = other.stats()
        assert (stats.lease_owner, stats.generation) == ("w1", g1)
        assert before + LEASE_S - 30 <= stats.lease_expires_at <= time.time() + LEASE_S + 30
        assert stats.heartbeat_at is not None
        with backend.open_shard(1) as shard_1:  # shards lease independently
            assert shard_1.acquire_lease("w2", LEASE_S, now=time.time()) is not None


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(backend):
    with backend.open_shard(0) as old, backend.open_shard(0) as new:
        old.create_run("wf-0", "wf", None, state(), now=T0)
        old.create_run("wf-1", "wf", None, state(), now=T0 + 1)
        g1 = old.acquire_lease("w1", 0.3, now=time.time())
        assert ids(old.claim_ready(g1, now=T0, limit=1)) == ["wf-0"]
        g2 = _taken_over(new, "w2")
        assert g2 > g1
        with pytest.raises(FencingError):
            old.renew_lease("w1", g1, LEASE_S, now=time.time())
        with pytest.raises(FencingError):
            old.commit_steps(g1, [StepCommit("wf-0", RUNNING, state("b"), "b", ready_at=T0)], now=T0 + 1)
        with pytest.raises(FencingError):
            old.claim_ready(g1, now=T0, limit=10)
        with pytest.raises(FencingError):
            old.mark_step_started(g1, "wf-1", JournalRow("a", "action", "started"), now=T0 + 1)
        run = new.get_run("wf-0")
        assert (run.current_step, run.status, new.journal("wf-1")) == ("start", "pending", [])
        assert not old.release_lease("w1", g1)  # lost already: the new holder keeps it
        assert (new.stats().lease_owner, new.stats().generation) == ("w2", g2)
        assert ids(new.claim_ready(g2, now=T0 + 1, limit=10)) == ["wf-0", "wf-1"]  # the old claim does not count
        assert new.commit_steps(g2, [StepCommit("wf-0", COMPLETED, None, None)], now=T0 + 2) == []
        assert old.get_run("wf-0").status == COMPLETED


def test_an_expired_lease_not_taken_over_can_be_renewed(store):
    g = store.acquire_lease("w1", 0.2, now=time.time())
    expired = store.stats().lease_expires_at
    assert wait_until(lambda: time.time() > expired + 0.2, interval=0.05)
    renewed = store.renew_lease("w1", g, LEASE_S, now=time.time())
    assert renewed > expired + LEASE_S / 2
    assert store.stats().lease_expires_at == renewed and store.stats().generation == g
    assert store.acquire_lease("w2", LEASE_S, now=time.time()) is None
    make_runs(store, 1)
    assert ids(store.claim_ready(g, now=T0, limit=10)) == ["wf-0"]  # still the holder


def test_renewing_extends_the_lease(store):
    g = store.acquire_lease("w1", 60, now=time.time())
    first = store.stats().lease_expires_at
    renewed = store.renew_lease("w1", g, 300, now=time.time())
    assert renewed > first + 200 and store.stats().lease_expires_at == renewed
    with pytest.raises(FencingError):
        store.renew_lease("w2", g, 300, now=time.time())  # the generation is right, the owner is not
    assert store.stats().lease_owner == "w1"


def test_reacquiring_own_lease_bumps_the_generation(store):
    g = store.acquire_lease("w1", LEASE_S, now=time.time())
    assert store.acquire_lease("w1", LEASE_S, now=time.time()) == g + 1
    with pytest.raises(FencingError):
        store.renew_lease("w1", g, LEASE_S, now=time.time())
    assert store.stats().generation == g + 1


def test_a_released_lease_is_free_at_once_and_fenced(backend):
    with backend.open_shard(0) as one, backend.open_shard(0) as other:
        g = one.acquire_lease("w1", LEASE_S, now=time.time())
        assert one.release_lease("w1", g)
        assert other.stats().lease_owner is None
        with pytest.raises(FencingError):
            one.claim_ready(g, now=T0, limit=10)
        g2 = other.acquire_lease("w2", LEASE_S, now=time.time())
        assert g2 == g + 1
        assert not one.release_lease("w1", g) and not other.release_lease("w1", g2)
        assert other.stats().lease_owner == "w2"


# -- claims -----------------------------------------------------------------------------------

def test_claim_ready_oldest_first_without_deleting(store):
    for i in range(5):
        store.create_run(f"e{i}", "wf", None, state(), now=T0 + 4 - i)
    g = leased(store)
    claimed = store.claim_ready(g, now=T0 + 10, limit=3)
    assert ids(claimed) == ["e4", "e3", "e2"]
    assert claimed[0].state == state() and claimed[0].shard == 0
    assert ids(store.claim_ready(g, now=T0 + 10, limit=10)) == ["e1", "e0"]
    assert store.claim_ready(g, now=T0 + 10, limit=10) == []  # not again for the same generation
    assert store.stats().queue_depth == 5 and store.progress().queue_depth == 5
    assert store.release_lease("w1", g)
    g2 = leased(store, "w2")  # a new generation gets them back at once
    assert ids(store.claim_ready(g2, now=T0 + 10, limit=10)) == ["e4", "e3", "e2", "e1", "e0"]


def test_claim_ready_skips_future_entries(store):
    make_runs(store, 2, now=T0 + 100)
    g = leased(store)
    assert store.claim_ready(g, now=T0, limit=10) == []
    assert store.claim_ready(g, now=T0 + 99.5, limit=10) == []
    assert len(store.claim_ready(g, now=T0 + 100, limit=10)) == 2


def test_a_commit_requeues_a_claimed_run(store):
    make_runs(store, 2)
    g = leased(store)
    assert len(store.claim_ready(g, now=T0, limit=10)) == 2
    store.commit_steps(g, [StepCommit("wf-0", RUNNING, state("b"), "b", ready_at=T0 + 5),
                           StepCommit("wf-1", RUNNING, state("b"), "b")], now=T0 + 1)
    assert store.claim_ready(g, now=T0 + 4, limit=10) == []
    again = store.claim_ready(g, now=T0 + 5, limit=10)
    assert ids(again) == ["wf-0"] and again[0].state == state("b")  # wf-1 waits for something else
    assert store.progress().queue_depth == 1


def test_claim_ready_only_claims_the_given_runs(store):
    make_runs(store, 3)
    g = leased(store)
    assert store.claim_ready(g, now=T0, limit=10, only=[]) == []
    assert ids(store.claim_ready(g, now=T0, limit=10, only=["wf-1", "nope"])) == ["wf-1"]
    assert store.claim_ready(g, now=T0, limit=10, only=["wf-1"]) == []  # claimed already
    assert sorted(ids(store.claim_ready(g, now=T0, limit=10))) == ["wf-0", "wf-2"]


def test_health_counts_the_queue_the_ready_runs_and_the_lease(store):
    empty = store.health(now=T0)
    assert (empty.shard, empty.queue_depth, empty.ready, empty.oldest_ready_at) == (0, 0, 0, None)
    assert (empty.lease_owner, empty.heartbeat_at) == (None, None)
    assert empty.total_retries == 0 and set(empty.retries) == set(store.stats().retries)
    for i in range(4):
        store.create_run(f"e{i}", "wf", None, state(), now=T0 + i)
    store.create_run("later", "wf", None, state(), now=T0 + 100)
    health = store.health(now=T0 + 10)
    assert (health.queue_depth, health.ready, health.oldest_ready_at) == (5, 4, T0)
    g = leased(store)
    assert ids(store.claim_ready(g, now=T0 + 10, limit=2)) == ["e0", "e1"]  # being worked on: not ready
    health = store.health(now=T0 + 10)
    assert (health.queue_depth, health.ready, health.oldest_ready_at) == (5, 2, T0 + 2)
    assert (health.lease_owner, health.generation) == ("w1", g) and health.heartbeat_at is not None
    stats = store.stats()
    assert (health.lease_expires_at, health.heartbeat_at) == (stats.lease_expires_at, stats.heartbeat_at)
    assert store.release_lease("w1", g)
    assert store.health(now=T0 + 100).ready == 5  # a released generation's claims are ready again
