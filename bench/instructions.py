"""Machine instructions per request, counted by valgrind's callgrind: a figure the noise of a shared VM cannot move.

Run from the repository root (valgrind installed)::

    python -m bench.instructions [--requests 400] [--routes /json,/cookies,/page]

Why it is built this way:

* Timings on a 2-core VM with neighbours move by 20-50 % between runs; instruction counts of
  the same interpreter, code and inputs repeat to a few parts in ten thousand. They do not
  weigh cache misses or branch mispredictions, so they complement `bench.inprocess`, they do
  not replace it.
* Each cell runs twice under callgrind, with no request and with `--requests` requests after
  the same start-up and warm-up; the difference over the count is what one request costs, with
  the interpreter's start-up, imports and the stacks' construction subtracted out.
* The stacks, the app, the visitors and the scopes are `bench.apps`' and `bench.harness`', as in
  `bench.inprocess`; `gate×` is gate instructions over bare instructions for the same cell.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.apps import Stack, build_stacks
from bench.harness import Sink, make_scope, make_visitors, receive

WARMUP = 200
STACKS: tuple[Stack, ...] = ("bare", "floor", "gate")


async def _run(stack: Stack, route: str, who: str, requests: int, built: int) -> None:
    with tempfile.TemporaryDirectory() as store_dir:
        stacks = build_stacks(store_dir)
        undecided, consented = await make_visitors(stacks)
        visitor = undecided if who == "undecided" else consented
        app = stacks[stack]
        # As many scopes in every run (the count of the longest), so building them cancels out.
        scopes = [make_scope(route, visitor.headers) for _ in range(WARMUP + built)][: WARMUP + requests]
        sink = Sink()
        for scope in scopes:
            await app(scope, receive, sink)
        if sink.starts != WARMUP + requests:
            raise RuntimeError(f"{stack} {route}: {sink.starts} responses")


def _count(stack: str, route: str, who: str, requests: int, built: int, out: Path) -> int:
    """Instructions callgrind counted for one child run."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        stack,
        route,
        who,
        str(requests),
        str(built),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no instruction count in callgrind's output: {done.stderr[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--routes", default="/json,/cookies,/page")
    parser.add_argument("--child", nargs=5, metavar=("STACK", "ROUTE", "VISITOR", "N", "BUILT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stack, route, who, requests, built = args.child
        asyncio.run(_run(stack, route, who, int(requests), int(built)))
        return
    print(f"callgrind instructions per request ({args.requests} requests after {WARMUP} warm-up, start-up subtracted)")
    print(f"{'route':9} {'visitor':10} {'bare':>9} {'floor':>9} {'gate':>9} {'gate×':>6} {'gate-floor':>11}")
    with tempfile.TemporaryDirectory() as work:
        for route in args.routes.split(","):
            for who in ("undecided", "consented"):
                per: dict[str, float] = {}
                for stack in STACKS:
                    empty = _count(stack, route, who, 0, args.requests, Path(work) / "empty.out")
                    full = _count(stack, route, who, args.requests, args.requests, Path(work) / "full.out")
                    per[stack] = (full - empty) / args.requests
                ratio = per["gate"] / per["bare"]
                print(
                    f"{route:9} {who:10} {per['bare']:9.0f} {per['floor']:9.0f} {per['gate']:9.0f} "
                    f"{ratio:6.2f} {per['gate'] - per['floor']:11.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
