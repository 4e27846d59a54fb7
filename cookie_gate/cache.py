"""`BoundedCache`: a least-recently-used memo bounded by an estimate of its bytes.

Most of what the gateway caches is keyed by something a client sends (a `Cookie`
header, a cookie name, a Host, a path), and a client can make every key distinct
and large. `functools.lru_cache` bounds only the number of entries, so a few
thousand requests with distinct 7 KB headers would hold a gigabyte. Here every entry
is charged the bytes its caller estimates for it (key and value, Python's object
overhead included), the least recently used entries go once the sum passes
`max_bytes`, and an entry larger than `max_entry_bytes` is computed but not kept, so
a single huge key can neither flush the cache nor pin memory.

A hit is a dict lookup and a `move_to_end`; only a miss takes the lock (the
gateway's caches are used from the event loop and from worker threads alike).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: What CPython allocates for objects the estimates count (64-bit, GC header included, rounded up):
#: an empty `bytes` and `str` (ASCII or latin-1), a tuple and each of its slots, and the cache's own
#: bookkeeping per entry (its slots in the ordered dict and in the size table, and the key tuple).
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


class BoundedCache(Generic[K, V]):
    """Memoizes `compute(key)`, keeping at most `max_bytes` of estimated `size_of(key, value)`.

    Keys must be hashable; for a function of several arguments, pass a tuple and unpack it
    in `compute`. `misses` counts the calls that computed (for tests and the admin's tools).
    """

    def __init__(
        self,
        compute: Callable[[K], V],
        size_of: Callable[[K, V], int],
        *,
        max_bytes: int,
        max_entry_bytes: int,
    ) -> None:
        if not 0 < max_entry_bytes <= max_bytes:
            raise ValueError("need 0 < max_entry_bytes <= max_bytes")
        self._compute = compute
        self._size_of = size_of
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self._lock = threading.Lock()
        #: The estimated bytes of the entries held now; never above `max_bytes`.
        self.bytes = 0
        self.misses = 0

    def __call__(self, key: K) -> V:
        entries = self._entries
        try:
            value = entries[key]
            entries.move_to_end(key)
        except KeyError:
            return self._miss(key)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self.bytes = 0

    def _miss(self, key: K) -> V:
        value = self._compute(key)
        size = self._size_of(key, value)
        with self._lock:
            self.misses += 1
            if size > self.max_entry_bytes or key in self._sizes:
                return value
            entries, sizes = self._entries, self._sizes
            total = self.bytes + size
            while total > self.max_bytes and entries:
                oldest, _ = entries.popitem(last=False)
                total -= sizes.pop(oldest)
            entries[key] = value
            sizes[key] = size
            self.bytes = total
        return value
