"""The CLI unchanged on both backends: the real ``wfctl`` in subprocesses over a project directory
made by ``wfctl init`` for SQLite (files in the directory) or PostgreSQL (a fresh schema prefix on
the test server, dropped after; see tests/pg.py), plus what only PostgreSQL has: a second
machine joining a deployment, placement, DSNs without passwords, the shared secret key.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import EXAMPLES, refused, wait_until, wfctl_argv, wfctl_env
from helpers import wfctl as run_wfctl
from pg import drop_prefix, pg_dsn, unique_prefix
from wfctl.engine.keys import fingerprint
from wfctl.secrets import SecretBox
from wfctl.store import shard_for

HELLO = str(EXAMPLES / "hello.json")
SCHEDULED = str(EXAMPLES / "scheduled.json")
TOKEN = "hunter2-token-value"


@dataclass
class Project:
    """A project directory ``path`` on ``backend``; ``init_args`` are the backend's ``wfctl init`` options."""

    backend: str
    path: Path
    init_args: list[str]
    dsn: str = ""
    prefix: str = ""
    servers: set[str] = field(default_factory=set)

    def wfctl(self, *args, path: Path | None = None, env: dict | None = None, timeout: float = 180):
        return run_wfctl(path or self.path, *args, env=wfctl_env(**(env or {})), timeout=timeout)

    def init(self, *args, path: Path | None = None, env: dict | None = None):
        return self.wfctl("init", *self.init_args, *args, path=path, env=env)


@contextmanager
def postgresql_project(path: Path):
    """A :class:`Project` at ``path`` on a fresh schema prefix of the test server; the prefix is dropped
    after on every server in its ``servers``."""
    dsn = pg_dsn()
    prefix = unique_prefix("cli2")
    made = Project("postgresql", path, ["--backend", "postgresql", "--dsn", dsn, "--schema-prefix", prefix],
                   dsn=dsn, prefix=prefix, servers={dsn})
    try:
        yield made
    finally:
        for server in made.servers:
            drop_prefix(server, prefix)


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request, tmp_path):
    if request.param == "sqlite":
        yield Project("sqlite", tmp_path / "data", [])
        return
    with postgresql_project(tmp_path / "data") as made:
        yield made


@pytest.fixture
def pg_project(tmp_path):
    with postgresql_project(tmp_path / "a") as made:
        yield made


def ok(proc, code: int = 0):
    assert proc.returncode == code, (proc.args[3:], proc.returncode, proc.stdout[-2000:], proc.stderr)
    return proc


def ok_json(proc, code: int = 0):
    return json.loads(ok(proc, code).stdout)


def write_def(tmp_path: Path, definition_id: str, action: dict) -> str:
    steps = [{"stepSlug": "start", "name": "Start", "stepType": "start", "config": {}, "nextSteps": {"success": "act"}},
             {"stepSlug": "act", "name": "Act", "stepType": "action", "config": action, "nextSteps": {"success": "done"}},
             {"stepSlug": "done", "name": "Done", "stepType": "output", "config": {"mapping": {"ok": True}},
              "nextSteps": {}}]
    path = tmp_path / f"{definition_id}.json"
    path.write_text(json.dumps({"id": definition_id, "name": definition_id, "steps": steps}))
    return str(path)


def schemas(dsn: str, prefix: str) -> list[str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY 1",
                                           (prefix.replace("_", "\\_") + "\\_%",)).fetchall()]


# -- both backends ----------------------------------------------------------------------------

