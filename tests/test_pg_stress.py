"""Stress scenarios on PostgreSQL: every scenario's smoke preset on the test server, its counts
checked against the server's own tables; the contention of tale's seed (one hot row per shard,
serializable transactions) reproduced, counted by the clients and by the server, and cut by
sharding; bad targets refused before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import refused, wfctl
from pg import drop_prefix, pg_dsn

SCENARIOS = ["concurrent-starts", "loop-contention", "payload-pressure", "scheduler-overlap", "shard-comparison",
             "sustained-load"]


def _server_counts(dsn: str, prefix: str, shards: int) -> dict[str, int]:
    """Runs by status in every shard schema of deployment ``prefix``, read from the server."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        for shard in range(shards):
            table = sql.Identifier(f"{prefix}_shard_{shard:03d}", "runs")
            for status, n in conn.execute(sql.SQL("SELECT status, count(*) FROM {} GROUP BY status").format(table)):
                counts[status] = counts.get(status, 0) + n
    return counts


def _kept(variant: dict) -> tuple[str, str]:
    """The DSN and schema prefix of a variant kept with --keep (from its wfctl.json)."""
    settings = json.loads((Path(variant["data_dir"]) / "wfctl.json").read_text())["postgresql"]
    return settings["dsn"], settings["schema_prefix"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``wfctl stress run all --smoke`` on the test server, once for this module, its variants
    kept (their schemas dropped after): the process and the JSON result."""
    dsn = pg_dsn()
    out = tmp_path_factory.mktemp("pg-smoke") / "r.json"
    proc = wfctl(None, "stress", "run", "all", "--smoke", "--no-live", "--backend", "postgresql", "--dsn", dsn,
                 "--keep", "--json", out, timeout=1800)
    result = json.loads(out.read_text()) if out.exists() else {"scenarios": []}
    try:
        yield proc, result
    finally:
        for variant in (v for s in result["scenarios"] for v in s["variants"]):
            if variant.get("data_dir"):
                drop_prefix(*_kept(variant))
                shutil.rmtree(Path(variant["data_dir"]).parent, ignore_errors=True)


def test_every_scenario_runs_its_smoke_preset_on_postgresql_and_the_server_tables_agree(smoke):
    proc, result = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert [s["name"] for s in result["scenarios"]] == SCENARIOS
    assert result["backend"]["name"] == "postgresql"
    [server] = result["backend"]["servers"]
    assert server["version"].startswith("15") and server["max_connections"] > 0
    for scenario in result["scenarios"]:
        for variant in scenario["variants"]:
            where = f"{scenario['name']} / {variant['name']}"
            metrics = variant["metrics"]
            assert variant["crosscheck"]["ok"], (where, variant["crosscheck"])
            assert metrics["server.samples"] > 0, where
            counts = _server_counts(*_kept(variant), variant["shard_count"])
            assert counts.get("completed", 0) == metrics["completed"], (where, counts, metrics["completed"])
            assert sum(counts.values()) == metrics["started"] > 0, (where, counts)
            assert [c["agrees"] for c in variant["server"]["cross_check"]] == [True, True], where
            [wal] = variant["server"]["wal"]  # every WAL record is at least 24 bytes
            assert wal["wal_bytes"] >= 24 * wal["wal_records"] > 0, (where, wal)
            assert metrics["server.wal_bytes"] == wal["wal_bytes"], where
    comparison = next(s for s in result["scenarios"] if s["name"] == "shard-comparison")
    assert [v["name"] for v in comparison["variants"]] == [
        "1sh/spread/norow/rc", "1sh/spread/norow/ser", "1sh/spread/hotrow/rc", "1sh/spread/hotrow/ser",
        "4sh/exec/spread/norow/rc", "4sh/exec/spread/norow/ser", "4sh/exec/spread/hotrow/rc",
        "4sh/exec/spread/hotrow/ser"]
    assert comparison["comparison"]["baselines"]["4sh/exec/spread/hotrow/ser"] == "1sh/spread/hotrow/ser"
    labels = [row["label"] for row in comparison["comparison"]["rows"]]
    assert {"conflicts per 1k starts", "deadlocks per 1k starts", "lock waits per 1k starts"} <= set(labels)
    assert "client vs server, rolled-back transactions" in " ".join(proc.stdout.split())


def test_hot_rows_under_serializable_conflict_are_counted_by_clients_and_server_and_sharding_cuts_them(smoke):
    """The seed's contention (shard-comparison's smoke preset): every start and completion updates
    one row per shard, so on 1 shard serializable transactions conflict (40001), are retried and
    counted, and the server's rolled-back transactions agree with the clients' count; every run
    completes once (the hot rows count each start and each completion once); on 4 shards (4 rows)
    there are fewer conflicts per 1,000 starts. Without hot rows, conflicts stay rare."""
    _, result = smoke
    comparison = next(s for s in result["scenarios"] if s["name"] == "shard-comparison")
    variants = {v["name"]: v for v in comparison["variants"]}
    one, four = variants["1sh/spread/hotrow/ser"], variants["4sh/exec/spread/hotrow/ser"]
    for variant in (one, four):
        metrics = variant["metrics"]
        assert (variant["hot_rows"], variant["isolation"]) == (True, "serializable")
        assert metrics["completed"] == metrics["started"] > 0 and metrics["stuck"] == 0
        rows = sum(shard["details"]["hot_row_count"] for shard in variant["shards"])
        assert rows == metrics["started"] + metrics["completed"], (variant["name"], rows)
        rollbacks = next(c for c in variant["server"]["cross_check"] if c["what"] == "rolled-back transactions")
        assert rollbacks["agrees"] and rollbacks["client"] >= metrics["retries.serialization_failure"]
        assert rollbacks["server"] == metrics["server.rollbacks"]
    conflicts = [v["metrics"]["retries_per_1000.serialization_failure"] for v in (one, four)]
    assert conflicts[0] > 0 and conflicts[1] < conflicts[0], conflicts
    assert variants["1sh/spread/norow/ser"]["metrics"]["retries_per_1000.serialization_failure"] < conflicts[0]
    for name in ("1sh/spread/norow/rc", "1sh/spread/hotrow/rc"):  # read committed: waits, never conflicts
        assert variants[name]["metrics"]["retries.serialization_failure"] == 0, name
    assert all(shard["details"]["hot_row_count"] == 0 for shard in variants["1sh/spread/norow/rc"]["shards"])


def test_a_server_that_cannot_be_reached_is_one_line_before_anything_runs(tmp_path):
    from pg import _free_port

    dsn = f"host=127.0.0.1 port={_free_port()} user=postgres dbname=test connect_timeout=2"
    line = refused(wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--no-live", "--backend",
                         "postgresql", "--dsn", dsn, "--json", tmp_path / "r.json"))
    assert "cannot reach the server" in line and f"127.0.0.1:{dsn.split('port=')[1].split()[0]}/test" in line
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("args, says", [
    (["--isolation", "serializable"], "isolation is for the postgresql backend"),
    (["--dsn", "host=127.0.0.1 dbname=test"], "dsn is for the postgresql backend"),
    (["--backend", "postgresql", "--dsn", "host=127.0.0.1 password=secret"], "holds a password"),
    (["--backend", "postgresql", "--isolation", "snapshot"], "isolation"),
])
def test_settings_a_backend_does_not_have_are_refused_in_one_line(args, says, tmp_path):
    line = refused(wfctl(None, "stress", "run", "concurrent-starts", "--smoke", "--no-live", *args))
    assert says in line and "secret" not in line
