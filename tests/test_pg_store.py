"""The PostgreSQL store's own behaviour on a real server: creation and checks, concurrency
(idempotent starts from many processes, disjoint claims, fencing against in-flight writes),
leases on the server's clock, retries by cause, reconnects, placement over two servers.
What every backend must do is the contract suite's (tests/contract/)."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time

import psycopg
import pytest

from helpers import report, run_processes, wait_until
from pg import pg_backend_or_skip, pg_dsn, pg_settings, second_server, traced

from wfctl.errors import InputError
from wfctl.store.base import JournalRow, StepCommit
from wfctl.store.errors import CorruptShardError, FencingError, StoreError
from wfctl.store.postgresql.connection import Session, server_name

STATE = ('{"current": "s1"}', 17)


@pytest.fixture
def backend():
    with pg_backend_or_skip(2, tag="pgstore") as created:
        yield created


@pytest.fixture
def store(backend):
    opened = backend.open_shard(0)
    yield opened
    opened.close()


def start(store, execution_id, key=None, now=100.0):
    return store.start_run(execution_id, "d", ('{"n": 1}', 8), STATE, current_step="s1", idempotency_key=key, now=now)


def raw(dsn=None):
    return psycopg.connect(dsn or pg_dsn(), autocommit=True)


def backend_pid(store) -> int:
    return store._db.connection().info.backend_pid


def waiting_on_lock(pid: int) -> bool:
    with raw() as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


# -- creation, options, checks -----------------------------------------------------------------

def test_create_is_idempotent_and_verified(backend):
    backend.create(now=time.time())
    backend.verify()
    server = server_name(pg_dsn())
    assert backend.location() == f"{server} schema {backend.prefix}_catalog"
    assert backend.location(1) == f"{server} schema {backend.prefix}_shard_001"
    with backend.open_catalog() as catalog:
        assert catalog.placement() == {0: backend.dsn, 1: backend.dsn}


def test_create_checks_an_existing_deployment_on_the_connection_that_creates_the_catalog(backend, monkeypatch):
    from wfctl.store.postgresql import PostgresBackend

    opened = []
    connect = Session._connect
    monkeypatch.setattr(Session, "_connect", lambda session: opened.append(session.label) or connect(session))
    same, more = (PostgresBackend(backend.project, pg_settings(n, dsn=backend.dsn, schema_prefix=backend.prefix))
                  for n in (2, 3))
    same.create(now=time.time())
    assert opened == ["catalog", "shards 0-1"]  # completing a creation opens no connection of its own to check it
    with pytest.raises(InputError, match=r"already exists with 2 shard\(s\); refusing 3 \(a deployment's shard"):
        more.create(now=time.time())


def test_a_dsn_with_a_password_is_refused_without_showing_it(tmp_path):
    from wfctl.store.postgresql import PostgresBackend

    for dsn in ("host=db user=u password=hunter2 dbname=x", "postgresql://u:hunter2@db/x"):
        with pytest.raises(InputError) as info:
            PostgresBackend(tmp_path, pg_settings(1, dsn=dsn))
        assert "pgpass" in str(info.value) and "hunter2" not in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("options, words", [
    ({"isolation": "snapshot"}, "isolation must be one of read committed, serializable"),
    ({"schema_prefix": "Bad-Prefix"}, "schema_prefix must be"),
    ({"colour": "blue"}, "unknown postgresql option 'colour'"),
])
def test_bad_options_are_one_line(options, words):
    from wfctl.store.postgresql import PostgresBackend

    with pytest.raises(InputError, match=words):
        PostgresBackend.check_options(options, "wfctl.json")


def test_a_newer_schema_version_is_refused(backend):
    with raw() as conn:
        conn.execute(f"UPDATE {backend.prefix}_catalog.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(InputError, match=r"newer wfctl \(schema 99 > 1\)"):
        backend.verify()
    with pytest.raises(InputError, match="newer wfctl"):
        backend.create(now=time.time())


def test_a_missing_or_damaged_shard_is_reported(backend, store):
    with raw() as conn:
        conn.execute(f"DROP TABLE {backend.prefix}_shard_000.journal")
    with pytest.raises(CorruptShardError, match="lacks table journal"):
        store.check()
    with pytest.raises(InputError, match="shard_000 lacks table journal"):
        backend.verify()
    with raw() as conn:
        conn.execute(f"DROP SCHEMA {backend.prefix}_shard_001 CASCADE")
    with pytest.raises(CorruptShardError, match="shard_001 is missing"):
        backend.open_shard(1)


def test_a_shard_schema_beyond_the_count_is_refused(backend):
    with raw() as conn:
        conn.execute(f"CREATE SCHEMA {backend.prefix}_shard_002")
    with pytest.raises(InputError, match="shard_002 is beyond the 2 shard"):
        backend.verify()


@pytest.fixture
def role():
    """This process's session role, set back after the test."""
    from wfctl.store import session_role, set_session_role

    before = session_role()
    set_session_role("cli")
    yield set_session_role
    set_session_role(before)


