"""The fault run: the gateway behind uvicorn while its store fails, on loopback only.

`python -m bench.faults [--postgres URL] [--quick]` prints one line per scenario:

- **outage, distinct paths**: PostgreSQL (through a loopback proxy this script cuts)
  refuses connections while more distinct paths are viewed than the writer may hold
  (`--bound`); then it comes back. Every page view must be counted, the shed paths
  counted as shed.
- **hung store, SIGTERM**: the proxy accepts and never answers; the server is sent
  SIGTERM; seconds until it exits (goal: within `shutdown_timeout`, 5 s, plus start-up
  of the interpreter's exit), and the ERROR line that says what was lost.
- **app without lifespan, SIGTERM**: a raw ASGI app that raises on lifespan (as Django
  does); page views counted after SIGTERM.
- **SQLite directory missing**: pages served, the start-up WARNING, `check-config`'s exit code.
- **end to end**: requests per second through uvicorn, a bare app against the same app
  behind the gate with a PostgreSQL store, same run.

The PostgreSQL server is real; each scenario gets a private schema, dropped after.
Request loops are bounded by count and by time; servers are stopped by their own handle.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import private_schema
from cookie_gate.asgi import ASGIApp, Receive, Scope, Send

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
APP_ENV, STORE_ENV, BOUND_ENV = "COOKIE_GATE_FAULT_APP", "COOKIE_GATE_FAULT_STORE", "COOKIE_GATE_FAULT_BOUND"
PAGE = b"<!doctype html><html><head><title>t</title></head><body>" + b"<p>text</p>" * 200 + b"</body></html>"


# -- the apps the server subprocess runs --------------------------------------------------------


async def _page_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        if os.environ.get(APP_ENV) == "no-lifespan":
            raise RuntimeError("this app does not speak lifespan (like Django)")
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    headers = [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


def create_app() -> ASGIApp:
    """uvicorn factory: the bare page app, or it behind the gate (`COOKIE_GATE_FAULT_*` settings)."""
    if os.environ.get(APP_ENV) == "bare":
        return _page_app
    from cookie_gate import CookieGateMiddleware

    gate = CookieGateMiddleware(
        _page_app, secret_key=SECRET, store=os.environ[STORE_ENV], stats_flush_seconds=0.5, inject_banner=False
    )
    if gate.statistics is not None and os.environ.get(BOUND_ENV):
        # A smaller bound, to reach it quickly (the module constant too, so older releases can be compared).
        from cookie_gate.stats import writer

        writer.MAX_PENDING = gate.statistics.writer._max_pending = int(os.environ[BOUND_ENV])
    return gate


# -- a PostgreSQL that this script can take down ---------------------------------------------------


class FaultProxy:
    """A loopback TCP proxy to a real server: `up` forwards, `refuse` closes the port, `hang` accepts
    and never answers, `freeze` keeps every open connection but stops forwarding on them (a server
    that still acknowledges packets and never replies)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "up"
        self._listener = self._listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, port))
        listener.listen(128)
        return listener

    def set(self, mode: str) -> None:
        if mode == "freeze" or self.mode == "freeze":
            self.mode = mode
            return
        with self._lock:
            previous, self.mode = self.mode, mode
            for connection in self._open:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)  # close() alone leaves a socket a pump still reads
                with suppress(OSError):
                    connection.close()
            self._open.clear()
            if mode == "refuse":
                with suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, frees the port
                self._listener.close()
            elif previous == "refuse":
                self._listener = self._listen(self.port)
                threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.set("refuse")

    def _accept(self) -> None:
        listener = self._listener
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(client)
                if self.mode != "up":
                    continue  # hang: hold it open, never answer
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self._open.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                while self.mode == "freeze":
                    time.sleep(0.02)
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the proxy's."""
    scheme, _, rest = url.partition("://")
    credentials, _, location = rest.rpartition("@")
    path = location[location.find("/") :] if "/" in location else "/"
    return f"{scheme}://{credentials + '@' if credentials else ''}{LOOPBACK}:{port}{path}"


