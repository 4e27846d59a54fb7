"""In-process overhead of the gate: the same Starlette app bare, behind a do-nothing send wrapper, gated
and behind SessionMiddleware.

Run from the repository root::

    python -m bench.inprocess [--rounds 30] [--requests 2000] [--json results.json]

Why it is built this way:

* No server, no HTTP client: the scope is built by hand and `send` discards, so the
  timer sees the app and the middleware only. What a real server adds is in `bench.e2e`.
* One event loop, `await app(scope, receive, send)` directly: no task per request,
  which would add the same scheduling cost to every stack and shrink the ratios.
* `floor` is the cheapest layer that can see a response (a forwarding send wrapper),
  so `gate - floor` is what the gate's own work costs above being such a layer.
* Rounds are interleaved (stack order rotates each round) so a noisy neighbour or a
  frequency change hits all stacks alike; each cell reports the median round.
* Every round is verified (one response start per request, all 200, the body bytes
  seen in the checked warm-up response), so a stack that broke cannot look fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import starlette

import cookie_gate
from bench.apps import GOALS, ROUTES, STACKS, Stack, build_stacks, cookie_categories, revision
from bench.harness import Sink, Visitor, as_browser, call, check_response, make_scope, make_visitors, receive
from cookie_gate import CookieGateMiddleware

WARMUP_REQUESTS = 500


@dataclass
class Cell:
    """One stack x route x visitor: the per-round µs/request samples."""

    stack: Stack
    route: str
    visitor: Visitor
    body_bytes: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr_percent(self) -> float:
        """Spread of the rounds, so a reader can tell a real difference from noise."""
        if len(self.samples) < 4:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return 100.0 * (q3 - q1) / self.median


async def run_round(cell: Cell, app: Any, requests: int) -> float:
    """Time `requests` calls of `app`; return µs per request. Scopes are built before the clock starts."""
    headers = (
        await as_browser(app, cell.route, cell.visitor)
        if isinstance(app, CookieGateMiddleware)
        else cell.visitor.headers
    )
    scopes = [make_scope(cell.route, headers) for _ in range(requests)]
    sink = Sink()
    gc.collect()
    start = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, receive, sink)
    elapsed = time.perf_counter_ns() - start
    if sink.starts != requests or sink.not_ok or sink.body_bytes != requests * cell.body_bytes:
        raise RuntimeError(
            f"{cell.stack} {cell.route} {cell.visitor.name}: {sink.starts}/{requests} responses, "
            f"{sink.not_ok} not 200, {sink.body_bytes} body bytes (expected {requests * cell.body_bytes})"
        )
    return elapsed / requests / 1000.0


async def measure(rounds: int, requests: int, store_dir: str) -> tuple[list[Cell], dict[str, str]]:
    stacks = build_stacks(store_dir)
    visitors = await make_visitors(stacks)
    categories = cookie_categories(stacks["gate"])
    cells: dict[tuple[Stack, str, str], Cell] = {}
    for stack, app in stacks.items():
        for route in ROUTES:
            for visitor in visitors:
                # Check each cell's response once; this also fills the gate's caches.
                captured = await call(app, make_scope(route, visitor.headers))
                check_response(stack, route, visitor.name, captured.status, captured.headers, captured.body, categories)
                cell = Cell(stack, route, visitor, len(captured.body))
                cells[stack, route, visitor.name] = cell
                await run_round(cell, app, WARMUP_REQUESTS)
    # Setup objects (catalogue, page, caches) never die; keep the collector from rescanning them.
    gc.collect()
    gc.freeze()
    for number in range(rounds):
        order = STACKS[number % len(STACKS) :] + STACKS[: number % len(STACKS)]
        for route in ROUTES:
            for visitor in visitors:
                for stack in order:
                    cell = cells[stack, route, visitor.name]
                    cell.samples.append(await run_round(cell, stacks[stack], requests))
    gate = stacks["gate"]
    if isinstance(gate, CookieGateMiddleware):
        # Write what the rounds recorded before the store's folder goes, or the exit flush would report a loss.
        if gate.statistics is not None:
            gate.statistics.writer.stop()
        gate.store.close()
    return list(cells.values()), categories


def summarise(cells: list[Cell]) -> list[dict[str, Any]]:
    """One row per route x visitor with each stack's median and its ratio to bare from the same run."""
    by_key = {(c.stack, c.route, c.visitor.name): c for c in cells}
    rows = []
    for route in ROUTES:
        for visitor in ("undecided", "consented"):
            bare = by_key["bare", route, visitor]
            row: dict[str, Any] = {"route": route, "visitor": visitor, "goal": GOALS[route]}
            for stack in STACKS:
                cell = by_key[stack, route, visitor]
                paired = [s / b for s, b in zip(cell.samples, bare.samples, strict=True)]
                row[stack] = {
                    "median_us": round(cell.median, 3),
                    "iqr_percent": round(cell.iqr_percent, 1),
                    "ratio": round(cell.median / bare.median, 3),
                    "paired_ratio_median": round(statistics.median(paired), 3),
                    "samples_us": [round(s, 3) for s in cell.samples],
                }
            row["meets_goal"] = row["gate"]["ratio"] <= GOALS[route]
            row["gate_minus_floor_us"] = round(row["gate"]["median_us"] - row["floor"]["median_us"], 3)
            rows.append(row)
    return rows


def _us(cell: dict[str, Any]) -> str:
    return f"{cell['median_us']:>6.1f} ±{cell['iqr_percent']:>3.0f}%"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'route':<9} {'visitor':<10} {'bare µs':>12} {'floor µs':>12} {'floor×':>6} {'gate µs':>12} {'gate×':>6} "
        f"{'goal':>6}  {'':<4} {'gate-floor':>10} {'session µs':>12} {'session×':>8}",
    ]
    for row in rows:
        floor, gate, session = row["floor"], row["gate"], row["session"]
        lines.append(
            f"{row['route']:<9} {row['visitor']:<10} {_us(row['bare'])} {_us(floor)} {floor['ratio']:>6.2f} "
            f"{_us(gate)} {gate['ratio']:>6.2f} {'≤' + format(row['goal'], '.2f'):>6}  "
            f"{'ok' if row['meets_goal'] else 'MISS':<4} {row['gate_minus_floor_us']:>7.1f} µs "
            f"{_us(session)} {session['ratio']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds per cell (default 30)")
    parser.add_argument("--requests", type=int, default=2000, help="requests timed per round (default 2000)")
    parser.add_argument("--json", metavar="PATH", help="also write all samples as JSON to PATH ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be positive")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cookie-gate-bench-") as store_dir:
        cells, categories = asyncio.run(measure(args.rounds, args.requests, store_dir))
    rows = summarise(cells)
    meta = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "starlette": starlette.__version__,
        "cookie_gate": f"{cookie_gate.__version__} ({revision()})",
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "seconds": round(time.monotonic() - began, 1),
        "cookie_categories": categories,
    }
    to_stdout = args.json == "-"
    if args.json:
        text = json.dumps({"meta": meta, "rows": rows}, indent=2, ensure_ascii=False)
        if to_stdout:
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
    if not to_stdout:
        print(
            f"in-process, median µs/request of {args.rounds} interleaved rounds x {args.requests} requests "
            f"(±IQR of rounds; × = stack/bare, same run; gate-floor = gate µs - floor µs)"
        )
        print(f"python {meta['python']}, starlette {meta['starlette']}, cookie_gate {meta['cookie_gate']}")
        print(
            "cookies set by /cookies, as the gate files them: " + ", ".join(f"{k}={v}" for k, v in categories.items())
        )
        print(format_table(rows))
        print(f"took {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
