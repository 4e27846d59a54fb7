"""The gateway when its store fails: nothing lost without being counted and logged, bounded stops.

Every store here is real: SQLite files in missing directories, PostgreSQL URLs that point at
a refused port or at a TCP listener that accepts and never answers, a real uvicorn server
stopped by SIGTERM. Only the shedding tests and the slow-store tests wrap a real SQLite store in
a double of the store interface, to refuse a known number of flushes or to answer late.
"""

from __future__ import annotations

import io
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bench.faults import FaultProxy, via
from cookie_gate.cli import main
from cookie_gate.config import ConfigError, load_config
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.recorder import Statistics
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import CountedView, StatsWriter, stop_all
from cookie_gate.store import StoreError, open_store
from cookie_gate.store.sql import SCHEMA_VERSION, SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import SteppedClock
from tests.conftest import POSTGRES_URL, SECRET, GateFactory, Postgres
from tests.stored import stored_paths

Clients = Callable[..., httpx.AsyncClient]
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
NOW = 1_796_000_000.0  # a fixed instant; nothing here depends on when the suite runs
UTC = SiteClock("UTC")


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>hello</body></html>")


ROUTES = [Route("/{path:path}", page)]


def view(path: str = "/", at: float = NOW) -> CountedView:
    return CountedView(at, path, b"shop.example", CHROME.encode(), None, None, None, False)


def report(store: SQLStore) -> dict[str, Any]:
    return build_report(store, UTC, days=2, now=NOW)


class RefusingStore(SQLStore):
    """The store interface over a real SQLite store that refuses the first `refusals` batches."""

    def __init__(self, real: SQLiteStore, refusals: int) -> None:
        super().__init__()
        self.real = real
        self.refusals = refusals

    def add_stats(self, batch: StatsBatch) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise StoreError("store refused (test)")
        self.real.add_stats(batch)

    def probe(self) -> None:
        self.real.probe()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    yield store
    store.close()


def writer(store: SQLStore, **options: Any) -> StatsWriter:
    options.setdefault("capacity", 100_000)
    options.setdefault("interval", 60.0)
    options.setdefault("daily_hash", False)
    options.setdefault("clock", SteppedClock(NOW))
    return StatsWriter(store, UTC, **options)


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP listener on loopback that accepts connections and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


# -- 1. overflow sheds detail, never totals ----------------------------------------------------