def test_init_reinit_and_what_the_directory_holds(project):
    settings = ok_json(project.init("--shards", "2", "--route", "execution", "--json"))
    assert {k: settings[k] for k in ("path", "backend", "shards", "route", "durability")} == {
        "path": str(project.path), "backend": project.backend, "shards": 2, "route": "execution",
        "durability": "normal"}
    stored = json.loads((project.path / "wfctl.json").read_text())
    assert stored["backend"] == project.backend and stored["shards"] == 2
    names = sorted(p.name for p in project.path.iterdir())
    if project.backend == "sqlite":
        assert settings["location"] == str(project.path / "catalog.db")
        assert {"catalog.db", "shard-000.db", "shard-001.db", "wfctl.json", "secret.key"} <= set(names)
    else:  # the project directory holds the settings (and the key made with it), the rest is on the server
        assert names == [".wfctl.lock", "secret.key", "wfctl.json"]
        assert stored["postgresql"] == {"dsn": project.dsn, "schema_prefix": project.prefix,
                                        "isolation": "read committed"}
        assert settings["location"].endswith(f"schema {project.prefix}_catalog")
        assert schemas(project.dsn, project.prefix) == [f"{project.prefix}_catalog", f"{project.prefix}_shard_000",
                                                        f"{project.prefix}_shard_001"]
        # the key's fingerprint is the deployment's (in the catalog), not the directory's
        key = (project.path / "secret.key").read_text().strip()
        assert stored["secret_key_fingerprint"] is None
        assert project.init().returncode == 0 and fingerprint(key) in _catalog_meta(project).values()

    again = ok(project.init("--shards", "2", "--route", "execution"))
    assert "2 shards, route by execution, durability normal" in again.stdout
    line = refused(project.init("--shards", "3"))
    assert line.endswith(f"data directory {project.path} already exists with shards=2; refusing to re-initialize "
                         "it with shards=3")


def _catalog_meta(project: Project) -> dict:
    import psycopg
    from psycopg import sql

    with psycopg.connect(project.dsn) as conn:
        return dict(conn.execute(sql.SQL("SELECT key, value FROM {}.meta").format(
            sql.Identifier(f"{project.prefix}_catalog"))).fetchall())


def test_defs_start_status_list_cancel_cleanup(project, tmp_path):
    ok(project.init("--shards", "2"))
    failing = write_def(tmp_path, "failing", {"type": "fail", "parameters": {"message": "kaboom"}})
    sleepy = write_def(tmp_path, "sleepy", {"type": "sleep", "parameters": {"seconds": 60}})
    applied = ok_json(project.wfctl("defs", "apply", HELLO, failing, sleepy, "--json"))
    assert [a["id"] for a in applied] == ["hello", "failing", "sleepy"] and all(a["changed"] for a in applied)
    listed = ok_json(project.wfctl("defs", "list", "--json"))
    assert [d["id"] for d in listed] == ["failing", "hello", "sleepy"]
    assert ok_json(project.wfctl("defs", "show", "hello"))["id"] == "hello"
    [version] = ok_json(project.wfctl("defs", "history", "hello", "--json"))
    assert version["current"] is True

    run = ok_json(project.wfctl("start", "hello", "--input", '{"name": "Ada"}', "--wait", "--json"))
    assert run["status"] == "completed" and run["output"] == {"message": "Hello, Ada!", "length": "short"}
    assert [s["slug"] for s in run["steps"]] == ["start", "compose", "is_long", "short_name"]
    last_two = ok_json(project.wfctl("status", run["execution_id"], "--steps", "2", "--json"))
    assert last_two["steps_total"] == 4 and [s["slug"] for s in last_two["steps"]] == ["is_long", "short_name"]
    failed = ok_json(project.wfctl("start", "failing", "--wait", "--json"), code=1)
    assert failed["status"] == "failed" and "kaboom" in failed["error"]

    pending = ok(project.wfctl("start", "sleepy")).stdout.strip()
    first = ok_json(project.wfctl("start", "hello", "--idempotency-key", "order-1", "--json"))
    again = ok_json(project.wfctl("start", "hello", "--idempotency-key", "order-1", "--json"))
    assert again == {**first, "created": False}
    assert [r["execution_id"] for r in ok_json(project.wfctl("list", "--status", "pending", "--json"))] == [
        first["execution_id"], pending]
    shard = int(pending.split("-")[0], 16)
    on_shard = ok_json(project.wfctl("list", "--shard", str(shard), "--json"))
    assert pending in [r["execution_id"] for r in on_shard] and {r["shard"] for r in on_shard} == {shard}

    assert ok(project.wfctl("cancel", pending)).stdout.strip() == "canceled 1 run(s)"
    assert ok_json(project.wfctl("status", pending, "--json"))["status"] == "canceled"
    ok(project.wfctl("worker", "--drain"))
    statuses = sorted(r["status"] for r in ok_json(project.wfctl("list", "--json")))
    assert statuses == ["canceled", "completed", "completed", "failed"]
    assert ok_json(project.wfctl("cleanup", run["execution_id"], "--json")) == {"deleted": 1}
    assert ok(project.wfctl("cleanup", "--older-than", "0s", "--yes")).stdout.strip() == "deleted 3 run(s)"
    assert ok_json(project.wfctl("list", "--json")) == []
    line = refused(project.wfctl("status", run["execution_id"]))
    assert line.endswith(f"unknown execution id '{run['execution_id']}'")


