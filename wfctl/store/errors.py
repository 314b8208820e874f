"""Errors raised by the storage layer; each prints as one line naming the file involved."""

from __future__ import annotations

from ..errors import InputError, WfctlError


class StoreError(WfctlError):
    """A storage operation failed (I/O error, unexpected database error)."""


class StoreBusyError(StoreError):
    """The write lock of a shard file could not be taken before the deadline."""


class CorruptShardError(StoreError):
    """A shard or catalog file is not a readable wfctl database; other files keep working."""


class FencingError(StoreError):
    """A worker wrote with a lease generation that is no longer current (it lost the lease)."""


class PayloadTooLargeError(StoreError, InputError):
    """An input, a step output or a run's state is over the configured size limit."""


class UnreachableError(StoreError):
    """A store's server cannot be reached, or the connection to it was lost (the shard is not
    damaged: it works again once the server is back)."""
