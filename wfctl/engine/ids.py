"""Execution ids: ``<shard in hex, 2+ digits>-<32 hex digits>``, e.g. ``03-0193a4f2c1d87e5b9a0c4d2e6f718293``.

The prefix is the run's shard, so ``status``/``cancel``/``cleanup`` open one shard
without scanning the others. The 32-digit body is chosen first:

- without an idempotency key, a time-ordered random value (48-bit millisecond timestamp then
  80 random bits, the UUIDv7 layout);
- with a key, the first 128 bits of ``sha256(definition id NUL key)``: a repeated start with
  the same key computes the same id, so the shard's insert finds the existing run (keys are
  scoped to their definition).

The shard is then ``fnv1a_32(body) % shards`` when the data directory routes by execution,
and ``fnv1a_32(definition id) % shards`` when it routes by definition (tale's ``getShardIndex``).
An id without a hex prefix (written before sharding) or with an out-of-range one is looked up
on shard 0, with a warning, as tale's ``safeShardIndex`` does.

With execution routing, a run without a key may live on any shard, so the engine may pick
the shard first (one whose write lock is free, see :meth:`Engine.start`) and draw a body
that hashes to it (:func:`new_body_for_shard`): the last two hex digits are chosen among the
256 values so that ``fnv1a_32(body) % shards`` is that shard, the rest stays random. The
routing rule holds for every id; only the draw is conditioned (about 8 of the 80 random bits).

Lease owner ids name the worker process holding a shard's lease: ``host:pid:random``
(:func:`default_owner`, read back by :func:`parse_owner`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid

from ..store import fnv1a_32, safe_shard_index

_HEX = frozenset("0123456789abcdef")


def new_body(definition_id: str, idempotency_key: str | None = None) -> str:
    """The 32-hex-digit random (or, with a key, derived) part of a new execution id."""
    if idempotency_key is not None:
        digest = hashlib.sha256(f"{definition_id}\0{idempotency_key}".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]
    return f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


#: Up to this many shards, :func:`new_body_for_shard` finds a body in a few cheap steps.
MAX_CHOSEN_SHARDS = 64
_DIGITS = [(c, ord(c)) for c in "0123456789abcdef"]
_FNV_PRIME = 16777619
_MASK = 0xFFFFFFFF


def new_body_for_shard(shard: int, shards: int) -> str:
    """A random time-ordered body (as :func:`new_body`) with ``fnv1a_32(body) % shards == shard``.

    FNV-1a is computed once over the first 30 digits; the last two are then tried from a
    random start among their 256 values (on average ``shards`` multiply-xors).
    """
    if shards <= 1:
        return new_body("")
    while True:
        rand = os.urandom(10)
        head = f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{rand[:9].hex()}"
        h = fnv1a_32(head)
        first = rand[9]
        for i in range(256):
            j = (first + i) & 0xFF
            c1, u1 = _DIGITS[j >> 4]
            c2, u2 = _DIGITS[j & 0xF]
            if (((((h ^ u1) * _FNV_PRIME) & _MASK) ^ u2) * _FNV_PRIME & _MASK) % shards == shard:
                return f"{head}{c1}{c2}"


def execution_id(shard: int, body: str) -> str:
    """The id of a run on ``shard`` with ``body``."""
    return f"{shard:02x}-{body}"


def shard_of(execution_id: str, shard_count: int) -> tuple[int, str | None]:
    """``(shard, warning or None)``: the shard an id names; shard 0 for a legacy or bad prefix."""
    prefix, sep, _ = execution_id.partition("-")
    if not sep or not prefix:
        return 0, f"execution id {execution_id!r} has no shard prefix; using shard 0"
    if not set(prefix) <= _HEX:
        return 0, f"execution id {execution_id!r}: shard prefix {prefix!r} is not hexadecimal; using shard 0"
    shard, warning = safe_shard_index(int(prefix, 16), shard_count)
    return shard, warning and f"execution id {execution_id!r}: {warning}"


def default_owner() -> str:
    """A lease owner id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def parse_owner(owner: str | None) -> tuple[str, int] | None:
    """The host and pid of a :func:`default_owner` id; None for an owner id of another form."""
    parts = (owner or "").split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])
