"""The SQLite connection's lock-wait loop, on a simulated clock: backoff schedule, deadline, counters."""

from __future__ import annotations

import random
import sqlite3

import pytest

from helpers import FakeClock
from wfctl.store import DataDir
from wfctl.store.errors import StoreBusyError
from wfctl.store.sqlite.connection import (RETRY_CAP_S, RETRY_START_S, STARVING_AFTER_S, STARVING_DELAY_S,
                                           Connection)


def test_backoff_schedule_deadline_and_counters(tmp_path):
    path = DataDir.init(tmp_path, shards=1).backend.shard_path(0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    clock = FakeClock(start=0.0)
    db = Connection(path, busy_deadline_s=2.0, rng=random.Random(3), sleep=clock.sleep, clock=clock)
    with pytest.raises(StoreBusyError) as info:
        with db.write():
            pass
    assert str(info.value) == (f"{path}: gave up waiting for the write lock after {clock.now:.1f} s "
                               f"({len(clock.slept)} retries)")
    assert clock.now >= 2.0
    assert RETRY_START_S / 2 <= clock.slept[0] <= RETRY_START_S * 1.5
    assert clock.slept[1] > clock.slept[0]
    assert max(clock.slept) <= RETRY_CAP_S * 1.5
    waited = 0.0
    for pause in clock.slept:  # a waiter past STARVING_AFTER_S polls fast again
        if waited > STARVING_AFTER_S + RETRY_CAP_S * 1.5:
            assert pause <= STARVING_DELAY_S * 1.5
        waited += pause
    assert (db.lock_retries, db.lock_wait_s) == (len(clock.slept), pytest.approx(clock.now))
    other.execute("COMMIT")
    with db.write() as conn:
        conn.execute("SELECT 1")
    db.close()
