"""The embedded default store: one SQLite file in WAL mode.

Several worker processes may open the same file, so every write is a short
`BEGIN IMMEDIATE` transaction behind a busy timeout (a deferred transaction that
reads first can fail with SQLITE_BUSY instead of waiting). `secure_delete` zeroes
deleted rows, and a purge ends with a checkpoint that truncates the WAL, so purged
data is gone from both files.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from cookie_gate.store import StoreError
from cookie_gate.store.sql import HEALTH_WAIT_SECONDS, SQLStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cookie_gate_consent_log (
    consent_id TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    gpc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cookie_gate_consent_log_by_id ON cookie_gate_consent_log (consent_id, decided_at);
CREATE TABLE IF NOT EXISTS cookie_gate_hourly (
    hour TEXT NOT NULL, metric TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (hour, metric)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cookie_gate_daily (
    day TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cookie_gate_detail (
    day TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cookie_gate_inventory (
    name TEXT PRIMARY KEY, category TEXT NOT NULL, source TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cookie_gate_salt (day TEXT PRIMARY KEY, salt BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cookie_gate_visitor_day (
    day TEXT NOT NULL, vkey BLOB NOT NULL, last_minute INTEGER NOT NULL, PRIMARY KEY (day, vkey)
) WITHOUT ROWID;
"""


_OPEN_TIMEOUT = 30.0
#: How long a write waits for another process's write to the same file, unless the store is
#: given its own `busy_timeout` (`sqlite:///gate.sqlite3?busy_timeout=5`, in seconds).
BUSY_TIMEOUT = 30.0


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or path == "/":
        raise StoreError("a SQLite store URL looks like sqlite:///relative/file.sqlite3 or sqlite:////absolute/path")
    return path[1:]


def sqlite_busy_timeout(url: str) -> float:
    """The URL's `busy_timeout` (seconds), else `BUSY_TIMEOUT`: shorter where another process's
    long writes should make statistics wait in memory rather than hold the writer thread."""
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "busy_timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 3600:
                raise StoreError(f"busy_timeout={value!r} in the SQLite store URL must be seconds from 0 to 3600")
            return seconds
    return BUSY_TIMEOUT


class SQLiteStore(SQLStore):
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = BUSY_TIMEOUT,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """`on_connect` is called with the connection once it is open and migrated: a place for an
        operator's own pragmas, a trace callback or a progress handler when profiling the store."""
        super().__init__()
        self.path = str(path)
        #: Seconds a write waits for another connection's write to the same file before failing.
        self.busy_timeout = busy_timeout
        self._on_connect = on_connect

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(sqlite_path(url), busy_timeout=sqlite_busy_timeout(url))

    def _connect(self) -> sqlite3.Connection:
        # Switching a fresh file to WAL answers "database is locked" at once, whatever the
        # busy timeout, while another process does the same: so retry for a while.
        deadline = time.monotonic() + _OPEN_TIMEOUT
        pause = 0.01
        while True:
            connection = None
            try:
                connection = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA secure_delete=ON")
                connection.executescript(_SCHEMA)
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")  # one process at a time applies a schema version
                try:
                    self._migrate(cursor)
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
                finally:
                    cursor.close()
                if self._on_connect is not None:
                    self._on_connect(connection)
                return connection
            except sqlite3.OperationalError as error:
                if connection is not None:
                    connection.close()
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open SQLite store {self.path!r}: {error}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
            except sqlite3.Error as error:
                if connection is not None:
                    connection.close()
                raise StoreError(f"cannot open SQLite store {self.path!r}: {error}") from None
            except StoreError:  # a schema newer than this release
                if connection is not None:
                    connection.close()
                raise

    @contextmanager
    def _waiting_briefly(self, connection: sqlite3.Connection) -> Iterator[None]:
        connection.execute(f"PRAGMA busy_timeout = {int(HEALTH_WAIT_SECONDS * 1000)}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    @contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path!r} is unavailable: {error}") from None
        try:
            yield cursor
        except sqlite3.Error as error:
            connection.rollback()
            raise StoreError(f"SQLite store {self.path!r} failed: {error}") from None
        except BaseException:
            connection.rollback()
            raise
        else:
            try:
                connection.commit()
            except sqlite3.Error as error:
                connection.rollback()
                raise StoreError(f"SQLite store {self.path!r} could not commit: {error}") from None
        finally:
            cursor.close()

    def _after_purge(self) -> None:
        with self._lock:
            self._connected().execute("PRAGMA wal_checkpoint(TRUNCATE)")
