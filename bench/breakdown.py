"""Where the gate's per-request time goes, in µs, measured inside real requests.

Run from the repository root::

    python -m bench.breakdown [--requests 3000] [--repeats 9] [--cprofile]

Cells: the JSON route for a consented visitor (the cheapest path: nothing to strip,
nothing to inject, the response goes out untouched), the HTML page for an undecided
visitor (the dearest page: the request's cookie header is rebuilt, a refused `_ga` is
expired, the banner is injected) and the five-cookie route for an undecided visitor
(the most Set-Cookie work).

Two views, because neither alone is trustworthy:

* Ablation: whole requests with one side of the gate swapped for a stand-in
  (`ResponsePolicy.start` returns the message unchanged and arms no `Page`,
  `RequestReader.enter` returns a precomputed `Request`). The difference to the full
  gate is what that side costs in place, caches and all; with both swapped, what is
  left is the routing in `CookieGateMiddleware` and the `Responder` frames. The
  `floor` stack of `bench.apps` (a layer whose send wrapper only forwards) is
  measured alongside: what any response-seeing layer pays before doing any work.
* In-place timers: the parts' methods (and the helpers `cookie_gate.responder`
  imports) wrapped with `perf_counter_ns` for one run, the timers' own cost
  calibrated and subtracted, nested rows included in their parent; "own code" rows
  are a parent minus its timed children. They split the ablation totals into named
  parts. `Page.send` is a coroutine and gets a timer of its own kind.

Timing a piece in a tight loop of its own reads 1.5-2x lower than either view (its
code and data stay hot in the CPU caches), so this file does not report that.

It reaches into private names (`CookieGateMiddleware._responder` and `_requests`,
`ResponsePolicy._rewriter`, `SetCookieFilter._refuses_unfiled`, `Page._sized`, the
module-level helpers of `cookie_gate.responder`) on purpose, for the length of a run
and in memory only: it is a profiler, not a user. It patches classes (the parts use
`__slots__`), the gate instance and module attributes, never a file. Before measuring
it checks that the gate still routes to these parts, that every name it patches still
exists (and that the two it replaces still take the arguments it expects) and stops
with a message naming the missing one; then update `_TIMED` and `_REPLACED` below.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import io
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

import cookie_gate.responder
import cookie_gate.set_cookie_filter
from bench.apps import Floor, build_stacks
from bench.harness import Sink, Visitor, make_scope, make_visitors, receive
from cookie_gate import CookieGateMiddleware
from cookie_gate.inject import PageRewriter
from cookie_gate.page import Page
from cookie_gate.placement import BannerSource
from cookie_gate.request import Request, RequestReader
from cookie_gate.responder import ResponsePolicy
from cookie_gate.set_cookie_filter import SetCookieFilter
from cookie_gate.stats.recorder import Statistics
from cookie_gate.visit import Visit, VisitResolver

#: (label, owner, attribute, depth): what the in-place timers wrap, parents before their children.
_TIMED: tuple[tuple[str, str, str, int], ...] = (
    ("CookieGateMiddleware._responder: enter, placement, Responder", "gate", "_responder", 0),
    ("RequestReader.enter: header pass, Cookie rebuild, state", "reader", "enter", 1),
    ("VisitResolver.resolve (cached per Cookie header)", "visits", "resolve", 2),
    ("ResponsePolicy.start: response header pass, decisions", "policy", "start", 0),
    ("SetCookieFilter.refused (the response's Set-Cookies)", "filter", "refused", 1),
    ("is_deletion (refused Set-Cookies of filed names)", "set_cookie_filter", "is_deletion", 2),
    ("is_injectable (content type)", "responder", "is_injectable", 1),
    ("is_html (page view or not)", "responder", "is_html", 1),
    ("statistics.page_view (request-path recording)", "statistics", "page_view", 1),
    ("_rewriter: nonce, blocking, snippets, PageRewriter", "policy", "_rewriter", 1),
    ("BannerSource.snippets (cached per page and choice)", "banner", "snippets", 2),
    ("page_headers: refused out, Vary, weak ETag, length", "responder", "page_headers", 1),
    ("_host: Host header via hosts.cached_request_host", "responder", "_host", 1),
    ("VisitResolver.expiry_headers (cached per names, host)", "visits", "expiry_headers", 1),
    ("Page.send: hold, frame and rewrite the body", "page", "send", 0),
    ("PageRewriter.feed: find </body>, copy body + banner", "rewriter", "feed", 1),
    ("Page._sized: Content-Length of the held start", "page", "_sized", 1),
)
#: Methods the ablation replaces with stand-ins, and the leading parameters the stand-ins rely on:
#: `RequestReader.enter(scope, root)` is replayed (its result, a `Request`, is precomputed);
#: `ResponsePolicy.start(message, ...)` hands the message back untouched with no `Page`.
_REPLACED: dict[tuple[str, str], tuple[str, ...]] = {
    ("reader", "enter"): ("self", "scope", "root"),
    ("policy", "start"): ("self", "message"),
}
#: Timed pieces every gated HTTP request must go through once; fewer calls means the patch missed.
_EVERY_REQUEST = {("gate", "_responder"), ("reader", "enter"), ("policy", "start")}
_OWNER_NAMES = {
    "gate": "CookieGateMiddleware",
    "reader": "cookie_gate.request.RequestReader",
    "visits": "cookie_gate.visit.VisitResolver",
    "policy": "cookie_gate.responder.ResponsePolicy",
    "filter": "cookie_gate.set_cookie_filter.SetCookieFilter",
    "set_cookie_filter": "cookie_gate.set_cookie_filter",
    "responder": "cookie_gate.responder",
    "statistics": "cookie_gate.stats.recorder.Statistics",
    "banner": "cookie_gate.placement.BannerSource",
    "page": "cookie_gate.page.Page",
    "rewriter": "cookie_gate.inject.PageRewriter",
}
#: Where the gate keeps the parts patched through their classes, and the class each must be.
_ROUTED: tuple[tuple[str, type], ...] = (
    ("_requests", RequestReader),
    ("parts.requests", RequestReader),
    ("parts.responses", ResponsePolicy),
    ("parts.visits", VisitResolver),
    ("parts.banner", BannerSource),
)

#: Stands for "no such attribute" (None could be a real value).
_MISSING = object()


class InternalsChanged(SystemExit):
    """cookie_gate no longer has an internal this file patches: stop before measuring anything."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "bench.breakdown: cookie_gate's internals changed; update _TIMED / _REPLACED in bench/breakdown.py:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


