"""Cookie name -> consent category, for every name a request or response carries.

The admin's own patterns win over the built-in catalogue, so a site can re-file any
well-known cookie. Lookups are cached per name because a site sees the same few
dozen names on every request.

Names nobody declared are judged by `suspect.py` when they are sighted: the value a
request carried, or the app's Set-Cookie with its lifetime and HttpOnly. The judgment
lives here, in the process, so that `unknown_cookies = "suspect"` can refuse a
suspected tracker on the very request that first carries it: it depends only on what
this process has seen, never on the store. What the app's own Set-Cookie showed wins
over what requests showed, and when it changes a category the cached visits are redone.

The inventory (names, their category and who filed them) is fed from the same
sightings, with separate budgets for names the app sets and names only seen in
requests, so a client sending thousands of made-up names cannot crowd out the
app's own cookies.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable

from cookie_gate.catalog import NameMatcher, builtin_catalog
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY
from cookie_gate.stats.counter import COOKIE_NAME as COUNTER_COOKIE
from cookie_gate.suspect import MAX_VALUE, Sighting, Verdict, judge, set_cookie_sighting

#: Category of names nobody declared when `unknown_cookies = "block"`; it is never
#: in any visitor's allowed set, so such cookies are always kept away.
UNDECLARED = "undeclared"
#: Where `unknown_cookies = "suspect"` files a suspected tracker: the category visitors
#: accept least and Global Privacy Control refuses, since nobody vouched for the cookie.
SUSPECT_CATEGORY = "marketing"
#: The inventory keeps names a person could read; clients can send any junk, so it is bounded.
MAX_INVENTORY_NAME = 100
#: Names the app sets (its own cookies): recorded first and with the larger budget.
MAX_INVENTORY_SET_NAMES = 5000
#: Names only seen in requests: anyone can make these up, so they have their own, smaller budget.
MAX_INVENTORY_SENT_NAMES = 1000
#: Names whose request sighting (and verdict) is remembered; beyond this the oldest is forgotten.
MAX_SIGHTED_NAMES = 8192
#: The inventory entry that says names were left out; ";" can never be in a cookie name.
TRUNCATED = ";truncated"
_UNJUDGED = "\x00unjudged"


class CookieClassifier:
    def __init__(self, config: Config, catalog: NameMatcher | None = None, cache_size: int = 8192) -> None:
        exact: dict[str, str] = {}
        prefixes: dict[str, str] = {}
        for category in config.categories:
            exact.update(dict.fromkeys(category.exact_names, category.name))
            prefixes.update(dict.fromkeys(category.prefixes, category.name))
        self._declared = NameMatcher(exact, prefixes)
        self._catalog = builtin_catalog() if catalog is None else catalog
        self._known = frozenset(config.category_names)
        # The gateway's own cookies: the choice itself, and the visit counter (it counts, so it is analytics).
        self._own = {config.cookie_name: NECESSARY, COUNTER_COOKIE: "analytics"}
        self._mode = config.unknown_cookies
        self._unknown = {"allow": NECESSARY, "block": UNDECLARED, "suspect": _UNJUDGED}[config.unknown_cookies]
        self._cached = functools.lru_cache(maxsize=cache_size)(self._category)
        self.category: Callable[[str], str] = self._judged if self._mode == "suspect" else self._cached
        #: Inventory entries (name, category, who filed it) for the statistics writer, which drains it.
        self.new_names: collections.deque[tuple[str, str, str]] = collections.deque()
        #: Names sighted in requests, with the heuristic's verdict for undeclared ones (None for the others).
        #: Bounded, oldest out: a name pushed out by a flood of made-up ones is simply judged again.
        self.sighted: collections.OrderedDict[str, Verdict | None] = collections.OrderedDict()
        #: Names the app was seen setting, with the verdict for undeclared ones; the hot path checks this.
        self.recorded_set: dict[str, Verdict | None] = {}
        #: Names already in the inventory from requests (a budget of its own).
        self._inventoried_sent: set[str] = set()
        #: Sightings of names left out of the inventory because a budget was spent.
        self.unrecorded = 0
        #: Called when a judgment changes a category (suspect mode), so cached visits are redone.
        self.on_change: list[Callable[[], None]] = []

    def _category(self, name: str) -> str:
        own = self._own.get(name)
        if own is not None:
            return own
        declared = self._declared.category(name)
        if declared is not None:
            return declared
        known = self._catalog.category(name)
        if known is not None and known in self._known:
            return known
        return self._unknown

    def _judged(self, name: str) -> str:
        category = self._cached(name)
        if category is not _UNJUDGED:
            return category
        verdict = self.verdict(name)
        return SUSPECT_CATEGORY if verdict is not None and verdict.suspect else NECESSARY

    def source(self, name: str) -> str:
        """Who filed `name`: "gateway", "site", "catalogue" or "unknown" (for the admin's tools)."""
        if name in self._own:
            return "gateway"
        if self._declared.category(name) is not None:
            return "site"
        known = self._catalog.category(name)
        return "catalogue" if known is not None and known in self._known else "unknown"

    def verdict(self, name: str) -> Verdict | None:
        """The heuristic's judgment of an undeclared name; what the app's own Set-Cookie showed wins."""
        verdict = self.recorded_set.get(name)
        return verdict if verdict is not None else self.sighted.get(name)

    def sent(self, name: str, value: str) -> None:
        """A sighting of `name` in a request (the visit resolver calls this for names not in `sighted`).

        Names longer than a person would read are neither remembered nor judged, so a client
        sending huge made-up names cannot make this memory grow past a few megabytes.
        """
        if not 0 < len(name) <= MAX_INVENTORY_NAME:
            return
        verdict = self._judge(name, Sighting(value[:MAX_VALUE]))
        self.sighted[name] = verdict
        if len(self.sighted) > MAX_SIGHTED_NAMES:
            self.sighted.popitem(last=False)
        if name in self._inventoried_sent:
            return
        if len(self._inventoried_sent) >= MAX_INVENTORY_SENT_NAMES:
            self._left_out("names seen only in requests")
            return
        self._inventoried_sent.add(name)
        self._record(name, verdict)

    def was_set(self, name: str, set_cookie: bytes, now: float) -> None:
        """First sight of the app setting `name` (the middleware calls this for names not in `recorded_set`)."""
        if not 0 < len(name) <= MAX_INVENTORY_NAME:
            return
        if len(self.recorded_set) >= MAX_INVENTORY_SET_NAMES:
            self._left_out("names the app sets")
            return
        value = set_cookie.split(b";", 1)[0].partition(b"=")[2].strip()[:MAX_VALUE].decode("latin-1")
        before = self.verdict(name)
        verdict = self._judge(name, set_cookie_sighting(set_cookie, value, now))
        self.recorded_set[name] = verdict
        # A cached visit may hold this name filed from a request sighting (or from none, if it was pushed out).
        if self._mode == "suspect" and verdict is not None and (before is None or before.suspect != verdict.suspect):
            for callback in self.on_change:
                callback()
        self._record(name, verdict)

    def _judge(self, name: str, sighting: Sighting) -> Verdict | None:
        return judge(name, sighting) if self.source(name) == "unknown" else None

    def _record(self, name: str, verdict: Verdict | None) -> None:
        source = verdict.describe() if verdict is not None and verdict.suspect else self.source(name)
        self.new_names.append((name, self.category(name), source))

    def _left_out(self, what: str) -> None:
        if not self.unrecorded:
            self.new_names.append((TRUNCATED, "-", f"the inventory is full: further {what} were not recorded"))
        self.unrecorded += 1
