"""PostgreSQL store, for many app instances sharing one consent log.

Needs the `postgresql` extra (psycopg 3). One connection per store, used under a
lock from worker threads, reconnected when the server dropped it.
"""

from __future__ import annotations

import threading
from typing import Any

from cookie_gate.store import DecisionRecord, StoreError

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
"""


class PostgresStore:
    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg: pip install 'cookie-gate[postgresql]'") from None
        self._psycopg = psycopg
        self._url = url
        self._lock = threading.Lock()
        self._connection: Any = None

    def _connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            try:
                connection = self._psycopg.connect(self._url, autocommit=True, connect_timeout=10)
                with connection.transaction():
                    # Serialise concurrent first starts of several instances.
                    connection.execute("SELECT pg_advisory_xact_lock(7283019)")
                    connection.execute(_SCHEMA)
            except self._psycopg.Error as error:
                raise StoreError(f"cannot open PostgreSQL store: {type(error).__name__}") from None
            self._connection = connection
        return self._connection

    def log_decision(self, record: DecisionRecord) -> None:
        with self._lock:
            self._connect().execute(
                "INSERT INTO cookie_gate_consent_log (consent_id, decided_at, action, categories, policy_version, gpc)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    record.consent_id,
                    record.decided_at,
                    record.action,
                    " ".join(record.categories),
                    record.policy_version,
                    record.gpc,
                ),
            )

    def decisions(self, consent_id: str) -> list[DecisionRecord]:
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT consent_id, decided_at, action, categories, policy_version, gpc"
                    " FROM cookie_gate_consent_log WHERE consent_id = %s ORDER BY decided_at, seq",
                    (consent_id,),
                )
                .fetchall()
            )
        return [DecisionRecord(r[0], r[1], r[2], tuple(r[3].split()), r[4], bool(r[5])) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
