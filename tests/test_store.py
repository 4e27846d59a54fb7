"""The consent log, on the embedded SQLite store and on a real PostgreSQL server.

PostgreSQL tests never mock the server. Without one they skip on a laptop, but in
CI (the `CI` environment variable is set) a missing server is a failure.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.referrer import IP_ADDRESS
from cookie_gate.stats.report import build_report
from cookie_gate.store import DecisionRecord, StoreError, open_store
from cookie_gate.store.sql import DETAIL_TOP, SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore, sqlite_path
from tests.conftest import GateFactory, Postgres, consent_cookie


def record(consent_id: str, at: int, action: str = "accept_all") -> DecisionRecord:
    return DecisionRecord(consent_id, at, action, ("analytics", "necessary"), "1", gpc=at % 2 == 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        opened: SQLStore = open_store(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    else:
        opened = open_store(request.getfixturevalue("postgres").url)
    yield opened
    opened.close()


def test_decisions_come_back_in_order_for_their_id_only(store: SQLStore) -> None:
    store.log_decision(record("visitor-a", 200, "custom"))
    store.log_decision(record("visitor-b", 150))
    store.log_decision(record("visitor-a", 100))
    store.log_decision(record("visitor-a", 300, "withdraw"))
    assert [(r.decided_at, r.action) for r in store.decisions("visitor-a")] == [
        (100, "accept_all"),
        (200, "custom"),
        (300, "withdraw"),
    ]
    assert store.decisions("visitor-a")[0] == record("visitor-a", 100)
    assert store.decisions("nobody") == []


def test_concurrent_writers_lose_nothing(store: SQLStore) -> None:
    def write(worker: int) -> None:
        for n in range(50):
            store.log_decision(record(f"w{worker}", n))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(store.decisions(f"w{w}")) for w in range(4)] == [50, 50, 50, 50]


def test_two_sqlite_handles_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    first, second = SQLiteStore(path), SQLiteStore(path)
    first.log_decision(record("x", 1))
    second.log_decision(record("x", 2))
    assert len(first.decisions("x")) == 2
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    first.close()
    second.close()


def test_the_log_holds_no_personal_data(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    SQLiteStore(path).log_decision(record("abc", 1))
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(cookie_gate_consent_log)")]
    assert columns == [
        *("consent_id", "decided_at", "action", "categories", "policy_version", "gpc"),
        *("method", "locale", "shown"),
    ]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///cookie_gate.sqlite3", "cookie_gate.sqlite3"),
        ("sqlite:////var/lib/cg.sqlite3", "/var/lib/cg.sqlite3"),
    ],
)
def test_sqlite_urls_are_relative_or_absolute(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/file", "sqlite:///", "sqlite:"])
def test_malformed_sqlite_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///"):
        sqlite_path(url)


def test_an_unreachable_postgresql_server_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    unreachable = open_store("postgresql://127.0.0.1:9/none?connect_timeout=1")
    with pytest.raises(StoreError, match="cannot open PostgreSQL store") as raised:
        unreachable.log_decision(record("x", 1))
    assert "127.0.0.1" not in str(raised.value)


@pytest.mark.anyio
async def test_the_gateway_logs_to_postgresql(
    postgres: Postgres, gate: GateFactory, client_for: Callable[..., httpx.AsyncClient]
) -> None:
    app = gate([Route("/", lambda request: PlainTextResponse("ok"))], store=postgres.url)
    client = client_for(app)
    cookie = await consent_cookie(client, ["analytics"])
    shown = (await client.get("/_cookie_gate/consent", headers={"cookie": cookie})).json()
    assert [h["action"] for h in shown["history"]] == ["custom"]


def test_a_postgresql_purge_deletes_and_rewrites_the_tables(postgres: Postgres) -> None:
    """A DELETE alone leaves the rows' bytes in the data pages; the purge writes the table anew."""
    import psycopg

    store = open_store(postgres.url)
    store.add_stats(StatsBatch(detail={("2020-01-01", "path", "/purge-me"): 3, ("2026-12-01", "path", "/keep"): 1}))
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        before = connection.execute("SELECT pg_relation_filenode('cookie_gate_detail')").fetchone()
        deleted = store.purge(
            detail_before="2026-01-01", aggregate_before="2020-01-01", salt_before="2026-11-30", log_before=0
        )
        after = connection.execute("SELECT pg_relation_filenode('cookie_gate_detail')").fetchone()
        rows = [r[0] for r in connection.execute("SELECT value FROM cookie_gate_detail")]
    store.close()
    assert deleted["cookie_gate_detail"] == 1 and rows == ["/keep"]
    assert before != after  # VACUUM FULL wrote a new file; the old one, with the purged row, is gone


