"""Shard placement as ``wfctl init --place`` gives it: ``FIRST-LAST=SERVER`` (or ``N=SERVER``) -> shard -> server.

A shard no range names stays on the catalog's server. Which servers a backend accepts is its own
check (:meth:`wfctl.store.backend.Backend.check_creation`: SQLite places no shard, PostgreSQL
wants DSNs without a password). Messages never show a server: it might hold a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import InputError

_RANGE = re.compile(r"(\d+)(?:-(\d+))?=(.+)", re.DOTALL)


def parse_placement(specs: Iterable[str], shards: int | None = None, where: str = "--place") -> dict[int, str]:
    """``FIRST-LAST=SERVER`` specs as shard -> server; InputError (one line naming ``where``) on bad
    syntax, an empty range, a shard placed twice, or (``shards`` given) a shard beyond ``shards``."""
    placement: dict[int, str] = {}
    for spec in specs:
        match = _RANGE.fullmatch(spec.strip())
        if not match or not match.group(3).strip():
            shown = spec.partition("=")[0][:40]
            raise InputError(f"{where} {shown!r}...: expected FIRST-LAST=DSN or N=DSN "
                             "(e.g. 4-7='host=db2 dbname=wfctl')")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise InputError(f"{where} {first}-{last}: the range is empty (FIRST > LAST)")
        for shard in range(first, last + 1):
            if shard in placement:
                raise InputError(f"{where} {first}-{last}: shard {shard} is already placed by another {where}")
            placement[shard] = match.group(3).strip()
    if shards is not None:
        check_placement_range(placement, shards, where)
    return placement


def check_placement_range(placement: Mapping[int, str], shards: int, where: str = "--place") -> None:
    """InputError (one line naming ``where``) when ``placement`` names a shard beyond ``shards``."""
    if placement and max(placement) >= shards:
        raise InputError(f"{where}: shard {max(placement)} is beyond the {shards} shard(s) (0..{shards - 1})")
