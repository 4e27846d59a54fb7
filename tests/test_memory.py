"""Memory and work under hostile traffic: every cache stays within its documented bytes.

Issue 7: 4,096 requests, each with a different 7.4 KB Cookie header (32 trackers and
3,500 bare `x` segments), took a server from 43 MB to 1.16 GB, because the visit cache
counted entries, not bytes. Here the same traffic goes through the real gateway under
tracemalloc (a quarter of the requests: tracing 3,500 segments a request is slow, and
the old cache already held 240 MB after 1,024); then a flood built to miss every cache
checks that what Python really holds stays below the caches' own estimates, and those
below their bounds, once the caches are full and evicting.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cookie_gate.cookies
import cookie_gate.hosts
from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import Message, Receive, Scope, Send
from cookie_gate.cache import BoundedCache
from cookie_gate.classify import NAME_CACHE_BYTES
from cookie_gate.consent import DECODE_CACHE_BYTES
from cookie_gate.placement import SNIPPET_CACHE_BYTES
from cookie_gate.visit import EXPIRY_CACHE_BYTES, VISIT_CACHE_BYTES
from tests.conftest import GateFactory, http_scope

MiB = 2**20
#: Everything the gateway may cache per process, from the bounds declared next to each cache; the
#: small ones (Host, Set-Cookie attributes, domains, Accept-Language) are under 2 MB together.
CACHE_BOUND = (
    VISIT_CACHE_BYTES + EXPIRY_CACHE_BYTES + NAME_CACHE_BYTES + DECODE_CACHE_BYTES + SNIPPET_CACHE_BYTES + 2 * MiB
)
TRACKERS = ("_ga", "_gid", "_fbp", "_gcl_au", "_hjid", "IDE", "_uetsid", "_clck")


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"set-cookie", b"_ga=GA1.2.3; Path=/; Max-Age=7200")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"<html><body><p>hello</p></body></html>"})


def issue_header(i: int) -> bytes:
    """The issue's header: 32 trackers with this request's own values, then 3,500 bare `x` segments."""
    trackers = "; ".join(f"{TRACKERS[k % 8]}{'' if k < 8 else f'_{k}'}=GA1.2.{i}.{k}" for k in range(32))
    return (trackers + ";" + ";".join(["x"] * 3500)).encode()


def flood_scope(i: int) -> Scope:
    """A request that misses every cache: its own cookie names, path, query, Host and Accept-Language."""
    names = "; ".join(f"_ga_tracker_{i}_{k:03d}=GA1.2.{i}.{k}" for k in range(64))
    headers = [
        (b"host", b"www%d.shop.example.co.kr" % i),
        (b"cookie", (names + "; session=abc; lang=en").encode()),
        (b"accept-language", b"en;q=0.%d" % i),
    ]
    scope = http_scope(f"/page/{i}/" + "p" * 200, headers=headers, query_string=b"q=%d" % i)
    scope["headers"] = headers  # no default Host: this one is the request's own
    return scope


def send_all(gate: CookieGateMiddleware, scopes: Iterator[Scope]) -> list[int]:
    statuses: list[int] = []

    async def run() -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        for scope in scopes:
            await gate(scope, receive, send)

    asyncio.run(run())
    return statuses


def traced(action: Callable[[], Any]) -> tuple[int, int]:
    """Bytes still allocated after `action` (garbage collected), and the peak, both above the start."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - start, peak - start


def caches(gate: CookieGateMiddleware) -> dict[str, BoundedCache[Any, Any]]:
    return {
        "visits": gate.visits._cached,
        "expiries": gate.visits._expiries,
        "names": gate.classifier._names,
        "consent": gate.endpoints._codec._cached_decode,
        "snippets": gate.parts.banner._snippets,
        "hosts": cookie_gate.hosts.cached_request_host,
        "set-cookie attributes": cookie_gate.cookies._deletes,
        "domains": gate.endpoints._variants._by_host,
    }


