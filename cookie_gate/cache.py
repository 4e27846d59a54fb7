"""`BoundedCache`: a memo bounded by an estimate of the bytes it holds.

Most of what the gateway caches is keyed by something a client sends (a `Cookie`
header, a cookie name, a Host, a path), and a client can make every key distinct
and large. `functools.lru_cache` bounds only the number of entries, so a few
thousand requests with distinct 7 KB headers held a gigabyte. Here every entry is
charged the bytes its owner estimates for it (key and value, Python's object
overhead included), and an entry larger than `max_entry_bytes` is computed but not
kept, so a single huge key can neither flush the cache nor pin memory.

A hit must cost no more than a dict lookup, because the gateway looks up on every
request: the cache *is* a dict, and only a miss runs Python code (`__missing__`).
Recency is kept by generations rather than by reordering on every hit: entries go
into the current generation; when it holds half of `max_bytes`, it becomes the
previous one and the one before is dropped whole. A miss that finds its key in the
previous generation moves it back without computing again, so what is in use keeps
its place, and the two generations together never hold more than `max_bytes`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: What CPython allocates for objects the estimates count (64-bit, GC header included, rounded up):
#: an empty `bytes` and `str` (ASCII or latin-1), a tuple and each of its slots, and the cache's own
#: bookkeeping per entry (its slots in the dict and in the size table, the size itself).
BYTES_OVERHEAD = 40
STR_OVERHEAD = 80
TUPLE_OVERHEAD = 64
POINTER = 8
ENTRY_OVERHEAD = 256


def bytes_size(value: bytes | None) -> int:
    """An upper estimate of the memory a `bytes` object (or None) holds."""
    return 0 if value is None else BYTES_OVERHEAD + len(value)


def str_size(value: str | None) -> int:
    """An upper estimate for a `str`: four bytes per character when any is beyond latin-1."""
    if value is None:
        return 0
    return STR_OVERHEAD + (len(value) if value.isascii() or max(value) <= "\xff" else 4 * len(value))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """How one per-process cache is doing, for an operator whose memory or hit rate surprises."""

    entries: int  # remembered now
    misses: int  # lookups that had to compute; hits are not counted (a hit is a plain dict lookup)
    bytes: int | None = None  # estimated bytes held, for a cache bounded by size


class BoundedCache(dict[K, V]):
    """`cache[key]` is `compute(key)`, remembered while the estimated `size_of(key, value)`s fit `max_bytes`.

    For a function of several arguments, key by a tuple and unpack it in `compute`. Bind
    `cache.__getitem__` where a plain function is wanted: it stays a C call on a hit. Write
    only through lookups; assigning an item directly would escape the accounting.
    """

    def __init__(
        self,
        compute: Callable[[K], V],
        size_of: Callable[[K, V], int],
        *,
        max_bytes: int,
        max_entry_bytes: int,
    ) -> None:
        super().__init__()
        if not 0 < max_entry_bytes <= max_bytes // 2:
            raise ValueError("need 0 < max_entry_bytes <= max_bytes / 2")
        self._compute = compute
        self._size_of = size_of
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._sizes: dict[K, int] = {}
        self._current_bytes = 0
        self._previous: dict[K, V] = {}
        self._previous_sizes: dict[K, int] = {}
        self._previous_bytes = 0
        self._lock = threading.Lock()
        #: Lookups that computed (for tests and the admin's tools); a key moved back from the
        #: previous generation is not one.
        self.misses = 0

    @property
    def bytes(self) -> int:
        """The estimated bytes held now, both generations; never above `max_bytes`."""
        return self._current_bytes + self._previous_bytes

    def holds(self, key: K) -> bool:
        """Whether `key` is remembered (in either generation), without looking it up."""
        return key in self._sizes or key in self._previous_sizes

    def entries(self) -> int:
        return len(self._sizes) + len(self._previous_sizes)

    def stats(self) -> CacheStats:
        """Entries, misses and estimated bytes, read together."""
        return CacheStats(entries=self.entries(), misses=self.misses, bytes=self.bytes)

    def clear(self) -> None:
        """Drop everything, both generations."""
        with self._lock:
            super().clear()
            self._sizes.clear()
            self._previous, self._previous_sizes = {}, {}
            self._current_bytes = self._previous_bytes = 0

    def __missing__(self, key: K) -> V:
        with self._lock:
            if key in self._previous_sizes:
                value = self._previous.pop(key)
                size = self._previous_sizes.pop(key)
                self._previous_bytes -= size
                self._keep(key, value, size)
                return value
        value = self._compute(key)
        size = self._size_of(key, value)
        with self._lock:
            self.misses += 1
            if size <= self.max_entry_bytes and key not in self._sizes:
                self._keep(key, value, size)
        return value

    def _keep(self, key: K, value: V, size: int) -> None:
        """Store in the current generation, first retiring it if it is full (the lock is held)."""
        if self._current_bytes + size > self.max_bytes // 2:
            self._previous, self._previous_sizes = dict(self), self._sizes
            self._previous_bytes = self._current_bytes
            super().clear()
            self._sizes = {}
            self._current_bytes = 0
        self[key] = value
        self._sizes[key] = size
        self._current_bytes += size
