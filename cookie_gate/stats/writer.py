"""From queued page views to counter increments in the store, on a thread of its own.

The request path only appends a tuple to a bounded deque (thread-safe, no lock, a
fraction of a microsecond). Everything that costs (User-Agent parsing, bot
detection, hashing, SQL) happens here, every `interval` seconds and on `flush()`.
IP addresses and User-Agents exist only in memory, inside queued events, and are
dropped once the batch is aggregated: the batch holds families, buckets and keys.
"""

from __future__ import annotations

import collections
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from cookie_gate.clock import Clock
from cookie_gate.hosts import request_host
from cookie_gate.stats.agents import AgentClassifier
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import VisitStart
from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore, StatsBatch

logger = logging.getLogger("cookie_gate.stats")

#: One page view: (time, path, Host, User-Agent, Referer, client IP or None, the visit it opened or None,
#: whether the visitor accepted analytics). A plain tuple because it is built on every page view.
PageView = tuple[float, str, bytes | None, bytes | None, bytes | None, str | None, VisitStart | None, bool]

#: Batches the store refused are kept and retried, up to this many distinct counters.
MAX_PENDING = 200_000
MAX_PATH = 200
#: Events aggregated between two yields of the GIL (about a millisecond of work).
YIELD_EVERY = 200
VISIT_NUMBER_CAP = 1000
GAP_CAP = 400


