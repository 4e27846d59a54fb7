"""From queued page views to counter increments in the store, on a thread of its own.

The request path only appends a tuple to a bounded deque (thread-safe, no lock).
Everything that costs (User-Agent parsing, bot detection, hashing, SQL) happens here,
every `interval` seconds and on `flush()`. IP addresses and User-Agents exist only in
memory, inside queued events, and are dropped once the batch is aggregated: the batch
holds families, buckets and keys.

When the store is down the batch is held and retried. It is bounded: past
`max_pending` counters the most detailed kinds are shed first (paths, referrers,
hashed visitor keys, then dimensions) and counted as such; the hourly totals are
never shed. What a stop cannot write is logged once, with its counts, and the line
says whether the store failed or the shutdown budget ran out first.

Lifespan may never come (Django, some servers), so every live writer is also stopped
at interpreter exit, and on SIGTERM. The writer chains a SIGTERM handler of its own in
front of the server's. It only marks every writer as terminating and wakes it: from then
on each writer writes a round as soon as a page view wakes it, so what is answered during
the server's graceful shutdown reaches the store even if the process is killed later.
`shutdown_timeout` bounds a flush that keeps failing, counted from its first failure,
never the graceful shutdown itself. uvicorn, once done, restores the handler it found (the
default) and raises SIGTERM again, which would kill the process before `atexit`; so the
handler also blocks SIGTERM in the main thread, and the exit hook lets the held signal
through once it has flushed: the process still dies of SIGTERM, after the exit flush.
With no server handler behind it (the default), the handler flushes, then dies of SIGTERM.
"""

from __future__ import annotations

import atexit
import collections
import hmac
import logging
import multiprocessing.util
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, NamedTuple

from cookie_gate.clock import Clock
from cookie_gate.hosts import request_host
from cookie_gate.inventory import Inventory
from cookie_gate.stats.agents import AgentClassifier
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import VisitStart
from cookie_gate.stats.referrer import referrer_host, stored_referrer
from cookie_gate.store import StoreError, warn_if_store_fails
from cookie_gate.store.sql import SQLStore, StatsBatch

logger = logging.getLogger("cookie_gate.stats")


class CountedView(NamedTuple):
    """One page view as the writer counts it (`Statistics.page_view` builds it from the core's `Request`)."""

    at: float
    path: str
    host: bytes | None
    agent: bytes | None
    referrer: bytes | None
    #: The client's address, only when it goes into the salted daily visitor key; None otherwise.
    client: str | None
    #: The visit this page view opened, from the counter cookie; None when it opened none (or no counter).
    start: VisitStart | None
    #: The visitor accepted analytics.
    consented: bool


#: Batches the store refused are kept and retried, up to this many distinct counters.
MAX_PENDING = 200_000
#: Shedding goes down to this share of the bound, so it does not run again on the next tick.
SHED_TO = 0.75
#: What is shed first when the held batch is too big; the hourly totals never are.
SHED_ORDER = ("path", "referrer", "daily_hash", "dimensions")
#: Hourly metric that counts what was shed of each kind.
SHED_METRIC = "shed_"
MAX_PATH = 200
#: Events aggregated between two yields of the GIL, so the event loop never waits for a whole batch.
YIELD_EVERY = 200
VISIT_NUMBER_CAP = 1000
GAP_CAP = 400
#: Seconds between two tries of a failed write once SIGTERM came (instead of `interval`).
RETRY_WHILE_TERMINATING = 0.1


@dataclass(frozen=True)
class WriterHealth:
    """What the health endpoint says about the writer."""

    last_flush: float | None  # wall-clock time of the last batch the store took
    last_error: str | None  # why the last attempt failed, None once one succeeds
    queued: int  # page views waiting to be aggregated
    held_counters: int  # counters aggregated but not yet in the store
    dropped: int  # page views never counted (queue full, or lost at a stop)
    shed: dict[str, int]  # counts shed from the held batch, by kind


_LIVE: weakref.WeakSet[StatsWriter] = weakref.WeakSet()
_NOT_RECORDED_UNTIL_EXIT = "; page views answered from now until exit are counted as dropped, not written"


