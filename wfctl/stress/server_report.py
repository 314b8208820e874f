"""The database server's figures in a stress result, picked for the reports (no formatting).

A PostgreSQL result names its ``backend`` and servers; its variants carry ``isolation``,
``hot_rows``, ``servers`` and ``server`` (the sampler's wait events over time, pg_locks not
granted, pg_stat_database and pg_stat_wal deltas, the client-vs-server cross-check), each
shard its own ``server`` figures, and a comparison each variant's own baseline
(docs/stress.md, The JSON result). SQLite results and older ones have none of these: every
function here then returns nothing, and the reports look as they did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metrics import as_number

#: At most this many shards per variant get a waits chart (and a line in the terminal): those that waited longest.
MAX_WAIT_SHARDS = 4
#: The wait events listed per shard.
TOP_EVENTS = 3
#: The wait events charted per shard; the rest are summed into one series, :data:`OTHER_EVENTS`.
CHART_EVENTS = 6
OTHER_EVENTS = "other events"

_BACKEND_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def _mapping(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _entries(value: Any) -> list[Mapping]:
    """The objects of a list; nothing when ``value`` is not a list."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def backend_servers(result: Mapping) -> tuple[str, list[Mapping]] | None:
    """The backend's name for people and its servers; None without servers (SQLite, older results)."""
    backend = _mapping(result.get("backend"))
    servers = _entries(backend.get("servers"))
    if not servers:
        return None
    name = str(backend.get("name") or "database")
    return _BACKEND_NAMES.get(name, name), servers


def server_settings(server: Mapping) -> list[tuple[str, Any]]:
    """A server's recorded settings that are set, in the order people read them."""
    keys = ("version", "max_connections", "synchronous_commit")
    return [(key, server[key]) for key in keys if server.get(key) is not None]


def variant_settings(variant: Mapping) -> list[tuple[str, Any]]:
    """``isolation``, ``hot_rows`` and ``servers`` of a variant that has them (PostgreSQL)."""
    out: list[tuple[str, Any]] = []
    if variant.get("isolation"):
        out.append(("isolation", str(variant["isolation"])))
    if isinstance(variant.get("hot_rows"), bool) and (out or variant["hot_rows"]):
        out.append(("hot rows", variant["hot_rows"]))
    servers = variant.get("servers")
    if isinstance(servers, int) and not isinstance(servers, bool) and servers > 0:
        out.append(("servers", servers))
    return out


def setting_text(key: str, value: Any) -> str:
    """One of :func:`variant_settings` for people: "serializable isolation", "hot rows", "2 servers"."""
    if key == "hot rows":
        return "hot rows" if value else "no hot rows"
    if key == "servers":
        return f"{value} server{'' if value == 1 else 's'}"
    return f"{value} {key}"


def server_of(variant: Mapping) -> Mapping:
    """The variant's ``server`` figures; empty when it has none."""
    return _mapping(variant.get("server"))


def has_server_figures(variant: Mapping) -> bool:
    return bool(server_of(variant)) or any(shard_server(s) for s in _entries(variant.get("shards")))


def shard_server(shard: Mapping) -> Mapping:
    """A shard entry's ``server`` figures; empty when it has none."""
    return _mapping(shard.get("server"))


def waiting_shards(variant: Mapping) -> tuple[list[Mapping], int]:
    """The shard entries with server figures, in shard order: every one up to
    :data:`MAX_WAIT_SHARDS`, else those that waited longest; and how many have figures."""
    shards = [s for s in _entries(variant.get("shards")) if shard_server(s)]
    if len(shards) <= MAX_WAIT_SHARDS:
        return shards, len(shards)
    waited = [sum(seconds for _, seconds in top_waits(shard_server(s).get("waits"), None)) for s in shards]
    longest = sorted(range(len(shards)), key=lambda i: -waited[i])[:MAX_WAIT_SHARDS]
    return [shards[i] for i in sorted(longest)], len(shards)


