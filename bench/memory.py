"""Memory under the cookie flood of issue 7: what the gateway holds after thousands of distinct huge headers.

Run from the repository root::

    python -m bench.memory [--requests 4096] [--tracemalloc]

Each request carries its own 7.6 KB `Cookie` header (32 trackers with fresh values, then
3,500 bare `x` segments) to a gated page, in-process, statistics on. The resident set is
read from /proc before and after (what an operator sees); `--tracemalloc` also reports
what Python allocated and kept, several times slower. tests/test_memory.py asserts the
bound; this prints the figures for bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc

from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import Message, Receive, Scope, Send

TRACKERS = ("_ga", "_gid", "_fbp", "_gcl_au", "_hjid", "IDE", "_uetsid", "_clck")


def flood_header(i: int) -> bytes:
    trackers = "; ".join(f"{TRACKERS[k % 8]}{'' if k < 8 else f'_{k}'}=GA1.2.{i}.{k}" for k in range(32))
    return (trackers + ";" + ";".join(["x"] * 3500)).encode()


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<html><body>shop</body></html>"})


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


async def flood(gate: CookieGateMiddleware, requests: int) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    for i in range(requests):
        scope: Scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"www.shop.example"), (b"cookie", flood_header(i)), (b"user-agent", b"Firefox/133")],
        }
        await gate(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=4096)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python's allocations (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        gate = CookieGateMiddleware(page, secret_key="bench-secret-key-0123456789", store=f"sqlite:///{directory}/m.db")
        asyncio.run(flood(gate, 1))  # imports, first render, the writer thread
        gc.collect()
        if args.tracemalloc:
            tracemalloc.start()
        start_traced = tracemalloc.get_traced_memory()[0]
        start_resident = resident_mib()
        started = time.perf_counter()
        asyncio.run(flood(gate, args.requests))
        elapsed = time.perf_counter() - started
        gc.collect()
        print(f"{args.requests} requests with distinct {len(flood_header(0)):,}-byte Cookie headers")
        print(f"  resident set: {start_resident:.0f} MiB -> {resident_mib():.0f} MiB")
        if args.tracemalloc:
            current, peak = tracemalloc.get_traced_memory()
            kept, highest = (current - start_traced) / 2**20, (peak - start_traced) / 2**20
            print(f"  traced: {kept:.1f} MiB kept, {highest:.1f} MiB at the peak")
        print(f"  {elapsed / args.requests * 1e3:.2f} ms per request{' (traced)' if args.tracemalloc else ''}")
        if gate.statistics is not None:
            gate.statistics.writer.stop()
        gate.store.close()


if __name__ == "__main__":
    main()