class StatsWriter:
    """`clock` is the wall clock (bucket times, `last_flush`); `monotonic` measures the waits
    (the shutdown budget, the warning interval); both are passed in so tests can step them.

    `autostart` (on by default) starts the writer thread on the first `record()`. Off, the
    owner calls `start()` itself, for instance only in each worker after a pre-fork server has
    forked, or never, writing with `flush()` from its own thread (a batch job, a test). Page
    views are queued, and past `capacity` dropped and counted, either way."""

    def __init__(
        self,
        store: SQLStore,
        site_clock: SiteClock,
        *,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        capacity: int,
        interval: float,
        daily_hash: bool,
        agents: AgentClassifier | None = None,
        on_tick: Callable[[float], None] | None = None,
        inventory: Inventory | None = None,
        shutdown_timeout: float = 5.0,
        max_pending: int = MAX_PENDING,
        autostart: bool = True,
    ) -> None:
        self._store = store
        self._autostart = autostart
        self._site_clock = site_clock
        self._clock = clock
        self._monotonic = monotonic
        self._agents = agents or AgentClassifier()
        self._capacity = capacity
        self._interval = interval
        self._daily_hash = daily_hash
        self._on_tick = on_tick
        self._inventory = Inventory() if inventory is None else inventory
        self._queue: collections.deque[CountedView] = collections.deque()
        self._salts: dict[str, bytes] = {}
        self._shutdown_timeout = shutdown_timeout
        self._max_pending = max_pending
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        """The state of a writer that has recorded nothing: at creation, and in a forked child
        (which must not write its parent's queue, batch or drop counts again)."""
        self._queue.clear()
        self._pending = StatsBatch()
        self._last_warning = -60.0
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = self._completed = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Dropped since the last batch (written to the store as the "dropped" metric), and ever.
        self.dropped = self.dropped_total = 0
        self.shed_total = dict.fromkeys(SHED_ORDER, 0)
        self.last_flush: float | None = None
        self.last_error: str | None = None
        #: Set by SIGTERM: each page view wakes the writer, which writes it at once.
        self._terminating = False
        #: Monotonic time of the first failure of the write that is failing now, once terminating.
        self._failing_since: float | None = None
        #: The store failed for `shutdown_timeout` after SIGTERM: page views are counted as dropped.
        self._lost_in_shutdown = False

    def health(self) -> WriterHealth:
        return WriterHealth(
            last_flush=self.last_flush,
            last_error=self.last_error,
            queued=len(self._queue),
            held_counters=self._pending.size,
            dropped=self.dropped_total,
            shed=dict(self.shed_total),
        )

    @property
    def running(self) -> bool:
        """Whether a writer thread is serving this writer (started, and not asked to stop)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopping

    @property
    def has_work(self) -> bool:
        """Page views queued or held, or a writer thread still serving (not one left stopping)."""
        thread = self._thread
        running = thread is not None and not self._stopping
        return running or bool(self._queue) or bool(self._pending)

    # -- the request path -----------------------------------------------------------------------

    def record(self, event: CountedView) -> None:
        """Queue one page view; never blocks. A full queue drops the event and counts it."""
        if self._terminating:
            self._record_while_terminating(event)
            return
        if len(self._queue) < self._capacity:
            self._queue.append(event)
        else:
            self.dropped += 1
            self.dropped_total += 1
        if self._thread is None and self._autostart:
            self.start()

    def _record_while_terminating(self, event: CountedView) -> None:
        if self._lost_in_shutdown:  # said once already; the store would not take its count either
            self.dropped_total += 1
            return
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            self.dropped_total += 1
            return
        self._queue.append(event)
        if self._thread is None and self._autostart:
            self.start()
        self._wake.set()  # the writer writes it now; this thread never waits for the store

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread. While an earlier one is still alive (stopped, but stuck in a
        hung store), it is told to carry on instead: two threads would share the held batch."""
        with self._done:
            self._stopping = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cookie-gate-stats", daemon=True)
                self._thread.start()
        watch_for_sigterm()
        _flush_at_exit_of_this_process()

    def terminate(self) -> None:
        """The process is being stopped (SIGTERM): from now on every page view wakes the writer,
        which writes it at once. Returns at once; nothing here waits for the store."""
        self._terminating = True
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far; True once it is in the store."""
        if self._thread is None:
            self._drain()
            return not self._pending
        return self._flush_round(timeout, stopping=False)

    def _flush_round(self, timeout: float, *, stopping: bool) -> bool:
        """Ask the thread for one more round and wait for it. A stop marks the writer stopping
        in the same step, so no round can see it stopping without its final flush asked for."""
        with self._done:
            if stopping:
                self._stopping = True
            if self._thread is not None:  # else it has just ended: write from this thread
                self._requested += 1
                target = self._requested
                self._wake.set()
                self._done.wait_for(lambda: self._completed >= target, timeout)
                return self._completed >= target and not self._pending
        self._drain()
        return not self._pending

    def stop(self, timeout: float | None = None) -> bool:
        """Flush and end the thread (lifespan shutdown, interpreter exit) within `timeout` seconds
        in all (`shutdown_timeout` by default), even when the store hangs. True when everything
        reached the store; otherwise one ERROR line says what was not written, and why."""
        budget = self._shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        thread = self._thread
        if thread is None:
            try:
                self._drain()
            except Exception as error:  # reported below with what it cost
                self.last_error = type(error).__name__
        else:
            self._flush_round(max(deadline - time.monotonic(), 0.0), stopping=True)
            self._wake.set()
            if isinstance(thread, threading.Thread) and thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.0))
            with self._done:
                if self._stopping and (not isinstance(thread, threading.Thread) or not thread.is_alive()):
                    self._thread = None
        return self._report_loss(self._loss_reason(budget))

    def _loss_reason(self, budget: float) -> str:
        if self.last_error is not None:
            return f"the store failed: {self.last_error}"
        return f"the shutdown budget of {budget:g} s was used up before the store answered"

    def _report_loss(self, reason: str, more: str = "") -> bool:
        """Count and log, once, what a stop leaves unwritten, and let go of it so no later stop
        counts it again. (A writer thread stuck in a hung store that answers after all may still
        land that batch: counted as lost and written, the price of never waiting on a hung store.)"""
        queued = self._take_queue()
        pending = self._pending
        if not queued and not pending:
            return True
        views = queued + sum(n for (_, metric), n in pending.hourly.items() if metric in ("pageviews", "bots"))
        self._pending = StatsBatch()
        self.dropped_total += views
        logger.error(
            "cookie_gate statistics lost at shutdown (%s): %d page views (%d still queued), %d counters%s",
            reason,
            views,
            queued,
            pending.size,
            more,
        )
        return False

    def _take_queue(self) -> int:
        """Empty the queue, one event at a time (the request path may append meanwhile); how many."""
        taken = 0
        while True:
            try:
                self._queue.popleft()
            except IndexError:
                return taken
            taken += 1

    def _run(self) -> None:
        warn_if_store_fails(self._store)
        while True:
            self._wake.wait(self._wait_seconds())
            self._wake.clear()
            with self._done:
                requested = self._requested
            try:
                self._drain()
            except Exception as error:  # the writer must outlive any one bad batch
                logger.error("cookie_gate statistics batch failed: %s", type(error).__name__)
            if self._terminating:
                self._check_shutdown_budget()
            with self._done:
                self._completed = max(self._completed, requested)
                self._done.notify_all()
                # Stop only once every flush asked for has had its own round: a stop() that
                # arrived during this round still gets the final flush it waits for.
                if self._stopping and self._completed >= self._requested:
                    if self._thread is threading.current_thread():
                        self._thread = None
                    return
                maintain = not (self._stopping or self._terminating)
            # After the round is marked complete, so a flush never waits for retention.
            if maintain and self._on_tick is not None:
                try:
                    self._on_tick(self._clock())
                except Exception as error:  # the tick must never kill the writer
                    logger.warning("cookie_gate statistics maintenance failed: %s", type(error).__name__)

    def _wait_seconds(self) -> float:
        if self._terminating and self._pending and not self._lost_in_shutdown:
            return min(self._interval, RETRY_WHILE_TERMINATING)
        return self._interval

    def _check_shutdown_budget(self) -> None:
        """Once terminating, give a failing write `shutdown_timeout` from its first failure; then
        count what it holds, and every later page view, as dropped, and say so once."""
        if self._lost_in_shutdown:
            return
        if not self._pending:
            self._failing_since = None
            return
        now = self._monotonic()
        if self._failing_since is None:
            self._failing_since = now
            return
        if now - self._failing_since < self._shutdown_timeout:
            return
        self._lost_in_shutdown = True
        reason = f"the store failed for {self._shutdown_timeout:g} s after SIGTERM: {self.last_error}"
        if self._report_loss(reason, _NOT_RECORDED_UNTIL_EXIT):  # nothing held: the one line still has to be said
            logger.error("cookie_gate statistics: %s%s", reason, _NOT_RECORDED_UNTIL_EXIT)

    # -- the writer thread --------------------------------------------------------------------

    def _drain(self) -> None:
        batch = self._aggregate()
        if self._inventory:
            today = self._site_clock.at(self._clock()).day_key
            for name, category, source in self._inventory.take():
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
            self.last_error = str(error)
            now = self._monotonic()
            if now - self._last_warning >= 60:  # one line a minute while the store is down, not one per batch
                self._last_warning = now
                logger.warning("cookie_gate statistics not written yet, will retry: %s", error)
            if self._pending.size > self._max_pending:
                self._shed()
            return
        self._pending = StatsBatch()
        self.last_flush = self._clock()
        self.last_error = None

    def _shed(self) -> None:
        """Make room in the held batch by dropping detail, least-counted first, never the totals.

        What is shed is added to the batch itself as `shed_<kind>` hourly metrics, so the
        report says how much of each kind is missing once the store takes the batch."""
        pending = self._pending
        target = int(self._max_pending * SHED_TO)
        shed = dict.fromkeys(SHED_ORDER, 0)
        for kind in SHED_ORDER:
            excess = pending.size - target
            if excess <= 0:
                break
            if kind == "daily_hash":
                lost = pending.visitors[:excess]
                del pending.visitors[:excess]
                shed[kind] = len(lost)
                continue
            table = pending.daily if kind == "dimensions" else pending.detail
            keys = [key for key in table if kind == "dimensions" or key[1] == kind]
            keys.sort(key=table.__getitem__)
            for key in keys[:excess]:
                shed[kind] += table.pop(key)
        hour = self._site_clock.at(self._clock()).hour_key
        for kind, n in shed.items():
            if n:
                pending.add(pending.hourly, (hour, SHED_METRIC + kind), n)
                self.shed_total[kind] += n
        logger.error(
            "cookie_gate statistics store unavailable too long; detail shed to stay within %d counters "
            "(totals kept): %s",
            self._max_pending,
            ", ".join(f"{kind} {n}" for kind, n in shed.items() if n),
        )

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

    def _count(self, event: CountedView, batch: StatsBatch) -> None:
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
        source = referrer_host(referrer)
        if source != own_host:
            add(hourly, (hour, "entries"))
            if source:
                add(detail, (day, "referrer", stored_referrer(source)))  # never an IP address
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


@dataclass
class _SigtermChain:
    """Where `on_sigterm` stands: the handler it was put in front of (called after it), and
    whether it holds SIGTERM blocked in the main thread until the exit flush is done."""

    previous: Callable[[int, FrameType | None], Any] | int | None = None
    blocked: bool = False


_sigterm = _SigtermChain()


def watch_for_sigterm() -> None:
    """Put `on_sigterm` in front of whatever handles SIGTERM now, from the main thread only.

    `StatsWriter.start()` calls it; an app that installs a SIGTERM handler of its own after
    the writer started can call it again, so the statistics are still flushed on SIGTERM.

    Again whenever it is no longer there: a server that puts its original handler back on
    exit (uvicorn) takes ours away, and a later server in the same process must get it too.
    An ignored SIGTERM stays ignored, and a handler not installed from Python (`getsignal`
    answers None) is left alone: we could not call it after ours."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous is on_sigterm or previous is None or previous == signal.SIG_IGN:
            return
        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm.previous = previous