def test_sessions_carry_the_shard_name_and_durability(role, backend):
    settings = pg_settings(2, durability="full", dsn=backend.dsn, schema_prefix=backend.prefix)
    from wfctl.store.postgresql import PostgresBackend

    with PostgresBackend(backend.project, settings).open_shard(1) as store:
        conn = store._db.connection()
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert conn.execute("SHOW application_name").fetchone()[0] == f"wfctl {backend.prefix}_shard_001 cli"
    with backend.open_shard(1) as store:
        assert store._db.connection().execute("SHOW synchronous_commit").fetchone()[0] == "off"


def _seen_as(pid: int) -> str:
    """A session's name as other sessions see it (``pg_stat_activity``)."""
    with raw() as conn:
        return conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]


def test_a_sessions_name_parses_back_to_its_schema_and_the_processs_role(role, backend, store):
    from wfctl.store import parse_application_name, shard_of_schema

    assert parse_application_name(_seen_as(backend_pid(store))) == (f"{backend.prefix}_shard_000", "cli")
    with backend.open_catalog() as catalog:
        assert parse_application_name(_seen_as(catalog._db.connection().info.backend_pid)) == (
            f"{backend.prefix}_catalog", "cli")
    role("worker")  # sessions already open take the new role at their next transaction
    start(store, "r1")
    schema, named = parse_application_name(_seen_as(backend_pid(store)))
    assert (shard_of_schema(schema), named) == ((backend.prefix, 0), "worker")


# -- concurrency -------------------------------------------------------------------------------

def _start_with_key(dsn, prefix, project, index, barrier, results):
    from wfctl.store.postgresql import PostgresBackend

    def work():
        with PostgresBackend(project, pg_settings(2, dsn=dsn, schema_prefix=prefix)).open_shard(0) as store:
            barrier.wait(60)
            return start(store, f"run-{index}", key="same-key")
    report(results, index, work)


def test_eight_processes_starting_with_one_key_make_one_run(backend, store):
    outcomes = list(run_processes([(_start_with_key, backend.dsn, backend.prefix, backend.project, i)
                                   for i in range(8)]).values())
    ids = {eid for eid, _ in outcomes}
    assert len(ids) == 1 and sum(created for _, created in outcomes) == 1
    assert store.count_runs() == 1
    assert store.stats().queue_depth == 1


def test_two_claimers_get_disjoint_runs(backend, store):
    store.create_runs([], now=0)
    for i in range(120):
        start(store, f"r{i:03d}")
    generation = store.acquire_lease("w", 30, now=0)
    claimed: list[list[str]] = [[], []]

    def claimer(n):
        with backend.open_shard(0) as mine:
            while batch := mine.claim_ready(generation, now=1000, limit=7):
                claimed[n].extend(r.execution_id for r in batch)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == [f"r{i:03d}" for i in range(120)]


def test_a_takeover_waits_for_a_fenced_write_in_flight_and_fences_the_old_owner(backend, store):
    start(store, "r1")
    old = store.acquire_lease("old", 30, now=0)
    [claimed] = store.claim_ready(old, now=1000, limit=10)
    with raw() as held:  # a fenced write of the old owner, in flight
        held.execute("BEGIN")
        held.execute(f"SELECT {backend.prefix}_shard_000.fence(%s)", (old,))
        with raw() as conn:
            conn.execute(f"UPDATE {backend.prefix}_shard_000.shard_status SET lease_expires_at = 0")
        newcomer = backend.open_shard(0)
        taken: list[int | None] = []
        thread = threading.Thread(target=lambda: taken.append(newcomer.acquire_lease("new", 30, now=0)))
        thread.start()
        assert wait_until(lambda: waiting_on_lock(backend_pid(newcomer)) or taken)
        assert taken == []  # not before the old owner's write ends
        held.execute("COMMIT")
        thread.join(60)
    assert taken == [old + 1]
    commit = StepCommit("r1", "completed", {"current": None}, None,
                        journal=[JournalRow("s1", "noop", "completed")], output={"late": True})
    with pytest.raises(FencingError, match=f"lease generation {old} is no longer valid"):
        store.commit_steps(old, [commit], now=2000)
    with pytest.raises(FencingError):
        store.renew_lease("old", old, 30, now=0)
    assert store.get_run("r1").status == "pending" and store.journal("r1") == []
    assert [r.execution_id for r in newcomer.claim_ready(old + 1, now=1000, limit=10)] == [claimed.execution_id]
    newcomer.close()


