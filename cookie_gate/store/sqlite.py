"""The embedded default store: one SQLite file in WAL mode.

Several worker processes may open the same file, so every write is a short
`BEGIN IMMEDIATE` transaction behind a busy timeout, and `secure_delete` makes
deleted rows unrecoverable from the file.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cookie_gate.store import DecisionRecord, StoreError

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
"""


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or path == "/":
        raise StoreError("a SQLite store URL looks like sqlite:///relative/file.sqlite3 or sqlite:////absolute/path")
    return path[1:]


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(sqlite_path(url))

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("PRAGMA secure_delete=ON")
                connection.executescript(_SCHEMA)
            except sqlite3.Error as error:
                raise StoreError(f"cannot open SQLite store {self.path!r}: {error}") from None
            self._connection = connection
        return self._connection

    def log_decision(self, record: DecisionRecord) -> None:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "INSERT INTO cookie_gate_consent_log VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.consent_id,
                        record.decided_at,
                        record.action,
                        " ".join(record.categories),
                        record.policy_version,
                        int(record.gpc),
                    ),
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def decisions(self, consent_id: str) -> list[DecisionRecord]:
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT consent_id, decided_at, action, categories, policy_version, gpc"
                    " FROM cookie_gate_consent_log WHERE consent_id = ? ORDER BY decided_at, rowid",
                    (consent_id,),
                )
                .fetchall()
            )
        return [DecisionRecord(row[0], row[1], row[2], tuple(row[3].split()), row[4], bool(row[5])) for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
