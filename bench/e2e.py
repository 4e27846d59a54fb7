"""End to end: the bare, the floor and the gated app behind uvicorn, loaded over loopback.

Run from the repository root::

    python -m bench.e2e [--duration 3] [--rounds 3] [--connections 16] [--client auto|wrk|python] [--json PATH]

Why it is built this way:

* One uvicorn worker per stack, started as a subprocess (`--no-access-log`, httptools
  when installed, else h11) on 127.0.0.1 and a free port, because this is what the
  product costs a real deployment: the server's parsing and socket work is part of
  every request, and the in-process numbers leave it out.
* `wrk` generates load (Debian: `apt-get install -y wrk`): it is C, so the client is
  not the bottleneck. Without it a bounded Python asyncio keep-alive client is used,
  which is slower than the server and compresses the ratios; the report says which.
* `floor` is the cheapest layer that can see a response (a forwarding send wrapper),
  so `gate - floor` is what the gate's own work costs a real server above being such
  a layer. SessionMiddleware stays in-process only: a fourth server would push a
  default run past three minutes.
* All servers run for the whole benchmark but only one is loaded at a time; the order
  rotates every round so drift hits all alike. Every load run is bounded in time and
  in requests, and only ever talks to 127.0.0.1.
* Before loading, every route is fetched once from each server and checked (status,
  banner, Set-Cookie filtering), so a misconfigured server cannot look fast.
* Servers are always stopped: on normal exit, on an error and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.types import ASGIApp

from bench.apps import (
    BROWSER_HEADERS,
    GOALS,
    ROUTES,
    STACK_ENV,
    STORE_ENV,
    Stack,
    build_stacks,
    cookie_categories,
    revision,
)
from bench.harness import CONSENT_BODY, CONSENT_PATH, Visitor, check_response, kept_cookie, make_visitors

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
E2E_STACKS: tuple[Stack, ...] = ("bare", "floor", "gate")
#: Hard cap on requests per load run, whatever the duration, so a run always ends.
MAX_REQUESTS_PER_RUN = 2_000_000


@dataclass
class Server:
    stack: Stack
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def http_impl() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def loop_impl() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def start_server(stack: Stack, work_dir: Path) -> Server:
    port = free_port()
    log = work_dir / f"uvicorn-{stack}.log"
    env = {**os.environ, STACK_ENV: stack, STORE_ENV: f"sqlite:///{work_dir}/e2e-{stack}.sqlite3"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.apps:create_app",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--http",
        http_impl(),
        "--loop",
        loop_impl(),
    ]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    return Server(stack, port, process, log)


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"uvicorn ({server.stack}) exited: {server.log.read_text()[-2000:]}")
        try:
            with socket.create_connection((LOOPBACK, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"uvicorn ({server.stack}) did not listen on {server.port} within {timeout} s")


def stop_server(server: Server) -> None:
    """Stop the one process this script started, by its own handle."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@contextmanager
