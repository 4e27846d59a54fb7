"""Visit statistics are exact: no page view, visit or visitor is lost or counted twice.

Under concurrent clients on one gateway, two worker processes on one store (SQLite
file or PostgreSQL schema) and several writers flushing the same counters at once,
the report must show exactly what was sent. PostgreSQL tests use a real server: they
skip on a laptop without one and fail in CI (the `CI` environment variable is set).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cookie_gate.own_cookies import COUNTER_COOKIE as COOKIE_NAME
from cookie_gate.stats.agents import Agent, AgentClassifier
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import VisitStart
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store import open_store
from cookie_gate.store.sql import SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import suite_clock
from tests.conftest import SECRET, GateFactory, Postgres, consent_cookie, set_cookies

REPO = Path(__file__).resolve().parent.parent
SEOUL = SiteClock("Asia/Seoul")
UTC_CLOCK = SiteClock("UTC")
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
BROWSER_OF = {CHROME: "Chrome", FIREFOX: "Firefox", IPHONE: "Mobile Safari"}


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One store, by URL: a fresh SQLite file or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.url


@pytest.fixture
def open_stores() -> Iterator[Callable[[str], SQLStore]]:
    """Open stores by URL; every one is closed afterwards."""
    opened: list[SQLStore] = []

    def opener(url: str) -> SQLStore:
        opened.append(open_store(url))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


# -- the gateway under 50 concurrent clients --------------------------------------------------------


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>page</body></html>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


ROUTES = [Route("/p/{n}", page), Route("/api", api)]
PATHS = [f"/p/{n}" for n in range(10)]
CLIENTS = 50
VIEWS_PER_CLIENT = 200
CONSENTING = 20  # clients 0..19 accept analytics; 20..34 refuse it; 35..49 never decide
GAP = 7 * 3600  # between the visits of a consenting visitor: far over 30 minutes

#: The time the gate sees in this task, or None for the real clock. A context
#: variable, so every client task runs on its own clock while the writer thread sees the real one.
_virtual_now: contextvars.ContextVar[float | None] = contextvars.ContextVar("virtual_now", default=None)


def _middleware_time() -> float:
    virtual = _virtual_now.get()
    return suite_clock() if virtual is None else virtual


@dataclass(frozen=True)
class Planned:
    at: float
    opens_visit: bool


def consenting_schedule(visitor: int, base: float) -> list[Planned]:
    """200 page views in 1..5 visits, 7 hours apart, 30 s apart inside a visit.

    Every third visitor also pauses exactly 30 minutes inside each visit (that continues
    the visit), every fourth pauses 31 minutes once (that opens one more visit).
    """
    visits = 1 + visitor % 5
    per_visit = VIEWS_PER_CLIENT // visits
    plan: list[Planned] = []
    for visit in range(visits):
        at = base + visit * GAP + visitor * 61
        count = per_visit if visit < visits - 1 else VIEWS_PER_CLIENT - per_visit * (visits - 1)
        for view in range(count):
            opens = view == 0
            if view > 0:
                at += 30
                if visitor % 3 == 0 and view == 9:
                    at += 30 * 60 - 30  # exactly 30 minutes after the previous view
                elif visitor % 4 == 1 and visit == 0 and view == 20:
                    at += 31 * 60 - 30  # 31 minutes: a new visit
                    opens = True
            plan.append(Planned(at, opens))
    return plan


def counter_value(response: httpx.Response) -> str | None:
    for value in set_cookies(response):
        if value.startswith(f"{COOKIE_NAME}="):
            return value.partition(";")[0]
    return None


@pytest.mark.anyio
async def test_ten_thousand_page_views_from_fifty_concurrent_clients_are_counted_exactly(
    gate: GateFactory,
) -> None:
    middleware = gate(ROUTES, timezone="Asia/Seoul", stats_flush_seconds=0.05, clock=_middleware_time)
    assert middleware.statistics is not None
    # Visits from 06:00 Seoul time the day before yesterday; the last ones fall on yesterday.
    base = SEOUL.midnight_after_months(SEOUL.at(suite_clock()).day - 2, 0).timestamp() + 6 * 3600
    agents = [CHROME, FIREFOX, IPHONE]
    expected_paths: Counter[str] = Counter()
    expected_browsers: Counter[str] = Counter()
    visit_starts: list[tuple[int, float]] = []  # (visitor, time) of every visit a consenting visitor opened
    final_counters: dict[int, str] = {}

    async def client_run(number: int) -> None:
        agent = agents[number % 3]
        transport = httpx.ASGITransport(app=middleware, client=(f"198.51.100.{number + 1}", 40000 + number))
        async with httpx.AsyncClient(transport=transport, base_url="http://www.shop.example.co.kr") as client:
            cookie = ""
            if number < CONSENTING:
                cookie = await consent_cookie(client, ["analytics"])
            elif number < 35:
                cookie = await consent_cookie(client, ["preferences"])
            plan = consenting_schedule(number, base) if number < CONSENTING else None
            counter: str | None = None
            for view in range(VIEWS_PER_CLIENT):
                path = PATHS[(number + view) % len(PATHS)]
                headers = {"user-agent": agent}
                sent_cookie = "; ".join(c for c in (cookie, counter) if c)
                if sent_cookie:
                    headers["cookie"] = sent_cookie
                if plan is not None:
                    _virtual_now.set(plan[view].at)
                    if plan[view].opens_visit:
                        visit_starts.append((number, plan[view].at))
                response = await client.get(path, headers=headers)
                assert response.status_code == 200
                expected_paths[path] += 1
                expected_browsers[BROWSER_OF[agent]] += 1
                counter = counter_value(response) or counter
                if view % 20 == 0:  # not page views: JSON, HEAD, a 404
                    assert (await client.get("/api", headers=headers)).status_code == 200
                    assert (await client.head(path, headers=headers)).status_code == 200
                    assert (await client.get("/missing", headers=headers)).status_code == 404
            if counter is not None:
                final_counters[number] = counter

    await asyncio.gather(*(client_run(n) for n in range(CLIENTS)))
    assert middleware.statistics.writer.flush()
    now = suite_clock()

    week = build_report(middleware.store, SEOUL, days=7, now=now)
    assert week["pageviews"] == CLIENTS * VIEWS_PER_CLIENT == 10_000
    assert {p["path"]: p["pageviews"] for p in week["pages"]} == dict(expected_paths)
    assert week["browsers"] == dict(expected_browsers)
    assert week["analytics_pageviews"] == CONSENTING * VIEWS_PER_CLIENT
    assert week["visits"] == len(visit_starts)
    assert week["visitors"] == CONSENTING
    assert week["visit_frequency"]["new_visits"] == CONSENTING
    assert week["visit_frequency"]["returning_visits"] == len(visit_starts) - CONSENTING
    assert week["dropped_events"] == 0 and week["bots"] == 0
    assert week["consent"]["decisions"]["custom"] == 35

    # A shorter period: only visits opened in it count, and each visitor once.
    today = SEOUL.at(now).day
    recent = [(visitor, at) for visitor, at in visit_starts if SEOUL.at(at).day >= today - 1]
    two_days = build_report(middleware.store, SEOUL, days=2, now=now)
    assert two_days["visits"] == len(recent)
    assert two_days["visitors"] == len({visitor for visitor, _ in recent})
    assert 0 < two_days["visitors"] < CONSENTING  # the window really cuts through the schedule

    # Each visitor's own counter cookie holds the visits it made.
    for visitor in range(CONSENTING):
        visits = sum(1 for number, _ in visit_starts if number == visitor)
        assert final_counters[visitor].split("=", 1)[1].split(":")[1] == format(visits, "x")


# -- two worker processes on one store -------------------------------------------------------------

WORKER = r'''
"""One gateway worker: lifespan startup, N page views once told to go, lifespan shutdown."""
import asyncio, sys, time
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware

store, count, ready, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
AGENT = (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         b"Chrome/131.0.0.0 Safari/537.36")


async def page(request):
    return HTMLResponse("<html><body>page</body></html>")


start, started = float(sys.argv[6]), time.monotonic()
app = CookieGateMiddleware(
    Starlette(routes=[Route("/{name}", page)]),
    secret_key=sys.argv[5],
    store=store,
    stats_flush_seconds=300,
    clock=lambda: start + time.monotonic() - started,  # the suite's clock, as this process goes on
)


async def view(path):
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"shop.example"), (b"user-agent", AGENT)],
        "client": ("198.51.100.7", 50000), "server": ("shop.example", 80),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent


async def main():
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        assert time.monotonic() < deadline, "never told to go"
        await asyncio.sleep(0.002)
    for n in range(count):
        await view(f"/shared-{n % 5}")
        if n % 250 == 249:  # write in between too, while the other process does the same
            assert await asyncio.to_thread(app.statistics.writer.flush)
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await lifespan
    print("dropped", app.statistics.writer.dropped)


asyncio.run(main())
'''

PER_WORKER = 2000


def run_two_workers(tmp_path: Path, store_url: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                store_url,
                str(PER_WORKER),
                str(tmp_path / f"ready-{n}"),
                str(go),
                SECRET,
                repr(suite_clock()),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.01)
        go.touch()  # both start sending at once
        outputs = [w.communicate(timeout=60) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.split() == ["dropped", "0"], (out, err)
        assert "not written" not in err and "Traceback" not in err, err


def test_two_worker_processes_on_one_sqlite_file_count_every_page_view(
    tmp_path: Path, open_stores: Callable[[str], SQLStore]
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"  # a fresh file both workers create at once
    run_two_workers(tmp_path, url)
    result = build_report(open_stores(url), UTC_CLOCK, days=2, now=suite_clock())
    assert result["pageviews"] == 2 * PER_WORKER
    assert {p["path"]: p["pageviews"] for p in result["pages"]} == {
        f"/shared-{n}": 2 * PER_WORKER // 5 for n in range(5)
    }
    assert result["browsers"] == {"Chrome": 2 * PER_WORKER}


def test_two_worker_processes_sharing_one_postgresql_store_count_every_page_view(
    tmp_path: Path, postgres: Postgres, open_stores: Callable[[str], SQLStore]
) -> None:
    run_two_workers(tmp_path, postgres.url)
    result = build_report(open_stores(postgres.url), UTC_CLOCK, days=2, now=suite_clock())
    assert result["pageviews"] == 2 * PER_WORKER
    assert {p["path"]: p["pageviews"] for p in result["pages"]} == {
        f"/shared-{n}": 2 * PER_WORKER // 5 for n in range(5)
    }
    assert result["browsers"] == {"Chrome": 2 * PER_WORKER}


def test_a_second_process_opening_a_fresh_sqlite_file_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None, check_same_thread=False)) as first:
        first.execute("BEGIN IMMEDIATE")  # the first worker, in the middle of setting the file up
        releaser = threading.Timer(0.3, lambda: first.execute("COMMIT"))
        releaser.start()
        store = SQLiteStore(path)
        try:
            store.add_stats(StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1}))
            assert store.stats_rows("2026-12-01", "2026-12-01", 0).hourly == [("2026-12-01T10", "pageviews", 1)]
        finally:
            releaser.join()
            store.close()


# -- several writers flushing the same counters at once ---------------------------------------------

WRITERS = 4
ROUNDS = 25
BATCH = 40


@pytest.mark.parametrize("sharing", ["one store object", "a connection per writer"])
def test_concurrent_flushes_of_the_same_counters_add_up_exactly(
    database_url: str, sharing: str, open_stores: Callable[[str], SQLStore]
) -> None:
    shared = open_stores(database_url)
    stores = [shared if sharing == "one store object" else open_stores(database_url) for _ in range(WRITERS)]
    agents = AgentClassifier()  # one classifier for all writers: it says it is thread-safe
    writers = [
        StatsWriter(store, UTC_CLOCK, clock=suite_clock, capacity=10_000, interval=60.0, daily_hash=True, agents=agents)
        for store in stores
    ]
    at = suite_clock() - 60
    barrier = threading.Barrier(WRITERS)
    failures: list[str] = []

    def work(number: int) -> None:
        writer = writers[number]
        try:
            barrier.wait(timeout=10)
            for round_ in range(ROUNDS):
                for n in range(BATCH):
                    consented = n % 2 == 0
                    # One visitor without consent seen by every writer, one seen by this writer only.
                    ip = None if consented else ("198.51.100.7" if n % 4 == 1 else f"198.51.100.{20 + number}")
                    start = VisitStart(1, None, 1, 1) if consented and n % 10 == 0 else None
                    event = CountedView(at, "/same", b"shop.example", CHROME.encode(), None, ip, start, consented)
                    writer.record(event)
                if not writer.flush(timeout=30):
                    failures.append(f"writer {number} round {round_}: flush failed")
        except Exception:
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for writer in writers:
        writer.stop()
    assert failures == []

    total = WRITERS * ROUNDS * BATCH
    result = build_report(shared, UTC_CLOCK, days=2, now=suite_clock())
    assert result["pageviews"] == total
    assert result["pages"] == [{"path": "/same", "pageviews": total}]
    assert (result["browsers"], result["os"], result["devices"]) == (
        {"Chrome": total},
        {"Windows": total},
        {"desktop": total},
    )
    assert result["entries"] == total  # no referrer: every view arrives from elsewhere
    assert result["analytics_pageviews"] == total // 2
    assert result["visits"] == total // 10
    # Every writer got the same daily salt from the store, so the shared visitor is one visitor.
    assert result["without_consent_daily_hash"] == {"visitor_days": 1 + WRITERS, "visits": 1 + WRITERS}


# -- a write that fails when it commits ----------------------------------------------------------------


class _CommitFails(sqlite3.Connection):
    """A connection whose next COMMITs fail as a full disk makes them fail (SQLite rolls back)."""

    failures = 0

    def commit(self) -> None:
        if _CommitFails.failures > 0:
            _CommitFails.failures -= 1
            self.rollback()
            raise sqlite3.OperationalError("database or disk is full")
        super().commit()


def test_page_views_survive_a_commit_that_fails_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk at COMMIT (real repro: RLIMIT_FSIZE) is a StoreError: the batch is kept and retried."""
    monkeypatch.setattr(sqlite3, "connect", functools.partial(sqlite3.connect, factory=_CommitFails))
    uncaught: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: uncaught.append(repr(args.exc_value)))
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    writer = StatsWriter(store, UTC_CLOCK, clock=suite_clock, capacity=1000, interval=60.0, daily_hash=False)
    event = CountedView(suite_clock(), "/", b"shop.example", CHROME.encode(), None, None, None, False)
    try:
        writer.start()
        assert writer.flush(timeout=5) is True  # the start-up store check is done: the next commit is the batch's
        for _ in range(10):
            writer.record(event)
        _CommitFails.failures = 1
        assert writer.flush(timeout=5) is False  # refused by the store: kept for the next try
        for _ in range(5):
            writer.record(event)
        assert writer.flush(timeout=5) is True
        assert build_report(store, UTC_CLOCK, days=1, now=suite_clock())["pageviews"] == 15
        assert uncaught == []
    finally:
        _CommitFails.failures = 0
        writer.stop(timeout=5)
        store.close()


