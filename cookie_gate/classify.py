"""Cookie name -> consent category, for every name a request or response carries.

The admin's own patterns win over the built-in catalogue, so a site can re-file any
well-known cookie. Lookups are cached per name because a site sees the same few
dozen names on every request.

Names nobody declared are judged by `suspect.py` when they are sighted: the value a
request carried, or the app's Set-Cookie with its lifetime and HttpOnly. The judgment
lives here, in the process, so that `unknown_cookies = "suspect"` can refuse a
suspected tracker on the very request that first carries it: it depends only on what
this process has seen, never on the store. In suspect mode every request's values are
judged (the visit resolver does it once per distinct Cookie header), and a request
verdict only ever goes up: one suspect value makes the name suspect for everyone,
whoever sent a harmless value first; no request can clear a suspicion, only the app's
own Set-Cookie can, since what the app showed wins over what requests showed. When a
sighting changes a category, the cached visits are redone.

A name too long to remember (over `MAX_JUDGED_NAME`) cannot keep a verdict, so in
suspect mode it is filed as a suspect unless the site or the catalogue knows it: no
way around the heuristic is left open by making a name long.

Generic names (``uid``, ``token``, ``s``: the catalogue's "generic names" entry) say
nothing about what a cookie is for. The catalogue files them necessary, so that no
data set makes them a tracker, but the classifier treats them as names nobody
declared: necessary when `unknown_cookies = "allow"`, judged by the heuristic in
suspect mode, blocked in block mode unless the admin declares them. A framework's
documented name (``sessionid``, ``cart``) is the catalogue's and passes in every mode.

The inventory (names, their category and who filed them) is fed from the same
sightings, with separate budgets for names the app sets and names only seen in
requests, so a client sending thousands of made-up names cannot crowd out the
app's own cookies.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, str_size
from cookie_gate.catalog import NameMatcher, builtin_catalog
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY
from cookie_gate.inventory import Inventory
from cookie_gate.own_cookies import COUNTER_CATEGORY, COUNTER_COOKIE
from cookie_gate.suspect import MAX_VALUE, Sighting, Verdict, judge, set_cookie_sighting

#: Category of names nobody declared when `unknown_cookies = "block"`; it is never
#: in any visitor's allowed set, so such cookies are always kept away.
UNDECLARED = "undeclared"
#: Where `unknown_cookies = "suspect"` files a suspected tracker: the category visitors
#: accept least and Global Privacy Control refuses, since nobody vouched for the cookie.
SUSPECT_CATEGORY = "marketing"
#: The inventory keeps names a person could read; clients can send any junk, so it is bounded.
MAX_INVENTORY_NAME = 100
#: Names up to this long keep a verdict; longer ones are never remembered (bounded memory), so
#: in suspect mode an undeclared one is filed as a suspect rather than waved through.
MAX_JUDGED_NAME = 200
#: Names the app sets (its own cookies): recorded first and with the larger budget.
MAX_INVENTORY_SET_NAMES = 5000
#: Names only seen in requests: anyone can make these up, so they have their own, smaller budget.
MAX_INVENTORY_SENT_NAMES = 1000
#: Names whose request sighting (and verdict) is remembered; beyond this the least recently sighted is
#: forgotten. The same bound holds the verdicts of app-set names beyond the inventory's budget.
MAX_SIGHTED_NAMES = 8192
#: The inventory entry that says names were left out; ";" can never be in a cookie name.
TRUNCATED = ";truncated"
_UNJUDGED = "\x00unjudged"
#: The name cache holds at most this many bytes of names, however many distinct ones clients
#: send; a name longer than a few KB is classified every time rather than kept.
NAME_CACHE_BYTES = 2 * 2**20


class CookieClassifier:
    def __init__(
        self,
        config: Config,
        catalog: NameMatcher | None = None,
        cache_bytes: int = NAME_CACHE_BYTES,
        inventory: Inventory | None = None,
    ) -> None:
        exact: dict[str, str] = {}
        prefixes: dict[str, str] = {}
        for category in config.categories:
            exact.update(dict.fromkeys(category.exact_names, category.name))
            prefixes.update(dict.fromkeys(category.prefixes, category.name))
        self._declared = NameMatcher(exact, prefixes)
        self._catalog = builtin_catalog() if catalog is None else catalog
        self._known = frozenset(config.category_names)
        # The gateway's own cookies: the choice itself, and the visit counter (it counts, so it is analytics).
        self._own = {config.cookie_name: NECESSARY, COUNTER_COOKIE: COUNTER_CATEGORY}
        self._mode = config.unknown_cookies
        self._unknown = {"allow": NECESSARY, "block": UNDECLARED, "suspect": _UNJUDGED}[config.unknown_cookies]
        self._names = BoundedCache(
            self._category, _name_bytes, max_bytes=cache_bytes, max_entry_bytes=max(1, cache_bytes // 512)
        )
        self._cached = self._names.__getitem__
        self.category: Callable[[str], str] = self._judged if self._mode == "suspect" else self._cached
        #: Whether every request value must be judged (suspect mode), not just a name's first sighting.
        self.judges_requests = self._mode == "suspect"
        #: Where each name goes the first time it is filed, for the statistics writer to store.
        self.new_names = Inventory() if inventory is None else inventory
        #: Names sighted in requests, with the heuristic's verdict for undeclared ones (None for the others).
        #: A suspect verdict stays until the name is pushed out; a clean one gives way to a suspect one.
        #: Bounded, least recently sighted out: a name pushed out by a flood is judged again on its next
        #: value, and every request value is judged anyway, so a flood cannot make a tracker pass.
        self.sighted: collections.OrderedDict[str, Verdict | None] = collections.OrderedDict()
        #: Names the app was seen setting, with the verdict for undeclared ones; the hot path checks this.
        self.recorded_set: dict[str, Verdict | None] = {}
        #: Verdicts of app-set names beyond the inventory's budget (not in `recorded_set`, so re-judged
        #: on every Set-Cookie), bounded like `sighted`.
        self._set_overflow: collections.OrderedDict[str, Verdict | None] = collections.OrderedDict()
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
        if known is not None and known in self._known and not self._catalog.is_generic(name):
            return known
        return self._unknown

    def _judged(self, name: str) -> str:
        category = self._cached(name)
        if category is not _UNJUDGED:
            return category
        if len(name) > MAX_JUDGED_NAME:
            return SUSPECT_CATEGORY  # no verdict can be kept for it, so none can vouch for it
        verdict = self.verdict(name)
        return SUSPECT_CATEGORY if verdict is not None and verdict.suspect else NECESSARY

    def source(self, name: str) -> str:
        """Who filed `name`: "gateway", "site", "catalogue", "generic" or "unknown" (for the admin's tools).

        "generic": the catalogue lists it as a name apps use for themselves, which says nothing
        about its purpose, so the `unknown_cookies` policy files it as it files unknown names.
        """
        if name in self._own:
            return "gateway"
        if self._declared.category(name) is not None:
            return "site"
        known = self._catalog.category(name)
        if known is None or known not in self._known:
            return "unknown"
        return "generic" if self._catalog.is_generic(name) else "catalogue"

    def verdict(self, name: str) -> Verdict | None:
        """The heuristic's judgment of an undeclared name; what the app's own Set-Cookie showed wins."""
        verdict = self.recorded_set.get(name)
        if verdict is None:
            verdict = self._set_overflow.get(name)
        return verdict if verdict is not None else self.sighted.get(name)

    def sent(self, name: str, value: str) -> None:
        """A sighting of `name` in a request (the visit resolver calls this once per distinct Cookie header).

        In suspect mode every value is judged, and the name's request verdict only goes up: a
        suspect value overrides a clean verdict, a clean value never clears a suspect one.
        Names longer than `MAX_JUDGED_NAME` are neither remembered nor judged, so a client
        sending huge made-up names cannot make this memory grow past a few megabytes.
        """
        if len(name) > MAX_JUDGED_NAME:
            return
        sighted = self.sighted
        seen = name in sighted
        if seen:
            sighted.move_to_end(name)
            earlier = sighted[name]
            if not self.judges_requests or earlier is None or earlier.suspect:
                return  # judged once is enough outside suspect mode; a suspicion stays
        verdict = self._judge(name, Sighting(value[:MAX_VALUE]))
        if not seen:
            # A name not remembered (new, or pushed out) is in cached visits, if at all, only with
            # values that were judged clean there: those visits are not redone, so that made-up
            # names cannot clear the cache at will.
            sighted[name] = verdict
            if len(sighted) > MAX_SIGHTED_NAMES:
                sighted.popitem(last=False)
            self._inventory_sent(name, verdict)
            return
        if verdict is None or not verdict.suspect:
            return  # a clean value leaves the earlier verdict as it was
        before = self.category(name)
        sighted[name] = verdict
        if self.category(name) != before:  # unless the app's own verdict still decides
            self._changed()  # cached visits hold this name as clean: redo them
        if name in self._inventoried_sent:
            self._record(name, verdict)

    def _inventory_sent(self, name: str, verdict: Verdict | None) -> None:
        if not 0 < len(name) <= MAX_INVENTORY_NAME or name in self._inventoried_sent:
            return
        if len(self._inventoried_sent) >= MAX_INVENTORY_SENT_NAMES:
            self._left_out("names seen only in requests")
            return
        self._inventoried_sent.add(name)
        self._record(name, verdict)

    def was_set(self, name: str, set_cookie: bytes, now: float) -> None:
        """The app setting `name` (the middleware calls this for names not in `recorded_set`)."""
        if len(name) > MAX_JUDGED_NAME:
            return
        value = set_cookie.split(b";", 1)[0].partition(b"=")[2].strip()[:MAX_VALUE].decode("latin-1")
        before = self.category(name)
        verdict = self._judge(name, set_cookie_sighting(set_cookie, value, now))
        recordable = 0 < len(name) <= MAX_INVENTORY_NAME
        if recordable and len(self.recorded_set) < MAX_INVENTORY_SET_NAMES:
            self.recorded_set[name] = verdict
            self._record(name, verdict)
        else:
            # Still judged, so that a full inventory never waves a tracker through; only not recorded.
            self._set_overflow[name] = verdict
            self._set_overflow.move_to_end(name)
            if len(self._set_overflow) > MAX_SIGHTED_NAMES:
                self._set_overflow.popitem(last=False)
            if recordable:
                self._left_out("names the app sets")
        # A cached visit may hold this name filed from a request sighting; only a change redoes them.
        if self.category(name) != before:
            self._changed()

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def _judge(self, name: str, sighting: Sighting) -> Verdict | None:
        if self._mode == "suspect":  # the cached category already says whether it is left to the heuristic
            judgeable = self._cached(name) is _UNJUDGED
        else:
            judgeable = self.source(name) in ("unknown", "generic")
        return judge(name, sighting) if judgeable else None

    def _record(self, name: str, verdict: Verdict | None) -> None:
        source = verdict.describe() if verdict is not None and verdict.suspect else self.source(name)
        self.new_names.add(name, self.category(name), source)

    def _left_out(self, what: str) -> None:
        if not self.unrecorded:
            self.new_names.add(TRUNCATED, "-", f"the inventory is full: further {what} were not recorded")
        self.unrecorded += 1


def _name_bytes(name: str, category: str) -> int:
    """The category strings are the configuration's own, so only the name is charged."""
    return ENTRY_OVERHEAD + str_size(name)
