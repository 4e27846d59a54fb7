"""Visit statistics: counting rules, the counter cookie, the writer and the report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cookie_gate.cli import main
from cookie_gate.own_cookies import COUNTER_COOKIE as COOKIE_NAME
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import Counts, VisitStart, advance
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store import DecisionRecord, StoreError
from cookie_gate.store.sql import SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import SteppedClock, suite_clock
from tests.conftest import GateFactory, consent_cookie, set_cookies
from tests.stored import read_store, stored_paths

Clients = Callable[..., httpx.AsyncClient]
SEOUL = SiteClock("Asia/Seoul")
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def at(text: str) -> float:
    """A Seoul wall-clock time as a timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


# -- the counting rules ------------------------------------------------------------------------


def test_a_first_page_view_opens_visit_number_one() -> None:
    counts, start, _ = advance(None, SEOUL.at(at("2026-12-01T10:00")))
    assert start == VisitStart(number=1, days_since_last=None, week_rank=1, month_rank=1)
    assert counts.visits == 1 and counts.first_day == counts.last_day


def test_page_views_within_thirty_minutes_continue_the_visit() -> None:
    counts, _, _ = advance(None, SEOUL.at(at("2026-12-01T10:00")))
    counts, start, _ = advance(counts, SEOUL.at(at("2026-12-01T10:30")))
    assert start is None
    counts, start, _ = advance(counts, SEOUL.at(at("2026-12-01T11:00")))  # 30 minutes after the last one
    assert start is None
    counts, start, _ = advance(counts, SEOUL.at(at("2026-12-01T11:31")))
    assert start == VisitStart(number=2, days_since_last=0, week_rank=2, month_rank=2)


def test_weeks_and_months_restart_their_ranks_at_the_sites_midnight() -> None:
    counts, _, _ = advance(None, SEOUL.at(at("2026-11-29T23:50")))  # a Sunday in Seoul (14:50 UTC)
    counts, start, _ = advance(counts, SEOUL.at(at("2026-11-30T00:30")))  # Monday: new week, same month
    assert start == VisitStart(number=2, days_since_last=1, week_rank=1, month_rank=2)
    counts, start, _ = advance(counts, SEOUL.at(at("2026-12-01T00:10")))  # new month, same week
    assert start == VisitStart(number=3, days_since_last=1, week_rank=2, month_rank=1)
    counts, start, _ = advance(counts, SEOUL.at(at("2027-01-20T09:00")))
    assert start is not None and start.days_since_last == 50


def test_a_clock_going_backwards_does_not_break_the_counts() -> None:
    counts, _, _ = advance(None, SEOUL.at(at("2026-12-01T10:00")))
    counts, start, _ = advance(counts, SEOUL.at(at("2026-12-01T09:00")))
    assert start is not None and start.days_since_last == 0


# -- the counter cookie through the gateway ------------------------------------------------------


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>page</body></html>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


ROUTES = [Route("/", page), Route("/other", page), Route("/api", api)]


def counter_from(response: httpx.Response) -> str | None:
    return next((v for v in set_cookies(response) if v.startswith(f"{COOKIE_NAME}=")), None)


