"""Where an idle worker waits for work: :class:`Waker`, and the capability a backend may add.

A worker with nothing to do waits on a waker until something wakes it: one of its own threads
(a side-effecting step finished) or, when the backend has the capability, the database server
announcing that runs became ready on a shard (PostgreSQL: LISTEN/NOTIFY). A backend declares the
capability by returning a listening waker from :meth:`~wfctl.store.backend.Backend.waker`; without
it (SQLite) the worker polls its shards every ``poll_interval``. Announcements can be lost (a
listener reconnecting, a start from a machine whose clock is ahead), so a listening worker still
polls now and then (its ``idle_poll``).
"""

from __future__ import annotations

import threading


class Waker:
    """Ends a worker's wait: :meth:`wake` (from any thread), or a timeout.

    This class hears nothing by itself (:attr:`listening` is False): its owner polls. A
    backend's subclass calls ``wake(shard)`` when the server announces ready runs on a shard,
    and says whether it :attr:`listening` now (connected and subscribed).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shards: set[int] = set()
        self._woken = False

    @property
    def listening(self) -> bool:
        """Whether announcements of new work reach this waker now (False: poll)."""
        return False

    def wake(self, *shards: int) -> None:
        """End the current (or next) wait; ``shards``: where runs became ready."""
        with self._cond:
            self._shards.update(shards)
            self._woken = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> set[int] | None:
        """Wait until woken or ``timeout`` seconds: the shards announced since the last wait
        (empty when woken without one), or None when the timeout passed with nothing."""
        with self._cond:
            if not self._woken:
                self._cond.wait(max(0.0, timeout))
            if not self._woken:
                return None
            shards, self._shards, self._woken = self._shards, set(), False
            return shards

    def close(self) -> None:
        """Stop listening (nothing to do here)."""
