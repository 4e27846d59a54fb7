"""The admin dashboard: the statistics report as a page and as JSON, behind a token.

Without `admin_token` there is no dashboard at all (404), so nothing about it can
leak. With one, `Authorization: Bearer <token>` or HTTP Basic with the token as the
password opens it (Basic lets a browser ask for it). The page is rendered on the
server: no script, one inline style allowed by its hash in the page's own CSP.
`health.json` tells a monitor whether the store answers and what the writer holds;
it answers 503 while the store cannot be written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread

from cookie_gate.asgi import Scope, Send, header, respond, respond_error, respond_json
from cookie_gate.classify import TRUNCATED
from cookie_gate.clock import Clock
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import WriterHealth
from cookie_gate.store.sql import SCHEMA_VERSION, SQLStore
from cookie_gate.terminal import printable

#: What the dashboard asks for the statistics writer's state (None when statistics are off).
WriterHealthSource = Callable[[], WriterHealth]

MAX_DAYS = 800
_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1a1a1a}"
    "h1{font-size:1.4rem}h2{font-size:1.05rem;margin-top:2rem}table{border-collapse:collapse;width:100%}"
    "td,th{padding:.2rem .5rem;text-align:start;border-bottom:1px solid #ddd}td.n{text-align:end;width:7rem}"
    "meter{width:100%;height:.9rem}"
    ".totals{display:flex;flex-wrap:wrap;gap:1.5rem}.totals div{font-size:1.6rem}.totals small{display:block;"
    "font-size:.8rem;color:#555}@media (prefers-color-scheme:dark){body{background:#16181c;color:#eee}"
    "td,th{border-color:#333}.totals small{color:#aaa}}"
)
_CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    + "'; frame-ancestors 'none'; form-action 'self'"
).encode()


class Dashboard:
    def __init__(
        self,
        token: str,
        store: SQLStore,
        timezone: str,
        clock: Clock,
        writer_health: WriterHealthSource | None = None,
    ) -> None:
        self._token = token.encode()
        self._store = store
        self._site_clock = SiteClock(timezone)
        self._clock = clock
        self._writer_health = writer_health

    async def __call__(self, scope: Scope, send: Send, subpath: str) -> None:
        if subpath not in ("", "/stats.json", "/health.json"):
            await respond_error(send, 404, "no such cookie_gate endpoint")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await respond_error(send, 405, "the dashboard is read-only", [(b"allow", b"GET, HEAD")])
            return
        if not self._authorised(header(scope, b"authorization")):
            challenge = [(b"www-authenticate", b'Basic realm="cookie_gate", charset="UTF-8"')]
            await respond_error(send, 401, "send Authorization: Bearer <admin token>", challenge)
            return
        private = [(b"x-robots-tag", b"noindex"), (b"referrer-policy", b"no-referrer")]
        if subpath == "/health.json":
            health = await anyio.to_thread.run_sync(self._health)
            status = 200 if health["store_reachable"] else 503
            await respond_json(send, status, health, private, head_only=scope["method"] == "HEAD")
            return
        days = _days(scope.get("query_string", b""))
        if days is None:
            await respond_error(send, 400, f"days must be a whole number from 1 to {MAX_DAYS}")
            return
        report = await anyio.to_thread.run_sync(
            lambda: build_report(self._store, self._site_clock, days=days, now=self._clock())
        )
        if subpath == "/stats.json":
            await respond_json(send, 200, report, private, head_only=scope["method"] == "HEAD")
            return
        inventory = await anyio.to_thread.run_sync(self._store.inventory)
        page = _page(report, inventory).encode("utf-8")
        headers = [(b"cache-control", b"no-store"), (b"content-security-policy", _CSP), *private]
        await respond(send, 200, page, b"text/html; charset=utf-8", headers, head_only=scope["method"] == "HEAD")

    def _health(self) -> dict[str, Any]:
        store = self._store.health(self._clock())  # one transaction, reused for a few seconds
        problem, version = store.problem, store.schema_version
        writer = self._writer_health() if self._writer_health is not None else None
        return {
            "store_reachable": problem is None,
            "store_problem": problem,
            "schema_version": version,
            "schema_version_expected": SCHEMA_VERSION,
            "statistics": writer is not None,
            "last_flush": _iso(writer.last_flush) if writer else None,
            "last_flush_error": writer.last_error if writer else None,
            "queue_depth": writer.queued if writer else 0,
            "held_counters": writer.held_counters if writer else 0,
            "dropped_events": writer.dropped if writer else 0,
            "shed": writer.shed if writer else {},
        }

    def _authorised(self, authorization: bytes | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            offered = credentials.strip()
        elif scheme.lower() == b"basic":
            try:
                offered = base64.b64decode(credentials.strip(), validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        else:
            return False
        return hmac.compare_digest(offered, self._token)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _days(query: bytes) -> int | None:
    try:
        values = parse_qs(query.decode("latin-1"), strict_parsing=False).get("days", ["30"])
    except ValueError:
        return None
    text = values[-1]
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and few of them: int()
    # refuses thousands.
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_DAYS))):
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


def _page(report: Mapping[str, Any], inventory: Sequence[tuple[str, str, str, str, str]] = ()) -> str:
    period = report["period"]
    frequency = report["visit_frequency"]
    totals = "".join(
        f"<div>{n:,}<small>{escape(label)}</small></div>"
        for label, n in (
            ("page views", report["pageviews"]),
            ("entries", report["entries"]),
            ("visits", report["visits"]),
            ("visitors", report["visitors"]),
            ("bots (not counted)", report["bots"]),
        )
    )
    sections = [
        ("Page views by hour of day", {f"{h:02d}:00": n for h, n in enumerate(report["by_hour"])}),
        ("Page views by weekday", report["by_weekday"]),
        ("Visits by visit number", frequency["visit_number"]),
        ("Days since the previous visit", frequency["days_since_last_visit"]),
        (
            "Visitor-weeks with at least n visits (a visitor counts once per week)",
            frequency["visitor_weeks_with_at_least_n_visits"],
        ),
        (
            "Visitor-months with at least n visits (a visitor counts once per month)",
            frequency["visitor_months_with_at_least_n_visits"],
        ),
        ("Browsers", report["browsers"]),
        ("Operating systems", report["os"]),
        ("Devices", report["devices"]),
        ("Top pages", {p["path"]: p["pageviews"] for p in report["pages"]}),
        ("Referrers", {r["host"]: r["entries"] for r in report["referrers"]}),
        ("Consent decisions", report["consent"]["decisions"]),
        ("Not counted or shed (the store was down or the queue full)", _losses(report)),
        ("Accepted categories", report["consent"]["accepted"]),
    ]
    body = "".join(_table(title, values) for title, values in sections) + _cookies(inventory)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>cookie_gate statistics</title>'
        f"<style>{_STYLE}</style></head><body><h1>cookie_gate statistics</h1>"
        f"<p>{escape(period['from'])} to {escape(period['to'])} ({period['days']} days, "
        f"{escape(period['timezone'])}). Visits and visitors are those who accepted analytics. "
        f'<a href="?days=7">7 days</a> · <a href="?days=30">30 days</a> · <a href="?days=90">90 days</a> · '
        f'<a href="admin/stats.json?days={period["days"]}">JSON</a></p>'
        f'<div class="totals">{totals}</div>{body}</body></html>'
    )


def _cookies(inventory: Sequence[tuple[str, str, str, str, str]]) -> str:
    """The cookie inventory, suspected trackers first, each with the heuristic's reason."""
    truncated = [row for row in inventory if row[0] == TRUNCATED]
    rows = sorted(
        (row for row in inventory if row[0] != TRUNCATED),
        key=lambda row: (not row[2].startswith("suspected tracker"), row[1], row[0]),
    )
    lines = "".join(
        f'<tr><th scope="row">{escape(name)}</th><td>{escape(category)}</td>'
        f"<td>{'<strong>' if source.startswith('suspected tracker') else ''}{escape(source)}"
        f"{'</strong>' if source.startswith('suspected tracker') else ''}</td>"
        f'<td class="n">{escape(first)}</td><td class="n">{escape(last)}</td></tr>'
        for name, category, source, first, last in rows
    )
    note = f"<p>Truncated: {escape(truncated[0][2])}.</p>" if truncated else ""
    head = "<tr><th>cookie</th><th>category</th><th>filed by</th><th>first seen</th><th>last seen</th></tr>"
    return (
        f"<h2>Cookies seen ({len(rows)})</h2>{note}<p>Override any filing in the config file, e.g. "
        '<code>[categories.necessary] cookies = ["name"]</code>.</p>'
        f"<table>{head}{lines or '<tr><td>none yet</td></tr>'}</table>"
    )


def _losses(report: Mapping[str, Any]) -> dict[str, int]:
    losses = {"page views dropped": report["dropped_events"]}
    losses.update({f"{kind.replace('_', ' ')} shed": n for kind, n in report["shed"].items()})
    return {label: n for label, n in losses.items() if n}


def _table(title: str, values: Mapping[str, int]) -> str:
    peak = max(values.values(), default=0)
    # <meter> draws the bar without a style attribute, which the page's CSP would block.
    rows = "".join(
        f'<tr><th scope="row">{escape(printable(str(label)))}</th><td><meter min="0" max="{max(peak, 1)}" value="{n}">'
        f'</meter></td><td class="n">{n:,}</td></tr>'
        for label, n in values.items()
    )
    return f"<h2>{escape(title)}</h2><table>{rows or '<tr><td>none yet</td></tr>'}</table>"
