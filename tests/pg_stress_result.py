"""A synthetic PostgreSQL stress result for the report tests: the real SQLite smoke result
(tests/data/stress-smoke-result.json) with the fields a PostgreSQL run adds (the backend and
its servers, each variant's isolation, hot rows, servers and server figures, each shard's
waits, the comparison's own baselines and contention rows), shaped as docs/stress.md says.

``concurrent-starts`` ran serializable with hot rows on 4 shards; its client counted 3
deadlocks the server did not see, so its cross-check disagrees. ``shard-comparison`` compares
1 and 4 shards, read committed and serializable with hot rows, on one server and on two.
"""

from __future__ import annotations

import json
from pathlib import Path

from wfctl.stress.compare import higher_is_better

SMOKE = Path(__file__).parent / "data" / "stress-smoke-result.json"
SERVERS = ("127.0.0.1:5432/test", "127.0.0.1:5433/test")
TOP_EVENT = "Lock:transactionid"
DISAGREEMENT = "client vs server: deadlocks: the clients retried 3, the server counted 0 (tolerance 0)"
#: Old SQLite variant name -> (PostgreSQL name, isolation, hot rows, servers).
RENAMED = {
    "1sh/spread": ("1sh/spread/norow/rc", "read committed", False, 1),
    "1sh/hot": ("1sh/spread/hotrow/ser", "serializable", True, 1),
    "4sh/def/spread": ("4sh/def/spread/norow/rc", "read committed", False, 1),
    "4sh/def/hot": ("4sh/def/spread/hotrow/ser", "serializable", True, 1),
    "4sh/exec/spread": ("4sh/exec/spread/hotrow/ser", "serializable", True, 1),
    "4sh/exec/hot": ("4sh/exec/spread/hotrow/ser/2srv", "serializable", True, 2),
}
#: The comparison rows a PostgreSQL comparison adds, with their labels.
CONTENTION_ROWS = (
    ("retries_per_1000.serialization_failure", "conflicts per 1k starts"),
    ("retries_per_1000.deadlock", "deadlocks per 1k starts"),
    ("server.lock_waits_per_1000", "lock waits per 1k starts"),
    ("server.lock_wait_s", "lock wait (s)"),
)


def _waits(shard: int, hot: bool) -> dict[str, float]:
    """Session-seconds waited per wait event on one shard (hot rows: mostly on row locks)."""
    scale = 1.0 / (shard + 1)
    waits = {"LWLock:WALWrite": 0.3 * scale, "Client:ClientRead": 0.2 * scale, "IO:WALSync": 0.05 * scale}
    if hot:
        waits.update({TOP_EVENT: 1.25 * scale, "Lock:tuple": 0.4 * scale})
    return waits


def _timeline(waits: dict[str, float], bucket_s: float) -> dict[str, list[float]]:
    """Mean sessions waiting per bucket whose session-seconds add up to ``waits``."""
    shape = [1, 3, 4, 4, 3, 2, 1, 0]
    return {event: [round(seconds * w / sum(shape) / bucket_s, 4) for w in shape] for event, seconds in waits.items()}