class StatsWriter:
    def __init__(
        self,
        store: SQLStore,
        site_clock: SiteClock,
        *,
        clock: Clock = time.time,
        capacity: int,
        interval: float,
        daily_hash: bool,
        agents: AgentClassifier | None = None,
        on_tick: Callable[[float], None] | None = None,
        cookie_names: collections.deque[tuple[str, str, str]] | None = None,
    ) -> None:
        self._store = store
        self._site_clock = site_clock
        self._clock = clock
        self._agents = agents or AgentClassifier()
        self._capacity = capacity
        self._interval = interval
        self._daily_hash = daily_hash
        self._on_tick = on_tick
        self._cookie_names = cookie_names if cookie_names is not None else collections.deque()
        self._queue: collections.deque[PageView] = collections.deque()
        self._pending = StatsBatch()
        self._last_warning = -60.0
        self._salts: dict[str, bytes] = {}
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = self._completed = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Dropped since the last batch (written to the store as the "dropped" metric), and ever.
        self.dropped = self.dropped_total = 0
        os.register_at_fork(after_in_child=self._forget_parent)

    # -- the request path -----------------------------------------------------------------------

    def record(self, event: PageView) -> None:
        """Queue one page view; never blocks. A full queue drops the event and counts it."""
        if len(self._queue) < self._capacity:
            self._queue.append(event)
        else:
            self.dropped += 1
            self.dropped_total += 1
        if self._thread is None:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._done:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="cookie-gate-stats", daemon=True)
                self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far; True once it is in the store."""
        if self._thread is None:
            self._drain()
            return not self._pending
        with self._done:
            self._requested += 1
            target = self._requested
            self._wake.set()
            self._done.wait_for(lambda: self._completed >= target, timeout)
            return self._completed >= target and not self._pending

    def stop(self, timeout: float = 30.0) -> None:
        """Flush and end the thread (lifespan shutdown)."""
        thread = self._thread
        if thread is None:
            self._drain()
            return
        self._stopping = True
        self.flush(timeout)
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def _forget_parent(self) -> None:
        # A forked worker must not re-count its parent's queue, and has no writer thread yet.
        self._queue.clear()
        self._pending = StatsBatch()
        self._thread = None
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = self._completed = 0

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._done:
                requested = self._requested
            try:
                self._drain()
            except Exception as error:  # the writer must outlive any one bad batch
                logger.error("cookie_gate statistics batch failed: %s", type(error).__name__)
            if self._on_tick is not None:
                try:
                    self._on_tick(self._clock())
                except Exception as error:  # the tick must never kill the writer
                    logger.warning("cookie_gate statistics maintenance failed: %s", type(error).__name__)
            with self._done:
                self._completed = max(self._completed, requested)
                self._done.notify_all()
                # Stop only once every flush asked for has had its own round: a stop() that
                # arrived during this round still gets the final flush it waits for.
                if self._stopping and self._completed >= self._requested:
                    return

    # -- the writer thread --------------------------------------------------------------------

    def _drain(self) -> None:
        batch = self._aggregate()
        if self._cookie_names:
            today = self._site_clock.at(self._clock()).day_key
            for _ in range(len(self._cookie_names)):
                name, category, source = self._cookie_names.popleft()
                batch.cookies[name] = (category, source, today)
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            batch.add(batch.hourly, (self._site_clock.at(self._clock()).hour_key, "dropped"), dropped)
        self._pending.merge(batch)
        if not self._pending:
            return
        try:
            self._store.add_stats(self._pending)
        except StoreError as error:
            now = time.monotonic()
            if now - self._last_warning >= 60:  # one line a minute while the store is down, not one per batch
                self._last_warning = now
                logger.warning("cookie_gate statistics not written yet, will retry: %s", error)
            if self._pending.size > MAX_PENDING:
                logger.error("cookie_gate statistics store unavailable too long; %d counters lost", self._pending.size)
                self._pending = StatsBatch()
            return
        self._pending = StatsBatch()

    def _aggregate(self) -> StatsBatch:
        batch = StatsBatch()
        queue = self._queue
        for count in range(len(queue)):
            if count % YIELD_EVERY == YIELD_EVERY - 1:
                time.sleep(0)  # hand the GIL back: the event loop must not wait for a whole batch
            event = queue.popleft()
            try:
                self._count(event, batch)
            except Exception as error:  # one bad event costs only itself, never the batch behind it
                batch.add(batch.hourly, (self._site_clock.at(self._clock()).hour_key, "failed"))
                logger.error("cookie_gate could not count a page view: %s", type(error).__name__)
        return batch

    def _count(self, event: PageView, batch: StatsBatch) -> None:
        """Add one page view to the batch; the event (with its IP and User-Agent) is dropped after."""
        hourly, daily, detail = batch.hourly, batch.daily, batch.detail
        add = batch.add
        at, path, host, agent, referrer, client, start, consented = event
        moment = self._site_clock.at(at)
        hour, day = moment.hour_key, moment.day_key
        user_agent = agent.decode("latin-1") if agent else ""
        kind = self._agents.classify(user_agent)
        if kind.bot is not None:
            add(hourly, (hour, "bots"))
            add(daily, (day, "bot", kind.bot))
            return
        add(hourly, (hour, "pageviews"))
        add(daily, (day, "browser", kind.browser))
        add(daily, (day, "os", kind.os))
        add(daily, (day, "device", kind.device))
        add(detail, (day, "path", path[:MAX_PATH]))
        own_host = request_host(host) if host else ""
        source = _referrer_host(referrer)
        if source != own_host:
            add(hourly, (hour, "entries"))
            if source:
                add(detail, (day, "referrer", source))
        if consented:
            add(hourly, (hour, "analytics_pageviews"))
        if start is not None:
            add(hourly, (hour, "visits"))
            add(hourly, (hour, "visits_new" if start.days_since_last is None else "visits_returning"))
            add(daily, (day, "visit_number", str(min(start.number, VISIT_NUMBER_CAP))))
            gap = "new" if start.days_since_last is None else str(min(start.days_since_last, GAP_CAP))
            add(daily, (day, "days_since_last", gap))
            add(daily, (day, "week_rank", str(start.week_rank)))
            add(daily, (day, "month_rank", str(start.month_rank)))
        if client is not None and self._daily_hash:
            salt = self._salt(day)
            if salt is not None:
                key = hmac.new(salt, b"\0".join((host or b"", client.encode(), agent or b"")), "sha256")
                batch.visitors.append((day, hour, key.digest()[:16], moment.minute))

    def _salt(self, day: str) -> bytes | None:
        salt = self._salts.get(day)
        if salt is None:
            try:
                salt = self._store.daily_salt(day)
            except StoreError as error:
                logger.warning("cookie_gate daily salt unavailable, visitor not hashed: %s", error)
                return None
            # Keep today's and yesterday's salt only: older ones leave memory with the day.
            self._salts = {**{d: s for d, s in self._salts.items() if d > day}, day: salt}
            if len(self._salts) > 2:
                self._salts.pop(min(self._salts))
        return salt


def _referrer_host(referrer: bytes | None) -> str:
    if not referrer:
        return ""
    try:
        return (urlsplit(referrer.decode("latin-1")).hostname or "")[:253]
    except ValueError:
        return ""