def servers(work_dir: Path) -> Iterator[dict[Stack, Server]]:
    """Run every E2E_STACKS server for the duration of the block, and stop them however the block ends."""
    started: dict[Stack, Server] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for stack in E2E_STACKS:
            started[stack] = start_server(stack, work_dir)
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            stop_server(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def fetch(
    port: int, path: str, headers: list[tuple[str, str]], method: str = "GET", body: bytes | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()]
        return response.status, raw, data
    finally:
        connection.close()


def request_headers(visitor: Visitor) -> list[tuple[str, str]]:
    return [*BROWSER_HEADERS, ("cookie", visitor.cookie)]


def e2e_visitors(gate_port: int, stacks: dict[Stack, ASGIApp]) -> tuple[Visitor, Visitor]:
    """The in-process visitors' session cookie, and a consent cookie taken from the running gated server."""
    undecided, _ = asyncio.run(make_visitors(stacks))
    headers = [
        *BROWSER_HEADERS,
        ("origin", f"http://{dict(BROWSER_HEADERS)['host']}"),
        ("content-type", "application/json"),
        ("content-length", str(len(CONSENT_BODY))),
        ("cookie", undecided.cookie),
    ]
    status, answer, body = fetch(gate_port, CONSENT_PATH, headers, "POST", CONSENT_BODY)
    if status != 200:
        raise RuntimeError(f"consent POST to the gated server answered {status}: {body[:200]!r}")
    consent = kept_cookie((v for k, v in answer if k == b"set-cookie"), "cookie_gate")
    return undecided, Visitor("consented", f"{undecided.cookie}; {consent}")


def lua_script(path: str, visitor: Visitor) -> str:
    """A wrk script sending the visitor's headers and printing the results as one JSON line."""
    lines = ['wrk.method = "GET"', f"wrk.path = {_lua_string(path)}"]
    for name, value in request_headers(visitor):
        if name == "connection":
            continue  # wrk keeps connections alive itself
        lines.append(f"wrk.headers[{_lua_string(name.title())}] = {_lua_string(value)}")
    # Like a browser, keep the visit counter the gate sets (at most once a minute); replaying a
    # stale one would make every request a counter rewrite that no real visitor causes.
    lines.append(
        "request = function() return wrk.format() end\n"
        "response = function(status, headers, body)\n"
        '  local set = headers["Set-Cookie"] or headers["set-cookie"]\n'
        "  if set == nil then return end\n"
        '  local counter = string.match(set, "^(cookie_gate_visits=[^;]*)")\n'
        "  if counter == nil then return end\n"
        '  local kept = string.gsub(wrk.headers["Cookie"] or "", "; cookie_gate_visits=[^;]*", "")\n'
        '  wrk.headers["Cookie"] = kept .. "; " .. counter\n'
        "end"
    )
    lines.append(
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format("BENCH_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"errors\\":%d,'
        '\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d}\\n",\n'
        "    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,\n"
        "    latency:percentile(50), latency:percentile(90), latency:percentile(99)))\n"
        "end"
    )
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    if not text.isascii():
        raise ValueError(f"header value is not ASCII: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(wrk: str, port: int, script: Path, path: str, duration: float, connections: int) -> LoadResult:
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://{LOOPBACK}:{port}{path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            return LoadResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50"] / 1000,
                p90_ms=data["p90"] / 1000,
                p99_ms=data["p99"] / 1000,
                errors=data["errors"],
            )
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


async def _python_load(port: int, request: bytes, duration: float, connections: int) -> LoadResult:
    """Keep-alive HTTP/1.1 load from one asyncio loop, bounded by time and by MAX_REQUESTS_PER_RUN."""
    latencies: list[int] = []
    errors = 0
    deadline = time.perf_counter_ns() + int(duration * 1e9)

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            while time.perf_counter_ns() < deadline and len(latencies) < MAX_REQUESTS_PER_RUN:
                start = time.perf_counter_ns()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"transfer-encoding":
                        raise RuntimeError("chunked responses are not supported by the fallback client")
                await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - start)
                if head[9:12] != b"200":
                    errors += 1
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter_ns()
    await asyncio.gather(*(client() for _ in range(connections)))
    seconds = (time.perf_counter_ns() - began) / 1e9
    cuts = statistics.quantiles(latencies, n=100)
    return LoadResult(len(latencies), seconds, cuts[49] / 1e6, cuts[89] / 1e6, cuts[98] / 1e6, errors)


def run_python(port: int, path: str, visitor: Visitor, duration: float, connections: int) -> LoadResult:
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in request_headers(visitor))]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return asyncio.run(_python_load(port, request, duration, connections))