def _pg_variant(variant: dict, name: str, isolation: str, hot: bool, servers: int) -> dict:
    started = variant["metrics"]["started"] or 1
    conflicts = 40 if hot and isolation == "serializable" else 0
    conflicts //= variant["shard_count"]
    deadlocks = 3 if name == "main" else 0
    bucket_s = 0.5
    shards = variant["shards"]
    lock_waits, lock_wait_s = 0, 0.0
    timeline, not_granted = {}, {}
    for shard in shards:
        n = shard["shard"]
        waits = _waits(n, hot)
        shard["retries"] = {"serialization_failure": conflicts // len(shards) + (n == 0) * conflicts % len(shards),
                            "deadlock": deadlocks if n == 0 else 0}
        shard["wait_ms"] = {"serialization_failure": 2.5 * shard["retries"]["serialization_failure"],
                            "deadlock": 1000.0 * shard["retries"]["deadlock"]}
        shard["details"] = {"relation_bytes": shard["size_bytes"]}
        waited = waits.get(TOP_EVENT, 0.0) + waits.get("Lock:tuple", 0.0)
        shard["server"] = {"lock_waits": int(waited * 20), "lock_wait_s": round(waited, 4), "waits": waits}
        lock_waits += shard["server"]["lock_waits"]
        lock_wait_s += waited
        timeline[str(n)] = _timeline(waits, bucket_s)
        not_granted[str(n)] = {"max": 3 if hot else 0, "mean": 0.4 if hot else 0.0}
    rollbacks = conflicts + deadlocks
    metrics = variant["metrics"]
    for key in [k for k in metrics if k.endswith(".lock_busy")]:
        del metrics[key]
    metrics.update({
        "retries": conflicts + deadlocks, "retries_per_1000": (conflicts + deadlocks) * 1000.0 / started,
        "retries.serialization_failure": conflicts, "retries.deadlock": deadlocks,
        "retries_per_1000.serialization_failure": conflicts * 1000.0 / started,
        "retries_per_1000.deadlock": deadlocks * 1000.0 / started,
        "server.lock_waits": lock_waits, "server.lock_wait_s": round(lock_wait_s, 4),
        "server.lock_waits_per_1000": lock_waits * 1000.0 / started, "server.rollbacks": rollbacks,
        "server.deadlocks": 0, "server.wal_bytes": 1_234_567 if servers == 1 else None, "server.samples": 412,
    })
    cross_check = [
        {"what": "rolled-back transactions", "client": rollbacks, "server": rollbacks, "tolerance": 5,
         "agrees": True, "note": ""},
        {"what": "deadlocks", "client": deadlocks, "server": 0, "tolerance": 0, "agrees": deadlocks == 0,
         "note": "" if deadlocks == 0 else "the server counts a deadlock once; each of its victims retries"},
    ]
    if deadlocks:
        variant["crosscheck"] = {"ok": False, "differences": [DISAGREEMENT]}
        metrics["crosscheck.differences"] = 1
    variant.update(
        name=name, isolation=isolation, hot_rows=hot, servers=servers,
        server={
            "interval_s": 0.05, "samples": 412, "bucket_s": bucket_s, "timeline": timeline,
            "not_granted": not_granted,
            "database": [{"server": SERVERS[k], "xact_commit": 1200, "xact_rollback": rollbacks if k == 0 else 0,
                          "deadlocks": 0, "conflicts": 0, "shared": k == 1} for k in range(servers)],
            "wal": [{"server": SERVERS[0], "wal_records": 5000, "wal_bytes": 1_234_567, "wal_fpi": 12}]
            if servers == 1 else [],
            "cross_check": cross_check,
        },
    )
    return variant


def _comparison(variants: list[dict], rows: list[dict]) -> dict:
    """The comparison as a PostgreSQL run writes it: each ratio to the variant's own baseline."""
    def own(v: dict) -> dict:
        return next(b for b in variants if b["shard_count"] == 1 and b["isolation"] == v["isolation"]
                    and b["hot_rows"] == v["hot_rows"])

    baselines = {v["name"]: own(v)["name"] for v in variants}
    labels = {"retries_per_1000": "retries per 1k starts"}  # two causes: the label names none
    metrics = [(r["metric"], labels.get(r["metric"], r["label"])) for r in rows] + list(CONTENTION_ROWS)
    out = []
    for metric, label in metrics:
        values = {v["name"]: v["metrics"].get(metric) for v in variants}
        ratios = {}
        for v in variants:
            value, base = values[v["name"]], own(v)["metrics"].get(metric)
            ratios[v["name"]] = value / base if value is not None and base else None
        out.append({"metric": metric, "label": label, "higher_is_better": higher_is_better(metric),
                    "values": values, "ratios": ratios})
    return {"baseline": variants[0]["name"], "baselines": baselines, "rows": out}


def pg_result() -> dict:
    """The synthetic PostgreSQL result: concurrent-starts and shard-comparison."""
    result = json.loads(SMOKE.read_text(encoding="utf-8"))
    result["command"] = ["wfctl", "stress", "run", "concurrent-starts", "shard-comparison", "--smoke",
                         "--backend", "postgresql", "--dsn", "host=127.0.0.1 port=5432 dbname=test",
                         "--dsn", "host=127.0.0.1 port=5433 dbname=test"]
    result["machine"].pop("sqlite")
    result["machine"]["postgresql"] = "15.4"
    result["backend"] = {"name": "postgresql", "servers": [
        {"server": server, "version": "15.4", "max_connections": 100, "synchronous_commit": "on"}
        for server in SERVERS]}
    scenarios = {s["name"]: s for s in result["scenarios"]}
    starts, comparison = scenarios["concurrent-starts"], scenarios["shard-comparison"]
    _pg_variant(starts["variants"][0], "main", "serializable", True, 1)
    starts["variants"][0]["hot_definition"] = False
    for variant in comparison["variants"]:
        _pg_variant(variant, *RENAMED[variant["name"]])
    comparison["comparison"] = _comparison(comparison["variants"], comparison["comparison"]["rows"])
    for threshold in starts["thresholds"] + comparison["thresholds"]:
        threshold["variant"] = RENAMED.get(threshold["variant"], (threshold["variant"],))[0]
        if threshold["metric"] == "crosscheck.differences" and threshold["variant"] == "main":
            threshold.update(value=1, passed=False)
    starts["passed"] = result["passed"] = False
    result["exit_code"] = 99
    result["scenarios"] = [starts, comparison]
    return result
