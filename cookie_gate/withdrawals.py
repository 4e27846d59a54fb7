"""Which consent ids were withdrawn, so a replayed copy of a withdrawn cookie stops counting.

A withdrawal clears the consent cookie, but a browser extension, a backup or an old
tab can send the same signed value again, and its signature still verifies. The log
in the store knows better. The request path must never wait for the store, so the
gateway keeps, per process:

* the ids it saw withdrawn, with the time of the withdrawal: filled at once when this
  process logs one, and by `GET /consent`, which reads the log anyway;
* a lookup in the store for every consent id it verifies for the first time, done
  by a short-lived thread while the request goes on with the cookie as it reads.
  When the store answers "withdrawn", the next request with that cookie is undecided.

A decision made after a withdrawal under the same id counts again, hence the time.
Another instance's withdrawal is seen when this process first meets the id, or once
the id has aged out of the bounded memory of checked ids and is met again; not while
the same value stays in use here. Every structure is bounded; a lookup that cannot be
queued or that fails is counted and logged, never retried in a loop.
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
        self._worker: threading.Thread | None = None
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
        """Queue `consent_id` for a lookup in the store, once; never blocks."""
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
            if self._background and self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="cookie_gate-withdrawals", daemon=True)
                self._worker.start()

    def check_pending(self) -> None:
        """Look up every queued id now, in this thread (the worker's loop; tests call it directly)."""
        while self._look_up_batch():
            pass

    def wait(self, timeout: float) -> bool:
        """Wait for the worker to finish what is queued; True when it did (for tests and shutdown)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def _drain(self) -> None:
        while self._look_up_batch(stop_when_empty=True):
            pass

    def _look_up_batch(self, stop_when_empty: bool = False) -> bool:
        with self._lock:
            if not self._queue:
                if stop_when_empty:
                    self._worker = None
                return False
            batch = [self._queue.popleft() for _ in range(min(LOOKUP_BATCH, len(self._queue)))]
        assert self._lookup is not None
        try:
            found = self._lookup(batch)
        except Exception as error:  # a store down or slow must never reach a request
            self.failed += 1
            if self.failed == 1:
                logger.error("cookie_gate could not look up withdrawn consent ids: %s", type(error).__name__)
            self._done(batch, checked=False)
            return True
        for consent_id, at in found.items():
            self.add(consent_id, at)
        self._done(batch, checked=True)
        return True

    def _done(self, ids: Iterable[str], checked: bool) -> None:
        with self._lock:
            self._queued.difference_update(ids)
            if not checked:
                return
            for consent_id in ids:
                if len(self._checked) >= MAX_CHECKED:
                    self._checked.pop(next(iter(self._checked)), None)
                self._checked[consent_id] = None