def test_leases_run_on_the_server_clock(store):
    with raw() as conn:
        server_now = conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()[0]
    generation = store.acquire_lease("a", 2.0, now=0.0)  # the caller's clock is ignored
    stats = store.stats()
    assert stats.lease_owner == "a" and abs(stats.lease_expires_at - (server_now + 2.0)) < 30
    assert store.acquire_lease("b", 2.0, now=1e12) is None  # a far-future caller clock takes nothing
    expiry = store.renew_lease("a", generation, 2.0, now=0.0)
    assert abs(expiry - (server_now + 2.0)) < 30
    assert wait_until(lambda: store.acquire_lease("b", 2.0, now=0.0), timeout=60) == generation + 1


def test_commit_on_a_canceled_run_keeps_only_what_ended_by_the_cancel(store):
    start(store, "r1")
    generation = store.acquire_lease("w", 30, now=0)
    store.claim_ready(generation, now=1000, limit=1)
    assert store.mark_step_started(generation, "r1", JournalRow("s1", "http", "started", started_at=1001.0), now=1001.0)
    [canceled] = store.cancel_runs(["r1"], now=1005.0)
    journal = [JournalRow("s1", "http", "completed", finished_at=1010.0, output={"sent": 1}),
               JournalRow("s2", "noop", "completed", started_at=1003.0, finished_at=1004.0),
               JournalRow("s3", "noop", "completed", started_at=1011.0, finished_at=1012.0)]
    skipped = store.commit_steps(generation, [StepCommit("r1", "completed", {"current": None}, None, journal=journal,
                                                         output={"done": True})], now=1012.0)
    assert skipped == ["r1"] == [canceled]
    run = store.get_run("r1")
    assert (run.status, run.output, run.completed_at) == ("canceled", None, 1005.0)
    assert [(j.seq, j.step_slug, j.status) for j in store.journal("r1")] == [
        (1, "s1", "started"), (2, "s1", "completed"), (3, "s2", "completed")]
    assert store.commit_steps(generation, [StepCommit("gone", "running", None, None)], now=1013.0) == ["gone"]


def test_a_cancel_reads_its_clock_once_the_run_is_locked(backend, store):
    start(store, "r1")
    read_at: list[bool] = []
    with raw() as held:  # a worker's commit in flight holds the run
        held.execute("BEGIN")
        held.execute(f"SELECT 1 FROM {backend.prefix}_shard_000.runs WHERE execution_id = 'r1' FOR UPDATE")
        released = threading.Event()

        def clock():
            read_at.append(released.is_set())
            return 2000.0

        result: list[list[str]] = []
        thread = threading.Thread(target=lambda: result.append(store.cancel_runs(["r1"], now=clock)))
        thread.start()
        assert wait_until(lambda: waiting_on_lock(backend_pid(store)))
        released.set()
        held.execute("COMMIT")
        thread.join(60)
    assert result == [["r1"]] and read_at == [True]
    assert store.get_run("r1").completed_at == 2000.0


# -- errors: retries by cause, reconnects --------------------------------------------------------

def test_serialization_failures_are_retried_and_counted_by_cause(backend):
    from wfctl.store.postgresql import PostgresBackend

    serializable = PostgresBackend(backend.project, pg_settings(2, dsn=backend.dsn, schema_prefix=backend.prefix,
                                                                 isolation="serializable"))
    store = serializable.open_shard(0)
    start(store, "r1")
    with raw() as other:
        other.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        other.execute(f"UPDATE {backend.prefix}_shard_000.runs SET error = 'x' WHERE execution_id = 'r1'")
        result: list[list[str]] = []
        thread = threading.Thread(target=lambda: result.append(store.cancel_runs(["r1"], now=500.0)))
        thread.start()
        assert wait_until(lambda: waiting_on_lock(backend_pid(store)))
        other.execute("COMMIT")  # the cancel's transaction cannot serialize after this: 40001, retried
        thread.join(60)
    assert result == [["r1"]] and store.get_run("r1").status == "canceled"
    stats = store.stats()
    assert stats.retries["serialization_failure"] >= 1 and stats.wait_ms["serialization_failure"] >= 0
    assert stats.retries.keys() == {"serialization_failure", "deadlock", "lock_timeout", "connection_lost", "lock_busy"}
    store.close()  # persists the counters
    with raw() as conn:
        (count,) = conn.execute(f"SELECT count FROM {backend.prefix}_shard_000.counters"
                                " WHERE name = 'serialization_failure'").fetchone()
    assert count >= 1
    with backend.open_shard(0) as again:
        assert again.stats().retries["serialization_failure"] >= 1


