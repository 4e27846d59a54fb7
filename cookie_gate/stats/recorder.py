"""The statistics as the middleware sees them: one call per page view.

`page_view` runs on the request path, so it does only what must happen there:
advance the counter cookie of a visitor who accepted analytics (the new cookie
goes out with this response) and queue a tuple. The daily purge (`stats.retention`)
rides on the writer thread's tick.
"""

from __future__ import annotations

import collections
import functools
import time
from datetime import UTC
from email.utils import format_datetime

from cookie_gate.asgi import Scope
from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import COOKIE_NAME, LIFETIME_MONTHS, CounterCodec, Counts, advance
from cookie_gate.stats.retention import Retention
from cookie_gate.stats.writer import StatsWriter
from cookie_gate.store.sql import SQLStore
from cookie_gate.visit import Visit

ANALYTICS = "analytics"


class Statistics:
    def __init__(
        self,
        config: Config,
        store: SQLStore,
        cookie_names: collections.deque[tuple[str, str, str]] | None = None,
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
            cookie_names=cookie_names,
            shutdown_timeout=config.shutdown_timeout,
        )

    def page_view(
        self,
        scope: Scope,
        visit: Visit,
        now: float,
        host: bytes | None,
        agent: bytes | None,
        referrer: bytes | None,
    ) -> bytes | None:
        """Queue one page view; returns the counter cookie to set, if it changed."""
        start = set_cookie = None
        consented = ANALYTICS in visit.consent.categories
        if consented:
            moment = self.site_clock.at(now)
            counts = self._codec.decode(visit.counter) if visit.counter else None
            updated, start = advance(counts, moment)
            if updated is not counts:
                set_cookie = self._cookie(updated, scope.get("scheme") == "https")
        client = scope.get("client")
        ip = client[0] if self._hash and not consented and client else None
        self.writer.record((now, scope["path"], host, agent, referrer, ip, start, consented))
        return set_cookie

    def _cookie(self, counts: Counts, secure: bool) -> bytes:
        expires = self._expires(counts.first_day)
        value = f"{COOKIE_NAME}={self._codec.encode(counts)}; Expires={expires}; Path=/; HttpOnly; SameSite=Lax"
        return (value + "; Secure" if secure else value).encode("ascii")

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per middleware, keyed by day
    def _expires(self, first_day: int) -> str:
        """Fixed by the day the counter was first set, so rewriting the cookie never extends it."""
        expires = self.site_clock.midnight_after_months(first_day, LIFETIME_MONTHS).astimezone(UTC)
        return format_datetime(expires, usegmt=True)

    # -- retention --------------------------------------------------------------------------

    def purge(self, now: float) -> dict[str, int]:
        """Apply retention now (also run by itself once a day, on the writer's tick)."""
        return self.retention.purge(now)
