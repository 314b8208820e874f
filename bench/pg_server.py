"""PostgreSQL for benchmarks: fresh databases, and a throwaway server (the second of a two-server arm).

``fresh_database(dsn, name)`` creates database ``name`` on the server of ``dsn`` (dropping a
leftover of that name first, and the database after use) and yields its DSN.

``throwaway_server()`` runs initdb and pg_ctl from the installed PostgreSQL binaries (``$PGBIN``, else
the newest ``/usr/lib/postgresql/*/bin``) in a temporary directory, on a free port of 127.0.0.1,
with trust authentication; as the ``postgres`` user (``runuser``) when run as root, since initdb
refuses root. It yields the server's DSN and stops the server and removes the directory after.

    python bench/pg_server.py      # start one, print its DSN, stop it on Enter
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping


@contextmanager
def fresh_database(dsn: str, name: str, settings: Mapping[str, str] | None = None) -> Iterator[str]:
    """Database ``name`` created on the server of ``dsn`` (dropped first if left over, and after use),
    with ``settings`` as its defaults for new sessions (``ALTER DATABASE ... SET``); its DSN."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    admin = make_conninfo(dsn, dbname="postgres")

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for key, value in (settings or {}).items():
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(name), sql.Identifier(key), sql.Literal(value)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        drop()


def pg_bin() -> Path:
    """The folder with initdb and pg_ctl: ``$PGBIN``, else the newest /usr/lib/postgresql/*/bin."""
    if os.environ.get("PGBIN"):
        return Path(os.environ["PGBIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise SystemExit("no PostgreSQL binaries found: set PGBIN to the folder holding initdb and pg_ctl")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    done = subprocess.run(_as_owner(args), capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"{Path(args[0]).name} failed (exit code {done.returncode}): {last[0]}")


@contextmanager
def throwaway_server(max_connections: int = 300) -> Iterator[str]:
    """Start a PostgreSQL server in a temporary directory; yield its DSN; stop and remove it after."""
    binaries = pg_bin()
    root = tempfile.mkdtemp(prefix="wfctl-bench-pg-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = f"{root}/data", free_port()
    try:
        _run([str(binaries / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
              "--locale=C.UTF-8", "--no-sync"])
        _run([str(binaries / "pg_ctl"), "-D", data, "-l", f"{root}/server.log", "-w", "-t", "60", "-o",
              f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections={max_connections}", "start"])
        try:
            yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        finally:
            _run([str(binaries / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    with throwaway_server() as dsn:
        print(dsn, flush=True)
        input("Enter stops the server ")