def test_a_statement_whose_preparation_a_conflict_skipped_does_not_reach_the_caller():
    """psycopg prepares a statement run often by sending its Parse in the pipeline, and takes it
    for prepared at once; a conflict earlier in that pipeline makes the server skip the Parse.
    The retry that uses it again gets the result, not "prepared statement does not exist"."""
    session = Session(pg_dsn(), schema="public", label="test")
    conflict = "DO $$BEGIN PERFORM pg_sleep(0.1); RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END$$"

    def conflict_once(query, value):
        attempts = []

        def work(conn):
            attempts.append(value)
            if len(attempts) == 1:  # the conflict's result comes after the query is sent
                conn.execute(conflict)
            return conn.execute(query, (value,))

        return session.run(work).fetchone()[0], len(attempts)

    try:
        assert conflict_once("SELECT %s::int", 1) == (1, 2)  # a rollback while nothing is prepared yet
        for i in range(6):  # BEGIN, COMMIT and this query prepared
            session.run(lambda conn: conn.execute("SELECT %s::int + 1", (i,))).fetchone()
        for i in range(5):  # the next use prepares this one...
            session.run(lambda conn: conn.execute("SELECT %s::int + 2", (i,))).fetchone()
        value, attempts = conflict_once("SELECT %s::int + 2", 40)  # ... in the pipeline the conflict aborts
        assert value == 42 and attempts >= 2
        assert session.retries["serialization_failure"] == 2
    finally:
        session.close()


def test_a_terminated_connection_is_reconnected(store):
    start(store, "r1")
    generation = store.acquire_lease("w", 30, now=0)
    with raw() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid(store),))
    assert store.get_run("r1").status == "pending"  # a read is retried on a new connection
    with raw() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid(store),))
    with pytest.raises(StoreError, match="outcome is unknown"):  # a fenced write is not blindly retried
        store.claim_ready(generation, now=1000, limit=10)
    assert start(store, "r2") == ("r2", True)
    assert store._db.pending()[0]["connection_lost"] >= 2


def test_an_unreachable_server_is_one_line_naming_it(tmp_path):
    from wfctl.store.postgresql import PostgresBackend

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = PostgresBackend(tmp_path, pg_settings(1, dsn=f"host=127.0.0.1 port={port} user=postgres dbname=test"))
    with pytest.raises(StoreError) as info:
        backend.open_catalog()
    message = str(info.value)
    assert message.startswith(f"catalog (127.0.0.1:{port}/test schema wfctl_catalog): cannot reach the server")
    assert "\n" not in message


# -- placement ---------------------------------------------------------------------------------

def test_shards_placed_on_two_servers():
    with second_server() as server:
        main, other = pg_dsn(), server.dsn
        with pg_backend_or_skip(4, tag="pgplace", placement={2: other, 3: other}) as backend:
            backend.verify()
            assert backend.location(3).startswith(f"127.0.0.1:{psycopg.conninfo.conninfo_to_dict(other)['port']}/postgres")
            for shard in range(4):
                with backend.open_shard(shard) as store:
                    assert start(store, f"run-{shard}") == (f"run-{shard}", True)
            for dsn, shards in ((main, (0, 1)), (other, (2, 3))):
                with raw(dsn) as conn:
                    names = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                                        (f"{backend.prefix}%",))}
                assert {f"{backend.prefix}_shard_{s:03d}" for s in shards} <= names
                assert not {f"{backend.prefix}_shard_{s:03d}" for s in range(4) if s not in shards} & names
            backend.drop()
            with raw(other) as conn:
                assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s",
                                    (f"{backend.prefix}%",)).fetchone()[0] == 0


