"""Where the gate's per-request time goes, in µs, measured inside real requests.

Run from the repository root::

    python -m bench.breakdown [--requests 3000] [--repeats 9] [--cprofile]

Cells: the JSON route for a consented visitor (the cheapest path: nothing to strip,
nothing to inject), the HTML page for an undecided visitor (the dearest page: the
request's cookie header is rebuilt, a refused `_ga` is expired, the banner is
injected) and the five-cookie route for an undecided visitor (the worst ratio).

Two views, because neither alone is trustworthy:

* Ablation: whole requests with one of the gate's pieces swapped for a no-op
  (`_start` returns the message unchanged, `_enter` returns a precomputed visit).
  The difference to the full gate is what the piece costs in place, caches and all.
* In-place timers: the gate's helpers wrapped with `perf_counter_ns` for one run,
  the timers' own cost calibrated and subtracted, nested rows included in their
  parent. They split the ablation totals into named parts.

Timing a piece in a tight loop of its own reads 1.5-2x lower than either view (its
code and data stay hot in the CPU caches), so this file does not report that.

It reaches into private names (`_enter`, `_start`, `_snippet`, module globals of
`cookie_gate.middleware`) on purpose, for the length of a run and in memory only: it
is a profiler, not a user. If cookie_gate renames them, update `_TIMED` below.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

import cookie_gate.inject
import cookie_gate.middleware
from bench.apps import build_stacks
from bench.harness import Sink, Visitor, make_scope, make_visitors, receive
from cookie_gate import CookieGateMiddleware

#: (label, owner, attribute, depth): what the in-place timers wrap; depth only indents the report.
_TIMED: tuple[tuple[str, str, str, int], ...] = (
    ("_enter: request headers, consent, state", "gate", "_enter", 0),
    ("visits.resolve (cached per Cookie header)", "visits", "resolve", 1),
    ("_start: response headers, injection decision", "gate", "_start", 0),
    ("set_cookie_name", "middleware", "set_cookie_name", 1),
    ("classifier.category (lru_cache)", "classifier", "category", 1),
    ("is_deletion (refused Set-Cookies only)", "middleware", "is_deletion", 1),
    ("_host (scans request headers for Host)", "middleware", "_host", 1),
    ("visits.expiry_headers (cached per visit)", "visits", "expiry_headers", 1),
    ("is_injectable", "middleware", "is_injectable", 1),
    ("raised_content_length", "middleware", "raised_content_length", 1),
    ("_snippet: next path, locale, banner", "gate", "_snippet", 1),
    ("banner.snippet (escape + concat)", "banner", "snippet", 2),
    ("header(): rescans for Host (_host), Accept-Language (_snippet)", "middleware", "header", 1),
    ("Injector.feed: find </body>, copy body + banner", "injector", "feed", 0),
)


class Timers:
    """Accumulating wall-clock timers whose own overhead is measured and taken out.

    `inner` is what one timer adds inside its own interval, `outer` what it adds to
    the interval of a timer around it; both are calibrated on a no-op.
    """

    def __init__(self) -> None:
        self.total_ns: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._accrued = 0.0
        self._inner = 0.0
        self._outer = 0.0

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            before = self._accrued
            start = time.perf_counter_ns()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter_ns() - start
                self.total_ns[label] += elapsed - self._inner - (self._accrued - before)
                self.calls[label] += 1
                self._accrued += self._outer

        return timed

    def calibrate(self, n: int = 200_000) -> None:
        def noop() -> None:
            return None

        probe = Timers()
        timed = probe.wrap("noop", noop)
        start = time.perf_counter_ns()
        for _ in range(n):
            noop()
        direct = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        for _ in range(n):
            timed()
        wrapped = time.perf_counter_ns() - start
        self._inner = probe.total_ns["noop"] / n
        self._outer = (wrapped - direct) / n
        self.total_ns.clear()
        self.calls.clear()


def _owners(gate: CookieGateMiddleware) -> dict[str, Any]:
    return {
        "gate": gate,
        "visits": gate.visits,
        "classifier": gate.classifier,
        "banner": gate.banner,
        "middleware": cookie_gate.middleware,
        "injector": cookie_gate.inject.Injector,
    }


@contextmanager
def patched(targets: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Swap attributes for the duration of a block; class/module attributes are put back as they were."""
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name, _ in targets]
    try:
        for owner, name, value in targets:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()


class PassThrough:
    """Reference floor: the cheapest pure-ASGI layer there is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class SendWrapper:
    """Reference floor for any layer that must see the response: a send wrapper that only forwards."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def per_request_us(app: ASGIApp, route: str, visitor: Visitor, n: int) -> float:
    scopes = [make_scope(route, visitor.headers) for _ in range(n)]
    sink = Sink()
    gc.collect()
    start = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, receive, sink)
    if sink.starts != n:
        raise RuntimeError(f"{route}: {sink.starts}/{n} responses")
    return (time.perf_counter_ns() - start) / n / 1000.0


