"""The cookie inventory's hand-off: names the classifier files, on their way to the store.

The classifier (request path) adds an entry the first time it files a name; the
statistics writer (its own thread) takes them all on each round and writes them with
the day it saw them. One object owns the hand-off, so neither side knows the other.
Appending and taking are single deque operations, safe between threads without a lock.
"""

from __future__ import annotations

import collections
import collections.abc
from typing import NamedTuple


class InventoryEntry(NamedTuple):
    """A cookie name as the classifier filed it, and who filed it (for the declaration and the CLI)."""

    name: str
    category: str
    #: "gateway", "site", "catalogue", "generic", "unknown", a suspect verdict's reasons, or "-".
    source: str


class Inventory:
    """Entries waiting for the store, oldest first."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: collections.deque[InventoryEntry] = collections.deque()

    def add(self, name: str, category: str, source: str) -> None:
        self._waiting.append(InventoryEntry(name, category, source))

    def take(self) -> list[InventoryEntry]:
        """Every entry added so far (entries added meanwhile wait for the next call)."""
        waiting = self._waiting
        return [waiting.popleft() for _ in range(len(waiting))]

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> collections.abc.Iterator[InventoryEntry]:
        """The waiting entries, left in place (for tests and the admin's tools)."""
        return iter(tuple(self._waiting))
