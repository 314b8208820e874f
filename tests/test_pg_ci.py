"""The PostgreSQL tests run wherever a server is, and under ``CI=true`` they cannot be skipped:
.ci/run sets ``$WFCTL_TEST_PG_DSN``, and a server that cannot be reached fails the run."""

from __future__ import annotations

import os

import psycopg
import pytest

import pg


def _unreachable_dsn() -> str:
    return f"host=127.0.0.1 port={pg._free_port()} user=postgres dbname=test connect_timeout=5"


def test_without_a_server_the_postgresql_tests_skip_with_how_to_enable_them(monkeypatch):
    monkeypatch.setenv(pg.DSN_ENV, _unreachable_dsn())
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"no PostgreSQL server at .*; set {pg.DSN_ENV} to the DSN"):
        pg.pg_dsn()


def test_under_ci_a_missing_server_fails_the_postgresql_tests(monkeypatch):
    monkeypatch.setenv(pg.DSN_ENV, _unreachable_dsn())
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL server at"):
        pg.pg_dsn()


def test_ci_reaches_the_postgresql_server():
    """Under CI=true: the DSN is set (by .ci/run) and the server answers, so no PostgreSQL test was skipped."""
    if os.environ.get("CI") != "true":
        pytest.skip("checks CI's PostgreSQL server: runs under CI=true only")
    dsn = os.environ.get(pg.DSN_ENV)
    assert dsn, f".ci/run must export {pg.DSN_ENV}"
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
