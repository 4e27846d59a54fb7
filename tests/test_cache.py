"""`BoundedCache`: memoizes, evicts the least recently used, never holds more than its bytes."""

from __future__ import annotations

import sys
import threading

import pytest
from hypothesis import given, settings, strategies as st

from cookie_gate.cache import BoundedCache, bytes_size, str_size


def counting(max_bytes: int = 1000, max_entry_bytes: int = 1000) -> tuple[BoundedCache[str, str], list[str]]:
    computed: list[str] = []

    def compute(key: str) -> str:
        computed.append(key)
        return key.upper()

    return BoundedCache(compute, lambda k, v: len(k), max_bytes=max_bytes, max_entry_bytes=max_entry_bytes), computed


def test_a_value_is_computed_once_and_then_served_from_the_cache() -> None:
    cache, computed = counting()
    assert [cache("ab"), cache("ab"), cache("cd"), cache("ab")] == ["AB", "AB", "CD", "AB"]
    assert computed == ["ab", "cd"]
    assert cache.misses == 2


def test_a_none_result_is_remembered_too() -> None:
    calls: list[int] = []
    cache: BoundedCache[int, None] = BoundedCache(
        lambda k: calls.append(k), lambda k, v: 1, max_bytes=10, max_entry_bytes=1
    )
    cache(1)
    cache(1)
    assert calls == [1]


def test_the_least_recently_used_entry_goes_first() -> None:
    cache, computed = counting(max_bytes=30, max_entry_bytes=10)
    for key in ("a" * 10, "b" * 10, "c" * 10):
        cache(key)
    cache("a" * 10)  # used again: now "b..." is the oldest
    cache("d" * 10)
    assert "a" * 10 in cache and "b" * 10 not in cache and "c" * 10 in cache and "d" * 10 in cache
    assert cache.bytes == 30


def test_an_entry_larger_than_its_limit_is_computed_every_time_and_never_kept() -> None:
    cache, computed = counting(max_bytes=100, max_entry_bytes=10)
    cache("small")
    assert cache("x" * 11) == "X" * 11
    assert cache("x" * 11) == "X" * 11
    assert computed == ["small", "x" * 11, "x" * 11]
    assert len(cache) == 1 and "small" in cache  # the huge key flushed nothing either


def test_limits_must_make_sense() -> None:
    with pytest.raises(ValueError):
        BoundedCache(str, lambda k, v: 1, max_bytes=10, max_entry_bytes=11)
    with pytest.raises(ValueError):
        BoundedCache(str, lambda k, v: 1, max_bytes=10, max_entry_bytes=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 60)), max_size=200))
def test_the_bytes_held_never_pass_the_bound_and_add_up(calls: list[tuple[int, int]]) -> None:
    sizes = dict(calls)  # one size per key, as a real estimate of the same key and value would be
    cache: BoundedCache[int, int] = BoundedCache(
        lambda k: k * 2, lambda k, v: sizes[k], max_bytes=100, max_entry_bytes=50
    )
    for key, _ in calls:
        assert cache(key) == key * 2
        assert cache.bytes <= 100
    held = [key for key in sizes if key in cache]
    assert cache.bytes == sum(sizes[key] for key in held)
    assert all(sizes[key] <= 50 for key in held)
    if calls and sizes[calls[-1][0]] <= 50:
        assert calls[-1][0] in cache  # the newest fitting entry is always kept


def test_clear_forgets_everything() -> None:
    cache, computed = counting()
    cache("a")
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
    cache("a")
    assert computed == ["a", "a"]


def test_threads_sharing_a_cache_keep_its_accounting_exact() -> None:
    cache: BoundedCache[int, int] = BoundedCache(lambda k: k, lambda k, v: 10, max_bytes=500, max_entry_bytes=10)

    def hammer(offset: int) -> None:
        for i in range(5000):
            cache((i * 7 + offset) % 300)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes == 10 * len(cache) <= 500


@given(st.binary(max_size=3000))
def test_the_bytes_estimate_is_at_least_what_python_allocates(value: bytes) -> None:
    assert bytes_size(value) >= sys.getsizeof(value)


@given(st.text(max_size=3000))
def test_the_str_estimate_is_at_least_what_python_allocates(value: str) -> None:
    assert str_size(value) >= sys.getsizeof(value)
    assert str_size(None) == bytes_size(None) == 0
