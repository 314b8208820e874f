"""Whether a store call may wait for an unreachable server (reconnecting with backoff).

A command rides out a server restart by waiting. A worker must not: one server down would
stall its shards on the other servers. Inside :func:`impatient` (per thread), a store whose
server cannot be reached makes one connection attempt and raises
:class:`~wfctl.store.errors.UnreachableError`; the caller retries that shard later.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_IMPATIENT: contextvars.ContextVar[bool] = contextvars.ContextVar("wfctl_store_impatient", default=False)


@contextmanager
def impatient() -> Iterator[None]:
    """Store calls in this thread (and context) do not wait for an unreachable server."""
    token = _IMPATIENT.set(True)
    try:
        yield
    finally:
        _IMPATIENT.reset(token)


def is_impatient() -> bool:
    """Whether the current store call must not wait for an unreachable server."""
    return _IMPATIENT.get()
