"""Passwords on PostgreSQL: libpq's ~/.pgpass, $PGPASSFILE and $PGPASSWORD give them (a DSN
holding one is refused elsewhere, tests/test_pg_store.py); a server refusing a connection for
good (a wrong or missing password, no such database) is one line at once, nothing created, and
the password never appears in wfctl.json or in output. Against a throwaway server that asks
for a password (scram-sha-256)."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT, refused, wfctl, wfctl_env
from pg import second_server

PASSWORD = "pw-9f3c-secret"


@pytest.fixture(scope="module")
def server():
    with second_server(password=PASSWORD) as throwaway:
        yield throwaway


def _env(tmp_path, **extra):
    return wfctl_env(drop=("PGPASSWORD", "PGPASSFILE", "WFCTL_DSN"), HOME=str(tmp_path), **extra)


def _pgpass(path, server, password):
    port = server.dsn.split("port=")[1].split()[0]
    path.write_text(f"127.0.0.1:{port}:*:postgres:{password}\n", encoding="utf-8")
    path.chmod(0o600)  # libpq ignores a password file others can read
    return path


def test_a_missing_or_wrong_password_is_one_line_at_once_and_creates_nothing(server, tmp_path):
    data = tmp_path / "data"
    line = refused(wfctl(data, "init", "--backend", "postgresql", "--dsn", server.dsn, env=_env(tmp_path)))
    assert "no password supplied" in line and "catalog (127.0.0.1:" in line, line
    assert "cannot reach" not in line  # told as it is, not retried as if the server were down
    assert not data.exists()
    _pgpass(tmp_path / ".pgpass", server, "not-the-password")
    line = refused(wfctl(data, "init", "--backend", "postgresql", "--dsn", server.dsn, env=_env(tmp_path)))
    assert "password authentication failed" in line and "not-the-password" not in line, line
    assert not data.exists()


@pytest.mark.parametrize("source", ["~/.pgpass", "PGPASSFILE", "PGPASSWORD"])
def test_libpq_gives_the_password_and_wfctl_never_shows_it(server, tmp_path, source):
    extra = {}
    if source == "~/.pgpass":
        _pgpass(tmp_path / ".pgpass", server, PASSWORD)
    elif source == "PGPASSFILE":
        extra["PGPASSFILE"] = str(_pgpass(tmp_path / "elsewhere", server, PASSWORD))
    else:
        extra["PGPASSWORD"] = PASSWORD
    env = _env(tmp_path, **extra)
    data = tmp_path / "data"
    prefix = f"pw_{source.strip('~/.').lower()}"
    made = wfctl(data, "init", "--backend", "postgresql", "--dsn", server.dsn, "--schema-prefix", prefix, env=env)
    assert made.returncode == 0, made.stderr
    shown = [made.stdout, made.stderr, (data / "wfctl.json").read_text(encoding="utf-8")]
    run = wfctl(data, "start", "examples/hello.json", "--wait", "--json", env=env, cwd=str(ROOT))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "completed"
    shards = wfctl(data, "shards", "--json", env=env)
    assert shards.returncode == 0, shards.stderr
    shown += [run.stdout, run.stderr, shards.stdout, shards.stderr]
    assert not any(PASSWORD in text for text in shown)
    assert json.loads((data / "wfctl.json").read_text(encoding="utf-8"))["postgresql"]["dsn"] == server.dsn
