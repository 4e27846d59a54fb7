"""The statistics keep no IP address and no User-Agent: not on disk, not in a log.

Real traffic with known addresses and browsers goes through the gateway (daily visitor
hash on, so addresses are processed; consented visitors; consent decisions), then every
byte of the store is searched for them: every file of the SQLite store (main file, WAL,
shared memory), every value of every PostgreSQL table, and every log record written
meanwhile, store failures included. Purged rows must be unrecoverable from the SQLite
file and its WAL. PostgreSQL tests use a real server: they skip on a laptop without one
and fail in CI (the `CI` environment variable is set).
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware
from cookie_gate.cli import main
from cookie_gate.own_cookies import COUNTER_COOKIE as COOKIE_NAME
from cookie_gate.stats.agents import Agent, AgentClassifier
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import suite_clock
from tests.conftest import POSTGRES_URL, GateFactory, Postgres, consent_cookie, set_cookies

UTC_CLOCK = SiteClock("UTC")

IPS = ("203.0.113.77", "2001:db8::77", "198.51.100.23", "2001:db8:85a3::8a2e:370:7334")
#: Referrers that are IP addresses, in forms browsers accept, and the text each would leave on disk.
IP_REFERRERS = {
    "http://10.20.30.40/": "10.20.30.40",
    "http://[2001:db8::99]/": "2001:db8::99",
    "http://2130706433/": "2130706433",
    "http://0x7f.1/": "0x7f.1",
    "http://10-20-30-40.sslip.io/": "10-20-30-40",
    "http://[::1]/": "[::1]",  # "::1" alone is too short to search binary pages for
}
#: A build number no real Chrome release has, in an otherwise ordinary Chrome-on-Mac string.
DISTINCTIVE_VERSION = "129.0.6668.4721"
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 "
    "Chrome/121.0.0.0 Mobile Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/{DISTINCTIVE_VERSION} Safari/537.36",
)
#: (client address, User-Agent, consent decision or None for a visitor who never decides)
VISITORS: tuple[tuple[str, str, list[str] | str | None], ...] = (
    (IPS[0], AGENTS[4], ["analytics"]),
    (IPS[1], AGENTS[4], []),
    (IPS[2], AGENTS[0], "all"),
    (IPS[3], AGENTS[1], ["preferences"]),
    (IPS[0], AGENTS[2], None),
    (IPS[1], AGENTS[3], ["analytics", "marketing"]),
)


def needles() -> list[tuple[str, bytes]]:
    """Every form in which an address or a User-Agent could be written down."""
    found: list[tuple[str, bytes]] = []
    for ip in IPS:
        address = ipaddress.ip_address(ip)
        found += [(f"IP {ip}", ip.encode()), (f"IP {ip} packed", address.packed)]
        if address.version == 6:
            found.append((f"IP {ip} exploded", address.exploded.encode()))
    for referrer, text in IP_REFERRERS.items():
        found.append((f"IP referrer {referrer}", text.encode()))
    for agent in AGENTS:
        found.append((f"User-Agent {agent[:40]}...", agent.encode()))
    found.append(("the distinctive Chrome build number", DISTINCTIVE_VERSION.encode()))
    return found


def leaks_in(data: bytes) -> list[str]:
    return [label for label, needle in needles() if needle in data]


def leaks_in_files(directory: Path) -> dict[str, list[str]]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files, f"nothing on disk under {directory}"
    return {str(p): found for p in files if (found := leaks_in(p.read_bytes()))}


def leaks_in_logs(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    found = []
    for record in records:
        parts = [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        text = "\n".join(parts).encode("utf-8", "backslashreplace")
        found += [f"{record.name}: {label}" for label in leaks_in(text)]
    return found


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="cookie_gate")
    return caplog


# -- traffic ----------------------------------------------------------------------------------------


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>page</body></html>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


ROUTES = [Route("/", page), Route("/shop/{item}", page), Route("/api", api)]


@dataclass
class Visitor:
    client: httpx.AsyncClient
    agent: str
    cookies: dict[str, str]
    referrer: str = "https://search.example/?q=shoes"

    async def view(self, path: str) -> None:
        headers = {"user-agent": self.agent, "referer": self.referrer}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        response = await self.client.get(path, headers=headers)
        assert response.status_code == 200
        for value in set_cookies(response):
            name, _, rest = value.partition("=")
            if name == COOKIE_NAME:
                self.cookies[name] = rest.partition(";")[0]


async def run_traffic(middleware: CookieGateMiddleware, stack: list[httpx.AsyncClient]) -> list[Visitor]:
    """Undecided page views, a decision (through the real endpoint), decided page views, for each visitor."""
    visitors = []
    for number, (ip, agent, decision) in enumerate(VISITORS):
        transport = httpx.ASGITransport(app=middleware, client=(ip, 40000 + number))
        client = httpx.AsyncClient(transport=transport, base_url="http://www.shop.example.co.kr")
        stack.append(client)
        visitor = Visitor(client, agent, {}, list(IP_REFERRERS)[number % len(IP_REFERRERS)])
        await visitor.view("/")
        await visitor.view("/shop/1")
        assert (await client.get("/api", headers={"user-agent": agent})).is_success  # not a page view
        if decision is not None:
            client.headers["user-agent"] = agent
            name, _, value = (await consent_cookie(client, decision)).partition("=")
            visitor.cookies[name] = value
            assert (await client.get("/_cookie_gate/consent", headers={"cookie": f"{name}={value}"})).is_success
        for path in ("/", "/shop/2", "/shop/3"):
            await visitor.view(path)
        visitors.append(visitor)
    return visitors


@pytest.fixture
async def clients() -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for client in opened:
        await client.aclose()


# -- SQLite: every byte of every file, every log record ---------------------------------------------


@pytest.mark.anyio
async def test_no_ip_address_or_user_agent_reaches_the_sqlite_files_or_any_log(
    gate: GateFactory,
    tmp_path: Path,
    all_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    clients: list[httpx.AsyncClient],
) -> None:
    middleware = gate(
        ROUTES,
        store=f"sqlite:///{tmp_path / 'cookie_gate.sqlite3'}?busy_timeout=0.05",  # the writer gives up on a lock soon
        daily_visitor_hash=True,
        timezone="Asia/Seoul",
        stats_flush_seconds=300,
    )
    statistics = middleware.statistics
    assert statistics is not None and isinstance(middleware.store, SQLiteStore)
    visitors = await run_traffic(middleware, clients)
    assert statistics.writer.flush()
    report = build_report(middleware.store, SiteClock("Asia/Seoul"), days=1, now=suite_clock())
    assert report["pageviews"] == 5 * len(VISITORS)  # the traffic really was counted,
    assert report["without_consent_daily_hash"]["visitor_days"] == len(VISITORS)  # addresses really were hashed
    assert report["consent"]["decisions"]["accept_all"] == 1
    assert report["referrers"] == [{"host": "(ip address)", "entries": 5 * len(VISITORS)}]  # one bucket for all
    assert leaks_in_files(tmp_path) == {}

    # The store fails for a while (another process holds the write lock); the same visitors keep coming.
    with closing(sqlite3.connect(middleware.store.path, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        for visitor in visitors:
            await visitor.view("/shop/4")
        assert statistics.writer.flush() is False
        blocker.execute("ROLLBACK")
    assert statistics.writer.flush()
    assert any(r.levelno == logging.WARNING and r.name.startswith("cookie_gate") for r in all_logs.records)
    assert build_report(middleware.store, SiteClock("Asia/Seoul"), days=1, now=suite_clock())["pageviews"] == 6 * len(
        VISITORS
    )
    assert leaks_in_files(tmp_path) == {}

    # Closing checkpoints the WAL into the main file: look once more.
    statistics.writer.stop()
    middleware.store.close()
    assert leaks_in_files(tmp_path) == {}
    assert leaks_in_logs(all_logs.records) == []
    out, err = capfd.readouterr()
    assert leaks_in((out + err).encode("utf-8", "backslashreplace")) == []


def test_store_failures_are_logged_without_addresses_or_user_agents(
    tmp_path: Path, all_logs: pytest.LogCaptureFixture
) -> None:
    """The daily salt and the batch both fail to reach a locked store: both warnings are clean."""
    store = SQLiteStore(tmp_path / "stats.sqlite3", busy_timeout=0.05)
    store.probe()  # opened before another process holds the file
    writer = StatsWriter(store, UTC_CLOCK, clock=suite_clock, capacity=100, interval=60.0, daily_hash=True)
    try:
        with closing(sqlite3.connect(store.path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            for ip, agent, _ in VISITORS:
                writer.record(CountedView(suite_clock(), "/", b"shop.example", agent.encode(), None, ip, None, False))
            assert writer.flush() is False
            blocker.execute("ROLLBACK")
        messages = [r.getMessage() for r in all_logs.records if r.levelno >= logging.WARNING]
        assert any("daily salt unavailable" in m for m in messages) and any("not written yet" in m for m in messages)
        assert writer.flush()
    finally:
        writer.stop()
        store.close()
    assert leaks_in_logs(all_logs.records) == []
    assert leaks_in_files(tmp_path) == {}


class _FailingClassifier(AgentClassifier):
    """Fails the way a parser that quotes its input would: with the User-Agent in the message."""

    def classify(self, user_agent: str) -> Agent:
        if DISTINCTIVE_VERSION in user_agent:
            raise ValueError(f"cannot parse User-Agent {user_agent!r}")
        return super().classify(user_agent)


def test_a_failing_classification_is_logged_without_the_user_agent_and_the_writer_goes_on(
    tmp_path: Path, all_logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncaught: list[str] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: uncaught.append("".join(traceback.format_exception(args.exc_value)))
    )
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    writer = StatsWriter(
        store, UTC_CLOCK, clock=suite_clock, capacity=100, interval=60.0, daily_hash=True, agents=_FailingClassifier()
    )
    try:
        for ip, agent in zip(IPS, reversed(AGENTS), strict=False):  # the failing one first
            writer.record(CountedView(suite_clock(), "/", b"shop.example", agent.encode(), None, ip, None, False))
        writer.flush(timeout=5)
        assert any(r.levelno >= logging.WARNING for r in all_logs.records), "the failure was not logged"
        good = CountedView(suite_clock(), "/after", b"shop.example", AGENTS[0].encode(), None, IPS[0], None, False)
        writer.record(good)
        assert writer.flush(timeout=5), "the writer did not survive the failure"
        pages = build_report(store, UTC_CLOCK, days=1, now=suite_clock())["pages"]
        assert {"path": "/after", "pageviews": 1} in pages
    finally:
        writer.stop(timeout=5)
        store.close()
    assert leaks_in_logs(all_logs.records) == []
    assert leaks_in("".join(uncaught).encode("utf-8", "backslashreplace")) == []
    assert leaks_in_files(tmp_path) == {}


# -- PostgreSQL: every value of every table ---------------------------------------------------------


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "backslashreplace")


@pytest.mark.anyio
async def test_no_ip_address_or_user_agent_reaches_any_postgresql_table(
    gate: GateFactory, postgres: Postgres, all_logs: pytest.LogCaptureFixture, clients: list[httpx.AsyncClient]
) -> None:
    import psycopg

    middleware = gate(ROUTES, store=postgres.url, daily_visitor_hash=True, stats_flush_seconds=300)
    assert middleware.statistics is not None
    await run_traffic(middleware, clients)
    assert middleware.statistics.writer.flush()
    assert build_report(middleware.store, UTC_CLOCK, days=1, now=suite_clock())["without_consent_daily_hash"][
        "visitor_days"
    ] == len(VISITORS)

    dumped: dict[str, int] = {}
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
                (postgres.schema,),
            )
        ]
        assert {"cookie_gate_consent_log", "cookie_gate_hourly", "cookie_gate_visitor_day"} <= set(tables)
        for table in tables:
            rows = connection.execute(f'SELECT * FROM "{postgres.schema}"."{table}"').fetchall()
            dumped[table] = len(rows)
            for row in rows:
                for value in row:
                    found = leaks_in(_as_bytes(value))
                    assert found == [], f"{table}: {found} in {value!r}"
    assert dumped["cookie_gate_visitor_day"] == len(VISITORS) and dumped["cookie_gate_consent_log"] == 5
    assert leaks_in_logs(all_logs.records) == []


# -- purge: the bytes are gone ----------------------------------------------------------------------

PURGED = b"/purge-me-7f3a"
KEPT = "/recent-page-4c1d"


@pytest.mark.parametrize("how", ["Statistics.purge", "cookie-gate purge", "purge while another process reads"])
def test_purged_page_views_are_gone_from_the_sqlite_file_and_its_wal(
    gate: GateFactory, store_url: str, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    middleware = gate(ROUTES)
    statistics = middleware.statistics
    assert statistics is not None and isinstance(middleware.store, SQLiteStore)
    path = Path(middleware.store.path)
    now = suite_clock()
    old = now - 120 * 86400
    agent = AGENTS[0].encode()
    # A writer without the daily retention tick, so nothing is purged before the test says so.
    writer = StatsWriter(middleware.store, UTC_CLOCK, clock=suite_clock, capacity=5000, interval=60.0, daily_hash=False)
    for n in range(1500):  # enough rows for a many-page b-tree
        writer.record(CountedView(old, f"/old-page-{n:04d}", b"shop.example", agent, None, None, None, False))
    for _ in range(3):
        writer.record(CountedView(old, PURGED.decode(), b"shop.example", agent, None, None, None, False))
    writer.record(CountedView(now, KEPT, b"shop.example", agent, None, None, None, False))
    assert writer.flush()
    writer.stop()
    with closing(sqlite3.connect(path)) as other:  # part in the main file, all of it still in WAL frames
        other.execute("PRAGMA wal_checkpoint(PASSIVE)")
    wal = path.with_name(path.name + "-wal")
    assert PURGED in path.read_bytes() and PURGED in wal.read_bytes()  # the search below can find it

    reader: threading.Thread | None = None
    if how == "cookie-gate purge":
        assert main(["--store", store_url, "purge"], clock=suite_clock) == 0
        assert "cookie_gate_detail 1501" in capsys.readouterr().out
    else:
        if how == "purge while another process reads":
            began = threading.Event()

            def read() -> None:
                with closing(sqlite3.connect(path, isolation_level=None)) as connection:
                    connection.execute("BEGIN")
                    connection.execute("SELECT count(*) FROM cookie_gate_detail").fetchone()
                    began.set()
                    time.sleep(0.3)
                    connection.execute("COMMIT")

            reader = threading.Thread(target=read)
            reader.start()
            assert began.wait(5)
        deleted = statistics.purge(now)
        assert deleted["cookie_gate_detail"] == 1501
    if reader is not None:
        reader.join(10)

    for file in [p for p in tmp_path.rglob("*") if p.is_file()]:
        data = file.read_bytes()
        still_there = [needle for needle in (PURGED, b"/old-page-") if needle in data]
        assert still_there == [], f"purged paths still readable in {file.name}"
    assert not wal.exists() or wal.stat().st_size == 0
    pages = build_report(middleware.store, UTC_CLOCK, days=1, now=now)["pages"]
    assert pages == [{"path": KEPT, "pageviews": 1}]