def test_worker_drain_shards_and_the_lease_holder(project):
    ok(project.init("--shards", "2", "--route", "execution"))
    ids = [ok(project.wfctl("start", HELLO)).stdout.strip() for _ in range(4)]
    ok(project.wfctl("worker", "--drain", "--processes", "2"))
    runs = ok_json(project.wfctl("list", "--json"))
    assert sorted(r["execution_id"] for r in runs) == sorted(ids) and {r["status"] for r in runs} == {"completed"}

    rows = ok_json(project.wfctl("shards", "--json"))
    assert [r["shard"] for r in rows] == [0, 1]
    for row in rows:
        assert row["lease_owner"] is None and row["size_bytes"] > 0
        if project.backend == "sqlite":
            assert row["location"] == row["path"] == str(project.path / f"shard-{row['shard']:03d}.db")
            assert set(row["retries"]) == {"lock_busy"}
        else:
            assert row["location"] == f"{_server(project.dsn)} schema {project.prefix}_shard_{row['shard']:03d}"
            assert row["details"]["server"] == _server(project.dsn) and row["details"]["dead_tuples"] >= 0
            assert set(row["retries"]) == {"serialization_failure", "deadlock", "lock_timeout", "connection_lost", "lock_busy"}
    assert sum(sum(r["runs_by_status"].values()) for r in rows) == 4
    table = ok(project.wfctl("shards", "--check")).stdout
    assert ok(project.wfctl("shards", "route", "order-42")).stdout.strip() == str(shard_for("order-42", 2))
    assert all(r["location"] in table for r in rows) and "holder" in table

    proc = subprocess.Popen(wfctl_argv(project.path, "worker"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=wfctl_env())
    try:
        def held():
            found = ok_json(project.wfctl("shards", "--json"))
            return found if all(r["lease_owner"] for r in found) else None

        rows = wait_until(held, timeout=120, interval=0.3)
        assert rows, "the worker did not take its shards"
        host, pid, _ = rows[0]["lease_owner"].split(":")
        assert host == socket.gethostname() and _parent(int(pid)) == proc.pid  # the worker process it spawned
        assert all(r["heartbeat_at"] and r["lease_expires_at"] for r in rows)
        assert f"{host}:{pid}" in ok(project.wfctl("shards")).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [r["lease_owner"] for r in ok_json(project.wfctl("shards", "--json"))] == [None, None]


def _server(dsn: str) -> str:
    from wfctl.store.postgresql.connection import server_name

    return server_name(dsn)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_schedules_list_and_a_triggered_slot(project):
    ok(project.init("--shards", "2"))
    ok(project.wfctl("defs", "apply", SCHEDULED))
    [row] = ok_json(project.wfctl("schedules", "list", "--json"))
    assert (row["definition_id"], row["schedule"], row["paused"]) == ("scheduled", "* * * * *", False)
    fired = ok_json(project.wfctl("schedules", "trigger", "scheduled", "--json"))
    assert fired["action"] == "start" and fired["created"]
    ok(project.wfctl("worker", "--drain", "--no-scheduler"))
    run = ok_json(project.wfctl("status", fired["execution_id"], "--json"))
    assert run["status"] == "completed" and run["output"]["message"].startswith("fired for ")
    assert ok_json(project.wfctl("schedules", "list", "--json"))[0]["counters"]["started"] >= 1


def test_postgresql_options_are_refused_on_sqlite_and_nothing_is_made(tmp_path):
    data = tmp_path / "data"
    line = refused(run_wfctl(data, "init", "--place", "0-1=host=elsewhere"))
    assert "placement is for the postgresql backend" in line
    assert "unknown option 'dsn'" in refused(run_wfctl(data, "init", "--dsn", "host=elsewhere"))
    assert not data.exists()


# -- PostgreSQL: DSNs, placement, machines ---------------------------------------------------------

def test_bad_postgresql_init_is_one_line_and_creates_nothing(pg_project):
    dsn, prefix = pg_project.dsn, pg_project.prefix
    base = ["--backend", "postgresql", "--schema-prefix", prefix]
    cases = [
        ([*base, "--dsn", f"{dsn} password=hunter2"], "the DSN holds a password"),
        ([*base, "--dsn", "postgresql://postgres:hunter2@127.0.0.1:5432/test"], "the DSN holds a password"),
        ([*base, "--dsn", dsn, "--place", "2-3=postgresql://postgres:hunter2@127.0.0.1/postgres"],
         "placement of shard 2: the DSN holds a password"),
        ([*base, "--dsn", dsn, "--place", "2-3"], "--place '2-3'...: expected FIRST-LAST=DSN"),
        ([*base, "--dsn", dsn, "--place", "x=host=h"], "--place 'x'...: expected FIRST-LAST=DSN"),
        ([*base, "--dsn", dsn, "--place", "3-2=host=h"], "the range is empty"),
        ([*base, "--dsn", dsn, "--place", "0-2=host=a", "--place", "2-3=host=b"], "shard 2 is already placed"),
        ([*base, "--dsn", dsn, "--place", "4-5=host=a"], "shard 5 is beyond the 4 shard(s) (0..3)"),
        ([*base, "--dsn", dsn, "--shards", "2", "--place", "1-2=host=a"], "shard 2 is beyond the 2 shard(s)"),
        ([*base, "--dsn", dsn, "--isolation", "snapshot"], "isolation must be one of"),
        ([*base, "--dsn", "host=127.0.0.1 bogus=1"], "not a valid PostgreSQL DSN"),
        ([*base], "the postgresql backend needs the catalog's server: give --dsn or set $WFCTL_DSN"),
        (["--backend", "postgresql", "--dsn", dsn, "--schema-prefix", "Bad-Prefix"], "schema_prefix must be"),
    ]
    env = {k: "" for k in ("WFCTL_DSN",)}
    for args, message in cases:
        proc = pg_project.wfctl("init", *args, env=env)
        line = refused(proc)
        assert message in line, (args, line)
        assert "hunter2" not in proc.stderr + proc.stdout
    assert not pg_project.path.exists() and schemas(dsn, prefix) == []


def test_a_second_machine_joins_the_deployment_and_shares_its_key(pg_project, tmp_path):
    """Two project directories (two machines) on one deployment: the second adopts the shard count
    and placement, refuses other ones, needs the deployment's key, and runs the first one's runs."""
    a, dsn = pg_project, pg_project.dsn
    other_db = re.sub(r"dbname=\S+", "dbname=postgres", dsn) if "dbname=" in dsn else f"{dsn} dbname=postgres"
    a.servers.add(other_db)
    made = ok_json(a.init("--shards", "4", "--place", f"2-3={other_db}", "--json"))
    assert made["shards"] == 4
    key = (a.path / "secret.key").read_text().strip()
    where_a = [r["location"] for r in ok_json(a.wfctl("shards", "--json"))]
    assert [w.split(" schema ")[0] for w in where_a] == [_server(dsn)] * 2 + [_server(other_db)] * 2

    b = tmp_path / "b"
    line = refused(a.init(path=b))  # no key on machine b: the deployment's fingerprint is named, b is not made
    assert f"(fingerprint {fingerprint(key)}) is missing" in line and "$WFCTL_SECRET_KEY" in line
    other = SecretBox.generate_key()
    line = refused(a.init(path=b, env={"WFCTL_SECRET_KEY": other}))
    assert f"fingerprint {fingerprint(other)}" in line and f"(fingerprint {fingerprint(key)})" in line
    assert not b.exists()
    joined = ok(a.init(path=b, env={"WFCTL_SECRET_KEY": key}))
    assert "4 shards" in joined.stdout and "joined the existing deployment" in joined.stdout
    assert [r["location"] for r in ok_json(a.wfctl("shards", "--json", path=b, env={"WFCTL_SECRET_KEY": key}))] == where_a
    assert not (b / "secret.key").exists()

    c = tmp_path / "c"
    line = refused(a.init("--shards", "8", path=c, env={"WFCTL_SECRET_KEY": key}))
    assert line.endswith(f"deployment {a.prefix} on {_server(dsn)} already exists with 4 shard(s); refusing 8 "
                         "(a deployment's shard count cannot change)")
    line = refused(a.init("--place", f"0-1={other_db}", path=c, env={"WFCTL_SECRET_KEY": key}))
    assert "already exists with shard 0 on" in line and "placement cannot change" in line
    line = refused(a.init("--route", "execution", path=c, env={"WFCTL_SECRET_KEY": key}))
    assert "already exists with route definition; refusing route execution" in line
    assert not c.exists()
    # $WFCTL_DSN stands for --dsn, and wfctl.json records it (so later commands need no environment)
    ok(a.wfctl("init", "--backend", "postgresql", "--schema-prefix", a.prefix, path=c,
               env={"WFCTL_DSN": dsn, "WFCTL_SECRET_KEY": key}))
    assert json.loads((c / "wfctl.json").read_text())["postgresql"]["dsn"] == dsn

    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps({
        "id": "vault", "name": "vault", "config": {"secrets": {"TOKEN": {"envVar": "VAULT_TOKEN"}}},
        "steps": [{"stepSlug": "start", "name": "Start", "stepType": "start", "config": {},
                   "nextSteps": {"success": "check"}},
                  {"stepSlug": "check", "name": "Check", "stepType": "condition",
                   "config": {"expression": f"secrets.TOKEN == '{TOKEN}'"}, "nextSteps": {"true": "good", "false": "bad"}},
                  {"stepSlug": "good", "name": "Good", "stepType": "output", "config": {"mapping": {"ok": True}},
                   "nextSteps": {}},
                  {"stepSlug": "bad", "name": "Bad", "stepType": "output", "config": {"mapping": {"ok": False}},
                   "nextSteps": {}}]}))
    eid = ok(a.wfctl("start", vault, env={"VAULT_TOKEN": TOKEN})).stdout.strip()  # machine a: its key file
    assert refused(a.wfctl("worker", "--drain", path=b)).endswith(
        f"(fingerprint {fingerprint(key)}) is missing: set $WFCTL_SECRET_KEY to it or restore {b / 'secret.key'}; "
        "no new key is made, it could not read the stored secrets")
    ok(a.wfctl("worker", "--drain", path=b, env={"WFCTL_SECRET_KEY": key}))  # machine b runs it
    run = ok_json(a.wfctl("status", eid, "--json"))
    assert (run["status"], run["output"]) == ("completed", {"ok": True})
    for path in (a.path, b, c):
        assert "hunter2" not in (path / "wfctl.json").read_text()