def counted(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT metric, SUM(n) FROM cookie_gate_hourly GROUP BY metric").fetchall()
    return {str(metric): int(n) for metric, n in rows}


# -- servers and load --------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def start(work: Path, app: str, store: str = "", bound: int | None = None) -> Server:
    port = free_port()
    log = work / f"server-{port}.log"
    env = {**os.environ, APP_ENV: app, STORE_ENV: store, "PYTHONPATH": str(REPO_ROOT)}
    if bound is not None:
        env[BOUND_ENV] = str(bound)
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.faults:create_app", "--host", LOOPBACK]
    command += ["--port", str(port), "--no-access-log"]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {server.output()[-2000:]}")
        with suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return server
        time.sleep(0.05)
    raise RuntimeError("server did not listen within 30 s")


def terminate(server: Server, timeout: float = 60) -> float:
    """SIGTERM the server this script started; seconds until it exited."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    return time.monotonic() - started


@dataclass
class Load:
    answered: int
    failed: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.answered / self.seconds


async def _load(port: int, paths: list[str], connections: int, limit: float) -> Load:
    queue = iter(paths)
    answered = failed = 0
    deadline = time.monotonic() + limit

    async def client() -> None:
        nonlocal answered, failed
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            for path in queue:
                if time.monotonic() > deadline:
                    return
                writer.write(f"GET {path} HTTP/1.1\r\nhost: www.example.com\r\nuser-agent: {CHROME}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.partition(b":")[2])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if head[9:12] == b"200":
                    answered += 1
                else:
                    failed += 1
        finally:
            writer.close()

    began = time.monotonic()
    outcomes = await asyncio.gather(*(client() for _ in range(connections)), return_exceptions=True)
    broken = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if broken and not answered:
        raise RuntimeError(f"every load connection failed: {broken[0]!r}")
    return Load(answered, failed + len(broken), time.monotonic() - began)


def load(port: int, paths: list[str], connections: int = 16, limit: float = 120) -> Load:
    return asyncio.run(_load(port, paths, connections, limit))


# -- the scenarios -----------------------------------------------------------------------------------


def outage_with_distinct_paths(work: Path, postgres: str, distinct: int, bound: int) -> dict[str, Any]:
    with private_schema(postgres, "cookie_gate_faults") as url:
        host, port = LOOPBACK, int(url.split("://")[1].split("/")[0].rpartition(":")[2] or 5432)
        proxy = FaultProxy((host, port))
        server = start(work, "gate", via(url, proxy.port), bound=bound)
        before = load(server.port, ["/warm"] * 500)
        proxy.set("refuse")
        during = load(server.port, [f"/article/{i}" for i in range(distinct)])
        proxy.set("up")
        time.sleep(4)  # a few flush rounds; the writer reconnects by itself
        seconds = terminate(server)
        totals = counted(url)
    sent = before.answered + during.answered
    return {
        "scenario": f"PostgreSQL refused while {distinct:,} distinct paths were viewed (bound {bound:,})",
        "answered": sent,
        "failed requests": before.failed + during.failed,
        "counted": totals.get("pageviews", 0),
        "shed paths": totals.get("shed_path", 0),
        "dropped": totals.get("dropped", 0),
        "exit seconds": round(seconds, 2),
    }


def hung_store_then_sigterm(work: Path) -> dict[str, Any]:
    proxy = FaultProxy((LOOPBACK, 9))  # never forwards: the mode is hang from the start
    proxy.set("hang")
    server = start(work, "gate", f"postgresql://{LOOPBACK}:{proxy.port}/gate")
    answered = load(server.port, ["/"] * 200)
    seconds = terminate(server)
    errors = [line for line in server.output().splitlines() if "lost at shutdown" in line]
    return {
        "scenario": "store accepts TCP and never answers, then SIGTERM",
        "answered": answered.answered,
        "failed requests": answered.failed,
        "exit seconds": round(seconds, 2),
        "loss logged": errors[0].split(":", 1)[-1].strip()[:160] if errors else "NO LINE",
    }


def no_lifespan_then_sigterm(work: Path, views: int) -> dict[str, Any]:
    database = work / "no-lifespan.sqlite3"
    server = start(work, "no-lifespan", f"sqlite:///{database}")
    answered = load(server.port, [f"/p/{i}" for i in range(views)])
    seconds = terminate(server)
    import sqlite3

    connection = sqlite3.connect(database)
    total = connection.execute("SELECT SUM(n) FROM cookie_gate_hourly WHERE metric = 'pageviews'").fetchone()[0]
    connection.close()
    return {
        "scenario": "app that refuses lifespan under uvicorn, then SIGTERM",
        "answered": answered.answered,
        "counted": int(total or 0),
        "exit seconds": round(seconds, 2),
    }


def missing_sqlite_directory(work: Path) -> dict[str, Any]:
    store = f"sqlite:///{work / 'no-such-directory' / 'gate.sqlite3'}"
    server = start(work, "gate", store)
    answered = load(server.port, ["/"] * 200)
    terminate(server)
    warned = any("store check failed at start-up" in line for line in server.output().splitlines())
    env = {**os.environ, "COOKIE_GATE_SECRET_KEY": SECRET, "PYTHONPATH": str(REPO_ROOT)}
    check = subprocess.run(
        [sys.executable, "-m", "cookie_gate", "--store", store, "check-config"], env=env, capture_output=True, text=True
    )
    return {
        "scenario": "SQLite directory missing",
        "answered": answered.answered,
        "failed requests": answered.failed,
        "start-up warning": warned,
        "check-config exit": check.returncode,
        "check-config says": check.stderr.strip()[-120:],
    }


def end_to_end(work: Path, postgres: str, seconds: float) -> dict[str, Any]:
    with private_schema(postgres, "cookie_gate_faults") as url:
        bare = start(work, "bare")
        gated = start(work, "gate", url)
        rates: dict[str, list[float]] = {"bare": [], "gate + PostgreSQL": []}
        answered = 0
        try:
            for _ in range(2):  # interleaved, so both see the same machine
                for label, server in (("bare", bare), ("gate + PostgreSQL", gated)):
                    result = load(server.port, ["/page"] * 10**7, limit=seconds)
                    rates[label].append(result.rps)
                    answered += result.answered if server is gated else 0
        finally:
            terminate(bare)
            terminate(gated)
        totals = counted(url)
    best = {label: max(values) for label, values in rates.items()}
    return {
        "scenario": "end to end through uvicorn (16 connections, best of 2)",
        "bare req/s": round(best["bare"]),
        "gate + PostgreSQL req/s": round(best["gate + PostgreSQL"]),
        "ratio": round(best["bare"] / best["gate + PostgreSQL"], 2),
        "answered by the gate": answered,
        "counted by the gate": totals.get("pageviews", 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test", help="a real PostgreSQL server")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--distinct", type=int, default=None, help="distinct paths during the outage")
    parser.add_argument(
        "--bound", type=int, default=None, help="counters the writer may hold (default: half --distinct)"
    )
    args = parser.parse_args(argv)
    distinct = args.distinct or (8_000 if args.quick else 30_000)
    bound = args.bound or distinct // 2
    with tempfile.TemporaryDirectory(prefix="cookie-gate-faults-") as directory:
        work = Path(directory)
        scenarios: list[Callable[[], dict[str, Any]]] = [
            functools.partial(outage_with_distinct_paths, work, args.postgres, distinct, bound),
            functools.partial(hung_store_then_sigterm, work),
            functools.partial(no_lifespan_then_sigterm, work, 400 if args.quick else 4_000),
            functools.partial(missing_sqlite_directory, work),
            functools.partial(end_to_end, work, args.postgres, 2.0 if args.quick else 5.0),
        ]
        for scenario in scenarios:
            result = scenario()
            print(result.pop("scenario"), flush=True)
            for key, value in result.items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