@pytest.fixture
def gateway(gate: GateFactory) -> CookieGateMiddleware:
    # Statistics off: their queue holds page views until the writer runs, which is not a cache.
    return gate(page, statistics=False)


def test_the_cookie_flood_of_issue_7_holds_no_more_than_the_caches_bounds(gateway: CookieGateMiddleware) -> None:
    assert len(issue_header(0)) > 7400
    send_all(gateway, iter([http_scope(headers=[(b"cookie", issue_header(-1))])]))  # warm: imports, first render
    statuses: list[int] = []
    retained, peak = traced(
        lambda: statuses.extend(
            send_all(gateway, (http_scope(headers=[(b"cookie", issue_header(i))]) for i in range(1024)))
        )
    )
    assert statuses == [200] * 1024
    assert retained < CACHE_BOUND, f"{retained / MiB:.1f} MiB retained"
    assert peak < CACHE_BOUND + 4 * MiB, f"{peak / MiB:.1f} MiB at the peak"


def test_a_flood_that_misses_every_cache_fills_each_to_its_bound_and_no_further(
    gateway: CookieGateMiddleware,
) -> None:
    send_all(gateway, iter([flood_scope(-1)]))
    retained, _ = traced(lambda: send_all(gateway, (flood_scope(i) for i in range(2048))))
    held = caches(gateway)
    for name, cache in held.items():
        assert cache.bytes <= cache.max_bytes, name
    # The flood is large enough to fill the big caches: their bounds, not the traffic, limit them.
    for name in ("visits", "expiries", "names", "snippets", "hosts", "domains"):
        cache = held[name]
        assert cache.misses > cache.entries(), f"{name}: nothing was evicted"
        assert cache.bytes >= cache.max_bytes // 2 - cache.max_entry_bytes, name
    # What Python really allocated is within the caches' estimates (plus the bounded cookie inventory).
    inventory = 2 * MiB
    assert retained < sum(cache.bytes for cache in held.values()) + inventory, f"{retained / MiB:.1f} MiB"
    assert retained < CACHE_BOUND


def test_consent_cookies_by_the_thousand_are_remembered_within_their_bound(gateway: CookieGateMiddleware) -> None:
    forged = (
        http_scope(headers=[(b"cookie", b"cookie_gate=1:analytics:1:0:%d.%s" % (i, b"s" * 400))]) for i in range(6000)
    )
    send_all(gateway, forged)
    codec_cache = gateway.endpoints._codec._cached_decode
    assert 0 < codec_cache.bytes <= codec_cache.max_bytes
    assert codec_cache.entries() < 6000


@pytest.mark.parametrize("kind", ["distinct refused names", "bare segments", "several Cookie headers"])
def test_work_per_request_grows_linearly_with_the_cookie_header(gate: GateFactory, kind: str) -> None:
    """Four times the header, about four times the work: never the sixteen of a quadratic step.

    Every request carries names never seen before and headers too long for the visit cache, so
    both sizes do the full work. A relative bound (the same code, the same machine, a moment
    apart) with a generous margin.
    """
    gateway = gate(page, statistics=False)
    runs = iter(range(10**6))

    def headers(n: int) -> list[tuple[bytes, bytes]]:
        run = next(runs)
        if kind == "distinct refused names":
            return [(b"cookie", "; ".join(f"_ga_{run}_{k}=1" for k in range(n)).encode())]
        if kind == "bare segments":
            return [(b"cookie", f"_ga_{run}=1;".encode() + b";".join([b"x"] * n))]
        return [(b"cookie", b"_ga_%d_%d=1" % (run, k)) for k in range(n)]

    def best_of_three(n: int) -> float:
        timings = []
        for _ in range(3):
            scope = http_scope(headers=headers(n))
            started = time.perf_counter()
            send_all(gateway, iter([scope]))
            timings.append(time.perf_counter() - started)
        return min(timings)

    small, large = best_of_three(5000), best_of_three(20000)
    assert large < 8 * small, f"{large / small:.1f} times the time for 4 times the header"