def test_stress_runs_each_variant_on_a_throwaway_postgresql_deployment(pg_project, tmp_path):
    from jsonschema import Draft202012Validator

    from helpers import ROOT

    before = set(schemas(pg_project.dsn, "wfctl_stress"))
    proc = pg_project.wfctl("stress", "run", "concurrent-starts", "--smoke", "--no-live", "--backend", "postgresql",
                            "--dsn", pg_project.dsn, "--json", tmp_path / "r.json", path=None, timeout=600)
    ok(proc)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["passed"] and set(result["machine"]) == {"cpus", "python", "postgresql", "platform"}
    [variant] = result["scenarios"][0]["variants"]
    assert variant["crosscheck"]["ok"] and variant["metrics"]["completed"] == variant["metrics"]["started"] > 0
    assert all("serialization_failure" in shard["retries"] for shard in variant["shards"])
    schema = json.loads((ROOT / "docs" / "stress-result.schema.json").read_text())
    assert [e.message for e in Draft202012Validator(schema).iter_errors(result)] == []
    assert "cross-check OK: the shards agree" in proc.stdout
    assert set(schemas(pg_project.dsn, "wfctl_stress")) == before  # the variant's schemas were dropped


def test_libpq_environment_fills_in_the_dsn(pg_project):
    """A DSN naming only the database: libpq's $PGHOST, $PGPORT and $PGUSER supply the rest, and
    wfctl.json records only what was given."""
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(pg_project.dsn)
    env = {"PGHOST": str(params.get("host", "127.0.0.1")), "PGPORT": str(params.get("port", "5432")),
           "PGUSER": str(params.get("user", "postgres"))}
    dsn = f"dbname={params.get('dbname', 'postgres')}"
    ok(pg_project.wfctl("init", "--backend", "postgresql", "--dsn", dsn, "--schema-prefix", pg_project.prefix,
                        "--shards", "2", env=env))
    assert json.loads((pg_project.path / "wfctl.json").read_text())["postgresql"]["dsn"] == dsn
    run = ok_json(pg_project.wfctl("start", HELLO, "--wait", "--json", env=env))
    assert run["status"] == "completed"
    where = ok_json(pg_project.wfctl("shards", "--json", env=env))[0]["location"]
    assert where == f"{env['PGHOST']}:{env['PGPORT']}/{params.get('dbname', 'postgres')} schema {pg_project.prefix}_shard_000"
