"""`BoundedCache`: computes once, keeps what is in use, never holds more than its bytes."""

from __future__ import annotations

import sys
import threading

import pytest
from hypothesis import given, settings, strategies as st

from cookie_gate.cache import BoundedCache, bytes_size, str_size


def counting(max_bytes: int = 1000, max_entry_bytes: int = 500) -> tuple[BoundedCache[str, str], list[str]]:
    """A cache of `str.upper` that charges each key its length and records what it computed."""
    computed: list[str] = []

    def compute(key: str) -> str:
        computed.append(key)
        return key.upper()

    return BoundedCache(compute, lambda k, v: len(k), max_bytes=max_bytes, max_entry_bytes=max_entry_bytes), computed


def test_a_value_is_computed_once_and_then_served_from_the_cache() -> None:
    cache, computed = counting()
    lookup = cache.__getitem__
    assert [cache["ab"], lookup("ab"), cache["cd"], lookup("ab")] == ["AB", "AB", "CD", "AB"]
    assert computed == ["ab", "cd"]
    assert cache.misses == 2


def test_a_none_result_is_remembered_too() -> None:
    calls: list[int] = []
    cache: BoundedCache[int, None] = BoundedCache(calls.append, lambda k, v: 1, max_bytes=10, max_entry_bytes=1)
    assert cache[1] is None and cache[1] is None
    assert calls == [1]


def test_entries_in_use_survive_a_flood_and_unused_ones_go() -> None:
    cache, computed = counting(max_bytes=40, max_entry_bytes=10)
    cache["hot"]
    cache["cold"]
    for n in range(100):
        cache[f"flood{n:05d}"]  # 10 bytes each: a generation (20 bytes) fills every other key
        cache["hot"]
    assert cache.holds("hot") and not cache.holds("cold")
    assert computed.count("hot") == 1, "a key in use is moved back, never computed again"
    assert cache.bytes <= 40


def test_an_entry_larger_than_its_limit_is_computed_every_time_and_never_kept() -> None:
    cache, computed = counting(max_bytes=100, max_entry_bytes=10)
    cache["small"]
    assert cache["x" * 11] == "X" * 11
    assert cache["x" * 11] == "X" * 11
    assert computed == ["small", "x" * 11, "x" * 11]
    assert cache.entries() == 1 and cache.holds("small")  # the huge key flushed nothing either


def test_limits_must_make_sense() -> None:
    with pytest.raises(ValueError):
        BoundedCache(str, lambda k, v: 1, max_bytes=10, max_entry_bytes=6)
    with pytest.raises(ValueError):
        BoundedCache(str, lambda k, v: 1, max_bytes=10, max_entry_bytes=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 60)), max_size=300))
def test_the_bytes_held_never_pass_the_bound_and_add_up(calls: list[tuple[int, int]]) -> None:
    sizes = dict(calls)  # one size per key, as a real estimate of the same key and value would be
    cache: BoundedCache[int, int] = BoundedCache(
        lambda k: k * 2, lambda k, v: sizes[k], max_bytes=100, max_entry_bytes=50
    )
    for key, _ in calls:
        assert cache[key] == key * 2
        assert cache.bytes <= 100
    held = [key for key in sizes if cache.holds(key)]
    assert cache.bytes == sum(sizes[key] for key in held)
    assert cache.entries() == len(held)
    assert all(sizes[key] <= 50 for key in held)
    if calls and sizes[calls[-1][0]] <= 50:
        assert calls[-1][0] in cache  # the newest fitting entry is always in the current generation


def test_clear_forgets_everything() -> None:
    cache, computed = counting(max_bytes=4, max_entry_bytes=2)
    for key in ("a", "b", "c", "d"):
        cache[key]
    cache.clear()
    assert cache.entries() == 0 and cache.bytes == 0
    cache["a"]
    assert computed == ["a", "b", "c", "d", "a"]


def test_threads_sharing_a_cache_keep_its_accounting_exact() -> None:
    cache: BoundedCache[int, int] = BoundedCache(lambda k: k, lambda k, v: 10, max_bytes=500, max_entry_bytes=10)

    def hammer(offset: int) -> None:
        for i in range(5000):
            assert cache[(i * 7 + offset) % 300] == (i * 7 + offset) % 300

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes == 10 * cache.entries() <= 500


@given(st.binary(max_size=3000))
def test_the_bytes_estimate_is_at_least_what_python_allocates(value: bytes) -> None:
    assert bytes_size(value) >= sys.getsizeof(value)


@given(st.text(max_size=3000))
def test_the_str_estimate_is_at_least_what_python_allocates(value: str) -> None:
    assert str_size(value) >= sys.getsizeof(value)
    assert str_size(None) == bytes_size(None) == 0