class Timers:
    """Accumulating wall-clock timers whose own overhead is measured and taken out.

    `inner` is what one timer adds inside its own interval, `outer` what it adds to
    the interval of a timer around it; both are calibrated on a no-op, separately for
    plain functions and for coroutine functions (whose timer is a coroutine too).
    """

    def __init__(self) -> None:
        self.total_ns: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._accrued = 0.0
        self._inner = self._outer = 0.0
        self._inner_async = self._outer_async = 0.0

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """A timed stand-in for `func`, a coroutine function when `func` is one."""
        if inspect.iscoroutinefunction(func):
            return self._wrap_async(label, func)

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

    def _wrap_async(self, label: str, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            before = self._accrued
            start = time.perf_counter_ns()
            try:
                return await func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter_ns() - start
                self.total_ns[label] += elapsed - self._inner_async - (self._accrued - before)
                self.calls[label] += 1
                self._accrued += self._outer_async

        return timed

    async def calibrate(self, n: int = 200_000) -> None:
        def noop() -> None:
            return None

        async def async_noop() -> None:
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

        timed_async = probe.wrap("async noop", async_noop)
        start = time.perf_counter_ns()
        for _ in range(n):
            await async_noop()
        direct = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        for _ in range(n):
            await timed_async()
        wrapped = time.perf_counter_ns() - start
        self._inner_async = probe.total_ns["async noop"] / n
        self._outer_async = (wrapped - direct) / n
        self.total_ns.clear()
        self.calls.clear()


def _owners(gate: CookieGateMiddleware) -> dict[str, Any]:
    """The objects whose attributes get patched: the gate itself, the parts' classes (they use
    `__slots__`, so their instances cannot be patched) and the modules whose helpers are timed."""
    return {
        "gate": gate,
        "reader": RequestReader,
        "visits": VisitResolver,
        "policy": ResponsePolicy,
        "filter": SetCookieFilter,
        "set_cookie_filter": cookie_gate.set_cookie_filter,
        "responder": cookie_gate.responder,
        "statistics": Statistics,
        "banner": BannerSource,
        "page": Page,
        "rewriter": PageRewriter,
    }


def _attribute_path(owner: object, path: str) -> object:
    for name in path.split("."):
        owner = getattr(owner, name, _MISSING)
        if owner is _MISSING:
            break
    return owner


def check_internals(gate: CookieGateMiddleware, visitor: Visitor) -> None:
    """Raise `InternalsChanged` naming every patched attribute that is gone or no longer fits."""
    owners = _owners(gate)
    problems = []
    for path, kind in _ROUTED:
        part = _attribute_path(gate, path)
        if part is _MISSING:
            problems.append(f"CookieGateMiddleware.{path} is missing (expected a {kind.__name__})")
        elif not isinstance(part, kind):
            problems.append(
                f"CookieGateMiddleware.{path} is a {type(part).__name__}, "
                f"not the {kind.__name__} whose class is patched"
            )
    if gate.statistics is not None and not isinstance(gate.statistics, Statistics):
        problems.append(f"CookieGateMiddleware.statistics is a {type(gate.statistics).__name__}, not a Statistics")
    for _, owner, attribute, _ in _TIMED:
        value = getattr(owners[owner], attribute, _MISSING)
        if value is _MISSING:
            problems.append(f"{_OWNER_NAMES[owner]}.{attribute} is missing (timed by the in-place timers)")
        elif not callable(value):
            problems.append(f"{_OWNER_NAMES[owner]}.{attribute} is no longer callable ({type(value).__name__})")
    for (owner, attribute), expected in _REPLACED.items():
        method = getattr(owners[owner], attribute, _MISSING)
        if method is _MISSING or not callable(method):
            continue  # already reported above
        found = tuple(inspect.signature(method).parameters)
        exact = attribute == "enter"  # its stand-in takes the scope only; `start`'s takes any tail
        if found != expected if exact else found[: len(expected)] != expected:
            wanted = ", ".join(expected) + ("" if exact else ", ...")
            problems.append(
                f"{_OWNER_NAMES[owner]}.{attribute} takes ({', '.join(found)}); "
                f"the ablation's stand-in is written for ({wanted})"
            )
    if not problems:
        entered = gate._requests.enter(make_scope("/json", visitor.headers))
        if not (isinstance(entered, Request) and isinstance(getattr(entered, "visit", None), Visit)):
            problems.append(
                "RequestReader.enter no longer returns a Request holding the Visit "
                f"(got {type(entered).__name__}); the ablation replays its result"
            )
    if problems:
        raise InternalsChanged(problems)


@contextmanager
def patched(targets: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Swap attributes for the duration of a block; each is put back as it was (or deleted, when it was inherited)."""
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


class PassThrough:
    """Reference: the cheapest pure-ASGI layer there is (sees nothing of the response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


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


_WITHOUT_RESPONSES = "gate without the response side"
_WITHOUT_REQUESTS = "gate without the request side"
_WITHOUT_BOTH = "gate without both"


async def ablation(
    gate: CookieGateMiddleware, bare: ASGIApp, route: str, visitor: Visitor, n: int, repeats: int
) -> dict[str, float]:
    """Median µs/request of bare, full gate, the gate without `ResponsePolicy.start`, `RequestReader.enter`
    or both, and two do-nothing layers for reference (one of them the `floor` stack), all interleaved."""
    owners = _owners(gate)
    entered = gate._requests.enter(make_scope(route, visitor.headers))
    used: dict[tuple[str, str], int] = defaultdict(int)

    def no_start(policy: ResponsePolicy, message: Message, *rest: Any) -> tuple[Message, None]:
        used["policy", "start"] += 1
        return message, None

    def no_enter(reader: RequestReader, scope: Scope, root: str = "") -> Request:
        used["reader", "enter"] += 1
        return entered

    without_start = (owners["policy"], "start", no_start)
    without_enter = (owners["reader"], "enter", no_enter)
    variants: dict[str, list[tuple[Any, str, Any]]] = {
        "bare": [],
        "gate": [],
        _WITHOUT_RESPONSES: [without_start],
        _WITHOUT_REQUESTS: [without_enter],
        _WITHOUT_BOTH: [without_start, without_enter],
    }
    apps: dict[str, ASGIApp] = {"bare": bare, "pass-through": PassThrough(bare), "floor": Floor(bare)}
    samples: dict[str, list[float]] = {name: [] for name in [*variants, "pass-through", "floor"]}
    for _ in range(repeats):
        for name in samples:
            with patched(variants.get(name, [])):
                samples[name].append(await per_request_us(apps.get(name, gate), route, visitor, n))
    for owner, attribute in _REPLACED:
        if used[owner, attribute]:
            continue
        raise InternalsChanged(
            [f"replacing {_OWNER_NAMES[owner]}.{attribute} on the class had no effect: the gate no longer calls it"]
        )
    return {name: statistics.median(values) for name, values in samples.items()}


#: One in-place timer row: (key, indented label, µs per request, calls per request; 0 for "own code" rows).
TimedRow = tuple[str, str, float, float]


def _timed_rows() -> list[tuple[str, str]]:
    """(key, indented label) of every row `timed_run` can return, in report order."""
    rows = []
    for index, (label, _, attribute, depth) in enumerate(_TIMED):
        rows.append((f"{index}:{attribute}", "  " * depth + label))
        if index + 1 < len(_TIMED) and _TIMED[index + 1][3] > depth:
            rows.append((f"{index}:{attribute}:own", "  " * (depth + 1) + "(own code)"))
    return rows


async def timed_run(gate: CookieGateMiddleware, route: str, visitor: Visitor, n: int) -> list[TimedRow]:
    """A `TimedRow` for every wrapped helper that ran, over n requests, with an "own code" row
    (parent minus its timed children) under each parent whose children ran."""
    timers = Timers()
    await timers.calibrate()
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
    missed = [
        f"{_OWNER_NAMES[owner]}.{attribute} was timed but called {timers.calls[label]} times in {n} requests: "
        "the gate no longer calls it through its part"
        for label, owner, attribute, _ in _TIMED
        if (owner, attribute) in _EVERY_REQUEST and timers.calls[label] != n
    ]
    if missed:
        raise InternalsChanged(missed)
    rows: list[TimedRow] = []
    for index, (label, _, attribute, depth) in enumerate(_TIMED):
        if not timers.calls[label]:
            continue
        key = f"{index}:{attribute}"
        rows.append((key, "  " * depth + label, timers.total_ns[label] / n / 1000.0, timers.calls[label] / n))
        children = []
        for child, _, _, child_depth in _TIMED[index + 1 :]:
            if child_depth <= depth:
                break
            if child_depth == depth + 1 and timers.calls[child]:
                children.append(timers.total_ns[child])
        if children:
            own = (timers.total_ns[label] - sum(children)) / n / 1000.0
            rows.append((f"{key}:own", "  " * (depth + 1) + "(own code)", own, 0.0))
    return rows


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


_OVERHEAD = ("overhead", "whole gate overhead (gate - bare)")
_ABOVE_FLOOR = ("above", "  above the floor (gate - floor)")
_REST = ("rest", "what is left: routing, Responder frames (ablation)")
_FLOOR = ("floor", "reference: the floor (forwarding send wrapper) - bare")


def _summary(columns: list[str], values: dict[str, dict[str, float]]) -> str:
    """One table, piece x cell, µs per request ('-' where the piece did not run in that cell)."""
    rows = [_OVERHEAD, _ABOVE_FLOOR, *((key, label) for key, label in _timed_rows() if key in values), _REST, _FLOOR]
    width = max(len(label) for _, label in rows)
    lines = [f"{'µs per request':<{width}} " + " ".join(f"{column:>20}" for column in columns)]
    for key, label in rows:
        cells = (f"{values[key][column]:>20.2f}" if column in values[key] else f"{'-':>20}" for column in columns)
        lines.append(f"{label:<{width}} " + " ".join(cells))
    return "\n".join(lines)


async def report(
    gate: CookieGateMiddleware, bare: ASGIApp, cells: list[tuple[str, Visitor]], n: int, repeats: int
) -> str:
    lines = []
    columns = [f"{route} {visitor.name}" for route, visitor in cells]
    summary: dict[str, dict[str, float]] = defaultdict(dict)
    for (route, visitor), column in zip(cells, columns, strict=True):
        for _ in range(2):  # warm caches and the specialising interpreter
            await per_request_us(gate, route, visitor, n // 5)
            await per_request_us(bare, route, visitor, n // 5)
        times = await ablation(gate, bare, route, visitor, n, repeats)
        overhead = times["gate"] - times["bare"]
        floor = times["floor"] - times["bare"]
        ablated = {
            "request side (RequestReader.enter)": times["gate"] - times[_WITHOUT_REQUESTS],
            "response side (ResponsePolicy.start and the Page it arms)": times["gate"] - times[_WITHOUT_RESPONSES],
            "what is left (routing, Responder frames)": times[_WITHOUT_BOTH] - times["bare"],
        }
        timed = await timed_run(gate, route, visitor, n)
        lines += [
            "",
            f"{route}, {visitor.name} visitor: bare {times['bare']:.2f} µs, floor {times['floor']:.2f} µs, "
            f"gate {times['gate']:.2f} µs; overhead {overhead:.2f} µs (x{times['gate'] / times['bare']:.2f}), "
            f"{times['gate'] - times['floor']:.2f} µs above the floor",
            "  ablation, µs saved per request without the piece (whole requests, median of interleaved loops):",
            *(f"    {label:<66} {us:>6.2f}" for label, us in ablated.items()),
            "  reference, µs added by a layer that does nothing:",
            f"    {'pure ASGI pass-through':<66} {times['pass-through'] - times['bare']:>6.2f}",
            f"    {'floor: pass-through with a forwarding send wrapper':<66} {floor:>6.2f}",
            "  in-place timers, µs per request (children included in parents; timer cost removed):",
            *(f"    {label:<66} {us:>6.2f}" + (f"  x{calls:g}" if calls else "") for _, label, us, calls in timed),
        ]
        summary[_OVERHEAD[0]][column] = overhead
        summary[_ABOVE_FLOOR[0]][column] = times["gate"] - times["floor"]
        for key, _, us, _ in timed:
            summary[key][column] = us
        # The timers inflate what they wrap a little, so "overhead minus timed pieces" can go negative;
        # the ablation measures the frames directly instead.
        summary[_REST[0]][column] = times[_WITHOUT_BOTH] - times["bare"]
        summary[_FLOOR[0]][column] = floor
    lines += [
        "",
        "summary, µs per request (in-place timers, nested rows part of their parent; first two and last two rows "
        "from the ablation):",
    ]
    lines.append(_summary(columns, summary))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Per-piece cost of the gate, in µs per request.")
    parser.add_argument("--requests", type=int, default=3000, help="requests per timing loop (default 3000)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved loops per variant (default 9)")
    parser.add_argument("--cprofile", action="store_true", help="also print a cProfile of each cell")
    args = parser.parse_args(argv)
    if args.requests < 5 or args.repeats < 1:
        parser.error("--requests must be at least 5 and --repeats positive")
    with tempfile.TemporaryDirectory(prefix="cookie-gate-bench-") as store_dir:
        gate, bare, undecided, consented = asyncio.run(setup(store_dir))
        cells = [("/json", consented), ("/page", undecided), ("/cookies", undecided)]
        try:
            check_internals(gate, undecided)
            print(asyncio.run(report(gate, bare, cells, args.requests, args.repeats)))
            if args.cprofile:
                for route, visitor in cells:
                    print(f"\ncProfile, {route} {visitor.name}:")
                    print(profile(gate, route, visitor, args.requests * 4, 25))
        except AttributeError as error:
            # A name the checks above do not cover (say, an attribute of a helper's result).
            raise InternalsChanged([f"{error} (raised while measuring)"]) from None
        finally:
            if gate.statistics is not None:
                gate.statistics.writer.stop()  # before the store's folder goes
            gate.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
