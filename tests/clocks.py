"""The clocks the tests hand to the gateway, so no result depends on when the suite runs.

`suite_clock` is the real clock by default. With `COOKIE_GATE_TEST_NOW` set to an ISO
instant (`2026-12-01T15:00:00+00:00`, a Seoul midnight) it starts there and runs on
at the real pace, so the whole suite can be replayed at any instant; `scripts/test`
does so at two. Tests that need a precise time build a `SteppedClock` of their own.
"""

from __future__ import annotations

import os
import time
from datetime import datetime


def _start() -> float:
    fixed = os.environ.get("COOKIE_GATE_TEST_NOW")
    if not fixed:
        return time.time()
    instant = datetime.fromisoformat(fixed)
    if instant.tzinfo is None:
        raise ValueError(f"COOKIE_GATE_TEST_NOW={fixed!r} needs a UTC offset, or it would depend on the time zone")
    return instant.timestamp()


SUITE_START = _start()
_STARTED = time.monotonic()


def suite_clock() -> float:
    """Now, as the suite sees it: `SUITE_START` plus the time the suite has been running."""
    return SUITE_START + (time.monotonic() - _STARTED)


class SteppedClock:
    """A wall clock a test sets and moves by hand, passed in as `clock=`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