def test_a_restarted_server_is_reconnected_to():
    with second_server() as server:
        with pg_backend_or_skip(1, tag="pgrestart", dsn=server.dsn) as backend, backend.open_shard(0) as store:
            assert start(store, "r1") == ("r1", True)
            generation = store.acquire_lease("w", 60, now=0)
            server.restart()
            assert start(store, "r2") == ("r2", True)  # reconnected with backoff: the start is retried
            assert store._db.pending()[0]["connection_lost"] >= 1
            assert [r.execution_id for r in store.claim_ready(generation, now=1000, limit=10)] == ["r1", "r2"]


def _traced(store, action) -> tuple[int, int]:
    """``(round trips, statements)`` the store's connection spends on ``action()``."""
    return traced([store._db.connection()], action)


def test_round_trips_per_start_claim_and_group_commit(store, monkeypatch):
    from wfctl.store.postgresql import connection

    monkeypatch.setattr(connection, "FLUSH_EVERY_S", 3600.0)  # the counters' own transaction every few seconds
    assert _traced(store, lambda: start(store, "first")) == (1, 4)  # BEGIN, the insert, COMMIT, then NOTIFY
    assert _traced(store, lambda: start(store, "again", key=None) and start(store, "again"))[0] == 2
    for i in range(80):
        start(store, f"r{i:02d}")
    generation = store.acquire_lease("w", 60, now=0)
    claimed: list = []
    assert _traced(store, lambda: claimed.extend(store.claim_ready(generation, now=1000, limit=64)))[0] == 1
    costs = []
    for batch in (claimed[:4], claimed[4:64]):
        commits = [StepCommit(r.execution_id, "running", {"current": "s2"}, "s2", ready_at=2000.0,
                              journal=[JournalRow("s1", "noop", "completed", finished_at=1500.0)]) for r in batch]
        costs.append(_traced(store, lambda: store.commit_steps(generation, commits, now=1500.0)))
    assert costs[0] == costs[1] and costs[0][0] == 2  # the same whatever the batch size


def test_times_given_as_whole_numbers_mix_with_fractions_in_a_batch(store):
    from wfctl.store.base import NewRun

    created = store.create_runs([NewRun("a", "d", None, None, timeout_s=60, slot_time=120),
                                 NewRun("b", "d", None, None, timeout_s=1.5, slot_time=None)], now=100)
    assert [(r.timeout_s, r.slot_time, created) for r, created in created] == [(60, 120, True), (1.5, None, True)]
    generation = store.acquire_lease("w", 60, now=0)
    store.claim_ready(generation, now=1000, limit=10)
    assert store.commit_steps(generation, [
        StepCommit("a", "running", None, "s2", ready_at=1001, wake_at=1001,
                   journal=[JournalRow("s1", "noop", "completed", started_at=1000, finished_at=1000.5)]),
        StepCommit("b", "running", None, "s2", ready_at=1001.5, wake_at=None,
                   journal=[JournalRow("s1", "noop", "completed", started_at=1000.25, finished_at=1001)]),
    ], now=1002) == []
    assert (store.get_run("a").wake_at, store.get_run("b").wake_at) == (1001.0, None)
    assert [j.finished_at for j in store.journal("a") + store.journal("b")] == [1000.5, 1001.0]


def test_a_server_that_stays_down_fails_fast_after_the_first_deadline(monkeypatch):
    from wfctl.store.postgresql import connection

    deadline = 5.0
    monkeypatch.setattr(connection, "RECONNECT_DEADLINE_S", deadline)
    with second_server() as server:
        with pg_backend_or_skip(1, tag="pgdown", dsn=server.dsn) as backend, backend.open_shard(0) as store:
            assert start(store, "r1") == ("r1", True)
            server.stop()
            began = time.monotonic()
            with pytest.raises(StoreError, match=r"^shard 0 \(127\.0\.0\.1:\d+/postgres schema .*\): cannot reach"):
                store.get_run("r1")
            assert time.monotonic() - began >= deadline  # reconnects with backoff for the deadline
            began = time.monotonic()
            with pytest.raises(StoreError, match="cannot reach"):
                store.get_run("r1")
            assert time.monotonic() - began < deadline  # then one attempt per call, not another deadline
            server.start()
            assert wait_until(lambda: _reads(store, "r1"))


def _holding_the_status_row(backend, generation, application):
    """A session named ``application`` in a transaction that holds the shard's status row as a
    fenced write does (``FOR KEY SHARE``), then waits: a worker stopped mid-pipeline."""
    holder = psycopg.connect(backend.dsn, autocommit=True, application_name=application)
    holder.execute("BEGIN")
    holder.execute(f"SELECT {backend.prefix}_shard_000.fence(%s)", (generation,))
    return holder


