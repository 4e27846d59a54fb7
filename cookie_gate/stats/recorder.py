"""The statistics as the middleware sees them: one call per page view.

`page_view` runs on the request path, so it does only what must happen there:
advance the counter cookie of a visitor who accepted analytics (the new cookie
goes out with this response) and queue a tuple. The daily purge (`stats.retention`)
rides on the writer thread's tick.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC
from email.utils import format_datetime

from cookie_gate.asgi import Scope
from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.inventory import Inventory
from cookie_gate.own_cookies import COUNTER_CATEGORY, COUNTER_COOKIE, COUNTER_LIFETIME_MONTHS
from cookie_gate.request import Request
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import CounterCodec, Counts, advance
from cookie_gate.stats.retention import Retention
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store.sql import SQLStore


class Statistics:
    def __init__(
        self,
        config: Config,
        store: SQLStore,
        inventory: Inventory | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.site_clock = SiteClock(config.timezone)
        self._codec = CounterCodec(config.secret_keys)
        self._hash = config.daily_visitor_hash
        self.retention = Retention(config, store, self.site_clock)
        self.writer = StatsWriter(
            store,
            self.site_clock,
            clock=clock,
            capacity=config.stats_queue_size,
            interval=config.stats_flush_seconds,
            daily_hash=config.daily_visitor_hash,
            on_tick=self.retention.maintain,
            inventory=inventory,
            shutdown_timeout=config.shutdown_timeout,
        )

    def page_view(self, request: Request, scope: Scope) -> bytes | None:
        """Queue one page view (`page_views.PageViews`); returns the counter cookie to set, if it changed."""
        visit, headers, now = request.visit, request.headers, request.now
        start = set_cookie = None
        analytics = COUNTER_CATEGORY in visit.consent.categories
        if analytics:
            counts = self._codec.decode(visit.counter) if visit.counter else None
            step = advance(counts, self.site_clock.at(now))
            start = step.start
            if step.changed:
                set_cookie = self._cookie(step.counts, scope.get("scheme") == "https")
        client = scope.get("client") if self._hash and not analytics else None
        self.writer.record(
            CountedView(
                now,
                scope["path"],
                headers.get(b"host"),
                headers.get(b"user-agent"),
                headers.get(b"referer"),
                client[0] if client else None,
                start,
                analytics,
            )
        )
        return set_cookie

    def _cookie(self, counts: Counts, secure: bool) -> bytes:
        expires = self._expires(counts.first_day)
        value = f"{COUNTER_COOKIE}={self._codec.encode(counts)}; Expires={expires}; Path=/; HttpOnly; SameSite=Lax"
        return (value + "; Secure" if secure else value).encode("ascii")

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per middleware, keyed by day
    def _expires(self, first_day: int) -> str:
        """Fixed by the day the counter was first set, so rewriting the cookie never extends it."""
        expires = self.site_clock.midnight_after_months(first_day, COUNTER_LIFETIME_MONTHS).astimezone(UTC)
        return format_datetime(expires, usegmt=True)

    # -- retention --------------------------------------------------------------------------

    def purge(self, now: float) -> dict[str, int]:
        """Apply retention now (also run by itself once a day, on the writer's tick)."""
        return self.retention.purge(now)
