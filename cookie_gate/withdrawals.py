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
the same value stays in use here. Every structure is bounded; a lookup that cannot be
queued or that fails is counted and logged once, and tried again only when the id
is verified again.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

logger = logging.getLogger("cookie_gate.consent")

#: Looks ids up in the consent log: id -> time of its latest withdrawal, for the withdrawn ones.
Lookup = Callable[[list[str]], Mapping[str, int]]
MAX_WITHDRAWN = 65_536
MAX_CHECKED = 65_536
MAX_QUEUED = 4096
#: Ids per store query.
LOOKUP_BATCH = 100
#: The worker thread ends after this long without work, and starts again with the next id.
WORKER_IDLE_SECONDS = 60.0


class Withdrawals:
    """Bounded memory of withdrawn consent ids, filled from this process and, lazily, from the store."""

    def __init__(self, lookup: Lookup | None = None, *, background: bool = True) -> None:
        self._lookup = lookup
        self._background = background
        #: consent id -> time of the latest withdrawal known here; read on every decided request.
        self.times: dict[str, int] = {}
        self._checked: dict[str, None] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        #: Wakes the worker when ids are queued, and `wait` when the worker has nothing left.
        self._changed = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._busy = False
        self.dropped = 0
        self.failed = 0

    def withdrawn(self, consent_id: str, decided_at: int) -> bool:
        """Whether a decision taken at `decided_at` under `consent_id` was withdrawn since."""
        at = self.times.get(consent_id)
        return at is not None and at >= decided_at

    def add(self, consent_id: str, at: int) -> None:
        """Remember a withdrawal (at most `MAX_WITHDRAWN`, the oldest forgotten first)."""
        with self._lock:
            if at <= self.times.get(consent_id, at - 1):
                return
            self.times.pop(consent_id, None)
            if len(self.times) >= MAX_WITHDRAWN:
                self.times.pop(next(iter(self.times)), None)
            self.times[consent_id] = at

    def check_later(self, consent_id: str) -> None:
        """Queue `consent_id` for a lookup in the store, once; never blocks on the store."""
        if self._lookup is None or consent_id in self._checked or consent_id in self._queued:
            return
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self.dropped += 1
                if self.dropped == 1:
                    logger.warning("cookie_gate withdrawal lookups queue full; ids not checked are counted as dropped")
                return
            self._queue.append(consent_id)
            self._queued.add(consent_id)
            if not self._background:
                return
            if self._worker is None:
                # Started once and kept while there is work, so a request rarely pays for a thread.
                self._worker = threading.Thread(target=self._work, name="cookie_gate-withdrawals", daemon=True)
                self._worker.start()
            else:
                self._changed.notify_all()

    def check_pending(self) -> None:
        """Look up every queued id now, in this thread (what the worker does; tests call it directly)."""
        while True:
            with self._lock:
                batch = self._next_batch()
            if not batch:
                return
            self._look_up(batch)

    def wait(self, timeout: float) -> bool:
        """Wait until every queued id was looked up; True when that happened in time (for tests)."""
        with self._lock:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._busy = False
                    self._changed.notify_all()
                    if not self._changed.wait(WORKER_IDLE_SECONDS) and not self._queue:
                        self._worker = None
                        return
                batch = self._next_batch()
                self._busy = True
            self._look_up(batch)

    def _next_batch(self) -> list[str]:
        return [self._queue.popleft() for _ in range(min(LOOKUP_BATCH, len(self._queue)))]

    def _look_up(self, batch: list[str]) -> None:
        assert self._lookup is not None
        try:
            found = self._lookup(batch)
        except Exception as error:  # a store down or slow must never reach a request
            self.failed += 1
            if self.failed == 1:
                logger.error("cookie_gate could not look up withdrawn consent ids: %s", type(error).__name__)
            self._done(batch, checked=False)
            return
        for consent_id, at in found.items():
            self.add(consent_id, at)
        self._done(batch, checked=True)

    def _done(self, ids: Iterable[str], checked: bool) -> None:
        """Forget `ids` as queued; when their lookup answered, remember them as checked."""
        with self._lock:
            self._queued.difference_update(ids)
            if not checked:
                return
            for consent_id in ids:
                if len(self._checked) >= MAX_CHECKED:
                    self._checked.pop(next(iter(self._checked)), None)
                self._checked[consent_id] = None
