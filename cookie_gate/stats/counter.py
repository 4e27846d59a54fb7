"""The visit counter cookie of visitors who accepted analytics.

It holds only the visitor's own counts (visits, first and last day, last minute,
visits this week and this month) and no identifier, so frequency can be measured
across days without the server keeping anything about anyone. It is signed so the
counts cannot be inflated, and it expires 13 months after it was first set: the
expiry is computed from `first_day` every time, so rewriting never extends it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from itsdangerous import BadSignature, Signer

from cookie_gate.stats.clock import Moment

VISIT_GAP_MINUTES = 30
_FORMAT = "1"


@dataclass(frozen=True, slots=True)
class Counts:
    visits: int
    first_day: int
    last_day: int
    last_minute: int
    week: int
    week_visits: int
    month: int
    month_visits: int


@dataclass(frozen=True, slots=True)
class VisitStart:
    """What the page view that opened a visit tells the statistics."""

    number: int  # this is the visitor's n-th visit
    days_since_last: int | None  # None for a first visit
    week_rank: int  # the k-th visit this week
    month_rank: int


class Step(NamedTuple):
    """One page view's effect on the counts."""

    counts: Counts
    #: The visit this page view opened, None when it continues one.
    start: VisitStart | None
    #: Whether the counts differ from the visitor's cookie, so a new one must be written.
    changed: bool


def advance(counts: Counts | None, now: Moment) -> Step:
    """The counts after a page view at `now`, the visit it opened, and whether the cookie must be rewritten."""
    if counts is None:
        fresh = Counts(1, now.day, now.day, now.minute, now.week, 1, now.month, 1)
        return Step(fresh, VisitStart(1, None, 1, 1), True)
    if now.minute == counts.last_minute:
        return Step(counts, None, False)  # the common case: nothing to write back
    if now.minute - counts.last_minute <= VISIT_GAP_MINUTES and now.minute > counts.last_minute:
        return Step(replace(counts, last_minute=now.minute), None, True)
    week_visits = counts.week_visits + 1 if counts.week == now.week else 1
    month_visits = counts.month_visits + 1 if counts.month == now.month else 1
    updated = Counts(
        visits=counts.visits + 1,
        first_day=counts.first_day,
        last_day=now.day,
        last_minute=now.minute,
        week=now.week,
        week_visits=week_visits,
        month=now.month,
        month_visits=month_visits,
    )
    return Step(updated, VisitStart(updated.visits, max(0, now.day - counts.last_day), week_visits, month_visits), True)


class CounterCodec:
    """Signs the counts; verification is cached per value like the consent cookie's."""

    def __init__(self, secret_keys: Sequence[str], cache_size: int = 4096) -> None:
        self._signer = Signer(
            list(reversed(secret_keys)),
            salt="cookie_gate.visits",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        # Bounded by entries of bounded size: values over 256 characters are never cached (`decode`),
        # so 4,096 entries hold about 2 MB at most.
        self._cached = functools.lru_cache(maxsize=cache_size)(self._decode)

    def encode(self, counts: Counts) -> str:
        fields = (
            counts.visits,
            counts.first_day,
            counts.last_day,
            counts.last_minute,
            counts.week,
            counts.week_visits,
            counts.month,
            counts.month_visits,
        )
        payload = ":".join((_FORMAT, *(format(f, "x") for f in fields)))
        return self._signer.sign(payload.encode("ascii")).decode("ascii")

    def decode(self, value: str) -> Counts | None:
        return None if len(value) > 256 else self._cached(value)

    def _decode(self, value: str) -> Counts | None:
        try:
            payload = self._signer.unsign(value.encode("latin-1")).decode("ascii")
        except (BadSignature, UnicodeError):
            return None
        parts = payload.split(":")
        if len(parts) != 9 or parts[0] != _FORMAT:
            return None
        try:
            numbers = [int(p, 16) for p in parts[1:]]
        except ValueError:
            return None
        if min(numbers) < 0:
            return None
        return Counts(*numbers)