@pytest.mark.anyio
async def test_only_visitors_who_accepted_analytics_get_a_counter(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    assert counter_from(await client.get("/")) is None
    refused = await consent_cookie(client, ["marketing"])
    assert counter_from(await client.get("/", headers={"cookie": refused})) is None
    accepted = await consent_cookie(client, ["analytics"])
    assert counter_from(await client.get("/api", headers={"cookie": accepted})) is None  # not a page
    first = counter_from(await client.get("/", headers={"cookie": accepted}))
    assert first is not None and "HttpOnly" in first and "SameSite=Lax" in first


@pytest.mark.anyio
async def test_the_counter_expires_thirteen_months_after_it_was_first_set_and_never_later(
    gate: GateFactory, client_for: Clients
) -> None:
    clock = SteppedClock(at("2026-12-01T09:00"))
    client = client_for(gate(ROUTES, timezone="Asia/Seoul", clock=clock))
    accepted = await consent_cookie(client, ["analytics"])
    clock.now = at("2026-12-01T10:00")
    first = counter_from(await client.get("/", headers={"cookie": accepted}))
    assert first is not None
    assert "Expires=Fri, 31 Dec 2027 15:00:00 GMT" in first  # 2028-01-01 00:00 in Seoul
    value = first.split(";")[0]
    clock.now = at("2027-03-05T18:00")
    later = counter_from(await client.get("/", headers={"cookie": f"{accepted}; {value}"}))
    assert later is not None and later != first
    assert "Expires=Fri, 31 Dec 2027 15:00:00 GMT" in later


@pytest.mark.anyio
async def test_a_tampered_counter_starts_over_instead_of_counting(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    accepted = await consent_cookie(client, ["analytics"])
    forged = f"{COOKIE_NAME}=1:64:5134:5134:1c8c5f9:b9a:64:5f03:64.invalidsignature"
    fresh = counter_from(await client.get("/", headers={"cookie": f"{accepted}; {forged}"}))
    assert fresh is not None and fresh.startswith(f"{COOKIE_NAME}=1:1:")


@pytest.mark.anyio
async def test_withdrawing_deletes_the_counter(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    accepted = await consent_cookie(client, ["analytics"])
    counter = (counter_from(await client.get("/", headers={"cookie": accepted})) or "").split(";")[0]
    response = await client.delete("/_cookie_gate/consent", headers={"cookie": f"{accepted}; {counter}"})
    assert any(v.startswith(f"{COOKIE_NAME}=; Max-Age=0") for v in set_cookies(response))
    refused = await consent_cookie(client, [])
    response = await client.get("/", headers={"cookie": f"{refused}; {counter}"})
    assert any(v.startswith(f"{COOKIE_NAME}=; Max-Age=0") for v in set_cookies(response))


# -- the writer ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "stats.sqlite3")
    yield opened
    opened.close()


def writer_for(store: SQLStore, **options: Any) -> StatsWriter:
    options.setdefault("capacity", 1000)
    options.setdefault("interval", 60.0)
    options.setdefault("daily_hash", False)
    options.setdefault("clock", lambda: at("2026-12-01T10:00"))
    return StatsWriter(store, SEOUL, **options)


def view(when: str = "2026-12-01T10:00", path: str = "/", agent: str = CHROME, **fields: Any) -> CountedView:
    return CountedView(
        at(when),
        path,
        fields.get("host", b"shop.example"),
        agent.encode(),
        fields.get("referrer"),
        fields.get("ip"),
        fields.get("start"),
        fields.get("consented", False),
    )


def report(store: SQLStore, when: str = "2026-12-01T23:00", days: int = 7) -> dict[str, Any]:
    return build_report(store, SEOUL, days=days, now=at(when))


def test_a_full_queue_drops_and_counts_instead_of_blocking_or_growing(store: SQLiteStore) -> None:
    writer = writer_for(store, capacity=100, autostart=False)  # no thread drains meanwhile
    started = time.perf_counter()
    for _ in range(1000):
        writer.record(view())
    assert time.perf_counter() - started < 0.5
    assert not writer.running
    health = writer.health()
    assert health.queued == 100 and health.dropped == 900
    assert writer.flush()
    result = report(store)
    assert result["pageviews"] == 100 and result["dropped_events"] == 900


def test_bots_are_counted_apart_and_never_as_page_views(store: SQLiteStore) -> None:
    writer = writer_for(store)
    for agent in (CHROME, IPHONE, GOOGLEBOT, ""):
        writer.record(view(agent=agent))
    writer.flush()
    result = report(store)
    assert result["pageviews"] == 2 and result["bots"] == 2
    assert result["browsers"] == {"Chrome": 1, "Mobile Safari": 1}
    assert result["devices"] == {"desktop": 1, "mobile": 1}
    assert result["bot_classes"]["search-engine"] == 1


def test_entries_are_page_views_arriving_from_elsewhere(store: SQLiteStore) -> None:
    writer = writer_for(store)
    writer.record(view(referrer=b"https://search.example/?q=secret+query"))
    writer.record(view(referrer=b"http://shop.example/previous"))
    writer.record(view(referrer=None))
    writer.flush()
    result = report(store)
    assert result["entries"] == 2
    assert result["referrers"] == [{"host": "search.example", "entries": 1}]


def test_hours_and_weekdays_are_the_sites_local_time(store: SQLiteStore) -> None:
    writer = writer_for(store)
    writer.record(view("2026-12-01T00:30"))  # Tuesday 00:30 in Seoul, Monday 15:30 UTC
    writer.record(view("2026-12-01T23:59"))
    writer.flush()
    result = report(store)
    assert result["by_hour"][0] == 1 and result["by_hour"][23] == 1 and result["by_hour"][15] == 0
    assert result["by_weekday"]["Tue"] == 2


def test_unique_visitors_over_a_period_are_exact_without_identifiers(store: SQLiteStore) -> None:
    writer = writer_for(store)
    # A: first visit ever on 11-26, again on 11-28. B: last seen on 11-10, comes back on 11-27 and 11-30.
    writer.record(view("2026-11-26T10:00", start=VisitStart(1, None, 1, 1), consented=True))
    writer.record(view("2026-11-28T10:00", start=VisitStart(2, 2, 2, 2), consented=True))
    writer.record(view("2026-11-27T10:00", start=VisitStart(5, 17, 1, 2), consented=True))
    writer.record(view("2026-11-30T10:00", start=VisitStart(6, 3, 1, 1), consented=True))
    writer.flush()
    week = report(store, "2026-12-01T12:00", days=7)  # 11-25 .. 12-01: both visitors
    assert (week["visits"], week["visitors"]) == (4, 2)
    assert week["visit_frequency"]["new_visits"] == 1
    recent = report(store, "2026-12-01T12:00", days=3)  # 11-29 .. 12-01: only B's visit on 11-30
    assert (recent["visits"], recent["visitors"]) == (1, 1)
    frequency = week["visit_frequency"]
    assert frequency["visit_number"]["1"] == 1 and frequency["visit_number"]["5"] == 1
    assert frequency["days_since_last_visit"]["15-30"] == 1
    assert frequency["visitor_months_with_at_least_n_visits"] == {"1": 2, "2": 2}


def test_the_daily_hash_counts_unique_visitors_without_consent(store: SQLiteStore) -> None:
    writer = writer_for(store, daily_hash=True)
    for when in ("2026-12-01T10:00", "2026-12-01T10:20", "2026-12-01T11:00"):
        writer.record(view(when, ip="198.51.100.7"))
    writer.record(view("2026-12-01T10:05", ip="198.51.100.8"))
    writer.record(view("2026-12-02T09:00", ip="198.51.100.7"))  # a new day: a new salt, a new visitor-day
    writer.flush()
    hashed = report(store, "2026-12-02T12:00")["without_consent_daily_hash"]
    assert hashed == {"visitor_days": 3, "visits": 4}


def test_salts_and_hashed_keys_are_destroyed_within_two_days(store: SQLiteStore, gate: GateFactory) -> None:
    writer = writer_for(store, daily_hash=True)
    writer.record(view("2026-11-29T10:00", ip="198.51.100.7"))
    writer.record(view("2026-12-01T10:00", ip="198.51.100.7"))
    writer.flush()
    middleware = gate(ROUTES, store=f"sqlite:///{store.path}", timezone="Asia/Seoul")
    assert middleware.statistics is not None
    middleware.statistics.purge(at("2026-12-01T12:00"))
    assert read_store(store.path, "SELECT day FROM cookie_gate_salt") == [("2026-12-01",)]
    assert read_store(store.path, "SELECT day FROM cookie_gate_visitor_day") == [("2026-12-01",)]


def test_a_failing_store_keeps_the_counts_for_the_next_try(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = writer_for(store)
    writer.record(view())
    real = store.add_stats
    monkeypatch.setattr(store, "add_stats", lambda batch: (_ for _ in ()).throw(StoreError("disk full")))
    assert writer.flush() is False
    monkeypatch.setattr(store, "add_stats", real)
    writer.record(view())
    assert writer.flush() is True
    assert report(store)["pageviews"] == 2


def test_a_batch_lands_whole_or_not_at_all(store: SQLiteStore) -> None:
    batch = StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1}, daily={("2026-12-01", "browser", "x"): 1})
    store.add_stats(batch)
    broken = StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1}, daily={("2026-12-01", "browser", None): 1})  # type: ignore[dict-item]
    with pytest.raises(StoreError):
        store.add_stats(broken)
    assert report(store)["pageviews"] == 1


