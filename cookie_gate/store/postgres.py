"""PostgreSQL store, for many app instances sharing one consent log and one set of counters.

Needs the `postgresql` extra (psycopg 3). One connection per store, used under a
lock from the writer and worker threads, reconnected when the server dropped it.
Connecting, every statement and unanswered TCP sends are bounded by `timeout`, so a
server that hangs costs a bounded wait, never a stuck shutdown. A server that still
acknowledges packets but never answers (stopped, or a proxy whose far side is gone)
defeats all three, so each transaction also runs under a watchdog that shuts the
socket down beneath libpq when its time is up.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cookie_gate_consent_log (
    consent_id TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    gpc BOOLEAN NOT NULL,
    seq BIGSERIAL
);
CREATE INDEX IF NOT EXISTS cookie_gate_consent_log_by_id ON cookie_gate_consent_log (consent_id, decided_at);
CREATE TABLE IF NOT EXISTS cookie_gate_hourly (
    hour TEXT NOT NULL, metric TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (hour, metric)
);
CREATE TABLE IF NOT EXISTS cookie_gate_daily (
    day TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (day, kind, value)
);
CREATE TABLE IF NOT EXISTS cookie_gate_detail (
    day TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (day, kind, value)
);
CREATE TABLE IF NOT EXISTS cookie_gate_inventory (
    name TEXT PRIMARY KEY, category TEXT NOT NULL, source TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cookie_gate_salt (day TEXT PRIMARY KEY, salt BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS cookie_gate_visitor_day (
    day TEXT NOT NULL, vkey BYTEA NOT NULL, last_minute BIGINT NOT NULL, PRIMARY KEY (day, vkey)
);
"""


_PURGED = (
    "cookie_gate_detail",
    "cookie_gate_daily",
    "cookie_gate_hourly",
    "cookie_gate_salt",
    "cookie_gate_visitor_day",
    "cookie_gate_consent_log",
    "cookie_gate_inventory",
)


class PostgresStore(SQLStore):
    placeholder = "%s"
    order_column = "seq"

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg: pip install 'cookie-gate[postgresql]'") from None
        self._psycopg = psycopg
        self._url = url
        # libpq counts connect_timeout in whole seconds and treats 1 as 2.
        self._connect_timeout = max(2, int(timeout))
        self._statement_ms = max(100, int(timeout * 1000))
        #: The server's own statement timeout answers first; the watchdog is for servers that cannot.
        self._watchdog_seconds = self._statement_ms / 1000 + 1.0

    def _connected(self) -> Any:
        if self._connection is not None and self._connection.closed:
            self._connection = None
        return super()._connected()

    def _connect(self) -> Any:
        connection = None
        try:
            connection = self._psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                tcp_user_timeout=self._statement_ms,
                keepalives_idle=max(1, self._connect_timeout),
                keepalives_interval=1,
                keepalives_count=3,
            )
            with self._watchdog(connection):
                connection.execute(f"SET statement_timeout = {self._statement_ms}")
                connection.execute(f"SET lock_timeout = {self._statement_ms}")
                with connection.transaction():
                    # Serialise the first start of several instances at once.
                    connection.execute("SELECT pg_advisory_xact_lock(7283019)")
                    connection.execute(_SCHEMA)
                    with connection.cursor() as cursor:
                        self._migrate(cursor)
        except self._psycopg.Error as error:
            if connection is not None:
                connection.close()
            raise StoreError(f"cannot open PostgreSQL store: {_reason(error)}") from None
        return connection

    @contextmanager
    def _watchdog(self, connection: Any) -> Iterator[None]:
        timer = threading.Timer(self._watchdog_seconds, _cut, (connection,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _after_purge(self) -> None:
        """Rewrite the purged tables: a DELETE leaves the rows' bytes in the data pages until
        their space is reused, so purged data would stay readable on disk. VACUUM FULL writes
        fresh files and drops the old ones; it locks each small table for a moment, once a day."""
        with self._lock:
            connection = self._connected()
            try:
                connection.execute("SET statement_timeout = 0")  # rewriting a big table takes what it takes
                for table in _PURGED:
                    connection.execute(f"VACUUM FULL {table}")
                connection.execute(f"SET statement_timeout = {self._statement_ms}")
            except self._psycopg.Error as error:
                raise StoreError(f"PostgreSQL store could not vacuum after the purge: {type(error).__name__}") from None

    @contextmanager
    def _transaction(self, connection: Any) -> Iterator[Any]:
        try:
            with self._watchdog(connection), connection.transaction(), connection.cursor() as cursor:
                yield cursor
        except self._psycopg.OperationalError as error:
            self._connection = None  # reconnect next time
            with suppress(self._psycopg.Error):
                connection.close()
            raise StoreError(f"PostgreSQL store is unavailable: {_reason(error)}") from None
        except self._psycopg.Error as error:
            raise StoreError(f"PostgreSQL store failed: {type(error).__name__}: {error.diag.message_primary}") from None


def _cut(connection: Any) -> None:
    """Wake libpq from a wait on a server that stopped answering: shutting the socket down
    (through a duplicate of its descriptor) makes the wait return, and the query fail."""
    with suppress(Exception):
        descriptor = os.dup(connection.pgconn.socket)
        with socket.socket(fileno=descriptor) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)


_CAUSES = (
    ("connection refused", "connection refused"),
    ("timeout", "timed out"),
    ("timed out", "timed out"),
    ("server closed the connection", "the server stopped answering"),
    ("authentication failed", "authentication failed"),
    ("does not exist", "database or role does not exist"),
    ("translate host name", "host name not found"),
    ("no route to host", "no route to host"),
    ("read-only", "read-only"),
)


def _reason(error: Exception) -> str:
    """The error's kind and cause in a few words, without libpq's text (host, port, user)."""
    text = str(error).lower()
    cause = next((cause for phrase, cause in _CAUSES if phrase in text), None)
    return f"{type(error).__name__} ({cause})" if cause else type(error).__name__
