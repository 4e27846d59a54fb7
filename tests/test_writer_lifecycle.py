"""The statistics writer's life in a process: its SIGTERM handler, forks, threads, freeing.

Real stores (SQLite files, the PostgreSQL server), real signals and real forks; the
processes that must die of SIGTERM run as subprocesses.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cookie_gate.stats import writer as writer_module
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store.postgres import PostgresStore
from cookie_gate.store.sql import StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import SteppedClock
from tests.conftest import Postgres
from tests.stored import stored_paths

CHROME = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
NOW = 1_796_000_000.0
ROOT = Path(__file__).parent.parent


def view(path: str = "/") -> CountedView:
    return CountedView(NOW, path, b"shop.example", CHROME, None, None, None, False)


def make(store: SQLiteStore, **options: Any) -> StatsWriter:
    options.setdefault("capacity", 100)
    options.setdefault("interval", 60.0)
    options.setdefault("daily_hash", False)
    options.setdefault("clock", SteppedClock(NOW))
    return StatsWriter(store, SiteClock("UTC"), **options)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "writer.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    """Whatever a test does to SIGTERM's handler is undone after it."""
    before = signal.getsignal(signal.SIGTERM)
    chain = writer_module.sigterm_chained_to()
    yield
    if before is writer_module.on_sigterm:  # ours in front of `chain` again, as it was
        signal.signal(signal.SIGTERM, chain if chain is not None else signal.SIG_DFL)
        writer_module.watch_for_sigterm()
        assert writer_module.sigterm_chained_to() == chain
    else:
        signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def test_a_server_that_puts_its_handler_back_does_not_leave_the_next_one_without_ours(
    store: SQLiteStore, sigterm_restored: None
) -> None:
    first = make(store)
    first.start()
    assert signal.getsignal(signal.SIGTERM) is writer_module.on_sigterm
    assert first.stop(1.0)

    def servers_handler(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, servers_handler)  # the next server's, over what the first put back
    second = make(store)
    second.start()
    assert signal.getsignal(signal.SIGTERM) is writer_module.on_sigterm
    assert writer_module.sigterm_chained_to() is servers_handler  # called after ours, the new one
    second.start()  # ours already in front: the chain is left as it is
    assert writer_module.sigterm_chained_to() is servers_handler
    assert second.stop(1.0)


def test_a_handler_not_installed_from_python_is_left_alone(
    store: SQLiteStore, sigterm_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)  # what Python says of a C-level handler
    started = make(store)
    started.start()
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # not replaced by ours
    assert started.stop(1.0)


SECOND_SERVER = textwrap.dedent(
    """
    import os, signal, sys, time
    from cookie_gate.stats.clock import SiteClock
    from cookie_gate.stats.writer import CountedView, StatsWriter
    from cookie_gate.store.sqlite import SQLiteStore

    CHROME = b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    store = SQLiteStore(sys.argv[1])
    def make():
        return StatsWriter(store, SiteClock("UTC"), capacity=100, interval=300, daily_hash=False)
    first = make()
    first.start()
    first.stop(2.0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the first server puts back what it found
    second = make()
    second.record(CountedView(time.time(), "/second", b"h", CHROME, None, None, None, False))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    print("still alive")
    """
)