def summarise(results: dict[tuple[str, str, Stack], list[LoadResult]]) -> list[dict[str, Any]]:
    rows = []
    for route in ROUTES:
        for visitor in ("undecided", "consented"):
            row: dict[str, Any] = {"route": route, "visitor": visitor, "goal": GOALS[route]}
            for stack in E2E_STACKS:
                runs = results[route, visitor, stack]
                row[stack] = {
                    "rps": round(statistics.median(r.rps for r in runs), 1),
                    "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
                    "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
                    "rps_runs": [round(r.rps, 1) for r in runs],
                }
            for stack in E2E_STACKS:
                # Time per request grows by bare_rps / stack_rps: the figure the in-process ratios compare with.
                row[stack]["ratio"] = round(row["bare"]["rps"] / row[stack]["rps"], 3)
                # One saturated worker: its time per request is 1 / throughput.
                row[stack]["us_per_request"] = round(1e6 / row[stack]["rps"], 2)
            row["ratio"] = row["gate"]["ratio"]
            row["meets_goal"] = row["ratio"] <= GOALS[route]
            row["gate_minus_floor_us"] = round(row["gate"]["us_per_request"] - row["floor"]["us_per_request"], 2)
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'route':<9} {'visitor':<10} {'bare req/s':>10} {'floor req/s':>11} {'floor×':>6} {'gate req/s':>10} "
        f"{'gate×':>6} {'goal':>6}  {'':<4} {'gate-floor':>10}  "
        + " ".join(f"{stack + ' p50/p99 ms':>16}" for stack in E2E_STACKS)
    ]
    for row in rows:
        bare, floor, gate = row["bare"], row["floor"], row["gate"]
        lines.append(
            f"{row['route']:<9} {row['visitor']:<10} {bare['rps']:>10.0f} {floor['rps']:>11.0f} "
            f"{floor['ratio']:>6.2f} {gate['rps']:>10.0f} {gate['ratio']:>6.2f} "
            f"{'≤' + format(row['goal'], '.2f'):>6}  {'ok' if row['meets_goal'] else 'MISS':<4} "
            f"{row['gate_minus_floor_us']:>7.1f} µs  "
            + " ".join(f"{row[stack]['p50_ms']:>7.2f}/{row[stack]['p99_ms']:<8.2f}" for stack in E2E_STACKS)
        )
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare vs floor vs gated app behind uvicorn, loaded over loopback")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per cell and stack (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unrecorded load per cell and stack")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --rounds and --connections must be positive")
    wrk = shutil.which("wrk")
    if args.client == "wrk" and wrk is None:
        parser.error("wrk is not installed; on Debian/Ubuntu: apt-get install -y wrk")
    use_wrk = wrk is not None and args.client != "python"
    if wrk is None and args.client == "auto":
        print("wrk not found (install it with: apt-get install -y wrk); using the slower Python client")
    began = time.monotonic()
    results: dict[tuple[str, str, Stack], list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="cookie-gate-e2e-") as work:
        work_dir = Path(work)
        with servers(work_dir) as running:
            local = build_stacks(work)
            undecided, consented = e2e_visitors(running["gate"].port, local)
            categories = cookie_categories(local["gate"])
            for stack, server in running.items():
                for route in ROUTES:
                    for visitor in (undecided, consented):
                        status, headers, body = fetch(server.port, route, request_headers(visitor))
                        check_response(stack, route, visitor.name, status, headers, body, categories)

            def load(stack: Stack, route: str, visitor: Visitor, seconds: float) -> LoadResult:
                port = running[stack].port
                if use_wrk and wrk is not None:
                    script = work_dir / f"{route.strip('/')}-{visitor.name}.lua"
                    script.write_text(lua_script(route, visitor))
                    return run_wrk(wrk, port, script, route, seconds, args.connections)
                return run_python(port, route, visitor, seconds, args.connections)

            for route in ROUTES:
                for visitor in (undecided, consented):
                    for stack in E2E_STACKS:
                        load(stack, route, visitor, args.warmup)
                    for number in range(args.rounds):
                        shift = number % len(E2E_STACKS)
                        order = E2E_STACKS[shift:] + E2E_STACKS[:shift]
                        for stack in order:
                            result = load(stack, route, visitor, args.duration)
                            if result.errors or not result.requests:
                                raise RuntimeError(
                                    f"{stack} {route} {visitor.name}: {result.errors} errors in {result.requests}"
                                )
                            results.setdefault((route, visitor.name, stack), []).append(result)
    rows = summarise(results)
    meta = {
        "client": f"wrk -t1 -c{args.connections}" if use_wrk else f"python asyncio, {args.connections} connections",
        "server": f"uvicorn, 1 worker, --http {http_impl()}, --loop {loop_impl()}, --no-access-log",
        "duration_s": args.duration,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "cookie_gate": revision(),
        "seconds": round(time.monotonic() - began, 1),
    }
    to_stdout = args.json == "-"
    if args.json:
        text = json.dumps({"meta": meta, "rows": rows}, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    if not to_stdout:
        print(f"end to end on loopback: {meta['server']}; load: {meta['client']}; cookie_gate {meta['cookie_gate']}")
        print(
            f"median of {args.rounds} interleaved runs x {args.duration:g} s; "
            "× = bare req/s / stack req/s (time per request over bare); gate-floor = 1e6/gate req/s - 1e6/floor req/s"
        )
        print(format_table(rows))
        print(f"took {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
