"""What the visit statistics cost: on the request path, in the writer, and under overload.

`python -m bench.stats` prints three results:

- **record**: µs per page view spent on the request path by `Statistics.page_view`
  (the only statistics code a request runs), for an undecided visitor and for one
  who accepted analytics (same minute, so the counter cookie is unchanged), next to
  an empty call for reference. Goal: at most 2 µs.
- **writer**: events per second the writer turns into SQLite counters, with a
  realistic mix (1,000 distinct User-Agents from uap-core, 200 paths, referrers),
  cold (every User-Agent parsed for the first time) and warm. Goal: at least 50,000/s.
  With `--postgres URL` the same into PostgreSQL, in a private schema dropped after
  (goal: at least 100,000/s warm).
- **overload**: traced memory while 2,000,000 page views arrive at a writer whose
  store never answers: it must stay flat once the queue is full, the excess counted
  as dropped.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

from bench.harness import private_schema
from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import Receive, Scope, Send
from cookie_gate.consent import NECESSARY, Consent
from cookie_gate.request import Request
from cookie_gate.stats.agents import AgentClassifier
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store import open_store
from cookie_gate.store.sql import SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from cookie_gate.visit import Visit

SECRET = "bench-secret-key-0123456789"
UAP = Path(__file__).resolve().parent.parent / "tests" / "data" / "uap-core" / "test_ua.yaml"


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called")


def _per_call_us(call: Any, n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter_ns()
        for _ in range(n):
            call()
        samples.append((time.perf_counter_ns() - start) / n / 1000)
    return statistics.median(samples)


def bench_record(store_dir: str, n: int = 100_000, rounds: int = 7) -> dict[str, float]:
    gate = CookieGateMiddleware(_app, secret_key=SECRET, store=f"sqlite:///{store_dir}/record.sqlite3")
    stats = gate.statistics
    assert stats is not None
    writer = stats.writer
    writer._thread = threading.Thread()  # a stand-in: record() must not start the real writer here
    scope: Scope = {"path": "/products/42", "client": ("203.0.113.9", 50000), "scheme": "https"}
    agent = (
        b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    )
    now = time.time()
    undecided = Request(gate.visits.resolve(None, False, now), now, {b"host": b"h", b"user-agent": agent})
    accepted = Consent(frozenset({NECESSARY, "analytics"}), decided=True)
    first = Request(Visit(accepted, None, None, (), (), None, None), now, {b"host": b"h", b"user-agent": agent})
    cookie = stats.page_view(first, scope)
    assert cookie is not None
    counter = cookie.split(b";")[0].partition(b"=")[2].decode()
    returning = Request(Visit(accepted, None, None, (), (), None, counter), now, first.headers)

    def reset() -> None:
        writer._queue.clear()

    def empty() -> None:
        pass

    results = {
        "empty call": _per_call_us(empty, n, rounds),
        "undecided visitor": _per_call_us(lambda: stats.page_view(undecided, scope), n, rounds),
    }
    reset()
    results["accepted analytics, same minute"] = _per_call_us(lambda: stats.page_view(returning, scope), n, rounds)
    reset()
    results["accepted analytics, new visitor (signs a cookie)"] = _per_call_us(
        lambda: stats.page_view(first, scope), n // 10, rounds
    )
    reset()
    writer._thread = None
    gate.store.close()
    return results


def _events(count: int, seed: int = 7) -> list[CountedView]:
    cases = yaml.safe_load(UAP.read_text(encoding="utf-8"))["test_cases"]
    agents = [c["user_agent_string"].encode() for c in cases[:1000]]
    rng = random.Random(seed)
    paths = [f"/articles/{i}" for i in range(200)]
    referrers = [None, None, None, b"https://search.example/?q=x", b"https://news.example/a", b"https://shop.example/"]
    now = time.time()
    return [
        CountedView(
            now - rng.random() * 86400,
            rng.choice(paths),
            b"shop.example",
            rng.choice(agents),
            rng.choice(referrers),
            None,
            None,
            False,
        )
        for _ in range(count)
    ]


def bench_writer(store_dir: str, count: int = 200_000, postgres: str | None = None) -> dict[str, float]:
    events = _events(count)
    results: dict[str, float] = {}
    agents = AgentClassifier()
    for label in ("cold (each User-Agent parsed once)", "warm (User-Agents cached)"):
        sqlite_file = Path(store_dir) / f"writer-{len(results)}.sqlite3"
        store: SQLStore = SQLiteStore(sqlite_file) if postgres is None else open_store(postgres)
        writer = StatsWriter(
            store, SiteClock("Asia/Seoul"), capacity=count, interval=60, daily_hash=False, agents=agents
        )
        writer._queue.extend(events)
        start = time.perf_counter()
        assert writer.flush()
        results[label] = count / (time.perf_counter() - start)
        store.close()
    return results


class _StuckStore(SQLiteStore):
    """A store that never answers in time: every write fails after a pause, like a dead database."""

    def add_stats(self, batch: StatsBatch) -> None:
        time.sleep(0.01)
        from cookie_gate.store import StoreError

        raise StoreError("the bench's store never answers")


def bench_overload(store_dir: str, total: int = 2_000_000, capacity: int = 50_000) -> list[tuple[int, float, int]]:
    store = _StuckStore(Path(store_dir) / "stuck.sqlite3")
    writer = StatsWriter(store, SiteClock("UTC"), capacity=capacity, interval=0.05, daily_hash=False)
    agent = b"Mozilla/5.0 Chrome/131.0"
    samples = []
    tracemalloc.start()
    for i in range(1, total + 1):
        writer.record(CountedView(time.time(), "/", b"shop.example", agent, None, None, None, False))
        if i % (total // 8) == 0:
            samples.append((i, tracemalloc.get_traced_memory()[0] / 1e6, writer.dropped_total))
    tracemalloc.stop()
    writer._stopping = True
    writer._wake.set()
    store.close()
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    parser.add_argument("--postgres", metavar="URL", help="also measure the writer into this PostgreSQL server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cookie-gate-bench-stats-") as store_dir:
        record = bench_record(store_dir, n=20_000 if args.quick else 100_000)
        print("request path: Statistics.page_view, median µs per call (goal: at most 2 µs)")
        for label, us in record.items():
            print(f"  {label:<48} {us:6.2f} µs")
        writer = bench_writer(store_dir, count=20_000 if args.quick else 200_000)
        print("writer: page views aggregated into SQLite, 1,000 distinct User-Agents (goal: at least 50,000/s)")
        for label, rate in writer.items():
            print(f"  {label:<48} {rate:9,.0f}")
        if args.postgres:
            with private_schema(args.postgres) as url:
                into_postgres = bench_writer(store_dir, count=20_000 if args.quick else 200_000, postgres=url)
            print("writer: the same into PostgreSQL (goal: at least 100,000/s)")
            for label, rate in into_postgres.items():
                print(f"  {label:<48} {rate:9,.0f}")
        print("overload: traced memory while the store never answers (queue capacity 50,000)")
        for recorded, megabytes, dropped in bench_overload(store_dir, total=400_000 if args.quick else 2_000_000):
            print(f"  after {recorded:>9,} page views: {megabytes:6.1f} MB traced, {dropped:>9,} dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