def sigterm_chained_to() -> Callable[[int, FrameType | None], Any] | int | None:
    """The handler `on_sigterm` calls after marking the writers terminating (the server's), or
    `SIG_DFL`; None until it was first installed. Tells an operator whose shutdown runs first."""
    return _sigterm.previous


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler the writers install in front of the server's (see the module's docstring)."""
    writers = list(_LIVE)
    previous = _sigterm.previous
    if callable(previous):  # a server shuts down gracefully: write as it goes, flush at exit
        for writer in writers:
            writer.terminate()
        _hold_sigterm()
        previous(signum, frame)
        return
    # Nobody else handles it: the process dies now, as it would have without us, once flushed.
    for writer in writers:
        if writer.has_work:
            writer.stop()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)


def _hold_sigterm() -> None:
    """Block SIGTERM in the main thread: a server that raises it again once it is done (uvicorn)
    then returns instead of dying, and the exit hook flushes before letting it through."""
    if _sigterm.blocked or not hasattr(signal, "pthread_sigmask"):
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _sigterm.blocked = True


def _release_sigterm() -> None:
    """Unblock SIGTERM: one held meanwhile is delivered now (the default action ends the process)."""
    if _sigterm.blocked:
        _sigterm.blocked = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


@atexit.register
def stop_all() -> None:
    """The exit hook, which an embedding app's own shutdown code may also call.

    Write what every live writer holds before the interpreter goes: servers that handle
    SIGTERM themselves return from their loop, so this runs even when lifespan never came.
    Each writer is bounded by its own `shutdown_timeout`. Then a SIGTERM held since the
    server's graceful shutdown is let through."""
    try:
        for writer in list(_LIVE):
            if writer.has_work:
                writer.stop()
    finally:
        _release_sigterm()


_exit_hook_pid: int | None = None


def _flush_at_exit_of_this_process() -> None:
    """Also run the exit flush in a multiprocessing worker started by fork (granian's workers):
    it ends with `os._exit`, which skips `atexit`, after running multiprocessing's own exit
    finalizers, registered here once per process (a child starts with none)."""
    global _exit_hook_pid
    if _exit_hook_pid != os.getpid():
        _exit_hook_pid = os.getpid()
        multiprocessing.util.Finalize(None, stop_all, exitpriority=0)


def _forget_parents() -> None:
    # A forked worker has no writer thread yet, and must not re-count its parent's page views.
    for writer in list(_LIVE):
        writer._reset()


os.register_at_fork(after_in_child=_forget_parents)