def top_waits(waits: Any, limit: int | None = TOP_EVENTS) -> list[tuple[str, float]]:
    """The wait events (``type:event`` -> session-seconds) that waited longest, longest first
    (``limit`` of them; None: all that waited)."""
    pairs = [(str(event), seconds) for event, value in _mapping(waits).items()
             if (seconds := as_number(value)) is not None and seconds > 0]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:limit]


def not_granted(variant: Mapping, shard: Any) -> Mapping:
    """``{"max", "mean"}`` of the locks not granted on ``shard``; empty when not sampled."""
    return _mapping(_mapping(server_of(variant).get("not_granted")).get(str(shard)))


def wait_timeline(variant: Mapping) -> dict[str, dict[str, list[float]]]:
    """Per shard (its number as a string), per wait event: the mean sessions waiting per bucket,
    every series as long as the longest (missing values are 0)."""
    raw = _mapping(server_of(variant).get("timeline"))
    out: dict[str, dict[str, list[float]]] = {}
    for shard, events in raw.items():
        series = {str(e): [as_number(v) or 0.0 for v in values]
                  for e, values in _mapping(events).items() if isinstance(values, list)}
        width = max((len(v) for v in series.values()), default=0)
        out[str(shard)] = {e: v + [0.0] * (width - len(v)) for e, v in series.items()}
    return dict(sorted(out.items(), key=lambda item: _shard_order(item[0])))


def _shard_order(shard: str) -> tuple[int, str]:
    return (int(shard), "") if shard.isdigit() else (1 << 30, shard)


def bucket_s(variant: Mapping) -> float:
    return as_number(server_of(variant).get("bucket_s")) or 1.0


def charted_shards(variant: Mapping) -> tuple[list[str], int]:
    """The shards whose waits are charted (every shard up to :data:`MAX_WAIT_SHARDS`, else those
    that waited longest, longest first) and how many shards have a timeline."""
    timeline = wait_timeline(variant)
    shards = list(timeline)
    if len(shards) <= MAX_WAIT_SHARDS:
        return shards, len(shards)
    total = {s: sum(sum(values) for values in timeline[s].values()) for s in shards}
    return sorted(shards, key=lambda s: (-total[s], _shard_order(s)))[:MAX_WAIT_SHARDS], len(shards)


def chart_series(events: Mapping[str, list[float]]) -> list[tuple[str, list[float]]]:
    """A shard's wait events to stack, largest total first: the top :data:`CHART_EVENTS`, then
    the rest summed as :data:`OTHER_EVENTS`; events that never waited are left out."""
    ranked = sorted(((e, v) for e, v in events.items() if any(v)), key=lambda ev: (-sum(ev[1]), ev[0]))
    top, rest = ranked[:CHART_EVENTS], ranked[CHART_EVENTS:]
    if rest:
        top.append((OTHER_EVENTS, [sum(values) for values in zip(*(v for _, v in rest))]))
    return top


def cross_checks(variant: Mapping) -> list[Mapping]:
    """The client-vs-server cross-check lines (``what``, ``client``, ``server``, ``tolerance``,
    ``agrees``, ``note``)."""
    return _entries(server_of(variant).get("cross_check"))


def database_deltas(variant: Mapping) -> list[Mapping]:
    return _entries(server_of(variant).get("database"))


def wal_deltas(variant: Mapping) -> list[Mapping]:
    return _entries(server_of(variant).get("wal"))


def own_baselines(comparison: Any, names: list[str]) -> dict[str, str]:
    """Each variant's baseline: ``comparison["baselines"][name]`` when given, else ``baseline``."""
    comparison = _mapping(comparison)
    baseline = str(comparison.get("baseline") or "")
    given = _mapping(comparison.get("baselines"))
    return {name: str(given.get(name) or baseline) for name in names}


def per_variant_baselines(comparison: Any) -> bool:
    """True when some variant's own baseline is not the comparison's first variant (every
    comparison names its baselines; on SQLite they are all the first)."""
    baseline = str(_mapping(comparison).get("baseline") or "")
    return any(str(b) != baseline for b in _mapping(_mapping(comparison).get("baselines")).values())
