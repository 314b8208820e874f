"""PostgreSQL deployments: a catalog schema plus one schema per shard, placed on one or several servers.

Options (``settings.options``, wfctl.json's ``postgresql`` object): ``dsn`` the catalog's server
(default ``$WFCTL_DSN``, else libpq's environment and defaults), ``schema_prefix`` (default
``wfctl``: schemas ``wfctl_catalog``, ``wfctl_shard_000``...), ``isolation`` (``read committed``
or ``serializable``). DSNs never hold a password (libpq's ``~/.pgpass`` and ``$PGPASSWORD``
supply it); messages name servers as ``host:port/dbname``.

Isolation: ``read committed`` (the default) resolves most conflicts by waiting on row locks and
re-reading the newest row version. ``serializable`` runs every transaction SERIALIZABLE: the
server tracks what each transaction read and aborts one that could not have run in some serial
order (SQLSTATE 40001); the store retries it and counts it per shard as a serialization failure.
That costs predicate-lock bookkeeping on every read, and retries where transactions overlap
(cancels or cleanups racing a busy worker, a lease renewal racing a fenced write): it shows, as
counted conflicts, the contention that read committed hides in lock waits.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import sql

from ...errors import InputError
from ..backend import Backend
from ..errors import CorruptShardError, StoreError, UnreachableError
from ..roles import application_name
from .catalog import PostgresCatalogStore
from .connection import ISOLATIONS, Session, parse_dsn, server_name
from .schema import (PREFIX_PATTERN, catalog_schema, check_shard_schema, create_catalog, create_shard, listener_name,
                     lock_deployment, ready_channel, shard_schema, stored_version)
from .observer import PostgresObserver
from .shard import PostgresShardStore
from .waker import PostgresWaker

T = TypeVar("T")

DSN_ENV = "WFCTL_DSN"
DEFAULT_PREFIX = "wfctl"
OPTIONS = ("dsn", "schema_prefix", "isolation")


class PostgresBackend(Backend):
    """Where a PostgreSQL deployment lives (see the module); ``project`` is the project directory,
    ``settings`` its settings (``shards``, ``durability``, ``max_payload_bytes``, ``options``)."""

    name: ClassVar[str] = "postgresql"
    default_options: ClassVar[Mapping[str, Any]] = {"schema_prefix": DEFAULT_PREFIX, "isolation": "read committed"}

    def __init__(self, project: Path, settings: Any):
        super().__init__(project, settings)
        options = dict(settings.options or {})
        self.check_options(options, str(project))
        self.dsn: str = options.get("dsn") or os.environ.get(DSN_ENV, "")
        parse_dsn(self.dsn, f"{DSN_ENV}" if not options.get("dsn") else f"{project}: dsn")
        self.prefix: str = options.get("schema_prefix", DEFAULT_PREFIX)
        self.isolation: str = options.get("isolation", "read committed")
        self._placement: dict[int, str] | None = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any], where: str) -> None:
        """InputError (one line) on an unknown option or a bad value."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InputError(f"{where}: unknown postgresql option {unknown[0]!r} (expected {', '.join(OPTIONS)})")
        dsn = options.get("dsn")
        if dsn is not None:
            if not isinstance(dsn, str):
                raise InputError(f"{where}: dsn must be a string, got {dsn!r}")
            parse_dsn(dsn, f"{where}: dsn")
        prefix = options.get("schema_prefix", DEFAULT_PREFIX)
        if not (isinstance(prefix, str) and PREFIX_PATTERN.fullmatch(prefix)):
            raise InputError(f"{where}: schema_prefix must be 1-40 lowercase letters, digits or underscores "
                             f"(not starting with a digit), got {prefix!r}")
        isolation = options.get("isolation", "read committed")
        if isolation not in ISOLATIONS:
            raise InputError(f"{where}: isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")

    @classmethod
    def throwaway_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with a schema prefix of its own (``wfctl_stress_<random>`` by default)."""
        base = options.get("schema_prefix", "wfctl_stress")[:28]
        return {**options, "schema_prefix": f"{base}_{uuid.uuid4().hex[:10]}"}

    # -- creation and checks ---------------------------------------------------------------

    def _admin(self, dsn: str, label: str) -> Session:
        return Session(dsn, schema="public", label=label, durability="full")

    def _run_locked(self, dsn: str, label: str, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` in one transaction on server ``dsn``, holding the deployment's advisory lock."""
        session = self._admin(dsn, label)
        try:
            def locked(conn: psycopg.Connection) -> T:
                lock_deployment(conn, self.prefix)
                return work(conn)

            return session.run(locked, pipeline=False)
        finally:
            session.close()

    def check_creation(self, placement: Mapping[int, str] | None = None) -> dict[int, str]:
        """The full placement (shard -> DSN; a shard not in ``placement``: the catalog's server);
        InputError (one line) when there is no DSN, a shard is out of range or a DSN is invalid,
        or an existing deployment records another shard count, route or placement."""
        wanted = self._wanted(placement)
        self._refuse_changes(self.existing(), wanted)
        return wanted

    def _wanted(self, placement: Mapping[int, str] | None) -> dict[int, str]:
        """The full placement asked for; InputError when there is no DSN, a shard is out of range or a DSN
        is invalid."""
        self._need_dsn()
        shards = self.settings.shards
        wanted = {shard: self.dsn for shard in range(shards)}
        for shard, dsn in (placement or {}).items():
            if not (isinstance(shard, int) and 0 <= shard < shards):
                raise InputError(f"placement: shard {shard!r} is not one of 0..{shards - 1}")
            parse_dsn(dsn, f"placement of shard {shard}")
            wanted[shard] = dsn
        return wanted

    def _refuse_changes(self, found: dict[str, Any] | None, wanted: dict[int, str]) -> None:
        """InputError when the deployment ``found`` (:meth:`existing`) records another shard count,
        route or placement than these settings and ``wanted``."""
        shards = self.settings.shards
        if found is not None:
            where = f"{self.deployment()} already exists with"
            if found["shards"] != shards:
                raise InputError(f"{where} {found['shards']} shard(s); refusing {shards} (a deployment's shard "
                                 "count cannot change)")
            if found["route"] not in (None, self.settings.route):
                raise InputError(f"{where} route {found['route']}; refusing route {self.settings.route}")
            moved = sorted(s for s in wanted if found["placement"].get(s) != wanted[s])
            if moved:
                raise InputError(f"{where} shard {moved[0]} on {server_name(found['placement'].get(moved[0], ''))}; "
                                 f"refusing to place it on {server_name(wanted[moved[0]])} (a deployment's placement "
                                 "cannot change)")

    def existing(self) -> dict[str, Any] | None:
        """``{"shards", "route", "placement"}`` as the catalog records them; None when there is no catalog."""
        self._need_dsn()
        session = Session(self.dsn, schema=catalog_schema(self.prefix), label="catalog", durability="full")
        try:
            return session.run(self._recorded, write=False, pipeline=False)
        finally:
            session.close()

    def _recorded(self, conn: psycopg.Connection) -> dict[str, Any] | None:
        """:meth:`existing`, read on ``conn``."""
        schema = sql.Identifier(catalog_schema(self.prefix))
        if stored_version(conn, catalog_schema(self.prefix)) is None:
            return None
        meta = dict(conn.execute(sql.SQL("SELECT key, value FROM {}.meta").format(schema)).fetchall())
        if conn.execute("SELECT to_regclass(%s)", (f"{catalog_schema(self.prefix)}.placement",)).fetchone()[0] is None:
            placement = {}
        else:
            placement = dict(conn.execute(sql.SQL("SELECT shard, dsn FROM {}.placement").format(schema)).fetchall())
        return {"shards": int(meta.get("shards", 0)), "route": meta.get("route"), "placement": placement}

    def _need_dsn(self) -> None:
        if not self.dsn:
            raise InputError(f"the postgresql backend needs the catalog's server: give --dsn or set ${DSN_ENV}")

    def recorded_options(self) -> dict[str, Any]:
        """The options with the DSN in force (``$WFCTL_DSN`` when none was given)."""
        return {**self.options, "dsn": self.dsn}

    def deployment(self) -> str:
        """``deployment wfctl on host:port/dbname``."""
        return f"deployment {self.prefix} on {server_name(self.dsn)}"

    def shared_setting(self, name: str) -> str | None:
        """Shared settings live in the catalog's meta table, read by every machine."""
        with self.open_catalog() as catalog:
            return catalog.meta().get(name)

    def record_shared_setting(self, name: str, value: str) -> str:
        with self.open_catalog() as catalog:
            return catalog.record_meta(name, value)

    def create(self, *, now: float, placement: Mapping[int, str] | None = None) -> None:
        """Create the catalog and the shards (``placement``: shard -> DSN; None or a missing
        shard: the catalog's server); completes a creation cut short. Serialized between
        processes by an advisory lock per server; an existing deployment keeps its placement
        (InputError when ``placement``, the shard count or the route differ from its)."""
        shards = self.settings.shards
        wanted = self._wanted(placement)
        created = datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z")

        def create_schema(conn: psycopg.Connection) -> dict[int, str]:
            self._refuse_changes(self._recorded(conn), wanted)  # as check_creation, on this connection
            return create_catalog(conn, self.prefix, shards=shards, route=self.settings.route, placement=wanted,
                                  created_at=created)

        placed = self._run_locked(self.dsn, "catalog", create_schema)
        for dsn, numbers in _by_server(placed).items():
            def create_shards(conn: psycopg.Connection) -> None:
                for shard in numbers:
                    create_shard(conn, self.prefix, shard, now)

            self._run_locked(dsn, f"shards {numbers[0]}-{numbers[-1]}", create_shards)
        self._placement = placed

    def placement(self) -> dict[int, str]:
        """Shard -> DSN, as the catalog records it (read once)."""
        if self._placement is None:
            with self.open_catalog() as catalog:
                self._placement = catalog.placement()
        return self._placement

    def verify(self) -> None:
        """InputError (one line) when the catalog or a shard schema is missing or damaged, the
        shard count differs, a shard schema lies beyond it, or a schema is of a newer version.
        A shard server that cannot be reached is not checked (its shards report it when used)."""
        try:
            with self.open_catalog() as catalog:
                meta = catalog.meta()
                placement = catalog.placement()
        except CorruptShardError as exc:
            raise InputError(str(exc)) from None
        recorded = _recorded_counts(meta)
        if recorded is None or not set(range(recorded[0])) <= set(placement):
            raise InputError(f"{self.location()}: the catalog records {meta.get('shards')} shard(s) placed on "
                             f"{len(placement)}")
        self._adopt_everywhere(*recorded)  # `wfctl shards add/remove` on any machine changes the catalog's
        shards = self.settings.shards
        self._placement = placement
        for dsn, numbers in _by_server(placement).items():
            session = self._admin(dsn, f"shards of {self.prefix}")
            try:
                def check(conn: psycopg.Connection) -> list[str]:
                    for shard in numbers:
                        check_shard_schema(conn, shard_schema(self.prefix, shard), shard,
                                           self.location(shard))
                    return [r[0] for r in conn.execute(
                        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname",
                        (f"{self.prefix}\\_shard\\_%",)).fetchall()]

                names = session.run(check, write=False, pipeline=False)
            except CorruptShardError as exc:
                raise InputError(str(exc)) from None
            except UnreachableError:
                continue  # down for now, not damaged: its shards say so when used
            finally:
                session.close()
            extra = sorted(n for n in names if n.removeprefix(f"{self.prefix}_shard_").isdigit()
                           and int(n.removeprefix(f"{self.prefix}_shard_")) >= shards)
            extra = self._not_empty(dsn, extra)  # an empty shard: a `shards add` cut short before it published
            if extra:
                raise InputError(f"{server_name(dsn)}: schema {extra[0]} is beyond the {shards} shard(s) of "
                                 f"deployment {self.prefix}")

    def _not_empty(self, dsn: str, schemas: list[str]) -> list[str]:
        """The schemas of ``schemas`` (on server ``dsn``) that are not empty shards: without a runs
        table (not a shard wfctl created: its DDL is one transaction) or with a run."""
        def check(conn: psycopg.Connection) -> list[str]:
            return [schema for schema in schemas
                    if conn.execute("SELECT to_regclass(%s)", (f"{schema}.runs",)).fetchone()[0] is None
                    or conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.runs)").format(
                        sql.Identifier(schema))).fetchone()[0]]

        session = self._admin(dsn, f"shards of {self.prefix}")
        try:
            return session.run(check, write=False, pipeline=False)
        finally:
            session.close()

    # -- changing the shard count ----------------------------------------------------------

    def create_shards(self, shards: range, *, now: float,
                      placement: Mapping[int, str] | None = None) -> dict[int, str]:
        """Create the shard schemas; a shard not in ``placement`` goes to the server of the shard
        before the new ones."""
        default = self.placement()[shards.start - 1] if shards.start else self.dsn
        placed = {shard: (placement or {}).get(shard, default) for shard in shards}
        for shard, dsn in placed.items():
            parse_dsn(dsn, f"placement of shard {shard}")
        for dsn, numbers in _by_server(placed).items():
            def create(conn: psycopg.Connection) -> None:
                for shard in numbers:
                    create_shard(conn, self.prefix, shard, now)

            self._run_locked(dsn, f"shards {numbers[0]}-{numbers[-1]}", create)
        return placed

    def publish_shards(self, expected: int, shards: int, key_shards: int,
                       placement: Mapping[int, str] | None = None) -> None:
        """One catalog transaction: the count and key count in ``meta``, the added shards' placement
        (a removed shard's row goes when it is dropped)."""
        schema = sql.Identifier(catalog_schema(self.prefix))

        def publish(conn: psycopg.Connection) -> None:
            (found,) = conn.execute(sql.SQL("SELECT value FROM {}.meta WHERE key = 'shards'").format(schema)).fetchone()
            if int(found) != expected:
                raise InputError(f"{self.deployment()}: the shard count changed meanwhile (now {found}, not "
                                 f"{expected}); run the command again")
            for shard, dsn in sorted((placement or {}).items()):
                conn.execute(sql.SQL("INSERT INTO {}.placement (shard, dsn) VALUES (%s, %s) ON CONFLICT (shard)"
                                     " DO UPDATE SET dsn = excluded.dsn").format(schema), (shard, dsn))
            for key, value in (("shards", shards), ("key_shards", key_shards)):
                conn.execute(sql.SQL("INSERT INTO {}.meta (key, value) VALUES (%s, %s) ON CONFLICT (key)"
                                     " DO UPDATE SET value = excluded.value").format(schema), (key, str(value)))

        self._run_locked(self.dsn, "catalog", publish)
        self._placement = None
        self._adopt_everywhere(shards, key_shards)

    def drop_shard(self, shard: int) -> bool:
        """Lock the shard's runs table exclusively, find it empty, drop the schema (one transaction:
        a start waiting on the lock then fails); then its placement row."""
        dsn = self.placement().get(shard)
        if dsn is None:
            return True
        schema = shard_schema(self.prefix, shard)

        def drop(conn: psycopg.Connection) -> bool:
            if conn.execute("SELECT to_regclass(%s)", (f"{schema}.runs",)).fetchone()[0] is not None:
                conn.execute(sql.SQL("LOCK TABLE {}.runs IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema)))
                if conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.runs)").format(
                        sql.Identifier(schema))).fetchone()[0]:
                    return False
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            return True

        if not self._run_locked(dsn, schema, drop):
            return False
        self._run_locked(self.dsn, "catalog", lambda conn: conn.execute(
            sql.SQL("DELETE FROM {}.placement WHERE shard = %s").format(sql.Identifier(catalog_schema(self.prefix))),
            (shard,)))
        self._placement = None
        return True

    def recorded_shards(self, catalog: Any) -> tuple[int, int | None]:
        """As the catalog's ``meta`` records them (every machine reads it)."""
        recorded = _recorded_counts(catalog.meta())
        if recorded is None:
            raise CorruptShardError(f"{self.location()}: the catalog records no shard count")
        return recorded

    def adopt_shards(self, shards: int, key_shards: int | None) -> bool:
        changed = super().adopt_shards(shards, key_shards)
        if changed:
            self._placement = None  # added shards: read where they live
        return changed

    def _adopt_everywhere(self, shards: int, key_shards: int | None) -> None:
        """Adopt the catalog's counts, and write them to this machine's ``wfctl.json`` (when it can:
        the catalog stays the truth)."""
        if not self.adopt_shards(shards, key_shards):
            return
        from dataclasses import replace

        from ..settings import SETTINGS_FILE, read_settings, settings_lock, write_settings

        try:
            if not (self.project / SETTINGS_FILE).exists():
                return
            with settings_lock(self.project):
                current = read_settings(self.project)
                if (current.shards, current.key_shards) != (shards, key_shards):
                    write_settings(self.project, replace(current, shards=shards, key_shards=key_shards))
        except (OSError, InputError):
            pass

    def describe(self) -> dict[str, Any]:
        """``{"backend": "postgresql", "version": "15.2", "server": "host:port/dbname",
        "max_connections": 100, "synchronous_commit": "on"}`` (the catalog's server; its defaults:
        wfctl's sessions set ``synchronous_commit`` from the durability)."""
        self._need_dsn()
        session = self._admin(self.dsn, "describe")
        try:
            version, max_connections, synchronous_commit = session.run(
                lambda conn: conn.execute("SELECT current_setting('server_version'),"
                                          " current_setting('max_connections')::int,"
                                          " current_setting('synchronous_commit')").fetchone(),
                write=False, pipeline=False)
        finally:
            session.close()
        return {"backend": self.name, "version": version.split()[0], "server": server_name(self.dsn),
                "max_connections": max_connections, "synchronous_commit": synchronous_commit}

    # -- opening ---------------------------------------------------------------------------

    def open_catalog(self) -> PostgresCatalogStore:
        """Open the catalog (CorruptShardError when its schema is missing or damaged)."""
        return PostgresCatalogStore(self.dsn, catalog_schema(self.prefix), durability=self.settings.durability,
                                    isolation=self.isolation, max_payload_bytes=self.settings.max_payload_bytes)

    def open_shard(self, shard: int) -> PostgresShardStore:
        """Open shard ``shard`` on the server the placement names."""
        self._check_shard(shard)
        return PostgresShardStore(self.placement()[shard], shard_schema(self.prefix, shard), shard,
                                  durability=self.settings.durability, isolation=self.isolation,
                                  max_payload_bytes=self.settings.max_payload_bytes,
                                  ready_channel=ready_channel(self.prefix, shard), hot_rows=self.settings.hot_rows)

    def waker(self, shards: Collection[int]) -> PostgresWaker:
        """A waker listening on every server holding some of ``shards`` (see :mod:`.waker`)."""
        channels: dict[str, dict[str, int]] = {}
        for shard in shards:
            self._check_shard(shard)
            channels.setdefault(self.placement()[shard], {})[ready_channel(self.prefix, shard)] = shard
        return PostgresWaker(channels, application_name(listener_name(self.prefix)))

    def observer(self) -> PostgresObserver:
        """An observer of every server of the deployment (see :mod:`.observer`)."""
        return PostgresObserver(self.prefix, list(dict.fromkeys([self.dsn, *self.placement().values()])))

    def location(self, shard: int | None = None) -> str:
        """``host:port/dbname schema wfctl_shard_003`` (None: the catalog); never a password."""
        if shard is None:
            return f"{server_name(self.dsn)} schema {catalog_schema(self.prefix)}"
        self._check_shard(shard)
        try:
            dsn = self.placement()[shard]
        except StoreError:  # the catalog cannot be read: name the schema at least
            return f"? schema {shard_schema(self.prefix, shard)}"
        return f"{server_name(dsn)} schema {shard_schema(self.prefix, shard)}"

    def _check_shard(self, shard: int) -> None:
        shards = self.settings.shards
        if not (isinstance(shard, int) and 0 <= shard < shards):
            raise InputError(f"deployment {self.prefix} has shards 0..{shards - 1}, not {shard!r}")

    def drop(self) -> None:
        """Drop every schema of this deployment (its shards on every server, then the catalog)."""
        try:
            placement = self.placement()
        except StoreError:
            placement = {}
        schemas_by_server = {dsn: [shard_schema(self.prefix, shard) for shard in numbers]
                             for dsn, numbers in _by_server(placement).items()}
        schemas_by_server.setdefault(self.dsn, []).append(catalog_schema(self.prefix))
        for dsn, schemas in schemas_by_server.items():
            def drop(conn: psycopg.Connection) -> None:
                for schema in schemas:
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

            self._run_locked(dsn, f"deployment {self.prefix}", drop)
        self._placement = None


def _recorded_counts(meta: Mapping[str, str]) -> tuple[int, int | None] | None:
    """``(shards, key_shards)`` from the catalog's ``meta`` (None when it records no count)."""
    try:
        shards = int(meta["shards"])
        return shards, int(meta["key_shards"]) if "key_shards" in meta else None
    except (KeyError, ValueError):
        return None


def _by_server(placement: Mapping[int, str]) -> dict[str, list[int]]:
    """Shard -> DSN as DSN -> its shards (in order)."""
    by_server: dict[str, list[int]] = {}
    for shard, dsn in sorted(placement.items()):
        by_server.setdefault(dsn, []).append(shard)
    return by_server
