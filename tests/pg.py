"""PostgreSQL for tests: the server to use, fresh deployments on it, a throwaway second server.

The server comes from ``$WFCTL_TEST_PG_DSN`` (default: the project machines' local server,
``host=127.0.0.1 port=5432 user=postgres dbname=test``). When it cannot be reached the test is
skipped with one line saying how to enable it, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DSN_ENV = "WFCTL_TEST_PG_DSN"
DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_BIN = Path(os.environ.get("WFCTL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

_reachable: dict[str, str | None] = {}


def pg_dsn() -> str:
    """The test server's DSN; skips (fails under CI=true) when it cannot be reached."""
    dsn = os.environ.get(DSN_ENV) or DEFAULT_DSN
    if dsn not in _reachable:
        import psycopg

        try:
            psycopg.connect(dsn, connect_timeout=5).close()
            _reachable[dsn] = None
        except psycopg.Error as exc:
            _reachable[dsn] = " ".join(str(exc).split())[:200]
    problem = _reachable[dsn]
    if problem is not None:
        message = (f"no PostgreSQL server at {dsn!r} ({problem}); set {DSN_ENV} to the DSN of a server "
                   "(trust or ~/.pgpass auth) to run the PostgreSQL tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return dsn


def unique_prefix(tag: str = "t") -> str:
    """A schema prefix no other test (or test run) uses."""
    return f"wft_{tag}_{uuid.uuid4().hex[:10]}"


def drop_prefix(dsn: str, prefix: str) -> None:
    """Drop every schema named ``prefix_...`` on the server of ``dsn``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                            (prefix.replace("_", "\\_") + "\\_%",)).fetchall()]
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def pg_settings(shards: int = 4, *, durability: str = "normal", max_payload_bytes: int | None = None,
                **options: Any) -> Any:
    """Settings of a PostgreSQL deployment (``options``: dsn, schema_prefix, isolation)."""
    from wfctl.store.settings import Settings

    values: dict[str, Any] = {"shards": shards, "durability": durability}
    if max_payload_bytes is not None:
        values["max_payload_bytes"] = max_payload_bytes
    return Settings(backend="postgresql", options=options, **values).validate("test settings")


@contextmanager
def pg_backend_or_skip(shards: int = 4, *, tag: str = "t", placement: dict[int, str] | None = None,
                       project: Path | None = None, max_payload_bytes: int | None = None,
                       **options: Any) -> Iterator[Any]:
    """A created :class:`PostgresBackend` on a fresh schema prefix with ``shards`` shards (dropped
    after, on every server it used); skips when there is no server."""
    from wfctl.store.postgresql import PostgresBackend

    dsn = options.pop("dsn", None) or pg_dsn()
    prefix = unique_prefix(tag)
    settings = pg_settings(shards, dsn=dsn, schema_prefix=prefix, max_payload_bytes=max_payload_bytes, **options)
    backend = PostgresBackend(project or Path(tempfile.gettempdir()), settings)
    servers = {dsn, *(placement or {}).values()}
    try:
        backend.create(now=time.time(), placement=placement)
        yield backend
    finally:
        for server in servers:
            drop_prefix(server, prefix)


@contextmanager
def pg_project(path: Path, shards: int = 2, *, tag: str = "t", route: str = "definition", hot_rows: bool = False,
               **options: Any) -> Iterator[Path]:
    """A project directory (``wfctl.json``) of a PostgreSQL deployment with ``shards`` shards on a
    fresh schema prefix of the test server (``options``: isolation ...), dropped after; skips
    when there is no server."""
    from wfctl.store import DataDir

    dsn = options.pop("dsn", None) or pg_dsn()
    prefix = unique_prefix(tag)
    try:
        DataDir.init(path, shards=shards, route=route, backend="postgresql",
                     options={"dsn": dsn, "schema_prefix": prefix, **options}, hot_rows=hot_rows)
        yield path
    finally:
        drop_prefix(dsn, prefix)


def traced(connections: list[Any], action: Callable[[], Any]) -> tuple[int, int]:
    """``(round trips, statements)`` that psycopg ``connections`` spend on ``action()``, from
    libpq's protocol trace: a round trip is a turn from client messages that ask for results
    (``Sync``, ``Flush``, a simple ``Query``) to server messages on a connection (results a busy
    server sent before being asked do not make the client wait), a statement a Bind message."""
    files = []
    try:
        for conn in connections:
            files.append(tempfile.TemporaryFile("w+"))
            conn.pgconn.trace(files[-1].fileno())
        try:
            action()
        finally:
            for conn in connections:
                conn.pgconn.untrace()
        turns = statements = 0
        for trace in files:
            trace.seek(0)
            sides = [line.split("\t")[1:4:2] for line in trace if line.count("\t") >= 3]
            asked = False
            for side, message in ((side, message.strip()) for side, message in sides):
                if side == "F":
                    asked = asked or message in ("Sync", "Flush", "Query")
                    statements += message == "Bind"
                elif asked:
                    turns += 1
                    asked = False
        return turns, statements
    finally:
        for trace in files:
            trace.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ThrowawayServer:
    """A PostgreSQL server of its own (see :func:`second_server`)."""

    dsn: str
    restart: Callable[[], None]
    stop: Callable[[], None]
    start: Callable[[], None]


@contextmanager
def second_server(password: str | None = None) -> Iterator[ThrowawayServer]:
    """A throwaway PostgreSQL server (initdb + pg_ctl in a temporary directory, on a free port,
    as user postgres when running as root); stopped and removed after. ``password``: connections
    over TCP must give it (scram-sha-256) as user postgres; else trust."""
    pg_dsn()  # the same rule: no server here means no PostgreSQL tests
    if not (PG_BIN / "initdb").exists():
        message = f"no PostgreSQL binaries in {PG_BIN}; set WFCTL_TEST_PG_BIN to run the two-server tests"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="wfctl-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = _free_port()
    pg_ctl = [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    server_options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200 -c fsync=off"

    def run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def restart() -> None:
        run(*pg_ctl, "-m", "fast", "-l", str(root / "server.log"), "-o", server_options, "restart")

    def stop() -> None:
        run(*pg_ctl, "-m", "fast", "stop")

    def start() -> None:
        run(*pg_ctl, "-l", str(root / "server.log"), "-o", server_options, "start")

    auth = ["-A", "trust"]
    if password is not None:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    run(*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", *auth, "-E", "UTF8",
        "--locale=C.UTF-8", "--no-sync")
    try:
        start()
        yield ThrowawayServer(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", restart, stop, start)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
