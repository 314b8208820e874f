"""Builders shared by the contract tests."""

from __future__ import annotations

import time

T0 = 1_790_000_000.0
"""The caller's clock for runs, queue and journal times (leases use the real clock: see test_leases)."""

LEASE_S = 600.0


def state(current="start", **variables):
    """A run state as the interpreter writes it (``RunState.to_dict()``)."""
    return {"variables": {"input": {}, **variables}, "current": current, "status": "running",
            "output": None, "error": None, "wake_at": None, "steps_run": 0}


def make_runs(store, n, definition_id="wf", now=T0, **kwargs):
    """``n`` pending runs ``{definition_id}-0``... created at ``now``."""
    return [store.create_run(f"{definition_id}-{i}", definition_id, {"i": i}, state(), now=now, **kwargs)[0]
            for i in range(n)]


def leased(store, owner="w1", ttl_s=LEASE_S):
    """Take the shard's lease (on the real clock, which every backend agrees on); its generation."""
    generation = store.acquire_lease(owner, ttl_s, now=time.time())
    assert generation is not None
    return generation


def ids(runs):
    return [r.execution_id for r in runs]
