"""Wake-ups by LISTEN/NOTIFY: a worker's :class:`PostgresWaker`, one listening connection per server.

A start (``start_run``, ``create_runs``) sends ``pg_notify('<prefix>_shard_NNN_ready', '')`` in
its own transaction right after the start's COMMIT, in the same round trip (see
:meth:`~wfctl.store.postgresql.connection.Session.run`'s ``after_commit``): a notifying commit
takes the server's global notification lock, which the start's own commit (and its WAL flush)
then never waits for. The waker's threads each hold one connection to a server, LISTEN on the
channels of the worker's shards placed there, and wake the worker with the shard of every
notification. A broken listener reconnects with backoff; while any is down the waker is not
:attr:`~PostgresWaker.listening` (the worker polls), and once it listens again it wakes every shard
of its server (what was announced meanwhile is lost).
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Mapping

import psycopg
from psycopg import sql

from ..waker import Waker
from .connection import CONNECT_TIMEOUT_S, RECONNECT_CAP_S, RECONNECT_START_S, parse_dsn, server_name

_log = logging.getLogger("wfctl.store.postgresql")


class PostgresWaker(Waker):
    """A :class:`~wfctl.store.waker.Waker` fed by LISTEN: ``channels`` maps each server's DSN to
    ``{channel: shard}`` for the shards to watch there; ``name`` its sessions' ``application_name``.
    Close it to stop its threads."""

    def __init__(self, channels: Mapping[str, Mapping[str, int]], name: str = "wfctl listener"):
        super().__init__()
        self._name = name
        self._stop = threading.Event()
        self._stop_r, self._stop_w = os.pipe()
        self._connected: set[str] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._listen, args=(dsn, dict(by_channel)), daemon=True,
                                          name=f"wfctl-listen-{server_name(dsn)}")
                         for dsn, by_channel in channels.items()]
        for thread in self._threads:
            thread.start()

    @property
    def listening(self) -> bool:
        """True while every server's listener is connected and subscribed."""
        with self._lock:
            return not self._stop.is_set() and len(self._connected) == len(self._threads)

    def _connect(self, dsn: str, channels: Mapping[str, int]) -> psycopg.Connection:
        params = parse_dsn(dsn, "listener")
        timeout = params.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT") or CONNECT_TIMEOUT_S
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=int(timeout), application_name=self._name,
                               keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
        try:
            for channel in channels:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self, dsn: str, channels: dict[str, int]) -> None:
        """In a thread: listen on ``channels`` of server ``dsn`` until closed, reconnecting."""
        delay = RECONNECT_START_S
        while not self._stop.is_set():
            try:
                with self._connect(dsn, channels) as conn:
                    with self._lock:
                        self._connected.add(dsn)
                    self.wake(*channels.values())  # what was announced before we listened
                    delay = RECONNECT_START_S
                    self._receive(conn, channels)
            except (psycopg.Error, OSError) as exc:
                _log.info("%s: the listener lost its connection (%s); reconnecting", server_name(dsn),
                          " ".join(str(exc).split())[:200])
            finally:
                with self._lock:
                    self._connected.discard(dsn)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RECONNECT_CAP_S)

    def _receive(self, conn: psycopg.Connection, channels: dict[str, int]) -> None:
        """Wake the worker with the shard of every notification until closed (raises when the
        connection breaks)."""
        with selectors.DefaultSelector() as selector:  # not select(): a worker may hold over 1024 fds
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._stop_r, selectors.EVENT_READ)
            while True:
                if any(key.fd == self._stop_r for key, _ in selector.select()):
                    return
                shards = {channels[n.channel] for n in conn.notifies(timeout=0) if n.channel in channels}
                if conn.broken or conn.closed:
                    raise psycopg.OperationalError("the connection was closed")
                if shards:
                    self.wake(*shards)

    def close(self) -> None:
        """Stop listening: the threads close their connections and end."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._stop_w, b"x")
        for thread in self._threads:
            thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)