def _alive(conn) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def test_a_takeover_ends_the_session_of_a_holder_stopped_past_its_lease(backend, store):
    from wfctl.store import application_name

    old = store.acquire_lease("old", 3.0, now=0)
    with _holding_the_status_row(backend, old, application_name(f"{backend.prefix}_shard_000", "worker")) as holder:
        assert store.acquire_lease("new", 60, now=0) is None  # a valid lease is not taken: nobody is ended
        assert _alive(holder)
        new = wait_until(lambda: store.acquire_lease("new", 60, now=0), timeout=60)
        assert new == old + 1
        assert not _alive(holder)
    with pytest.raises(FencingError, match="no longer valid"):
        store.claim_ready(old, now=1e12, limit=1)


def test_a_takeover_never_ends_a_session_that_is_not_wfctl(backend, store, monkeypatch):
    from wfctl.store.errors import StoreBusyError
    from wfctl.store.postgresql import connection

    monkeypatch.setattr(connection, "RETRY_DEADLINE_S", 2.0)
    old = store.acquire_lease("old", 0.5, now=0)
    with _holding_the_status_row(backend, old, "psql") as holder, raw() as conn:
        expired = f"SELECT lease_expires_at < extract(epoch FROM now()) FROM {backend.prefix}_shard_000.shard_status"
        assert wait_until(lambda: conn.execute(expired).fetchone()[0])
        with pytest.raises(StoreBusyError, match=r"^shard 0 \(.*\): gave up after .* lock timeouts"):
            store.acquire_lease("new", 60, now=0)
        assert _alive(holder)
        holder.execute("ROLLBACK")
        assert store.acquire_lease("new", 60, now=0) == old + 1


def _reads(store, execution_id) -> bool:
    try:
        return store.get_run(execution_id) is not None
    except StoreError:
        return False


HOLDER_TTL_S = 3.0


def _hold_and_commit(dsn, prefix, project, generation, done):
    """A worker of ``generation``: renew its lease, claim and re-queue runs, journaling a row
    marked with its generation each time, until its writes are refused; reports the refusal. As a
    real worker does, it renews before it writes, so a transaction of its never begins on a lease
    that expired (on a loaded machine a holder that never renewed would still write past its
    lease, and a takeover could not tell its session from a valid one)."""
    from wfctl.store.postgresql import PostgresBackend

    with PostgresBackend(project, pg_settings(2, dsn=dsn, schema_prefix=prefix)).open_shard(0) as store:
        try:
            while True:
                store.renew_lease("old", generation, HOLDER_TTL_S, now=0)
                claimed = store.claim_ready(generation, now=time.time() + 3600, limit=8)
                store.commit_steps(generation, [
                    StepCommit(r.execution_id, "running", {"current": "s1"}, "s1", ready_at=0.0,
                               journal=[JournalRow("s1", "noop", "completed", port=str(generation))])
                    for r in claimed], now=time.time())
        except FencingError:
            done.put("fenced")
        except StoreError as exc:
            done.put(f"store error: {exc}")


def test_a_stopped_worker_past_its_lease_writes_nothing_once_resumed(backend, store):
    import os
    import signal

    for i in range(20):
        start(store, f"r{i:02d}")
    old = store.acquire_lease("old", HOLDER_TTL_S, now=0)
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Queue()
    child = ctx.Process(target=_hold_and_commit, args=(backend.dsn, backend.prefix, backend.project, old, done))
    child.start()
    try:
        marked = f"SELECT count(*) FROM {backend.prefix}_shard_000.journal WHERE port = %s"
        with raw() as conn:
            assert wait_until(lambda: conn.execute(marked, (str(old),)).fetchone()[0] >= 40)
            os.kill(child.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            new = wait_until(lambda: store.acquire_lease("new", 60, now=0), timeout=60)  # past its lease
            assert new == old + 1
            # Stopped mid-transaction, it holds the status row: the takeover ended its session.
            assert time.monotonic() - stopped_at < 45
            written = conn.execute(marked, (str(old),)).fetchone()[0]
            os.kill(child.pid, signal.SIGCONT)
            outcome = done.get(timeout=60)  # refused at once, or its half-done write was cut off
            assert outcome == "fenced" or "outcome is unknown" in outcome, outcome
            assert conn.execute(marked, (str(old),)).fetchone()[0] == written
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.join(60)