def test_stopping_while_the_writer_is_inside_a_round_still_writes_everything(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    inside, release = threading.Event(), threading.Event()

    def tick(now: float) -> None:  # runs inside a round, after its drain and before it reports back
        if not inside.is_set():
            inside.set()
            release.wait(5)

    writer = StatsWriter(
        store, UTC_CLOCK, clock=suite_clock, capacity=100, interval=0.01, daily_hash=False, on_tick=tick
    )
    event = CountedView(suite_clock(), "/", b"shop.example", CHROME.encode(), None, None, None, False)
    try:
        writer.record(event)  # starts the thread; its first round writes this view, then waits in the tick
        assert inside.wait(5)
        writer.record(event)  # queued after that round's drain: only stop()'s final flush can write it
        stopper = threading.Thread(target=writer.stop, kwargs={"timeout": 1.0})
        started = time.monotonic()
        stopper.start()
        while writer.running and time.monotonic() - started < 5:  # stopping: stop() has asked for its flush
            time.sleep(0.001)
        release.set()
        stopper.join(10)
        took = time.monotonic() - started
        assert build_report(store, UTC_CLOCK, days=1, now=suite_clock())["pageviews"] == 2
        assert took < 0.9, f"stop() waited {took:.1f} s for a flush that never came"
    finally:
        release.set()
        writer.stop(timeout=1)
        store.close()


class _FailsOnMarker(AgentClassifier):
    def classify(self, user_agent: str) -> Agent:
        if "MarkerBrowser" in user_agent:
            raise RuntimeError("unexpected")
        return super().classify(user_agent)


def test_one_page_view_that_cannot_be_classified_costs_only_itself(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    writer = StatsWriter(
        store, UTC_CLOCK, clock=suite_clock, capacity=100, interval=60.0, daily_hash=False, agents=_FailsOnMarker()
    )
    now = suite_clock()
    try:
        writer.record(CountedView(now, "/", b"shop.example", b"MarkerBrowser/1.0", None, None, None, False))
        for _ in range(5):
            writer.record(CountedView(now, "/", b"shop.example", CHROME.encode(), None, None, None, False))
        flushed = writer.flush(timeout=5)
        written = build_report(store, UTC_CLOCK, days=1, now=now)["pageviews"]
        assert not flushed or written == 5, f"flush() said done with {written} of 5 views written"
        writer.stop(timeout=5)
        assert build_report(store, UTC_CLOCK, days=1, now=now)["pageviews"] == 5
    finally:
        writer.stop(timeout=5)
        store.close()