def test_a_long_outage_with_more_distinct_paths_than_the_bound_keeps_every_total(
    sqlite_store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = RefusingStore(sqlite_store, refusals=8)
    held = writer(refusing, max_pending=2_000)
    paths = 0
    for _ in range(8):  # eight refused flushes, 1,000 new distinct paths each
        for _ in range(1_000):
            held.record(view(f"/article/{paths}"))
            paths += 1
        with caplog.at_level(logging.ERROR, "cookie_gate.stats"):
            assert held.flush() is False
        assert held.health().held_counters <= 2_000 + 1_000  # bounded: one batch over, never more
    assert held.flush() is True  # the store is back
    result = report(sqlite_store)
    assert result["pageviews"] == paths == 8_000  # every total is exact
    assert result["entries"] == paths
    assert result["browsers"] == {"Chrome": paths}  # dimensions were not needed to make room
    shed = result["shed"]["path"]
    assert shed > 0 and result["shed"]["dimensions"] == 0
    kept = sum(n for _, n in stored_paths(sqlite_store.path))
    assert kept + shed == paths  # each path view is either kept or counted as shed
    assert result["dropped_events"] == 0
    assert held.health().shed["path"] == shed
    assert any("shed" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_shedding_keeps_the_most_viewed_paths(sqlite_store: SQLiteStore) -> None:
    refusing = RefusingStore(sqlite_store, refusals=1)
    held = writer(refusing, max_pending=200)
    for _ in range(50):
        held.record(view("/popular"))
    for index in range(400):
        held.record(view(f"/once/{index}"))
    assert held.flush() is False
    assert held.flush() is True
    result = report(sqlite_store)
    assert result["pages"][0] == {"path": "/popular", "pageviews": 50}
    assert result["pageviews"] == 450


# -- 2. every loss is counted and logged once --------------------------------------------------


def test_a_final_flush_that_fails_logs_one_error_with_what_it_loses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "missing-directory" / "stats.sqlite3")  # a real SQLite store that cannot open
    lost = writer(store, shutdown_timeout=2.0)
    for index in range(5):
        lost.record(view(f"/{index}"))
    with caplog.at_level(logging.ERROR, "cookie_gate.stats"):
        assert lost.stop() is False
        stop_all()  # the exit hook does not report it a second time
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "5 page views" in errors[0] and "unable to open database file" in errors[0]
    assert lost.health().dropped == 5


class HeldStore(SQLStore):
    """The store interface over a real SQLite store whose writes wait until `release` is set:
    a store that is slow, not failing."""

    def __init__(self, real: SQLiteStore) -> None:
        super().__init__()
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def add_stats(self, batch: StatsBatch) -> None:
        self.entered.set()
        self.release.wait(30)
        self.real.add_stats(batch)

    def probe(self) -> None:
        self.real.probe()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll `condition` while the writer thread works; generous, it normally holds at once."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_after_sigterm_page_views_are_written_as_they_come_and_the_caller_never_waits(
    sqlite_store: SQLiteStore,
) -> None:
    held = HeldStore(sqlite_store)
    through = writer(held, shutdown_timeout=30.0)  # interval 60 s: only being woken writes early
    through.record(view("/before"))

    def sigterm_then_a_page_view() -> None:
        through.terminate()
        through.record(view("/during"))

    calls = threading.Thread(target=sigterm_then_a_page_view)
    calls.start()  # what the SIGTERM handler, then the request path, do
    calls.join(timeout=5)
    assert not calls.is_alive()  # neither waited for the store, which is still not answering
    assert held.entered.wait(5)  # the writer is on it without a flush() or its interval
    held.release.set()
    assert wait_until(lambda: report(sqlite_store)["pageviews"] == 2)
    through.record(view("/later"))
    assert wait_until(lambda: report(sqlite_store)["pageviews"] == 3)  # each one as it comes
    assert through.stop() is True


