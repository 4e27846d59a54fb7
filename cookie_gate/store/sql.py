"""Everything the SQLite and PostgreSQL stores share: the SQL itself.

Both speak the same dialect subset: counters are only ever incremented with
`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`, so any number of
processes can flush the same bucket at once and the totals still add up. The
backends differ only in how they connect, open a transaction and spell a
placeholder.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cookie_gate.store import DecisionRecord, StoreError

K = TypeVar("K")
T = TypeVar("T")
#: The schema version this code writes. Version 1 is the tables as first released, and each
#: backend's `_SCHEMA` stays frozen at version 1: every later version is only a list of statements
#: in `MIGRATIONS`, applied once, in order, on top of it, under the backend's start-up lock, and
#: recorded in `cookie_gate_schema`. So a fresh store and an upgraded one run the same statements
#: and end identical. A store already at a version newer than this is refused (StoreError).
SCHEMA_VERSION = 2
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Proof of consent: how each decision came (`METHODS`), in which locale, and the digest of
    # the banner it was made on. Older rows keep '' (not recorded); an index serves `--since`.
    2: (
        "ALTER TABLE cookie_gate_consent_log ADD COLUMN method TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE cookie_gate_consent_log ADD COLUMN locale TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE cookie_gate_consent_log ADD COLUMN shown TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX IF NOT EXISTS cookie_gate_consent_log_by_time ON cookie_gate_consent_log (decided_at)",
    ),
}
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS cookie_gate_schema (version INTEGER PRIMARY KEY)"
_DECISION_COLUMNS = "consent_id, decided_at, action, categories, policy_version, gpc, method, locale, shown"
#: Rows one query of an export reads: the export of three years of decisions streams in pages.
EXPORT_PAGE = 1000
#: The daily-hash rule: a visitor seen again within this many minutes continues a visit.
VISIT_GAP_MINUTES = 30
#: How long a health check's answer is reused: a monitor polling often costs the store little.
HEALTH_CACHE_SECONDS = 5.0
#: How long a health check waits for the store (its lock, a busy SQLite file) before saying so.
HEALTH_WAIT_SECONDS = 1.0
#: Rows one statement (or one `executemany`) carries: a big batch is many short statements, each
#: answered well within the statement timeout, never one long one.
ROWS_PER_STATEMENT = 1000
#: The detail kinds (`cookie_gate_detail.kind`) the report ranks, and how many of each it reads.
DETAIL_KINDS = ("path", "referrer")
DETAIL_TOP = 20


@dataclass
class StatsBatch:
    """Counter increments gathered by the writer, plus the day's hashed visitor keys."""

    hourly: dict[tuple[str, str], int] = field(default_factory=dict)  # (local hour, metric)
    daily: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (local day, kind, value): aggregates
    detail: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (local day, kind, value): paths, referrers
    visitors: list[tuple[str, str, bytes, int]] = field(default_factory=list)  # (day, hour, key, minute)
    cookies: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # name -> (category, source, day seen)

    def add(self, table: dict[Any, int], key: Any, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def merge(self, other: StatsBatch) -> None:
        _add_all(self.hourly, other.hourly)
        _add_all(self.daily, other.daily)
        _add_all(self.detail, other.detail)
        self.visitors.extend(other.visitors)
        self.cookies.update(other.cookies)

    def __bool__(self) -> bool:
        return bool(self.hourly or self.daily or self.detail or self.visitors or self.cookies)

    @property
    def size(self) -> int:
        return len(self.hourly) + len(self.daily) + len(self.detail) + len(self.visitors) + len(self.cookies)


def _decision_record(row: Any) -> DecisionRecord:
    return DecisionRecord(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        tuple(str(row[3]).split()),
        str(row[4]),
        bool(row[5]),
        method=str(row[6]),
        locale=str(row[7]),
        shown=str(row[8]),
    )


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _add_all(mine: dict[K, int], theirs: Mapping[K, int]) -> None:
    for key, n in theirs.items():
        mine[key] = mine.get(key, 0) + n


#: Decisions are counted per quarter hour: every time zone's offset is a whole number of
#: quarter hours, so each bucket falls inside one local day wherever the site is.
DECISION_BUCKET_SECONDS = 900


@dataclass(frozen=True, slots=True)
class DecisionCount:
    """How many decisions of one kind were logged in one quarter hour."""

    action: str
    categories: str  # the accepted categories, space-separated
    gpc: bool
    bucket: int  # start of the quarter hour, UTC seconds
    n: int


@dataclass(frozen=True)
class StoreHealth:
    """What one health check found: None, or why the store cannot be written; its schema version."""

    problem: str | None
    schema_version: int | None


@dataclass(frozen=True)
class StatsRows:
    hourly: list[tuple[str, str, int]]
    daily: list[tuple[str, str, str, int]]
    detail: list[tuple[str, str, int]]  # (kind, value, n summed over the days), the top of each kind, ranked
    decisions: list[DecisionCount]


class SQLStore:
    """Shared implementation; subclasses provide `_connect`, `_transaction` and `_schema`."""

    placeholder = "?"
    #: Column that orders decisions logged in the same second.
    order_column = "rowid"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None
        self._last_health: tuple[float, StoreHealth] | None = None

    # -- for subclasses ----------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _transaction(self, connection: Any) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _waiting_briefly(self, connection: Any) -> AbstractContextManager[Any]:
        """Around a health check: the backend's own waits for a busy store cut to `HEALTH_WAIT_SECONDS`."""
        return nullcontext()

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _connected(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    # -- schema versions and health ----------------------------------------------------------

    def _migrate(self, cursor: Any) -> None:
        """Bring the schema to `SCHEMA_VERSION`; the caller holds the start-up lock, so two
        instances starting at once apply each version once."""
        cursor.execute(VERSION_TABLE)
        cursor.execute("SELECT MAX(version) FROM cookie_gate_schema")
        current = cursor.fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the store's schema is version {current}, newer than this release's {SCHEMA_VERSION}:"
                " a newer cookie_gate migrated it; upgrade this one too"
            )
        for version in range(max(current, 1), SCHEMA_VERSION + 1):
            if version > current:
                for statement in MIGRATIONS.get(version, ()):
                    cursor.execute(statement)
                cursor.execute(self._sql("INSERT INTO cookie_gate_schema (version) VALUES (?)"), (version,))

    @property
    def busy(self) -> bool:
        """Whether a statement of this process holds the store now (a write in progress, or one
        stuck waiting for a hung database): what a health check waits for, at most briefly."""
        return self._lock.locked()

    def schema_version(self) -> int:
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute("SELECT MAX(version) FROM cookie_gate_schema")
            return int(cursor.fetchone()[0] or 0)

    def health(self, now: float) -> StoreHealth:
        """Write and remove a probe row and read the schema version, in one transaction; the answer
        is reused for `HEALTH_CACHE_SECONDS` of `now` (the caller's clock). It never waits more than
        about `HEALTH_WAIT_SECONDS` for a store another thread or process is busy with."""
        last = self._last_health
        if last is not None and 0 <= now - last[0] < HEALTH_CACHE_SECONDS:
            return last[1]
        found = self._check_health()
        self._last_health = (now, found)
        return found

    def _check_health(self) -> StoreHealth:
        if not self._lock.acquire(timeout=HEALTH_WAIT_SECONDS):
            return StoreHealth(f"the store is busy: another write has held it over {HEALTH_WAIT_SECONDS:g} s", None)
        try:
            connection = self._connected()
            with self._waiting_briefly(connection), self._transaction(connection) as cursor:
                cursor.execute(
                    self._sql("INSERT INTO cookie_gate_hourly (hour, metric, n) VALUES (?, ?, ?)"),
                    ("probe", "probe", 0),
                )
                cursor.execute(
                    self._sql("DELETE FROM cookie_gate_hourly WHERE hour = ? AND metric = ?"), ("probe", "probe")
                )
                cursor.execute("SELECT MAX(version) FROM cookie_gate_schema")
                return StoreHealth(None, int(cursor.fetchone()[0] or 0))
        except StoreError as error:
            return StoreHealth(str(error), None)
        finally:
            self._lock.release()

    def probe(self) -> None:
        """Open the store and write and remove a row in one transaction; StoreError names the problem."""
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql("INSERT INTO cookie_gate_hourly (hour, metric, n) VALUES (?, ?, ?)"), ("probe", "probe", 0)
            )
            cursor.execute(
                self._sql("DELETE FROM cookie_gate_hourly WHERE hour = ? AND metric = ?"), ("probe", "probe")
            )

    # -- consent log -------------------------------------------------------------------------

    def log_decision(self, record: DecisionRecord) -> None:
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql(
                    f"INSERT INTO cookie_gate_consent_log ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    record.consent_id,
                    record.decided_at,
                    record.action,
                    " ".join(record.categories),
                    record.policy_version,
                    record.gpc,
                    record.method,
                    record.locale,
                    record.shown,
                ),
            )

    #: The decisions `decisions` returns unless asked for another number.
    MAX_HISTORY = 200

    def decisions(self, consent_id: str, *, limit: int = MAX_HISTORY) -> list[DecisionRecord]:
        """The newest `limit` decisions logged under `consent_id`, oldest first.

        Bounded because anyone can log as many decisions under their own id as they like,
        and the read holds the store's lock: ask for one more than you show to learn
        whether there were more (`consent_log` reads the whole log, a page at a time).
        """
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql(
                    f"SELECT {_DECISION_COLUMNS} FROM cookie_gate_consent_log WHERE consent_id = ?"
                    f" ORDER BY decided_at DESC, {self.order_column} DESC LIMIT ?"
                ),
                (consent_id, max(0, limit)),
            )
            rows = cursor.fetchall()
        return [_decision_record(row) for row in reversed(rows)]

    def consent_log(
        self, *, since: int | None = None, consent_id: str | None = None, page: int = EXPORT_PAGE
    ) -> Iterator[DecisionRecord]:
        """Every logged decision (from `since`, of `consent_id`), oldest first, read `page` rows
        at a time so an export of years of decisions holds one page in memory, and the lock
        for one query at a time. A page shows the rows committed by the time it is read: on a
        live PostgreSQL store a row committed later with an earlier key than the page already
        read (a slow transaction) is not in this export; the next export has it."""
        lowest = since if since is not None else -(2**62)
        order = self.order_column
        after: tuple[int, int] | None = None
        while True:
            # Each page starts its index range at the last row read, never at `since` again, so a
            # full export reads each row once rather than every earlier page once more per page.
            clause = "decided_at >= ?"
            parameters: list[Any] = [lowest if after is None else max(lowest, after[0])]
            if consent_id is not None:
                clause += " AND consent_id = ?"
                parameters.append(consent_id)
            if after is not None:
                clause += f" AND (decided_at > ? OR {order} > ?)"
                parameters += [after[0], after[1]]
            with self._lock, self._transaction(self._connected()) as cursor:
                cursor.execute(
                    self._sql(
                        f"SELECT {_DECISION_COLUMNS}, {order} FROM cookie_gate_consent_log WHERE {clause}"
                        f" ORDER BY decided_at, {order} LIMIT {int(page)}"
                    ),
                    parameters,
                )
                rows = cursor.fetchall()
            for row in rows:
                yield _decision_record(row)
            if len(rows) < page:
                return
            after = (int(rows[-1][1]), int(rows[-1][-1]))

    def withdrawals(self, consent_ids: list[str]) -> dict[str, int]:
        """The latest withdrawal time of each of `consent_ids` that was ever withdrawn."""
        if not consent_ids:
            return {}
        marks = ", ".join("?" * len(consent_ids))
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT consent_id, MAX(decided_at) FROM cookie_gate_consent_log"
                    f" WHERE action = 'withdraw' AND consent_id IN ({marks}) GROUP BY consent_id"
                ),
                consent_ids,
            )
            return {str(row[0]): int(row[1]) for row in cursor.fetchall()}

    # -- statistics --------------------------------------------------------------------------

    def add_stats(self, batch: StatsBatch) -> None:
        """Apply one batch atomically: either every increment lands or none does."""
        with self._lock, self._transaction(self._connected()) as cursor:
            self._upsert(cursor, "cookie_gate_hourly", ("hour", "metric"), batch.hourly)
            self._upsert(cursor, "cookie_gate_daily", ("day", "kind", "value"), batch.daily)
            self._upsert(cursor, "cookie_gate_detail", ("day", "kind", "value"), batch.detail)
            if batch.visitors:
                self._upsert(
                    cursor, "cookie_gate_hourly", ("hour", "metric"), self._see_visitors(cursor, batch.visitors)
                )
            if batch.cookies:
                cursor.executemany(
                    self._sql(
                        "INSERT INTO cookie_gate_inventory (name, category, source, first_seen, last_seen)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET category = excluded.category,"
                        " source = excluded.source, last_seen = excluded.last_seen"
                    ),
                    [(name, c, s, day, day) for name, (c, s, day) in sorted(batch.cookies.items())],
                )

    def _upsert(self, cursor: Any, table: str, key: tuple[str, ...], increments: Mapping[Any, int]) -> None:
        if not increments:
            return
        columns = ", ".join((*key, "n"))
        marks = ", ".join("?" * (len(key) + 1))
        statement = self._sql(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET n = {table}.n + excluded.n"
        )
        for rows in _chunks([(*k, n) for k, n in sorted(increments.items())], ROWS_PER_STATEMENT):
            cursor.executemany(statement, rows)

    def _see_visitors(self, cursor: Any, visitors: Sequence[tuple[str, str, bytes, int]]) -> dict[tuple[str, str], int]:
        """The hourly metrics a batch of daily-hashed sightings adds: each key first seen today is a
        new visitor and a visit; a key seen again more than `VISIT_GAP_MINUTES` after its last
        sighting opens a new visit. Set-based, a few statements per thousand keys: the backend
        claims the keys (inserting the new ones, locking the others' rows until the commit, so
        processes flushing the same visitor at once still count it once), the rule is applied here
        to each key's sightings in minute order, and the last minutes that moved are written back."""
        counts: dict[tuple[str, str], int] = {}
        by_day: dict[str, dict[bytes, list[tuple[int, str]]]] = {}
        for day, hour, key, minute in visitors:
            by_day.setdefault(day, {}).setdefault(key, []).append((minute, hour))
        for day, keys in sorted(by_day.items()):
            for chunk in _chunks(sorted(keys.items()), ROWS_PER_STATEMENT):
                sightings = {key: sorted(seen) for key, seen in chunk}
                stored = self._claim_visitors(cursor, day, {key: seen[0][0] for key, seen in sightings.items()})
                moved: list[tuple[bytes, int]] = []
                for key, seen in sightings.items():
                    if key not in stored:  # claimed, then deleted by a purge at that moment: not counted
                        continue
                    last = stored[key]
                    if last is None:  # new today: this process inserted it with its first minute
                        first_minute, first_hour = seen[0]
                        for metric in ("hashed_visitors", "hashed_visits"):
                            counts[first_hour, metric] = counts.get((first_hour, metric), 0) + 1
                        last = before = first_minute
                        seen = seen[1:]
                    else:
                        before = last
                    for minute, hour in seen:
                        if minute - last > VISIT_GAP_MINUTES:
                            counts[hour, "hashed_visits"] = counts.get((hour, "hashed_visits"), 0) + 1
                        last = max(last, minute)
                    if last != before:
                        moved.append((key, last))
                if moved:
                    self._set_last_minutes(cursor, day, moved)
        return counts

    def _claim_visitors(self, cursor: Any, day: str, first_minutes: Mapping[bytes, int]) -> dict[bytes, int | None]:
        """Each key's stored last minute, None for the keys this call inserted (with their first
        minute). Generic form for a backend whose write transaction locks the whole store (SQLite's
        `BEGIN IMMEDIATE`): read, then insert the missing ones."""
        stored: dict[bytes, int | None] = {}
        keys = list(first_minutes)
        for part in _chunks(keys, 500):  # under every SQLite's bound on parameters
            cursor.execute(
                self._sql(
                    "SELECT vkey, last_minute FROM cookie_gate_visitor_day"
                    f" WHERE day = ? AND vkey IN ({', '.join('?' * len(part))})"
                ),
                (day, *part),
            )
            stored.update((bytes(key), int(minute)) for key, minute in cursor.fetchall())
        new = [(day, key, first_minutes[key]) for key in keys if key not in stored]
        if new:
            cursor.executemany(
                self._sql("INSERT INTO cookie_gate_visitor_day (day, vkey, last_minute) VALUES (?, ?, ?)"), new
            )
            stored.update((key, None) for _, key, _ in new)
        return stored

    def _set_last_minutes(self, cursor: Any, day: str, rows: Sequence[tuple[bytes, int]]) -> None:
        cursor.executemany(
            self._sql("UPDATE cookie_gate_visitor_day SET last_minute = ? WHERE day = ? AND vkey = ?"),
            [(minute, day, key) for key, minute in rows],
        )

    def daily_salt(self, day: str) -> bytes:
        """The random salt of `day`, shared by every process through the store; never derived."""
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql("INSERT INTO cookie_gate_salt (day, salt) VALUES (?, ?) ON CONFLICT (day) DO NOTHING"),
                (day, secrets.token_bytes(32)),
            )
            cursor.execute(self._sql("SELECT salt FROM cookie_gate_salt WHERE day = ?"), (day,))
            return bytes(cursor.fetchone()[0])

    def stats_rows(
        self,
        first_day: str,
        last_day: str,
        decided_since: int,
        decided_before: int | None = None,
        *,
        top: int = DETAIL_TOP,
    ) -> StatsRows:
        """Raw counter rows for local days `first_day`..`last_day` (inclusive), for the report,
        and the decisions logged from `decided_since` to before `decided_before`, grouped in the
        database so a busy consent log never comes back row by row. Of the detail (paths,
        referrers, one row per value a day, so thousands a day on a big site) only the `top`
        values of each kind come back, summed over the days and ranked in the database."""
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                self._sql("SELECT hour, metric, n FROM cookie_gate_hourly WHERE hour >= ? AND hour < ?"),
                (first_day, last_day + "U"),  # "U" sorts after every "THH"
            )
            hourly = [(str(h), str(m), int(n)) for h, m, n in cursor.fetchall()]
            cursor.execute(
                self._sql("SELECT day, kind, value, n FROM cookie_gate_daily WHERE day >= ? AND day <= ?"),
                (first_day, last_day),
            )
            daily = [(str(d), str(k), str(v), int(n)) for d, k, v, n in cursor.fetchall()]
            detail: list[tuple[str, str, int]] = []
            for kind in DETAIL_KINDS:
                cursor.execute(
                    self._sql(
                        "SELECT value, SUM(n) FROM cookie_gate_detail WHERE kind = ? AND day >= ? AND day <= ?"
                        " GROUP BY value ORDER BY 2 DESC, value LIMIT ?"
                    ),
                    (kind, first_day, last_day, int(top)),
                )
                detail += [(kind, str(v), int(n)) for v, n in cursor.fetchall()]
            bucket = f"(decided_at / {DECISION_BUCKET_SECONDS}) * {DECISION_BUCKET_SECONDS}"
            cursor.execute(
                self._sql(
                    f"SELECT action, categories, gpc, {bucket}, COUNT(*) FROM cookie_gate_consent_log"
                    " WHERE decided_at >= ? AND decided_at < ?"
                    f" GROUP BY action, categories, gpc, {bucket}"
                ),
                (decided_since, 2**62 if decided_before is None else decided_before),
            )
            decisions = [DecisionCount(str(a), str(c), bool(g), int(b), int(n)) for a, c, g, b, n in cursor.fetchall()]
        return StatsRows(hourly, daily, detail, decisions)

    def inventory(self) -> list[tuple[str, str, str, str, str]]:
        """Every cookie name seen: (name, category, source, first seen day, last seen day)."""
        with self._lock, self._transaction(self._connected()) as cursor:
            cursor.execute(
                "SELECT name, category, source, first_seen, last_seen FROM cookie_gate_inventory"
                " ORDER BY category, name"
            )
            return [tuple(map(str, row)) for row in cursor.fetchall()]  # type: ignore[misc]

    def purge(self, *, detail_before: str, aggregate_before: str, salt_before: str, log_before: int) -> dict[str, int]:
        """Delete what retention no longer allows; returns the rows deleted per table."""
        deleted: dict[str, int] = {}
        with self._lock, self._transaction(self._connected()) as cursor:
            for table, column, limit in (
                ("cookie_gate_detail", "day", detail_before),
                ("cookie_gate_daily", "day", aggregate_before),
                ("cookie_gate_hourly", "hour", aggregate_before),
                ("cookie_gate_salt", "day", salt_before),
                ("cookie_gate_visitor_day", "day", salt_before),
                ("cookie_gate_consent_log", "decided_at", log_before),
                ("cookie_gate_inventory", "last_seen", aggregate_before),
            ):
                cursor.execute(self._sql(f"DELETE FROM {table} WHERE {column} < ?"), (limit,))
                deleted[table] = max(cursor.rowcount, 0)
        self._after_purge()
        return deleted

    def _after_purge(self) -> None:
        """Make deleted bytes unrecoverable; backend-specific."""

    def close(self, timeout: float = 5.0) -> None:
        """Release the connection. A thread stuck in a hung store holds the lock: then the
        connection is left to the process's exit rather than waited for."""
        if not self._lock.acquire(timeout=timeout):
            return
        try:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        finally:
            self._lock.release()
