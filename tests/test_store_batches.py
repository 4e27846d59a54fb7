"""Big batches on a healthy store: written in one go, whatever their size, on both backends.

The PostgreSQL watchdog measures one statement, not a whole transaction, and a batch is a
few set-based statements per thousand rows, so a healthy server never has a batch cut.
Every store here is real (a private schema on the PostgreSQL server, SQLite files).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cookie_gate.store import open_store
from cookie_gate.store.sql import SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.conftest import Postgres

DAY, HOUR = "2026-12-01", "2026-12-01T10"
VISITORS = 20_000


def key(index: int) -> bytes:
    return index.to_bytes(16, "big")


def sightings_batch() -> StatsBatch:
    """`VISITORS` new visitors at minute 600; every tenth seen again 5 minutes later (the same
    visit), every fifth 40 minutes later (a new visit), out of order within the batch."""
    batch = StatsBatch(hourly={(HOUR, "pageviews"): VISITORS})
    for index in range(VISITORS):
        if index % 5 == 0:
            batch.visitors.append((DAY, "2026-12-01T11", key(index), 640))
        if index % 10 == 0:
            batch.visitors.append((DAY, HOUR, key(index), 605))
        batch.visitors.append((DAY, HOUR, key(index), 600))
    return batch


def hashed(store: SQLStore) -> dict[tuple[str, str], int]:
    rows = store.stats_rows(DAY, DAY, 0).hourly
    return {(hour, metric): n for hour, metric, n in rows if metric.startswith("hashed_")}


EXPECTED = {
    (HOUR, "hashed_visitors"): VISITORS,
    (HOUR, "hashed_visits"): VISITORS,
    ("2026-12-01T11", "hashed_visits"): VISITORS // 5,
}


def test_a_transaction_of_short_statements_outlasting_the_watchdog_is_not_cut(postgres: Postgres) -> None:
    store = open_store(postgres.url, timeout=0.2)  # statements 0.2 s, the watchdog a second more
    with store._lock, store._transaction(store._connected()) as cursor:
        for _ in range(25):  # 2.5 s in all, each statement answered in 0.1 s
            cursor.execute("SELECT pg_sleep(0.1)")
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
    store.close()


def test_a_big_batch_of_hashed_visitors_is_written_in_one_go_into_postgresql(postgres: Postgres) -> None:
    store = open_store(postgres.url, timeout=0.2)  # a visitor at a time would need far longer
    store.add_stats(sightings_batch())
    assert hashed(store) == EXPECTED
    store.add_stats(sightings_batch())  # the same sightings again: nobody new, no new visit
    assert hashed(store) == EXPECTED
    store.close()


def test_sqlite_counts_the_same_batch_the_same(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "batches.sqlite3")
    store.add_stats(sightings_batch())
    assert hashed(store) == EXPECTED
    store.add_stats(sightings_batch())
    assert hashed(store) == EXPECTED
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_visitor_seen_again_in_a_later_batch_follows_the_thirty_minute_rule(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'rule.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("postgres").url
    store = open_store(url)
    for minute, hour in ((600, HOUR), (629, HOUR), (660, "2026-12-01T11"), (650, "2026-12-01T11")):
        store.add_stats(StatsBatch(visitors=[(DAY, hour, key(1), minute)]))
    # 600 opens it; 629 continues; 660 is 31 minutes after 629: a new visit; 650 is older: nothing
    assert hashed(store) == {
        (HOUR, "hashed_visitors"): 1,
        (HOUR, "hashed_visits"): 1,
        ("2026-12-01T11", "hashed_visits"): 1,
    }
    store.close()