def test_withdrawals_are_found_with_the_time_of_the_latest(store: SQLStore) -> None:
    store.log_decision(record("visitor-a", 100))
    store.log_decision(record("visitor-a", 200, "withdraw"))
    store.log_decision(record("visitor-a", 300, "custom"))
    store.log_decision(record("visitor-a", 400, "withdraw"))
    store.log_decision(record("visitor-b", 150))
    assert store.withdrawals(["visitor-a", "visitor-b", "nobody"]) == {"visitor-a": 400}
    assert store.withdrawals([]) == {}
    assert store.withdrawals([f"id-{n}" for n in range(100)]) == {}


def test_the_report_reads_only_the_top_paths_and_referrers_ranked_in_the_store(store: SQLStore) -> None:
    """Thousands of distinct paths a day come back as the top `DETAIL_TOP` of each kind, summed
    over the days and ranked (count, then value) in the database, not row by row."""
    days = [f"2026-11-{d:02d}" for d in range(1, 11)]
    batch = StatsBatch()
    expected: dict[str, int] = {}
    for index, day in enumerate(days):
        for n in range(300):
            path = f"/once/{index}/{n}"
            batch.add(batch.detail, (day, "path", path))
            expected[path] = 1
        for n in range(30):  # every day: ranked by the sum over the days
            path = f"/daily/{n:02d}"
            batch.add(batch.detail, (day, "path", path), n % 7 + 1)
            expected[path] = expected.get(path, 0) + n % 7 + 1
        # Rows an older release kept before IP addresses were bucketed: shown in the one bucket.
        batch.add(batch.detail, (day, "referrer", f"10.0.0.{index}"), 5)
        batch.add(batch.detail, (day, "referrer", "example.org"), 3)
    store.add_stats(batch)
    rows = store.stats_rows(days[0], days[-1], 0)
    assert len(rows.detail) <= 2 * DETAIL_TOP
    assert [(v, n) for k, v, n in rows.detail if k == "path"] == sorted(
        expected.items(), key=lambda item: (-item[1], item[0])
    )[:DETAIL_TOP]
    report = build_report(
        store,
        SiteClock("UTC"),
        now=1_796_000_000,
        since=date(2026, 11, 1),
        until=date(2026, 11, 10),
    )
    assert report["pages"][0] == {"path": "/daily/06", "pageviews": 70}
    assert len(report["pages"]) == DETAIL_TOP
    assert report["referrers"] == [{"host": IP_ADDRESS, "entries": 50}, {"host": "example.org", "entries": 30}]


def test_a_sqlite_url_sets_how_long_a_write_waits_for_another_process(tmp_path: Path) -> None:
    path = tmp_path / "waits.sqlite3"
    store = open_store(f"sqlite:///{path}?busy_timeout=0.05")
    store.probe()
    with closing(sqlite3.connect(path, isolation_level=None)) as other_process:
        other_process.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            store.probe()
        assert time.monotonic() - started < 5  # not the default 30 s
        other_process.execute("ROLLBACK")
    store.probe()
    store.close()
    with pytest.raises(StoreError, match="busy_timeout='soon'"):
        open_store(f"sqlite:///{path}?busy_timeout=soon")
