"""The admin dashboard: the statistics report as a page and as JSON, behind a token.

Without `admin_token` there is no dashboard at all (404), so nothing about it can
leak. With one, `Authorization: Bearer <token>` or HTTP Basic with the token as the
password opens it (Basic lets a browser ask for it). This module owns the endpoint:
the token, the routes (the page, `stats.json`, `health.json`, `export/<table>.csv|json`)
and their headers; `cookie_gate.dashboard` checks the query, renders the page (no
script, one inline style allowed by its hash in the page's own CSP) and the exports.
`health.json` tells a monitor whether the store answers and what the writer holds;
it answers 503 while the store cannot be written.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from cookie_gate.asgi import Scope, Send, header, respond, respond_error, respond_json
from cookie_gate.banner import preferred_locale
from cookie_gate.clock import Clock
from cookie_gate.config import DEFAULT_CATEGORIES, Category, Config, localized
from cookie_gate.consent import NECESSARY
from cookie_gate.dashboard.exports import TABLES, as_csv, as_json, table
from cookie_gate.dashboard.page import CSP, DashboardView, render
from cookie_gate.dashboard.query import BadQuery, DashboardQuery, parse_query
from cookie_gate.dashboard.texts import LOCALES
from cookie_gate.placement import request_nonce
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import WriterHealth
from cookie_gate.store.sql import SCHEMA_VERSION, SQLStore

#: What the dashboard asks for the statistics writer's state (None when statistics are off).
WriterHealthSource = Callable[[], WriterHealth]

#: `/export/<table>.<format>`: every table of the page, as CSV or JSON.
_EXPORT = re.compile(r"/export/([a-z_]{1,40})\.(csv|json)")
_EXPORT_TYPES = {"csv": b"text/csv; charset=utf-8", "json": b"application/json"}


class Dashboard:
    def __init__(
        self,
        token: str,
        store: SQLStore,
        timezone: str,
        clock: Clock,
        writer_health: WriterHealthSource | None = None,
        *,
        categories: Sequence[Category] = DEFAULT_CATEGORIES,
        default_locale: str = "en",
        csp_nonce_key: str = "csp_nonce",
    ) -> None:
        self._token = token.encode()
        self._categories = tuple(categories)
        self._default_locale = default_locale if default_locale in LOCALES else "en"
        self._store = store
        self._site_clock = SiteClock(timezone)
        self._clock = clock
        self._writer_health = writer_health
        self._nonce_key = csp_nonce_key

    @classmethod
    def for_config(
        cls, config: Config, store: SQLStore, clock: Clock, writer_health: WriterHealthSource | None
    ) -> Dashboard:
        """The dashboard of a gateway configured with an `admin_token`."""
        if not config.admin_token:
            raise ValueError("the dashboard needs an admin_token")
        return cls(
            config.admin_token,
            store,
            config.timezone,
            clock,
            writer_health,
            categories=config.categories,
            default_locale=config.default_locale,
            csp_nonce_key=config.csp_nonce_key,
        )

    async def __call__(self, scope: Scope, send: Send, subpath: str) -> None:
        export = _EXPORT.fullmatch(subpath)
        if subpath not in ("", "/stats.json", "/health.json") and export is None:
            await respond_error(send, 404, "no such cookie_gate endpoint")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await respond_error(send, 405, "the dashboard is read-only", [(b"allow", b"GET, HEAD")])
            return
        if not self._authorised(header(scope, b"authorization")):
            challenge = [(b"www-authenticate", b'Basic realm="cookie_gate", charset="UTF-8"')]
            await respond_error(send, 401, "send Authorization: Bearer <admin token>", challenge)
            return
        head_only = scope["method"] == "HEAD"
        private = [(b"x-robots-tag", b"noindex"), (b"referrer-policy", b"no-referrer")]
        if subpath == "/health.json":
            health = await anyio.to_thread.run_sync(self._health)
            await respond_json(send, 200 if health["store_reachable"] else 503, health, private, head_only=head_only)
            return
        if export is not None and export[1] not in TABLES:
            await respond_error(send, 404, f"no such table; the tables are {', '.join(TABLES)}")
            return
        try:
            query = parse_query(scope.get("query_string", b""))
        except BadQuery as error:
            await respond_error(send, 400, str(error))
            return
        report = await anyio.to_thread.run_sync(self._report, query)
        if subpath == "/stats.json":
            await respond_json(send, 200, report, private, head_only=head_only)
            return
        inventory = await anyio.to_thread.run_sync(self._store.inventory)
        if export is not None:
            rows = table(export[1], report, inventory, [c.name for c in self._categories])
            name = f"cookie-gate-{export[1]}-{report['period']['from']}-{report['period']['to']}.{export[2]}"
            headers = [
                (b"cache-control", b"no-store"),
                (b"content-disposition", f'attachment; filename="{name}"'.encode("ascii")),
                (b"x-content-type-options", b"nosniff"),
                *private,
            ]
            body = as_csv(rows) if export[2] == "csv" else as_json(rows)
            await respond(send, 200, body, _EXPORT_TYPES[export[2]], headers, head_only=head_only)
            return
        health = await anyio.to_thread.run_sync(self._health)
        locale = query.lang or preferred_locale(header(scope, b"accept-language"), LOCALES, self._default_locale)
        labels = {c.name: localized(c.label, locale) or c.name for c in self._categories if c.name != NECESSARY}
        # An app's own CSP middleware around the gateway covers this page too: its nonce lets the style in.
        view = DashboardView(
            report, inventory, health, query, locale, labels, request_nonce(scope.get("state"), self._nonce_key)
        )
        page = render(view).encode("utf-8")
        headers = [(b"cache-control", b"no-store"), (b"content-security-policy", CSP), *private]
        await respond(send, 200, page, b"text/html; charset=utf-8", headers, head_only=head_only)

    def _report(self, query: DashboardQuery) -> dict[str, Any]:
        return build_report(
            self._store,
            self._site_clock,
            now=self._clock(),
            days=query.days,
            since=query.since,
            until=query.until,
            compare=True,
        )

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