async def ablation(
    gate: CookieGateMiddleware, bare: ASGIApp, route: str, visitor: Visitor, n: int, repeats: int
) -> dict[str, float]:
    """Median µs/request of bare, full gate, the gate without `_start`, `_enter` or both, and two
    do-nothing layers for reference, all interleaved."""
    visit = gate._enter(make_scope(route, visitor.headers))

    def no_start(message: Any, scope: Scope, visit: Any, may_inject: bool) -> tuple[Any, None]:
        return message, None

    def no_enter(scope: Scope) -> Any:
        return visit

    variants: dict[str, list[tuple[Any, str, Any]]] = {
        "bare": [],
        "gate": [],
        "gate without _start": [(gate, "_start", no_start)],
        "gate without _enter": [(gate, "_enter", no_enter)],
        "gate without both": [(gate, "_start", no_start), (gate, "_enter", no_enter)],
    }
    apps: dict[str, ASGIApp] = {"bare": bare, "pass-through": PassThrough(bare), "send wrapper": SendWrapper(bare)}
    samples: dict[str, list[float]] = {name: [] for name in [*variants, "pass-through", "send wrapper"]}
    for _ in range(repeats):
        for name in samples:
            with patched(variants.get(name, [])):
                samples[name].append(await per_request_us(apps.get(name, gate), route, visitor, n))
    return {name: statistics.median(values) for name, values in samples.items()}


async def timed_run(gate: CookieGateMiddleware, route: str, visitor: Visitor, n: int) -> list[tuple[str, float, float]]:
    """(label, µs per request, calls per request) for every wrapped helper, over n requests."""
    timers = Timers()
    timers.calibrate()
    owners = _owners(gate)
    targets = [
        (owners[owner], attribute, timers.wrap(label, getattr(owners[owner], attribute)))
        for label, owner, attribute, _ in _TIMED
    ]
    with patched(targets):
        await per_request_us(gate, route, visitor, n // 5)  # settle the wrapped code first
        timers.total_ns.clear()
        timers.calls.clear()
        await per_request_us(gate, route, visitor, n)
    return [
        ("  " * depth + label, timers.total_ns[label] / n / 1000.0, timers.calls[label] / n)
        for label, _, _, depth in _TIMED
        if timers.calls[label]
    ]


def profile(gate: CookieGateMiddleware, route: str, visitor: Visitor, n: int, top: int) -> str:
    """cProfile of n gated requests, top functions by own time (cProfile inflates small calls a lot)."""

    async def many() -> None:
        await per_request_us(gate, route, visitor, n)

    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(many())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def setup(store_dir: str) -> tuple[CookieGateMiddleware, ASGIApp, Visitor, Visitor]:
    stacks = build_stacks(store_dir)
    gate = stacks["gate"]
    if not isinstance(gate, CookieGateMiddleware):
        raise TypeError("gate stack is not a CookieGateMiddleware")
    undecided, consented = await make_visitors(stacks)
    return gate, stacks["bare"], undecided, consented


async def report(
    gate: CookieGateMiddleware, bare: ASGIApp, cells: list[tuple[str, Visitor]], n: int, repeats: int
) -> str:
    lines = []
    for route, visitor in cells:
        for _ in range(2):  # warm caches and the specialising interpreter
            await per_request_us(gate, route, visitor, n // 5)
            await per_request_us(bare, route, visitor, n // 5)
        times = await ablation(gate, bare, route, visitor, n, repeats)
        overhead = times["gate"] - times["bare"]
        lines += [
            "",
            f"{route}, {visitor.name} visitor: bare {times['bare']:.2f} µs, gate {times['gate']:.2f} µs, "
            f"overhead {overhead:.2f} µs (x{times['gate'] / times['bare']:.2f})",
            "  ablation, µs saved per request without the piece (whole requests, median of interleaved loops):",
            f"    {'_start (response headers), and the Injector.feed it arms':<62} "
            f"{times['gate'] - times['gate without _start']:>6.2f}",
            f"    {'_enter (request headers, consent lookup, state)':<62} "
            f"{times['gate'] - times['gate without _enter']:>6.2f}",
            f"    {'what is left: __call__ routing, send_wrapper, extra frames':<62} "
            f"{times['gate without both'] - times['bare']:>6.2f}",
            "  reference, µs added by a layer that does nothing:",
            f"    {'pure ASGI pass-through':<62} {times['pass-through'] - times['bare']:>6.2f}",
            f"    {'pure ASGI pass-through with a forwarding send wrapper':<62} "
            f"{times['send wrapper'] - times['bare']:>6.2f}",
            "  in-place timers, µs per request (children included in parents; timer cost removed):",
        ]
        for label, us, calls in await timed_run(gate, route, visitor, n):
            lines.append(f"    {label:<62} {us:>6.2f}  x{calls:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-piece cost of the gate, in µs per request.")
    parser.add_argument("--requests", type=int, default=3000, help="requests per timing loop (default 3000)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved loops per variant (default 9)")
    parser.add_argument("--cprofile", action="store_true", help="also print a cProfile of each cell")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cookie-gate-bench-") as store_dir:
        gate, bare, undecided, consented = asyncio.run(setup(store_dir))
        cells = [("/json", consented), ("/page", undecided), ("/cookies", undecided)]
        try:
            print(asyncio.run(report(gate, bare, cells, args.requests, args.repeats)))
            if args.cprofile:
                for route, visitor in cells:
                    print(f"\ncProfile, {route} {visitor.name}:")
                    print(profile(gate, route, visitor, args.requests * 4, 25))
        except AttributeError as error:
            raise SystemExit(f"cookie_gate internals changed ({error}); update bench/breakdown.py") from None
        finally:
            gate.endpoints.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
