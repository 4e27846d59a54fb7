"""PostgreSQL store, for many app instances sharing one consent log and one set of counters.

Needs the `postgresql` extra (psycopg 3). One connection per store, used under a
lock from the writer and worker threads, reconnected when the server dropped it.
Connecting, every statement and unanswered TCP sends are bounded by `timeout`, so a
server that hangs costs a bounded wait, never a stuck shutdown. A server that still
acknowledges packets but never answers (stopped, or a proxy whose far side is gone)
defeats all three, so every statement also runs under a watchdog that shuts the
socket down beneath libpq when the server has not answered it in time. The watchdog
measures one statement, not the transaction: a big batch is many short statements
(see `ROWS_PER_STATEMENT`), and a healthy server answers each of them in time.

The watchdog is one long-lived thread per store, started with the first statement and
handed deadlines, never a thread per transaction: Python 3.12 refuses to start threads
once the interpreter is exiting, which is when the exit flush runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
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

    def __init__(
        self, url: str, *, timeout: float = 2.0, thread_factory: Callable[..., threading.Thread] = threading.Thread
    ) -> None:
        """`thread_factory` makes the watchdog's one thread (`threading.Thread` by default): an
        embedding that tracks or names its threads passes its own, and so do tests that count them."""
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
        self._watchdog = _Watchdog(self._statement_ms / 1000 + 1.0, thread_factory)
        weakref.finalize(self, self._watchdog.close)

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
                keepalives_idle=self._connect_timeout,
                keepalives_interval=1,
                keepalives_count=3,
            )
            with self._watchdog.watching(connection):
                cursor = _WatchedCursor(connection.cursor(), self._watchdog, connection)
                cursor.execute(f"SET statement_timeout = {self._statement_ms}")
                cursor.execute(f"SET lock_timeout = {self._statement_ms}")
                with connection.transaction():
                    # Serialise the first start of several instances at once.
                    cursor.execute("SELECT pg_advisory_xact_lock(7283019)")
                    cursor.execute(_SCHEMA)
                    self._migrate(cursor)
                    self._watchdog.arm(connection)  # the commit
        except self._psycopg.Error as error:
            if connection is not None:
                connection.close()
            raise StoreError(f"cannot open PostgreSQL store: {_reason(error)}") from None
        except StoreError:  # a schema newer than this release
            if connection is not None:
                connection.close()
            raise
        return connection

    def _claim_visitors(self, cursor: Any, day: str, first_minutes: Mapping[bytes, int]) -> dict[bytes, int | None]:
        """Insert the keys never seen (they come back from RETURNING), then read and lock the
        others' rows: another process that inserted one first waits for our commit, or we for its."""
        keys = list(first_minutes)
        cursor.execute(
            "INSERT INTO cookie_gate_visitor_day (day, vkey, last_minute)"
            " SELECT %s, k, m FROM unnest(%s::bytea[], %s::bigint[]) AS t (k, m)"
            " ON CONFLICT (day, vkey) DO NOTHING RETURNING vkey",
            (day, keys, [first_minutes[key] for key in keys]),
        )
        stored: dict[bytes, int | None] = {bytes(row[0]): None for row in cursor.fetchall()}
        known = [key for key in keys if key not in stored]
        if known:
            cursor.execute(
                "SELECT vkey, last_minute FROM cookie_gate_visitor_day"
                " WHERE day = %s AND vkey = ANY(%s::bytea[]) ORDER BY vkey FOR UPDATE",
                (day, known),
            )
            stored.update((bytes(key), int(minute)) for key, minute in cursor.fetchall())
        return stored

    def _set_last_minutes(self, cursor: Any, day: str, rows: Sequence[tuple[bytes, int]]) -> None:
        cursor.execute(
            "UPDATE cookie_gate_visitor_day AS v SET last_minute = t.m"
            " FROM unnest(%s::bytea[], %s::bigint[]) AS t (k, m) WHERE v.day = %s AND v.vkey = t.k",
            ([key for key, _ in rows], [minute for _, minute in rows], day),
        )

    def _after_purge(self) -> None:
        """Rewrite the purged tables: a DELETE leaves the rows' bytes in the data pages until
        their space is reused, so purged data would stay readable on disk. VACUUM FULL writes
        fresh files and drops the old ones; it locks each small table for a moment, once a day."""
        with self._lock:
            connection = self._connected()
            try:
                connection.execute("SET statement_timeout = 0")  # rewriting a big table takes what it takes
                try:
                    for table in _PURGED:
                        connection.execute(f"VACUUM FULL {table}")
                finally:
                    with self._watchdog.watching(connection):
                        connection.execute(f"SET statement_timeout = {self._statement_ms}")
            except self._psycopg.Error as error:
                self._connection = None  # the session's timeouts are unknown now: start a fresh one
                with suppress(self._psycopg.Error):
                    connection.close()
                raise StoreError(f"PostgreSQL store could not vacuum after the purge: {type(error).__name__}") from None

    @contextmanager
    def _transaction(self, connection: Any) -> Iterator[Any]:
        try:
            with self._watchdog.watching(connection), connection.cursor() as raw, connection.transaction():
                yield _WatchedCursor(raw, self._watchdog, connection)
                self._watchdog.arm(connection)  # the commit is a round trip too
        except self._psycopg.OperationalError as error:
            self._connection = None  # reconnect next time
            with suppress(self._psycopg.Error):
                connection.close()
            raise StoreError(f"PostgreSQL store is unavailable: {_reason(error)}") from None
        except self._psycopg.Error as error:
            raise StoreError(f"PostgreSQL store failed: {type(error).__name__}: {error.diag.message_primary}") from None


class _Watchdog:
    """One thread that cuts a connection whose current statement went unanswered past its deadline.

    `arm` (before each statement) pushes the deadline `seconds` ahead; leaving `watching`
    disarms it. The thread starts with the first `arm` that needs it (again in a forked
    child, where it does not exist) and ends with `close`."""

    def __init__(self, seconds: float, thread_factory: Callable[..., threading.Thread] = threading.Thread) -> None:
        self.seconds = seconds
        self._thread_factory = thread_factory
        self._condition = threading.Condition()
        self._deadline: float | None = None
        self._connection: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def watching(self, connection: Any) -> Iterator[None]:
        self.arm(connection)
        try:
            yield
        finally:
            with self._condition:
                self._deadline = self._connection = None

    def arm(self, connection: Any) -> None:
        with self._condition:
            self._closed = False
            self._deadline = time.monotonic() + self.seconds
            self._connection = connection
            if self._thread is None or not self._thread.is_alive():
                self._start()
            self._condition.notify()

    def _start(self) -> None:
        thread = self._thread_factory(target=self._run, name="cookie-gate-pg-watchdog", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # the interpreter is exiting: the statement and TCP timeouts remain
            return
        self._thread = thread

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify()

    def _run(self) -> None:
        with self._condition:
            while not self._closed:
                if self._deadline is None:
                    self._condition.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._condition.wait(left)
                    continue
                _cut(self._connection)
                self._deadline = self._connection = None


class _WatchedCursor:
    """A psycopg cursor whose every statement re-arms the watchdog."""

    def __init__(self, cursor: Any, watchdog: _Watchdog, connection: Any) -> None:
        self._cursor = cursor
        self._watchdog = watchdog
        self._connection = connection

    def execute(self, statement: str, parameters: Any = None) -> None:
        self._watchdog.arm(self._connection)
        self._cursor.execute(statement, parameters)

    def executemany(self, statement: str, rows: Any) -> None:
        self._watchdog.arm(self._connection)
        self._cursor.executemany(statement, rows)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


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