def test_sigterm_with_no_server_behind_flushes_then_dies_of_it(tmp_path: Path) -> None:
    database = tmp_path / "second.sqlite3"
    script = tmp_path / "second_server.py"
    script.write_text(SECOND_SERVER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(database)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
    assert stored_paths(database) == [("/second", 1)]


def in_child(report: Callable[[], str]) -> str:
    """Run `report` in a forked child; what it returned."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - reports through the pipe
        try:
            os.write(writer, report().encode())
        finally:
            os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    os.waitpid(child, 0)
    return b"".join(chunks).decode()


def test_a_forked_child_starts_from_nothing_and_never_counts_its_parents_losses_again(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    parent = make(store, capacity=1, autostart=False)  # no thread drains the queue meanwhile
    parent.record(view("/kept"))
    parent.record(view("/dropped, the queue is full"))
    parent.last_error = "the parent's store failed"
    parent.terminate()
    assert parent.dropped == parent.dropped_total == 1

    def child_state() -> str:
        health = parent.health()
        return repr((parent.dropped, health.dropped, health.queued, health.last_error, parent.has_work))

    assert in_child(child_state) == repr((0, 0, 0, None, False))


def test_writers_nobody_holds_are_freed() -> None:
    writers = [make(SQLiteStore(":memory:")) for _ in range(20)]
    references = [weakref.ref(writer) for writer in writers]
    del writers
    gc.collect()
    assert [reference() for reference in references] == [None] * 20


def test_a_flush_never_waits_for_retention_and_a_stop_runs_none(store: SQLiteStore) -> None:
    ticks: list[float] = []
    in_tick = threading.Event()
    release = threading.Event()

    def slow_retention(now: float) -> None:
        ticks.append(now)
        in_tick.set()
        release.wait(30)

    maintained = make(store, on_tick=slow_retention)
    maintained.start()
    maintained.record(view())
    assert maintained.flush(timeout=10) is True  # answered before the tick of the same round
    assert in_tick.wait(10)
    release.set()
    ticks_before_stop = len(ticks)
    maintained.record(view())
    assert maintained.stop() is True
    assert len(ticks) == ticks_before_stop  # the final round wrote, and ran no retention


def test_the_postgresql_watchdog_is_one_thread_however_many_transactions(
    postgres: Postgres,
) -> None:
    made: list[str] = []

    def counted(**options: Any) -> threading.Thread:
        made.append(options["name"])
        return threading.Thread(**options)

    store = PostgresStore(postgres.url, timeout=1.0, thread_factory=counted)
    store.add_stats(StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1}))  # connected, watchdog running
    assert made == ["cookie-gate-pg-watchdog"]
    for _ in range(30):
        store.add_stats(StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1}))
    assert made == ["cookie-gate-pg-watchdog"]  # none per transaction: at interpreter exit (3.12+) none could start
    assert [row[2] for row in store.stats_rows("2026-12-01", "2026-12-01", 0).hourly] == [31]
    store.close()


def test_sigterm_during_a_server_run_holds_the_signal_until_the_exit_flush(tmp_path: Path) -> None:
    """A server's handler behind ours: SIGTERM is blocked, so a re-raise is held until the exit hook."""
    script = tmp_path / "held.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time
            from cookie_gate.stats.clock import SiteClock
            from cookie_gate.stats.writer import CountedView, StatsWriter
            from cookie_gate.store.sqlite import SQLiteStore

            CHROME = b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
            exiting = []
            signal.signal(signal.SIGTERM, lambda signum, frame: exiting.append(signum))  # the server's
            writer = StatsWriter(SQLiteStore(sys.argv[1]), SiteClock("UTC"), capacity=100, interval=300,
                                 daily_hash=False)
            writer.start()
            os.kill(os.getpid(), signal.SIGTERM)
            while not exiting:
                time.sleep(0.01)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server puts back what it found...
            writer.record(CountedView(time.time(), "/last", b"h", CHROME, None, None, None, False))
            signal.raise_signal(signal.SIGTERM)  # ...and raises it again: held, so exit comes first
            print("returned from the server")
            """
        ),
        encoding="utf-8",
    )
    database = tmp_path / "held.sqlite3"
    done = subprocess.run(
        [sys.executable, str(script), str(database)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert b"returned from the server" in done.stdout, done.stderr
    assert done.returncode == -signal.SIGTERM  # still dies of it, after the exit flush
    assert stored_paths(database) == [("/last", 1)]


def test_a_lifespan_shutdown_is_not_held_up_by_a_busy_thread_pool(tmp_path: Path) -> None:
    import anyio
    import anyio.to_thread

    from cookie_gate import CookieGateMiddleware
    from tests.conftest import SECRET

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(2):
            message = await receive()
            await send({"type": message["type"] + ".complete"})

    gate = CookieGateMiddleware(app, secret_key=SECRET, store=f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    busy = threading.Event()

    async def main() -> float:
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, str]:
            return next(messages)

        async def send(message: Any) -> None:
            pass

        async with anyio.create_task_group() as group:
            for _ in range(int(anyio.to_thread.current_default_thread_limiter().total_tokens)):
                group.start_soon(anyio.to_thread.run_sync, busy.wait, 20)  # the app's sync endpoints, all stuck
            await anyio.sleep(0.2)
            started = time.monotonic()
            await gate({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
            took = time.monotonic() - started
            busy.set()
        return took

    assert anyio.run(main) < 10  # far below the endpoints' 20 s


def write_one_view_and_return(database: str) -> None:
    """A multiprocessing worker's whole life: one page view recorded, then the worker returns."""
    make(SQLiteStore(database), interval=300.0).record(view("/in-a-worker"))


def test_a_multiprocessing_worker_started_by_fork_writes_what_it_recorded_when_it_ends(tmp_path: Path) -> None:
    """It ends with `os._exit`, so `atexit` never runs there (granian's workers)."""
    import multiprocessing

    database = tmp_path / "worker.sqlite3"
    worker = multiprocessing.get_context("fork").Process(target=write_one_view_and_return, args=(str(database),))
    worker.start()
    worker.join(30)
    assert worker.exitcode == 0
    assert stored_paths(database) == [("/in-a-worker", 1)]
