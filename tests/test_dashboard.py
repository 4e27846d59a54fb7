"""The dashboard's period, comparison, exports, languages and hostile queries, on known data.

Counters are written through a real `StatsWriter` at fixed instants and the gateway gets
a fixed clock, so no figure here depends on when the suite runs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware
from cookie_gate.dashboard.exports import TABLES
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store import DecisionRecord
from cookie_gate.store.sql import SQLStore, StatsBatch
from tests.clocks import SteppedClock
from tests.conftest import GateFactory, Postgres
from tests.dashboard_data import AGENTS, LAST_DAY, at, seed

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
TOKEN = "admin-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CHROME = AGENTS[0]


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>shop</body></html>")


def dashboard(gate: GateFactory, **options: Any) -> CookieGateMiddleware:
    """A gateway with a dashboard whose today is the day after the seeded data ends."""
    options.setdefault("clock", SteppedClock(at(date(2026, 12, 1), 9)))
    return gate([Route("/", page)], admin_token=TOKEN, **options)


def views(store: SQLStore, per_day: dict[date, int], path: str = "/") -> None:
    writer = StatsWriter(store, SiteClock("UTC"), clock=lambda: at(LAST_DAY, 23), capacity=1000, interval=60.0,
                         daily_hash=False)  # fmt: skip
    for day, n in per_day.items():
        for i in range(n):
            writer.record(CountedView(at(day, 10, i), path, b"shop.example", CHROME.encode(), None, None, None, False))
    assert writer.flush()
    writer.stop()


def decide(store: SQLStore, day: date, action: str, *categories: str) -> None:
    store.log_decision(DecisionRecord(f"id-{day}-{action}-{categories}", int(at(day, 12)), action,
                                      ("necessary", *categories), "1", False))  # fmt: skip


# -- the period and the comparison ---------------------------------------------------------------


async def test_a_from_to_period_is_compared_with_the_one_just_before(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    views(middleware.store, {date(2026, 11, 3): 2, date(2026, 11, 10): 3, date(2026, 11, 15): 5, date(2026, 11, 21): 1})
    client = client_for(middleware)
    response = await client.get("/_cookie_gate/admin/stats.json?from=2026-11-15&to=2026-11-21", headers=AUTH)
    report = response.json()
    assert report["period"] == {"from": "2026-11-15", "to": "2026-11-21", "days": 7, "timezone": "UTC"}
    assert report["pageviews"] == 6
    assert report["previous"]["period"]["from"] == "2026-11-08" and report["previous"]["period"]["to"] == "2026-11-14"
    assert report["previous"]["pageviews"] == 3 and report["change"]["pageviews"] == 3
    assert [d["pageviews"] for d in report["daily"]] == [5, 0, 0, 0, 0, 0, 1]
    assert report["by_weekday_hour"]["Sun"][10] == 5  # 2026-11-15 was a Sunday
    html = (await client.get("/_cookie_gate/admin?from=2026-11-15&to=2026-11-21", headers=AUTH)).text
    assert "2026-11-15 to 2026-11-21 (7 days, UTC)" in html and "Compared with 2026-11-08 to 2026-11-14." in html
    assert '<b>6</b><span>Page views</span><span class="up">+3 (+100%)' in html
    assert 'value="2026-11-15"' in html and 'value="2026-11-21"' in html  # the form shows the period


async def test_the_days_presets_count_back_from_the_clocks_today(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    views(middleware.store, {date(2026, 11, 24): 4, date(2026, 11, 23): 7})
    client = client_for(middleware)
    week = (await client.get("/_cookie_gate/admin/stats.json?days=7", headers=AUTH)).json()
    assert (week["period"]["from"], week["period"]["to"]) == ("2026-11-25", "2026-12-01")
    assert week["pageviews"] == 0 and week["previous"]["pageviews"] == 11 and week["change"]["pageviews"] == -11
    html = (await client.get("/_cookie_gate/admin?days=7&lang=ko", headers=AUTH)).text
    for days in (7, 30, 90):
        assert f'href="?days={days}&amp;lang=ko">최근 {days}일</a>' in html


async def test_consent_decisions_per_day_and_the_opt_in_rate_per_category(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = dashboard(gate)
    store = middleware.store
    day, before = date(2026, 11, 20), date(2026, 11, 13)
    decide(store, day, "accept_all", "preferences", "analytics", "marketing")
    decide(store, day, "accept_all", "preferences", "analytics", "marketing")
    decide(store, day, "reject_all")
    decide(store, day, "custom", "analytics")
    decide(store, day, "withdraw")  # not a choice: the rates are of the four above
    decide(store, before, "reject_all")
    decide(store, date(2026, 11, 27), "accept_all", "marketing")  # the day after the period: not in it
    client = client_for(middleware)
    report = (await client.get("/_cookie_gate/admin/stats.json?from=2026-11-20&to=2026-11-26", headers=AUTH)).json()
    consent = report["consent"]
    assert consent["decisions"] == {"accept_all": 2, "reject_all": 1, "custom": 1, "withdraw": 1}
    assert consent["opt_in_rate"] == {"analytics": 0.75, "marketing": 0.5, "necessary": 1.0, "preferences": 0.5}
    first = consent["by_day"][0]
    assert first["day"] == "2026-11-20" and first["accept_all"] == 2 and first["withdraw"] == 1
    assert [d["day"] for d in consent["by_day"]] == [f"2026-11-{d}" for d in range(20, 27)]
    assert sum(d["reject_all"] for d in consent["by_day"]) == 1
    assert report["previous"]["opt_in_rate"] == {"necessary": 1.0} and report["previous"]["decisions"] == 1
    html = (await client.get("/_cookie_gate/admin?from=2026-11-20&to=2026-11-26", headers=AUTH)).text
    assert re.search(r'<th scope="row">Analytics</th><td class="n">3</td><td class="n">75\.0%</td>', html)


async def test_the_opt_in_exports_list_the_categories_the_page_shows(gate: GateFactory, client_for: Clients) -> None:
    """Every configured category but `necessary`, at 0 when nobody accepted it, on the page and in
    both consent exports alike."""
    middleware = dashboard(gate)
    decide(middleware.store, date(2026, 11, 20), "custom", "analytics")
    decide(middleware.store, date(2026, 11, 20), "reject_all")
    client = client_for(middleware)
    period = "from=2026-11-20&to=2026-11-26"
    html = (await client.get(f"/_cookie_gate/admin?{period}", headers=AUTH)).text
    on_page = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="n">(\d+)</td><td class="n">([\d.]+)%</td>', html)
    opt_in = (await client.get(f"/_cookie_gate/admin/export/opt_in.json?{period}", headers=AUTH)).json()
    assert [(r["category"], r["accepted"], r["opt-in rate"]) for r in opt_in] == [
        ("analytics", 1, 0.5),
        ("marketing", 0, 0.0),
        ("preferences", 0, 0.0),
    ]
    assert [(label.lower(), int(n), float(rate) / 100) for label, n, rate in on_page] == [
        (r["category"], r["accepted"], r["opt-in rate"]) for r in opt_in
    ]
    daily = (await client.get(f"/_cookie_gate/admin/export/consent_daily.json?{period}", headers=AUTH)).json()
    assert [c for c in daily[0] if c.startswith("opt-in rate")] == [f"opt-in rate {r['category']}" for r in opt_in]


async def test_decisions_fall_on_the_sites_own_day_even_at_a_quarter_hour_offset(
    gate: GateFactory, client_for: Clients
) -> None:
    """Nepal is UTC+5:45: decisions are grouped per quarter hour, so none crosses a local midnight."""
    middleware = dashboard(gate, timezone="Asia/Kathmandu")
    nepal = ZoneInfo("Asia/Kathmandu")
    for moment in (datetime(2026, 11, 20, 23, 50, tzinfo=nepal), datetime(2026, 11, 21, 0, 5, tzinfo=nepal)):
        middleware.store.log_decision(DecisionRecord(str(moment), int(moment.timestamp()), "reject_all", ("necessary",),
                                                     "1", False))  # fmt: skip
    client = client_for(middleware)
    report = (await client.get("/_cookie_gate/admin/stats.json?from=2026-11-20&to=2026-11-21", headers=AUTH)).json()
    assert [(d["day"], d["reject_all"]) for d in report["consent"]["by_day"]] == [("2026-11-20", 1), ("2026-11-21", 1)]


# -- exports -------------------------------------------------------------------------------------


async def test_every_export_parses_back_to_the_reports_numbers(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    seed(middleware.store)
    client = client_for(middleware)
    period = "from=2026-11-01&to=2026-11-30"
    report = (await client.get(f"/_cookie_gate/admin/stats.json?{period}", headers=AUTH)).json()
    exported: dict[str, list[dict[str, str]]] = {}
    for name in TABLES:
        as_csv = await client.get(f"/_cookie_gate/admin/export/{name}.csv?{period}", headers=AUTH)
        as_json = await client.get(f"/_cookie_gate/admin/export/{name}.json?{period}", headers=AUTH)
        assert as_csv.status_code == as_json.status_code == 200
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert (
            as_csv.headers["content-disposition"]
            == f'attachment; filename="cookie-gate-{name}-2026-11-01-2026-11-30.csv"'
        )
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert rows == [{k: str(v) for k, v in record.items()} for record in as_json.json()], name
        exported[name] = rows
    assert report["pageviews"] > 0 and sum(int(r["pageviews"]) for r in exported["daily"]) == report["pageviews"]
    assert sum(int(r["visits"]) for r in exported["daily"]) == report["visits"]
    assert [int(r["pageviews"]) for r in exported["by_hour"]] == report["by_hour"]
    assert {r["weekday"]: int(r["count"]) for r in exported["by_weekday"]} == report["by_weekday"]
    assert {r["weekday"]: [int(r[f"{h:02d}"]) for h in range(24)] for r in exported["by_weekday_hour"]} == report[
        "by_weekday_hour"
    ]
    for name, key in (("browsers", "browser"), ("os", "system"), ("devices", "device")):
        assert {r[key]: int(r["count"]) for r in exported[name]} == report[name]
    assert [(r["path"], int(r["pageviews"])) for r in exported["pages"]] == [
        (p["path"], p["pageviews"]) for p in report["pages"]
    ]
    assert [(r["host"], int(r["entries"])) for r in exported["referrers"]] == [
        (p["host"], p["entries"]) for p in report["referrers"]
    ]
    frequency = report["visit_frequency"]
    assert {r["visit number"]: int(r["count"]) for r in exported["visit_number"]} == frequency["visit_number"]
    assert {r["days"]: int(r["count"]) for r in exported["days_since_last_visit"]} == frequency["days_since_last_visit"]
    consent = report["consent"]
    for action, n in consent["decisions"].items():
        assert sum(int(r[action]) for r in exported["consent_daily"]) == n
    shown = {c: rate for c, rate in consent["opt_in_rate"].items() if c != "necessary"}
    assert {r["category"]: float(r["opt-in rate"]) for r in exported["opt_in"]} == shown
    previous = report["previous"]["opt_in_rate"]
    assert {r["category"]: float(r["previous opt-in rate"]) for r in exported["opt_in"]} == {
        c: previous.get(c, 0.0) for c in shown
    }
    inventory = middleware.store.inventory()
    assert sorted(r["cookie"] for r in exported["cookies"]) == sorted(row[0] for row in inventory)
    assert exported["cookies"][0]["cookie"] == "wow.anonymousId"  # the suspected tracker first


async def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    for path in ('=HYPERLINK("http://evil.example")', "+1+1", "-2+3", "@SUM(A1)", "/plain"):
        views(middleware.store, {date(2026, 11, 30): 1}, path=path)
    middleware.store.add_stats(StatsBatch(cookies={"=cmd|' /C calc'!A0": ("necessary", "unknown", "2026-11-30")}))
    client = client_for(middleware)
    pages = await client.get("/_cookie_gate/admin/export/pages.csv?days=7", headers=AUTH)
    paths = {row["path"] for row in csv.DictReader(io.StringIO(pages.text))}
    assert paths == {'\'=HYPERLINK("http://evil.example")', "'+1+1", "'-2+3", "'@SUM(A1)", "/plain"}
    cookies = await client.get("/_cookie_gate/admin/export/cookies.csv?days=7", headers=AUTH)
    assert [row["cookie"] for row in csv.DictReader(io.StringIO(cookies.text))] == ["'=cmd|' /C calc'!A0"]
    # JSON is data, not a formula: it keeps the value as it came.
    as_json = (await client.get("/_cookie_gate/admin/export/pages.json?days=7", headers=AUTH)).json()
    assert '=HYPERLINK("http://evil.example")' in {r["path"] for r in as_json}


async def test_control_and_bidi_characters_never_reach_an_export_raw(gate: GateFactory, client_for: Clients) -> None:
    """The same rule as the consent log's CSV: escaped for a terminal, then made formula-safe; a
    cell that starts with `'` gets one more, so dropping one gives the value back."""
    middleware = dashboard(gate)
    for path in ("/\u202egnp.exe", "/\x1b[2Jfake", "'quoted"):
        views(middleware.store, {date(2026, 11, 30): 1}, path=path)
    client = client_for(middleware)
    as_csv = await client.get("/_cookie_gate/admin/export/pages.csv?days=7", headers=AUTH)
    assert {row["path"] for row in csv.DictReader(io.StringIO(as_csv.text))} == {
        "/\\u202egnp.exe",
        "/\\x1b[2Jfake",
        "''quoted",
    }
    as_json = await client.get("/_cookie_gate/admin/export/pages.json?days=7", headers=AUTH)
    assert "\u202e" not in as_json.text and "\x1b" not in as_json.text
    assert {r["path"] for r in as_json.json()} == {"/\u202egnp.exe", "/\x1b[2Jfake", "'quoted"}


# -- languages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "query", "lang", "heading"),
    [
        ("ko-KR,ko;q=0.9,en;q=0.5", "", "ko", "cookie_gate 통계"),
        ("en-US", "", "en", "cookie_gate statistics"),
        ("fr-FR", "", "en", "cookie_gate statistics"),
        ("ko", "?lang=en", "en", "cookie_gate statistics"),
        ("en", "?lang=ko", "ko", "cookie_gate 통계"),
    ],
)
async def test_the_language_follows_the_browser_or_the_switch(
    gate: GateFactory, client_for: Clients, accept_language: str, query: str, lang: str, heading: str
) -> None:
    client = client_for(dashboard(gate))
    headers = {**AUTH, "accept-language": accept_language}
    html = (await client.get(f"/_cookie_gate/admin{query}", headers=headers)).text
    assert f'<html lang="{lang}">' in html and f"<h1>{heading}</h1>" in html
    other = "en" if lang == "ko" else "ko"
    assert f'lang={other}" lang="{other}" hreflang="{other}">' in html  # the switch to the other one


async def test_a_site_whose_default_is_korean_shows_korean_without_a_preference(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(dashboard(gate, default_locale="ko"))
    assert '<html lang="ko">' in (await client.get("/_cookie_gate/admin", headers=AUTH)).text


# -- hostile queries and text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("from=2026-13-01&to=2026-12-01", "from is not a calendar date"),
        ("from=2026-02-30&to=2026-03-01", "from is not a calendar date"),
        ("from=\uff12\uff10\uff12\uff16-11-01&to=2026-11-02", "from must be a date written YYYY-MM-DD"),
        ("from=2026-11-01", "to must be a date written YYYY-MM-DD"),
        ("to=2026-11-01", "from must be a date written YYYY-MM-DD"),
        ("from=2026-11-01T00:00&to=2026-11-02", "from must be a date written YYYY-MM-DD"),
        ("from=2026-11-02&to=2026-11-01", "to must not be before from"),
        ("from=2020-01-01&to=2026-11-01", "at most 800 days"),
        ("from=9999-12-30&to=9999-12-31", "years 1971 to 9000"),
        ("from=0001-01-01&to=0001-01-02", "years 1971 to 9000"),
        ("days=1e3", "days must be a whole number"),
        ("days=%C2%B2", "days must be a whole number"),
        ("lang=fr", "lang must be one of en, ko"),
        ("lang=%3Cscript%3E", "lang must be one of en, ko"),
        ("&".join(f"x{i}=1" for i in range(40)), "more than 16 fields"),
    ],
)
async def test_a_bad_query_is_a_400_with_the_reason(
    gate: GateFactory, client_for: Clients, query: str, reason: str
) -> None:
    client = client_for(dashboard(gate))
    for path in ("", "/stats.json", "/export/pages.csv"):
        response = await client.get(f"/_cookie_gate/admin{path}?{query}", headers=AUTH)
        assert response.status_code == 400, path
        assert reason in response.json()["error"]
        assert "<script>" not in response.text


@pytest.mark.parametrize(
    "path", ["/export/nope.csv", "/export/pages.xml", "/export/pages", "/export/pages.csv/x", "/export/PAGES.csv"]
)
async def test_an_unknown_export_is_a_404(gate: GateFactory, client_for: Clients, path: str) -> None:
    client = client_for(dashboard(gate))
    response = await client.get(f"/_cookie_gate/admin{path}", headers=AUTH)
    assert response.status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["from", "to", "days", "lang", "x"]),
        st.text(st.characters(codec="utf-8"), max_size=20) | st.sampled_from(["2026-11-01", "2026-11-30", "ko", "7"]),
        max_size=5,
    )
)
async def test_any_query_is_answered_with_the_page_or_a_reason_never_a_500(
    gate: GateFactory, client_for: Clients, params: dict[str, str]
) -> None:
    client = client_for(dashboard(gate))
    response = await client.get("/_cookie_gate/admin", params=params, headers=AUTH)
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert response.json()["error"]


async def test_visitors_text_is_escaped_on_the_page(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    for path in ("/<script>alert(1)</script>", '/"><img src=x onerror=alert(1)>', "/a\x1b[2J\u202etxt"):
        views(middleware.store, {date(2026, 11, 30): 1}, path=path)
    middleware.store.add_stats(StatsBatch(cookies={'"><svg onload=alert(1)>': ("necessary", "unknown", "2026-11-30")}))
    client = client_for(middleware)
    html = (await client.get("/_cookie_gate/admin?days=7", headers=AUTH)).text
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "/&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "/a\\x1b[2J\\u202etxt" in html and "\x1b" not in html and "\u202e" not in html
    assert "&quot;&gt;&lt;svg onload=alert(1)&gt;" in html
    assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no event handler attribute anywhere
    assert " style=" not in html


async def test_the_style_carries_the_nonce_of_an_outer_csp(gate: GateFactory, client_for: Clients) -> None:
    inner = dashboard(gate)

    async def with_nonce(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["csp_nonce"] = 'n0nce"><x'
        await inner(scope, receive, send)

    html = (await client_for(with_nonce).get("/_cookie_gate/admin", headers=AUTH)).text
    assert '<style nonce="n0nce&quot;&gt;&lt;x">' in html


async def test_the_page_shows_the_stores_health(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(dashboard(gate))
    html = (await client.get("/_cookie_gate/admin", headers=AUTH)).text
    assert "<h2>Store health</h2><p>The store answers.</p>" in html
    assert "<dt>Schema version</dt>" in html and "<dt>Page views waiting</dt><dd>0</dd>" in html


async def test_a_quarter_of_data_makes_a_page_small_enough_for_a_phone(gate: GateFactory, client_for: Clients) -> None:
    middleware = dashboard(gate)
    seed(middleware.store)
    client = client_for(middleware)
    response = await client.get("/_cookie_gate/admin?days=90", headers=AUTH)
    assert response.status_code == 200 and "1,0" in response.text  # thousands of page views are shown
    assert len(response.content) < 150_000, len(response.content)


async def test_postgresql_gives_the_dashboard_the_same_numbers_as_sqlite(
    gate: GateFactory, client_for: Clients, postgres: Postgres
) -> None:
    reports = []
    for store in (None, postgres.url):
        middleware = dashboard(gate, **({"store": store} if store else {}))
        seed(middleware.store, days=35)
        client = client_for(middleware)
        response = await client.get("/_cookie_gate/admin/stats.json?from=2026-11-01&to=2026-11-30", headers=AUTH)
        reports.append(response.json())
    sqlite, postgresql = reports
    assert sqlite["pageviews"] > 0 and sum(sqlite["consent"]["decisions"].values()) > 0
    assert postgresql == sqlite


def test_both_languages_have_every_dashboard_word() -> None:
    from cookie_gate.dashboard.texts import TEXTS

    assert TEXTS["ko"].keys() == TEXTS["en"].keys()
    assert all(TEXTS["ko"][key] for key in TEXTS["ko"])
