"""The statistics as the middleware sees them: one call per page view.

`page_view` runs on the request path, so it does only what must happen there:
advance the counter cookie of a visitor who accepted analytics (the new cookie
goes out with this response) and queue a tuple. The daily purge rides on the
writer thread's tick; while the store is down it backs off and says so once a minute
at most, like the writer.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from datetime import UTC
from email.utils import format_datetime

from cookie_gate.asgi import Scope
from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.stats.clock import SiteClock, day_key
from cookie_gate.stats.counter import COOKIE_NAME, LIFETIME_MONTHS, CounterCodec, Counts, advance
from cookie_gate.stats.writer import StatsWriter
from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore
from cookie_gate.visit import Visit

logger = logging.getLogger("cookie_gate.stats")
ANALYTICS = "analytics"
#: The first wait before a failed purge is tried again; it doubles up to `PURGE_BACKOFF_MAX`.
PURGE_BACKOFF = 60.0
PURGE_BACKOFF_MAX = 3600.0


class Statistics:
    def __init__(
        self,
        config: Config,
        store: SQLStore,
        cookie_names: collections.deque[tuple[str, str, str]] | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self.site_clock = SiteClock(config.timezone)
        self._codec = CounterCodec(config.secret_keys)
        self._hash = config.daily_visitor_hash
        self.writer = StatsWriter(
            store,
            self.site_clock,
            clock=clock,
            capacity=config.stats_queue_size,
            interval=config.stats_flush_seconds,
            daily_hash=config.daily_visitor_hash,
            on_tick=self._maintain,
            cookie_names=cookie_names,
            shutdown_timeout=config.shutdown_timeout,
        )
        self._purged_day: int | None = None
        self._purge_retry_at = 0.0
        self._purge_backoff = PURGE_BACKOFF
        self._purge_warned_at: float | None = None

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
        """Apply retention now (also run by itself once a day)."""
        today = self.site_clock.at(now).day
        config = self._config
        aggregate_start = self.site_clock.midnight_after_months(today, -config.aggregate_retention_months)
        return self._store.purge(
            detail_before=day_key(today - config.detail_retention_days),
            aggregate_before=aggregate_start.date().isoformat(),
            salt_before=day_key(today - 1),
            # At least the consent lifetime (config checks it), so a withdrawal outlives its cookie.
            log_before=int(now) - config.consent_log_retention_days * 86400,
        )

    def _maintain(self, now: float) -> None:
        today = self.site_clock.at(now).day
        if self._purged_day == today or now < self._purge_retry_at:
            return
        try:
            deleted = self.purge(now)
        except StoreError as error:
            self._purge_retry_at = now + self._purge_backoff
            self._purge_backoff = min(self._purge_backoff * 2, PURGE_BACKOFF_MAX)
            if self._purge_warned_at is None or now - self._purge_warned_at >= 60:
                self._purge_warned_at = now
                logger.warning("cookie_gate retention not applied yet, will retry: %s", error)
            return
        self._purged_day = today
        self._purge_retry_at, self._purge_backoff = 0.0, PURGE_BACKOFF
        logger.info("cookie_gate retention applied: %s", deleted)
