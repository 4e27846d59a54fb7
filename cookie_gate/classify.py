"""Cookie name -> consent category, for every name a request or response carries.

The admin's own patterns win over the built-in catalogue, so a site can re-file any
well-known cookie. Lookups are cached per name because a site sees the same few
dozen names on every request.
"""

from __future__ import annotations

import collections

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, str_size
from cookie_gate.catalog import NameMatcher, builtin_catalog
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY
from cookie_gate.stats.counter import COOKIE_NAME as COUNTER_COOKIE

#: Category of names nobody declared when `unknown_cookies = "block"`; it is never
#: in any visitor's allowed set, so such cookies are always kept away.
UNDECLARED = "undeclared"
#: The inventory keeps names a person could read; clients can send any junk, so it is bounded.
MAX_INVENTORY_NAME = 100
MAX_INVENTORY_NAMES = 5000
#: The name cache holds at most this many bytes of names, however many distinct ones clients
#: send; a name longer than a few KB is classified every time rather than kept.
NAME_CACHE_BYTES = 2 * 2**20


class CookieClassifier:
    def __init__(self, config: Config, catalog: NameMatcher | None = None, cache_bytes: int = NAME_CACHE_BYTES) -> None:
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
        self._unknown = NECESSARY if config.unknown_cookies == "allow" else UNDECLARED
        self._names = BoundedCache(
            self._category, _name_bytes, max_bytes=cache_bytes, max_entry_bytes=max(1, cache_bytes // 512)
        )
        self.category = self._names.__getitem__
        #: Names classified for the first time in this process, for the cookie inventory; the
        #: statistics writer drains it. Filled only on a cache miss, so the request path pays nothing.
        self.new_names: collections.deque[tuple[str, str, str]] = collections.deque()
        self._inventoried = 0

    def _category(self, name: str) -> str:
        category = self._file(name)
        if self._inventoried < MAX_INVENTORY_NAMES and 0 < len(name) <= MAX_INVENTORY_NAME:
            self._inventoried += 1
            self.new_names.append((name, category, self.source(name)))
        return category

    def _file(self, name: str) -> str:
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

    def source(self, name: str) -> str:
        """Who filed `name`: "gateway", "site", "catalogue" or "unknown" (for the admin's tools)."""
        if name in self._own:
            return "gateway"
        if self._declared.category(name) is not None:
            return "site"
        return "catalogue" if self._catalog.category(name) is not None else "unknown"


def _name_bytes(name: str, category: str) -> int:
    """The category strings are the configuration's own, so only the name is charged."""
    return ENTRY_OVERHEAD + str_size(name)
