"""A store filled with a known, plausible quarter of traffic, for the dashboard's tests and pictures.

Everything comes from a seeded random generator and a fixed last day, so two runs write the
same counters: page views through a real `StatsWriter` (the same path production takes),
decisions through the store's consent log, cookies through the inventory.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.counter import VisitStart
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store import DecisionRecord
from cookie_gate.store.sql import SQLStore, StatsBatch

ZONE = "UTC"  # the demo shop's, so the browser tests can serve this store as it is
LAST_DAY = date(2026, 11, 30)
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
    "Safari/537.36",
)
PATHS = ("/", "/products", "/products/42", "/cart", "/blog/cookies-explained", "/privacy", "/about")
REFERRERS = (
    None,
    b"https://shop.example/",
    b"https://shop.example/products",
    b"https://www.google.com/",
    b"https://search.naver.com/",
    b"https://news.ycombinator.com/",
)
COOKIES = {
    "cart_id": ("necessary", "config"),
    "preferred_lang": ("preferences", "config"),
    "_ga": ("analytics", "catalogue: Google Analytics"),
    "_fbp": ("marketing", "catalogue: Meta Pixel"),
    "wow.anonymousId": ("necessary", "suspected tracker: value is a UUID; name says anonymous"),
}


def at(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(ZONE)).timestamp()


def seed(store: SQLStore, days: int = 90, last_day: date = LAST_DAY, views_per_day: int = 60) -> None:
    """`days` days of traffic ending on `last_day` (site time, UTC)."""
    rng = random.Random(11)
    first = last_day - timedelta(days=days - 1)
    writer = StatsWriter(
        store, SiteClock(ZONE), clock=lambda: at(last_day, 23), capacity=10**6, interval=60.0, daily_hash=False
    )
    for offset in range(days):
        day = first + timedelta(days=offset)
        weekend = day.weekday() >= 5
        for _ in range(int(views_per_day * (0.6 if weekend else 1.0) * (0.7 + 0.6 * offset / days))):
            hour = min(23, max(0, int(rng.gauss(14 if weekend else 11, 4))))
            consented = rng.random() < 0.45
            start = None
            if consented and rng.random() < 0.5:
                number = rng.choice((1, 1, 1, 2, 3, 5, 9))
                start = VisitStart(number, None if number == 1 else rng.choice((0, 1, 3, 8, 20)), 1, number)
            writer.record(
                CountedView(
                    at(day, hour, rng.randrange(60)),
                    rng.choice(PATHS),
                    b"shop.example",
                    rng.choice(AGENTS).encode(),
                    rng.choice(REFERRERS),
                    None,
                    start,
                    consented,
                )
            )
        for n in range(rng.randrange(4, 12)):
            action = rng.choices(("accept_all", "reject_all", "custom", "withdraw"), (5, 4, 2, 0.3))[0]
            categories = {
                "accept_all": ("necessary", "preferences", "analytics", "marketing"),
                "reject_all": ("necessary",),
                "custom": ("necessary", "analytics") if rng.random() < 0.7 else ("necessary", "preferences"),
                "withdraw": ("necessary",),
            }[action]
            when = int(at(day, rng.randrange(24), rng.randrange(60)))
            store.log_decision(DecisionRecord(f"seed-{offset}-{n}", when, action, categories, "2026-12", False))
    assert writer.flush()
    writer.stop()
    store.add_stats(StatsBatch(cookies={name: (*filed, last_day.isoformat()) for name, filed in COOKIES.items()}))
