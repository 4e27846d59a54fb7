"""Which consent ids were withdrawn, so a replayed copy of a withdrawn cookie stops counting.

A withdrawal clears the consent cookie, but a browser extension, a backup or an old
tab can send the same signed value again, and its signature still verifies. The log
in the store knows better. The request path must never wait for the store, so the
gateway keeps, per process:

* the ids it saw withdrawn, with the time of the withdrawal: filled at once when this
  process logs one, and by `GET /consent`, which reads the log anyway;
* a lookup in the store for every consent id it verifies for the first time, done
  by a worker thread (kept while there is work) while the request goes on with the
  cookie as it reads.
  When the store answers "withdrawn", the next request with that cookie is undecided.

A decision made after a withdrawal under the same id counts again, hence the time.
Another instance's withdrawal is seen when this process first meets the id, or once
the id has aged out of the bounded memory of checked ids and is met again; not while
the same value stays in use here.

Every structure is bounded, and what has to go is chosen so that no withdrawn cookie
counts again for good:

* withdrawals older than the consent lifetime go first: every cookie decided before
  them has expired anyway;
* when all are younger, the oldest few are forgotten together, and so is the fact that
  they were checked; `on_forget` then tells the visit cache to drop what it holds, so
  those ids are looked up again when next met (the request that meets one goes on
  with its cookie, as for any id met for the first time);
* a lookup that fails stays queued and is tried again after a growing pause, so a
  store that is down is not asked in a loop; one that finds the queue full is dropped,
  and once the queue has drained `on_forget` has the dropped ids met and queued again.

Failures and drops are counted in the public `failed` and `dropped` (for a health
check) and logged at most once per `LOG_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping

from cookie_gate.clock import Clock

logger = logging.getLogger("cookie_gate.consent")

#: Looks ids up in the consent log: id -> time of its latest withdrawal, for the withdrawn ones.
Lookup = Callable[[list[str]], Mapping[str, int]]
MAX_WITHDRAWN = 65_536
#: When every withdrawal held is younger than the consent lifetime, this share is forgotten at once,
#: so the visit cache is cleared once per so many forced evictions, not for each.
FORGOTTEN_TOGETHER_SHARE = 16
MAX_CHECKED = 65_536
MAX_QUEUED = 4096
#: Ids per store query.
LOOKUP_BATCH = 100
#: The worker thread ends after this long without work, and starts again with the next id.
WORKER_IDLE_SECONDS = 60.0
#: Pause after a failed lookup, doubled on each failure in a row up to the maximum.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
#: A failure or drop is logged with the totals at most this often.
LOG_INTERVAL_SECONDS = 300.0

_instances: weakref.WeakSet[Withdrawals] = weakref.WeakSet()


class Withdrawals:
    """Bounded memory of withdrawn consent ids, filled from this process and, lazily, from the store.

    `lifetime_seconds` is the consent lifetime (None: withdrawals never age out) and
    `clock` the wall clock it is measured with.
    """

    def __init__(
        self,
        lookup: Lookup | None = None,
        *,
        lifetime_seconds: int | None = None,
        clock: Clock = time.time,
        background: bool = True,
    ) -> None:
        self._lookup = lookup
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._background = background
        #: consent id -> time of the latest withdrawal known here; read on every decided request.
        self.times: dict[str, int] = {}
        #: The earliest time a withdrawal held outlives the consent lifetime: no sweep can help before.
        self._sweep_after = float("inf")
        self._checked: dict[str, None] = {}
        #: Called (in any thread, without the lock) when cached visits may hold ids that must be met again.
        self.on_forget: list[Callable[[], None]] = []
        self._dropped_since_drain = False
        #: Lookups that could not be queued, and lookups the store failed: public for a health check.
        self.dropped = 0
        self.failed = 0
        self._logged_at: dict[str, float] = {}
        self._reset_worker()
        _instances.add(self)

    def _reset_worker(self) -> None:
        self._queue: collections.deque[str] = collections.deque()
        #: Queued or being looked up.
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        #: Wakes the worker when ids are queued, and `wait` when the worker has done what it can.
        self._changed = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._busy = False
        self._backing_off = False

    def withdrawn(self, consent_id: str, decided_at: int) -> bool:
        """Whether a decision taken at `decided_at` under `consent_id` was withdrawn since."""
        at = self.times.get(consent_id)
        return at is not None and at >= decided_at

    def add(self, consent_id: str, at: int) -> None:
        """Remember a withdrawal, within `MAX_WITHDRAWN` (see the module docstring for what goes)."""
        forgot = False
        with self._lock:
            known = self.times.get(consent_id)
            if known is not None:
                if at > known:
                    # In place: the event loop reads `times` without the lock and must never miss the id.
                    self.times[consent_id] = at
                return
            if len(self.times) >= MAX_WITHDRAWN:
                forgot = self._make_room()
            self.times[consent_id] = at
            if self._lifetime is not None:
                self._sweep_after = min(self._sweep_after, at + self._lifetime)
        if forgot:
            self._forget_visits()

    def _make_room(self) -> bool:
        """Drop what no cookie needs any more, else the oldest few; True when ids were forgotten."""
        times = self.times
        now = self._clock()
        if self._lifetime is not None and now >= self._sweep_after:
            horizon = now - self._lifetime
            for consent_id in [i for i, at in times.items() if at <= horizon]:
                del times[consent_id]
            self._sweep_after = min(times.values(), default=now) + self._lifetime
            if len(times) < MAX_WITHDRAWN:
                return False
        for consent_id in list(itertools.islice(times, max(1, MAX_WITHDRAWN // FORGOTTEN_TOGETHER_SHARE))):
            del times[consent_id]
            self._checked.pop(consent_id, None)
        return True

    def check_later(self, consent_id: str) -> None:
        """Queue `consent_id` for a lookup in the store, once; never blocks on the store."""
        if self._lookup is None or consent_id in self._checked or consent_id in self._queued:
            return
        with self._lock:
            if consent_id in self._queued:
                return
            full = len(self._queued) >= MAX_QUEUED
            if full:
                self.dropped += 1
                self._dropped_since_drain = True
            else:
                self._queue.append(consent_id)
                self._queued.add(consent_id)
                if self._background:
                    self._start_worker()
        if full:
            self._log(
                logging.WARNING,
                "dropped",
                "cookie_gate withdrawal lookups queue full: %d ids dropped so far, looked up once it drains",
                self.dropped,
            )

    def _start_worker(self) -> None:
        """Start the worker, or wake it (called under the lock)."""
        if self._worker is None:
            # Started once and kept while there is work, so a request rarely pays for a thread.
            self._worker = threading.Thread(target=self._work, name="cookie_gate-withdrawals", daemon=True)
            self._worker.start()
        else:
            self._changed.notify_all()

    def check_pending(self) -> None:
        """Look up every queued id now, in this thread, stopping at a failure (tests call it directly)."""
        while True:
            with self._lock:
                batch = self._next_batch()
            if not batch or not self._look_up(batch):
                return

    @property
    def worker_running(self) -> bool:
        """Whether the lookup thread is alive now; it ends after `WORKER_IDLE_SECONDS` with nothing queued."""
        worker = self._worker
        return worker is not None and worker.is_alive()

    @property
    def checked(self) -> int:
        """How many ids are remembered as looked up already (at most `MAX_CHECKED`), so never asked again."""
        return len(self._checked)

    def wait(self, timeout: float) -> bool:
        """Wait until the worker did what it can: every queued id looked up, or waiting to retry (for tests)."""
        with self._lock:
            return self._changed.wait_for(lambda: not self._busy and (not self._queue or self._backing_off), timeout)

    def _work(self) -> None:
        pause = 0.0
        while True:
            with self._lock:
                if pause:
                    self._busy, self._backing_off = False, True
                    self._changed.notify_all()
                    deadline = time.monotonic() + pause
                    while (left := deadline - time.monotonic()) > 0:
                        self._changed.wait(left)
                    self._backing_off = False
                while not self._queue:
                    self._busy = False
                    self._changed.notify_all()
                    if not self._changed.wait(WORKER_IDLE_SECONDS) and not self._queue:
                        self._worker = None
                        return
                batch = self._next_batch()
                self._busy = True
            answered = self._look_up(batch)
            pause = 0.0 if answered else min(RETRY_MAX_SECONDS, max(RETRY_FIRST_SECONDS, pause * 2))

    def _next_batch(self) -> list[str]:
        return [self._queue.popleft() for _ in range(min(LOOKUP_BATCH, len(self._queue)))]

    def _look_up(self, batch: list[str]) -> bool:
        """Ask the store about `batch`; on failure put it back to be tried again. True when it answered."""
        assert self._lookup is not None
        try:
            found = self._lookup(batch)
        except Exception as error:  # a store down or slow must never reach a request
            with self._lock:
                self.failed += 1
                self._queue.extendleft(reversed(batch))
            self._log(
                logging.ERROR,
                "failed",
                "cookie_gate could not look up withdrawn consent ids (%s): %d failures so far, tried again later",
                type(error).__name__,
                self.failed,
            )
            return False
        for consent_id, at in found.items():
            self.add(consent_id, at)
        self._done(batch)
        return True

    def _done(self, ids: Iterable[str]) -> None:
        """Remember looked-up ids as checked; once the queue drained, have dropped ids met again."""
        with self._lock:
            for consent_id in ids:
                self._queued.discard(consent_id)
                if len(self._checked) >= MAX_CHECKED:
                    self._checked.pop(next(iter(self._checked)), None)
                self._checked[consent_id] = None
            met_again = self._dropped_since_drain and not self._queued
            if met_again:
                self._dropped_since_drain = False
        if met_again:
            self._forget_visits()

    def _forget_visits(self) -> None:
        for forget in self.on_forget:
            forget()

    def _log(self, level: int, kind: str, message: str, *args: object) -> None:
        """Log `kind` now if it was not logged within `LOG_INTERVAL_SECONDS` (outside the lock: handlers do I/O)."""
        now = self._clock()
        last = self._logged_at.get(kind)
        if last is None or not 0 <= now - last < LOG_INTERVAL_SECONDS:
            self._logged_at[kind] = now
            logger.log(level, message, *args)

    def _forget_parent(self) -> None:
        """In a forked child: no worker runs, and a lock the parent held at the fork would never be released.

        What was queued or being looked up in the parent is not looked up here; the
        visits holding those ids are dropped from the cache, so they are met and queued again.
        """
        lost = bool(self._queued)
        self._reset_worker()
        if lost:
            self._forget_visits()


def _forget_parents() -> None:
    for withdrawals in list(_instances):
        withdrawals._forget_parent()


os.register_at_fork(after_in_child=_forget_parents)
