"""Changing a live deployment's shard count (``wfctl shards add`` / ``remove``): the order of the steps.

Both backends follow it with their own primitives (:meth:`~wfctl.store.backend.Backend.create_shards`,
:meth:`~wfctl.store.backend.Backend.publish_shards`, :meth:`~wfctl.store.backend.Backend.drop_shard`).

Adding: the new shards are created first, then the count is published last, in one atomic
write that succeeds only if the count is still the one read (SQLite: ``wfctl.json`` under its
lock; PostgreSQL: the catalog's ``meta`` and ``placement`` in one transaction). A crash in between
leaves empty shards beyond the count, which nothing routes to, opening ignores and the next
``add`` completes.

Removing: only shards a previous ``add`` added, the highest-numbered, and only empty ones (no run
at all). (1) Every shard to remove is checked empty (else a one-line refusal, nothing changed);
(2) the lower count is published, so processes that read it stop routing there; (3) each shard,
highest first, is dropped in one transaction that holds its write lock, finds it still empty, and
drops its tables, so a start from a process that still routes by the old count either committed
before (the drop finds its run) or fails (its table is gone): it is never lost. A shard found no
longer empty is kept, with every shard below it, and the count published back to include it. A
shard that cannot be dropped (its server went away) stays out of the count: what is left of it is
empty, ignored when the deployment is opened, and reused by the next ``add``.

Keyed starts (idempotency keys, schedule slots) route over ``key_shards`` (the count the deployment
had before its first resize; see :attr:`Settings.key_count`), never over the current count: a
repeated start with the same key reaches the shard of its first start whatever count a process has
read, so the shard's unique key catches it. That is why ``remove`` never goes below ``key_shards``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import InputError
from .base import UNFINISHED
from .errors import StoreError
from .settings import MAX_SHARDS


@dataclass(frozen=True)
class Resized:
    """A change of the shard count: ``before`` -> ``after`` shards, ``key_shards`` (what keyed starts
    route over), and where each added shard lives (``locations``: shard -> :meth:`Backend.location`)."""

    before: int
    after: int
    key_shards: int
    locations: dict[int, str] = field(default_factory=dict)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what}: expected a number of shards of at least 1, got {value!r}")
    return value


def add_shards(datadir, count: int, *, now: float, placement: Mapping[int, str] | None = None) -> Resized:
    """Add ``count`` shards to ``datadir`` (a :class:`~wfctl.store.DataDir`): create them, then
    publish the new count. ``placement``: shard -> server of the new shards (backends that place
    shards; the default is the backend's). InputError (one line, nothing published) on bad input."""
    _count(count, "shards add")
    settings = datadir.settings
    before, after = settings.shards, settings.shards + count
    if after > MAX_SHARDS:
        raise InputError(f"shards add {count}: {before} + {count} is more than {MAX_SHARDS} shards")
    for shard in placement or {}:
        if not before <= shard < after:
            raise InputError(f"--place: shard {shard} is not one of the new shards {before}..{after - 1}")
    backend = datadir.backend
    placed = backend.create_shards(range(before, after), now=now, placement=placement)
    backend.publish_shards(before, after, settings.key_count, placed)
    return Resized(before, after, settings.key_count, {s: backend.location(s) for s in range(before, after)})


def remove_shards(datadir, count: int) -> Resized:
    """Remove the ``count`` highest-numbered shards of ``datadir`` once they are empty (see the
    module for the order). InputError (one line, nothing changed) when one holds runs or the count
    would go below ``key_shards``; a run started meanwhile keeps its shard (InputError saying so)."""
    _count(count, "shards remove")
    settings = datadir.settings
    before, keys = settings.shards, settings.key_count
    after = before - count
    if after < keys:
        first = "no shard" if keys == before else f"only shards {keys}..{before - 1}"
        raise InputError(f"shards remove {count}: {first} can be removed: keyed starts (idempotency keys, "
                         f"schedule slots) route over shards 0..{keys - 1}, the count before the first "
                         "`wfctl shards add`")
    for shard in range(before - 1, after - 1, -1):
        with datadir.open_shard(shard) as store:
            runs = store.count_runs(None)
            if runs:
                unfinished = store.count_runs(UNFINISHED)
                raise InputError(
                    f"shard {shard} holds {runs} run(s), {unfinished} unfinished: nothing removed (let them "
                    f"finish or cancel them, then delete them with `wfctl cleanup`; `wfctl list --shard {shard}` "
                    "shows them)")
    backend = datadir.backend
    backend.publish_shards(before, after, keys)
    for shard in range(before - 1, after - 1, -1):
        try:
            dropped = backend.drop_shard(shard)
        except StoreError as exc:  # e.g. its server went away: the shards left are empty, and ignored
            raise StoreError(f"shards {after}..{before - 1} are out of the count, but shard {shard} could not be "
                             f"dropped ({exc}); what is left of it is empty and ignored (`wfctl shards add "
                             f"{before - after}` would bring them back)") from None
        if not dropped:
            backend.publish_shards(after, shard + 1, keys)
            removed = f"removed shards {shard + 1}..{before - 1}" if shard + 1 < before else "removed none"
            raise InputError(f"a run started on shard {shard} while it was being removed: kept shards "
                             f"0..{shard}, {removed}")
    return Resized(before, after, keys)
