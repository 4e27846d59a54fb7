"""Retention: delete what the configured periods no longer allow, once a local day, by itself.

With statistics on, the daily purge rides on the writer thread's tick. With statistics off
there is no writer, yet the consent log must still shrink to `consent_log_retention_days`:
`DailyRetention` then runs the same daily purge on a small thread of its own. Either way,
while the store is down the purge backs off and says so once a minute at most.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.stats.clock import SiteClock, day_key
from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore

logger = logging.getLogger("cookie_gate.stats")
#: The first wait before a failed purge is tried again; it doubles up to `PURGE_BACKOFF_MAX`.
PURGE_BACKOFF = 60.0
PURGE_BACKOFF_MAX = 3600.0
#: How often the thread of `DailyRetention` asks whether today's purge is still to do.
CHECK_SECONDS = 300.0


class Retention:
    """The retention periods of one configuration, applied to one store."""

    def __init__(self, config: Config, store: SQLStore, site_clock: SiteClock) -> None:
        self._config = config
        self._store = store
        self._site_clock = site_clock
        self._purged_day: int | None = None
        self._retry_at = 0.0
        self._backoff = PURGE_BACKOFF
        self._warned_at: float | None = None

    def purge(self, now: float) -> dict[str, int]:
        """Apply retention now; the rows deleted per table."""
        today = self._site_clock.at(now).day
        config = self._config
        aggregate_start = self._site_clock.midnight_after_months(today, -config.aggregate_retention_months)
        return self._store.purge(
            detail_before=day_key(today - config.detail_retention_days),
            aggregate_before=aggregate_start.date().isoformat(),
            salt_before=day_key(today - 1),
            # At least the consent lifetime (config checks it), so a withdrawal outlives its cookie.
            log_before=int(now) - config.consent_log_retention_days * 86400,
        )

    def maintain(self, now: float) -> None:
        """Purge once per local day; a store that fails is tried again later, said once a minute."""
        today = self._site_clock.at(now).day
        if self._purged_day == today or now < self._retry_at:
            return
        try:
            deleted = self.purge(now)
        except StoreError as error:
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, PURGE_BACKOFF_MAX)
            if self._warned_at is None or now - self._warned_at >= 60:
                self._warned_at = now
                logger.warning("cookie_gate retention not applied yet, will retry: %s", error)
            return
        self._purged_day = today
        self._retry_at, self._backoff = 0.0, PURGE_BACKOFF
        logger.info("cookie_gate retention applied: %s", deleted)


_LIVE: weakref.WeakSet[DailyRetention] = weakref.WeakSet()


class DailyRetention:
    """`Retention.maintain` every `interval` seconds on a daemon thread, for a gate without a writer.

    Started at lifespan startup, or by the first request when lifespan never comes; stopped at
    lifespan shutdown (a daemon thread otherwise ends with the process). A forked worker starts
    its own: the parent's thread did not come along.
    """

    def __init__(self, retention: Retention, clock: Clock, interval: float = CHECK_SECONDS) -> None:
        self._retention = retention
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failed = False
        #: The running thread, None before `start` (and in a forked child): read on each request.
        self.thread: threading.Thread | None = None
        _LIVE.add(self)

    def start(self) -> None:
        """Start the thread; one stopped but still in a purge is told to carry on instead."""
        with self._lock:
            self._stop.clear()
            if self.thread is not None and self.thread.is_alive():
                return
            self.thread = threading.Thread(target=self._run, name="cookie-gate-retention", daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                self._retention.maintain(self._clock())
            except Exception:  # a bug, not a store that is down: said once, tried again later
                if not self._failed:
                    self._failed = True
                    logger.exception("cookie_gate retention failed")
            if self._stop.wait(self._interval):
                return

    def _forget_parent(self) -> None:
        self.thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()


def _forget_parents() -> None:
    for daily in list(_LIVE):
        daily._forget_parent()


os.register_at_fork(after_in_child=_forget_parents)