# -- the gateway end to end ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_page_views_reach_the_report_and_other_responses_do_not(gate: GateFactory, client_for: Clients) -> None:
    middleware = gate(ROUTES, timezone="Asia/Seoul")
    client = client_for(middleware)
    for path in ("/", "/other", "/", "/api", "/missing", "/?secret=1"):
        await client.get(path, headers={"user-agent": CHROME})
    await client.post("/_cookie_gate/consent", json={"accept": "all"}, headers={"user-agent": CHROME})
    await client.head("/", headers={"user-agent": CHROME})
    assert middleware.statistics is not None and middleware.statistics.writer.flush()
    result = build_report(middleware.store, SEOUL, days=1, now=suite_clock())
    assert result["pageviews"] == 4
    assert result["pages"] == [{"path": "/", "pageviews": 3}, {"path": "/other", "pageviews": 1}]
    assert result["consent"]["decisions"]["accept_all"] == 1


@pytest.mark.anyio
async def test_lifespan_shutdown_flushes_everything(gate: GateFactory, client_for: Clients) -> None:
    middleware = gate(ROUTES, stats_flush_seconds=300)
    client = client_for(middleware)
    for _ in range(25):
        await client.get("/", headers={"user-agent": CHROME})
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(2):
            message = await receive()
            await send({"type": message["type"] + ".complete"})

    lifespan_gate = gate(lifespan_app, store=str(middleware.config.store))
    assert lifespan_gate.statistics is not None and middleware.statistics is not None
    lifespan_gate.statistics.writer = middleware.statistics.writer  # the writer holding the 25 queued views
    await lifespan_gate({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    reopened = SQLiteStore(str(middleware.config.store).removeprefix("sqlite:///"))
    assert build_report(reopened, SiteClock("UTC"), days=1, now=suite_clock())["pageviews"] == 25
    reopened.close()


def test_statistics_can_be_switched_off(gate: GateFactory) -> None:
    assert gate(ROUTES, statistics=False).statistics is None


# -- the command line ------------------------------------------------------------------------------


def test_cookie_gate_stats_prints_a_readable_report_and_json(
    store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = StatsWriter(store, SiteClock("UTC"), clock=suite_clock, capacity=100, interval=60, daily_hash=False)
    now = suite_clock()
    for offset in (0, 3600):
        writer.record(CountedView(now - offset, "/", b"shop.example", CHROME.encode(), None, None, None, False))
    writer.flush()
    url = f"sqlite:///{store.path}"
    assert main(["--store", url, "stats", "--days", "7"], clock=suite_clock) == 0
    text = capsys.readouterr().out
    assert "page views          2" in text and "Page views by hour of day" in text and "█" in text
    assert main(["--store", url, "stats", "--json"], clock=suite_clock) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("pageviews", "visits", "visitors", "bots", "by_hour", "by_weekday", "visit_frequency", "browsers",
                "os", "devices", "pages", "consent"):  # fmt: skip
        assert key in data
    assert len(data["by_hour"]) == 24 and len(data["by_weekday"]) == 7


def test_cookie_gate_purge_applies_retention(store: SQLiteStore, capsys: pytest.CaptureFixture[str]) -> None:
    writer = StatsWriter(store, SiteClock("UTC"), clock=suite_clock, capacity=100, interval=60, daily_hash=False)
    writer.record(
        CountedView(suite_clock() - 120 * 86400, "/old-page", b"shop.example", CHROME.encode(), None, None, None, False)
    )
    writer.record(CountedView(suite_clock(), "/new-page", b"shop.example", CHROME.encode(), None, None, None, False))
    writer.flush()
    assert main(["--store", f"sqlite:///{store.path}", "purge"], clock=suite_clock) == 0
    assert "cookie_gate_detail 1" in capsys.readouterr().out
    assert stored_paths(store.path) == [("/new-page", 1)]


def test_cookie_gate_stats_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stats", "--days", "0"])
    assert "at least 1" in capsys.readouterr().err
    assert main(["--store", "sqlite://host/x", "stats"]) == 2


def test_counts_the_cookie_holds_are_its_own() -> None:
    fields = set(Counts.__dataclass_fields__)
    assert fields == {"visits", "first_day", "last_day", "last_minute", "week", "week_visits", "month", "month_visits"}


def _logged_ids(store: SQLStore) -> list[str]:
    return [record.consent_id for record in store.consent_log()]


def _wait_for(condition: Callable[[], bool]) -> bool:
    """A thread's first round: polled, with a bound far above what it takes."""
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.mark.anyio
async def test_with_statistics_off_the_consent_log_is_still_purged_daily(gate: GateFactory) -> None:
    """No writer, no writer tick: lifespan startup starts the daily retention of its own, and
    lifespan shutdown stops it."""
    now = at("2026-12-01T09:00")
    started = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal started
        await receive()
        await send({"type": "lifespan.startup.complete"})
        started = _wait_for(lambda: _logged_ids(middleware.store) == ["kept"])
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    middleware = gate(app, statistics=False, consent_log_retention_days=400, clock=SteppedClock(now))
    store = middleware.store
    for consent_id, age_days in (("too-old", 401), ("kept", 399)):
        store.log_decision(
            DecisionRecord(consent_id, int(now) - age_days * 86400, "accept_all", ("necessary",), "1", False)
        )
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert started
    assert middleware.retention is not None and middleware.retention.thread is not None
    assert not middleware.retention.thread.is_alive()


@pytest.mark.anyio
async def test_with_statistics_off_and_no_lifespan_the_first_request_starts_retention(
    gate: GateFactory, client_for: Callable[..., httpx.AsyncClient]
) -> None:
    now = at("2026-12-01T09:00")
    middleware = gate([Route("/", page)], statistics=False, consent_log_retention_days=400, clock=SteppedClock(now))
    middleware.store.log_decision(
        DecisionRecord("too-old", int(now) - 401 * 86400, "accept_all", ("necessary",), "1", False)
    )
    assert middleware.retention is not None and middleware.retention.thread is None
    await client_for(middleware).get("/")
    assert _wait_for(lambda: _logged_ids(middleware.store) == [])
    middleware.retention.stop()


def test_with_statistics_on_the_writer_tick_purges_and_no_second_thread_is_made(gate: GateFactory) -> None:
    assert gate([], statistics=True).retention is None
