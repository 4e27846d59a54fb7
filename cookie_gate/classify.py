"""Cookie name -> consent category, for every name a request or response carries.

The admin's own patterns win over the built-in catalogue, so a site can re-file any
well-known cookie. Lookups are cached per name because a site sees the same few
dozen names on every request.

Names nobody declared are judged by `suspect.py` from their first sighting (the
value a request carried, or the app's Set-Cookie with its lifetime and HttpOnly).
The judgment lives here, in the process, so that `unknown_cookies = "suspect"` can
refuse a suspected tracker on the very request that first carries it: it depends
only on what this process has seen, never on the store. It is redone once, when the
app is first seen setting a name that was first seen in a request.

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
        #: Names already recorded from requests and from the app's Set-Cookies; the hot paths check these.
        self.recorded_sent: set[str] = set()
        self.recorded_set: set[str] = set()
        #: Sightings of names left out of the inventory because a budget was spent.
        self.unrecorded = 0
        #: Judgments of undeclared names, and whether each came from the app's own Set-Cookie.
        self._verdicts: dict[str, tuple[Verdict, bool]] = {}
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
        judged = self._verdicts.get(name)
        return SUSPECT_CATEGORY if judged is not None and judged[0].suspect else NECESSARY

    def source(self, name: str) -> str:
        """Who filed `name`: "gateway", "site", "catalogue" or "unknown" (for the admin's tools)."""
        if name in self._own:
            return "gateway"
        if self._declared.category(name) is not None:
            return "site"
        known = self._catalog.category(name)
        return "catalogue" if known is not None and known in self._known else "unknown"

    def verdict(self, name: str) -> Verdict | None:
        """The heuristic's judgment of an undeclared name this process has seen, if any."""
        judged = self._verdicts.get(name)
        return None if judged is None else judged[0]

    def sent(self, name: str, value: str) -> None:
        """First sight of `name` in a request (the visit resolver calls this once per name)."""
        if len(self.recorded_sent) >= MAX_INVENTORY_SENT_NAMES:
            self._left_out("names seen only in requests")
            return
        self.recorded_sent.add(name)
        self._sight(name, Sighting(value[:MAX_VALUE]))

    def was_set(self, name: str, set_cookie: bytes, now: float) -> None:
        """First sight of the app setting `name` (the middleware calls this once per name)."""
        if len(self.recorded_set) >= MAX_INVENTORY_SET_NAMES:
            self._left_out("names the app sets")
            return
        self.recorded_set.add(name)
        value = set_cookie.split(b";", 1)[0].partition(b"=")[2].strip()[:MAX_VALUE].decode("latin-1")
        self._sight(name, set_cookie_sighting(set_cookie, value, now))

    def _sight(self, name: str, sighting: Sighting) -> None:
        source = self.source(name)
        if source == "unknown":
            judged = self._verdicts.get(name)
            if judged is None or (sighting.set_by_app and not judged[1]):
                verdict = judge(name, sighting)
                self._verdicts[name] = (verdict, sighting.set_by_app)
                changed = judged is not None and judged[0].suspect != verdict.suspect
                if changed and self._mode == "suspect":
                    for callback in self.on_change:
                        callback()
            verdict = self._verdicts[name][0]
            if verdict.suspect:
                source = verdict.describe()
        if 0 < len(name) <= MAX_INVENTORY_NAME:
            self.new_names.append((name, self.category(name), source))

    def _left_out(self, what: str) -> None:
        if not self.unrecorded:
            self.new_names.append((TRUNCATED, "-", f"the inventory is full: further {what} were not recorded"))
        self.unrecorded += 1