def test_the_shutdown_budget_counts_from_a_failure_not_from_sigterm(
    sqlite_store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    waits = SteppedClock(0.0)
    through = writer(sqlite_store, shutdown_timeout=0.5, monotonic=waits)
    through.record(view("/before"))
    with caplog.at_level(logging.ERROR, "cookie_gate.stats"):
        through.terminate()
        waits.advance(60)  # a long graceful shutdown (slow requests still running), the store healthy
        through.record(view("/answered-a-minute-after-sigterm"))
        assert wait_until(lambda: report(sqlite_store)["pageviews"] == 2)
        assert through.stop() is True
    assert through.health().dropped == 0
    assert [r for r in caplog.records if r.levelno == logging.ERROR] == []


def test_after_sigterm_a_store_failing_for_the_whole_budget_is_logged_once_and_every_view_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    waits = SteppedClock(0.0)
    broken = writer(SQLiteStore(tmp_path / "missing" / "stats.sqlite3"), shutdown_timeout=2.0, monotonic=waits)
    broken.record(view())
    with caplog.at_level(logging.ERROR, "cookie_gate.stats"):
        broken.terminate()
        assert wait_until(lambda: broken.health().last_error is not None)  # failed, retried meanwhile
        assert broken.health().dropped == 0  # within the budget nothing is given up
        waits.advance(2.5)
        assert wait_until(lambda: broken.health().dropped == 1)  # the budget is used up: given up, counted
        for _ in range(3):
            broken.record(view())
        assert broken.stop() is True  # nothing left to lose
        stop_all()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "store failed for 2 s after SIGTERM" in errors[0] and "unable to open database file" in errors[0]
    assert broken.health().dropped == 4  # every one counted, though only the first line says so


def test_a_stop_that_runs_out_of_time_on_a_slow_store_says_so_rather_than_blaming_the_store(
    sqlite_store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    held = HeldStore(sqlite_store)
    slow = writer(held)
    slow.record(view())
    with caplog.at_level(logging.ERROR, "cookie_gate.stats"):
        assert slow.stop(timeout=0.3) is False
    held.release.set()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "shutdown budget of 0.3 s was used up" in errors[0]
    assert "failed" not in errors[0]


def test_a_writer_restarted_while_its_old_thread_is_stuck_in_the_store_runs_one_thread(
    sqlite_store: SQLiteStore,
) -> None:
    before = set(threading.enumerate())

    def writer_threads() -> int:
        return sum(1 for thread in set(threading.enumerate()) - before if thread.name == "cookie-gate-stats")

    held = HeldStore(sqlite_store)
    stuck = writer(held)
    stuck.record(view("/first"))
    stuck.flush(timeout=0.1)
    assert held.entered.wait(5)  # the writer thread is inside the store
    assert stuck.stop(timeout=0.2) is False  # it does not answer in time
    stuck.start()  # a later lifespan startup in the same process
    stuck.record(view("/second"))
    assert writer_threads() == 1  # the old thread carries on; no second one shares the batch
    held.release.set()
    assert stuck.flush() is True
    assert report(sqlite_store)["pageviews"] >= 1
    assert stuck.stop() is True
    assert wait_until(lambda: writer_threads() == 0)


# -- 3. bounded shutdown -------------------------------------------------------------------------


def test_shutdown_timeout_is_a_setting_with_a_short_default() -> None:
    assert load_config(secret_key=SECRET).shutdown_timeout <= 5
    assert load_config(secret_key=SECRET, shutdown_timeout=12).shutdown_timeout == 12
    for bad in (0, -1, "5", True, 10_000):
        with pytest.raises(ConfigError, match="shutdown_timeout"):
            load_config(secret_key=SECRET, shutdown_timeout=bad)


async def lifespan(middleware: Any) -> None:
    """Run the gate's lifespan (startup, then shutdown) around an app that completes both."""
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)


async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        for _ in range(2):
            message = await receive()
            await send({"type": message["type"] + ".complete"})
    else:
        await HTMLResponse("<html><body>hi</body></html>")(scope, receive, send)


@pytest.mark.anyio
async def test_shutdown_with_a_hung_postgresql_ends_within_the_timeout(
    gate: GateFactory, client_for: Clients, hung_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("psycopg")
    middleware = gate(
        lifespan_app, store=f"postgresql://127.0.0.1:{hung_port}/gate", shutdown_timeout=1.0, stats_flush_seconds=0.05
    )
    client = client_for(middleware)
    for _ in range(3):
        response = await client.get("/", headers={"user-agent": CHROME})
        assert response.status_code == 200  # the page is served while the store hangs
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "cookie_gate"):
        await lifespan(middleware)
    # Generous against scheduling noise, far below the old 10 s connect and 30 s waits.
    assert time.monotonic() - started < 1.0 + 3.0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "3 page views" in errors[0]


def test_a_postgresql_store_that_accepts_and_never_answers_times_out(hung_port: int) -> None:
    pytest.importorskip("psycopg")
    store = open_store(f"postgresql://127.0.0.1:{hung_port}/gate", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StoreError, match="timed out"):
        store.probe()
    assert time.monotonic() - started < 2 + 3.0  # libpq's shortest connect timeout is 2 s
    store.close()


def test_a_postgresql_server_that_stops_answering_mid_session_fails_in_bounded_time(postgres: Postgres) -> None:
    """It still acknowledges every packet, so no TCP or server timeout fires: the watchdog must."""
    port = int(POSTGRES_URL.rsplit(":", 1)[1].split("/")[0])
    proxy = FaultProxy(("127.0.0.1", port))
    store = open_store(via(postgres.url, proxy.port), timeout=1.0)
    batch = StatsBatch(hourly={("2026-12-01T10", "pageviews"): 1})
    store.add_stats(batch)  # connected and working
    proxy.set("freeze")
    started = time.monotonic()
    with pytest.raises(StoreError, match="unavailable"):
        store.add_stats(batch)
    assert time.monotonic() - started < 1.0 + 1.0 + 3.0  # statement time, the watchdog's margin, slack
    proxy.set("up")
    store.add_stats(batch)  # reconnects by itself
    assert [row[2] for row in store.stats_rows("2026-12-01", "2026-12-01", 0).hourly] == [2]
    store.close()
    proxy.close()


def test_a_failing_purge_backs_off_and_warns_once_a_minute(
    refused_port: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    config = load_config(secret_key=SECRET, store=f"postgresql://127.0.0.1:{refused_port}/gate")
    store = open_store(config.store)
    retention = Statistics(config, store, clock=SteppedClock(NOW)).retention
    attempts: list[float] = []
    real_purge = retention.purge

    def counted_purge(now: float) -> dict[str, int]:
        attempts.append(now)
        return real_purge(now)

    monkeypatch.setattr(retention, "purge", counted_purge)
    with caplog.at_level(logging.WARNING, "cookie_gate.stats"):
        for tick in range(30):  # a minute of two-second ticks with the store down
            retention.maintain(NOW + 2 * tick)
    assert len(attempts) == 1  # not once a tick
    warnings = [r for r in caplog.records if "retention" in r.getMessage()]
    assert len(warnings) == 1 and "connection refused" in warnings[0].getMessage()
    retention.maintain(NOW + 61)
    assert len(attempts) == 2  # tried again once the back-off has passed


# -- 4. flush without lifespan, in a real server -----------------------------------------------

SERVER_APP = textwrap.dedent(
    """
    import asyncio
    import pathlib

    from cookie_gate import CookieGateMiddleware

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            raise RuntimeError("this app does not speak lifespan (like Django)")
        if scope["path"] == "/slow":  # still being answered when SIGTERM comes
            pathlib.Path("slow-started").touch()
            await asyncio.sleep(1.0)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"<html><body>page</body></html>"})

    gated = CookieGateMiddleware(app, stats_flush_seconds=300)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "no_lifespan_app:gated", "--port", str(port), "--no-access-log"]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "no_lifespan_app:gated", "--bind", f"127.0.0.1:{port}"]
    # granian's "asginl" interface never sends lifespan at all.
    return [sys.executable, "-m", "granian", "--interface", "asginl", "--port", str(port), "no_lifespan_app:gated"]


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn", "granian"])
def test_a_server_whose_app_refuses_lifespan_writes_every_page_view_it_answered(
    server_name: str, tmp_path: Path
) -> None:
    pytest.importorskip(server_name)
    (tmp_path / "no_lifespan_app.py").write_text(SERVER_APP, encoding="utf-8")
    database = tmp_path / "gate.sqlite3"
    port = free_port()
    environment = {
        **os.environ,
        "COOKIE_GATE_SECRET_KEY": SECRET,
        "COOKIE_GATE_STORE": f"sqlite:///{database}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parent.parent)]),
    }
    server = subprocess.Popen(
        server_command(server_name, port),
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):  # wait for the server, at most ten seconds
                try:
                    client.get("/health-check-not-a-page", headers={"user-agent": "curl/8"})
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            for index in range(4):
                response = client.get(f"/page/{index}", headers={"user-agent": CHROME})
                assert response.status_code == 200
            slow: list[int] = []
            in_flight = threading.Thread(
                target=lambda: slow.append(client.get("/slow", headers={"user-agent": CHROME}).status_code)
            )
            in_flight.start()
            for _ in range(200):
                if (tmp_path / "slow-started").exists():
                    break
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)
            in_flight.join(timeout=20)
        output = server.communicate(timeout=20)[0].decode()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # uvicorn shuts down gracefully, then dies of the SIGTERM it re-raises, before atexit could run.
    assert server.returncode in (0, -signal.SIGTERM), output
    if server_name == "uvicorn":
        assert "lifespan' protocol appears unsupported" in output and "Shutting down" in output
    rows = stored_paths(database)
    assert slow == [200]  # answered during the graceful shutdown, and written too
    assert rows == [(f"/page/{index}", 1) for index in range(4)] + [("/slow", 1)]


# -- 5. a store checked at start -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_store_that_cannot_open_warns_once_at_start_and_pages_are_still_served(
    gate: GateFactory, client_for: Clients, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-directory" / "gate.sqlite3"
    middleware = gate(lifespan_app, store=f"sqlite:///{missing}", shutdown_timeout=1.0)
    client = client_for(middleware)
    with caplog.at_level(logging.WARNING, "cookie_gate"):
        for _ in range(3):
            assert (await client.get("/", headers={"user-agent": CHROME})).status_code == 200
        assert middleware.statistics is not None
        middleware.statistics.writer.flush()
    warnings = [r.getMessage() for r in caplog.records if "start-up" in r.getMessage()]
    assert len(warnings) == 1 and "unable to open database file" in warnings[0]


@pytest.mark.anyio
async def test_without_statistics_the_store_is_still_checked_at_start(
    gate: GateFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-directory" / "gate.sqlite3"
    middleware = gate(lifespan_app, store=f"sqlite:///{missing}", statistics=False)
    with caplog.at_level(logging.WARNING, "cookie_gate.store"):
        await lifespan(middleware)
        for _ in range(100):  # the check runs on a thread of its own
            if any(r.name == "cookie_gate.store" for r in caplog.records):
                break
            time.sleep(0.02)
    # The daily retention (its own thread with statistics off) may say it could not run, too.
    assert [r.levelno for r in caplog.records if r.name == "cookie_gate.store"] == [logging.WARNING]


@pytest.mark.parametrize("kind", ["missing directory", "read-only directory", "refused port", "hung server"])
def test_check_config_opens_the_store_and_names_the_problem(
    kind: str,
    tmp_path: Path,
    refused_port: int,
    hung_port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    if kind == "missing directory":
        url, expected = f"sqlite:///{tmp_path / 'missing' / 'gate.sqlite3'}", "unable to open database file"
    elif kind == "read-only directory":
        check_read_only_directory_as_a_user_it_binds()
        return
    elif kind == "refused port":
        pytest.importorskip("psycopg")
        url, expected = f"postgresql://gate:hunter2@127.0.0.1:{refused_port}/gate", "connection refused"
    else:
        pytest.importorskip("psycopg")
        url, expected = f"postgresql://gate:hunter2@127.0.0.1:{hung_port}/gate", "timed out"
    assert main(["--store", url, "check-config"]) == 1
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "hunter2" not in captured.out + captured.err


def check_read_only_directory_as_a_user_it_binds() -> None:
    """`check-config` on a SQLite file in a read-only directory, as a user the permissions bind:
    root writes anywhere, so as root a forked child drops to `nobody` first."""
    parent = Path(tempfile.mkdtemp(prefix="cookie-gate-read-only-"))
    directory = parent / "read-only"
    try:
        parent.chmod(0o755)
        directory.mkdir()
        directory.chmod(0o555)
        store = f"sqlite:///{directory / 'gate.sqlite3'}"
        code, errors = in_child_as_nobody(lambda: main(["--store", store, "check-config"]))
        assert code == 1, errors
        assert "unable to open database file" in errors
    finally:
        directory.chmod(0o755)
        shutil.rmtree(parent)


def in_child_as_nobody(run: Callable[[], int]) -> tuple[int, str]:
    """Run `run` in a forked child (as `nobody` when we are root); its exit code and stderr."""
    os.environ["COOKIE_GATE_SECRET_KEY"] = SECRET  # inherited by the child; the caller's monkeypatch undoes it
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        code = 99
        try:
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            sys.stderr = io.StringIO()
            code = run()
            os.write(writer, sys.stderr.getvalue().encode())
        except BaseException as error:
            os.write(writer, repr(error).encode())
        finally:
            os._exit(code)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


# -- the health endpoint ------------------------------------------------------------------------

TOKEN = "admin-token-0123456789"


@pytest.mark.anyio
async def test_health_says_the_store_answers_and_what_the_writer_holds(gate: GateFactory, client_for: Clients) -> None:
    clock = SteppedClock(NOW)
    middleware = gate(ROUTES, admin_token=TOKEN, clock=clock)
    client = client_for(middleware)
    assert (await client.get("/_cookie_gate/admin/health.json")).status_code == 401
    await client.get("/", headers={"user-agent": CHROME})
    assert middleware.statistics is not None and middleware.statistics.writer.flush()
    response = await client.get("/_cookie_gate/admin/health.json", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    health = response.json()
    assert health["store_reachable"] is True and health["store_problem"] is None
    assert health["schema_version"] == health["schema_version_expected"] == SCHEMA_VERSION
    assert health["last_flush"] == "2026-11-30T00:53:20+00:00"  # NOW, when the batch landed
    assert health["queue_depth"] == 0 and health["dropped_events"] == 0
    assert health["shed"] == {"path": 0, "referrer": 0, "daily_hash": 0, "dimensions": 0}


@pytest.mark.anyio
async def test_health_is_503_naming_the_problem_while_the_store_is_down(
    gate: GateFactory, client_for: Clients, refused_port: int
) -> None:
    pytest.importorskip("psycopg")
    middleware = gate(ROUTES, admin_token=TOKEN, store=f"postgresql://127.0.0.1:{refused_port}/gate")
    client = client_for(middleware)
    await client.get("/", headers={"user-agent": CHROME})
    assert middleware.statistics is not None
    assert middleware.statistics.writer.flush(timeout=5) is False
    response = await client.get("/_cookie_gate/admin/health.json", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    health = response.json()
    assert health["store_reachable"] is False and "connection refused" in health["store_problem"]
    assert health["last_flush"] is None and "connection refused" in health["last_flush_error"]
    assert health["held_counters"] > 0  # held for the next try, not lost


def test_the_report_of_a_store_back_from_an_outage_shows_the_shed_detail(
    sqlite_store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = RefusingStore(sqlite_store, refusals=1)
    held = writer(refusing, max_pending=10)
    for index in range(40):
        held.record(view(f"/p/{index}"))
    held.flush()
    held.flush()
    assert main(["--store", f"sqlite:///{sqlite_store.path}", "stats", "--days", "2"], clock=lambda: NOW) == 0
    assert "detail shed while the store was down (totals kept): path" in capsys.readouterr().out


@pytest.mark.anyio
async def test_the_dashboard_shows_what_was_shed(
    sqlite_store: SQLiteStore, gate: GateFactory, client_for: Clients
) -> None:
    refusing = RefusingStore(sqlite_store, refusals=1)
    held = writer(refusing, max_pending=10)
    for index in range(40):
        held.record(view(f"/p/{index}"))
    held.flush()
    assert held.flush()
    middleware = gate(ROUTES, admin_token=TOKEN, store=f"sqlite:///{sqlite_store.path}", clock=SteppedClock(NOW))
    page = await client_for(middleware).get("/_cookie_gate/admin?days=2", headers={"authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    assert "Not counted or shed" in page.text and "path shed" in page.text
