"""The demo under real servers on loopback: page, assets, a consent post, statistics flushed on SIGTERM.

One smoke test per server the README names (uvicorn, hypercorn, granian). The server
runs as a child process on a free port with its own SQLite store; after SIGTERM the
page view counted in memory must be in the store, written by the lifespan shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP = "examples.demo.app:app"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(server: str, port: int, app: str) -> list[str]:
    if server == "uvicorn":
        return [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if server == "hypercorn":
        return [str(BIN / "hypercorn"), app, "--bind", f"127.0.0.1:{port}"]
    interface = "asginl" if server == "granian-asginl" else "asgi"
    return [str(BIN / "granian"), "--interface", interface, "--host", "127.0.0.1", "--port", str(port), app]


def _wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30  # a generous start-up allowance on a loaded machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(server: str, app: str = APP) -> tuple[str, subprocess.Popen[bytes], Path]:
        executable = BIN / server.partition("-")[0]
        if not executable.exists():
            pytest.skip(f"{server} is not installed (pip install -e '.[dev]')")
        port = _free_port()
        store = tmp_path / f"{server}-{app.partition(':')[0]}.sqlite3"
        env = {
            **os.environ,
            "COOKIE_GATE_SECRET_KEY": SECRET,
            "COOKIE_GATE_STORE": f"sqlite:///{store}",
            "PYTHONPATH": str(ROOT),
        }
        process = subprocess.Popen(
            _command(server, port, app), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        processes.append(process)
        _wait_until_serving(port, process)
        return f"http://127.0.0.1:{port}", process, store

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "granian", "granian-asginl"])
def test_the_demo_serves_and_flushes_its_statistics_under_each_server(serve: object, server: str) -> None:
    base, process, store = serve(server)  # type: ignore[operator]
    _visit_decide_and_stop(base, process, store, server)


@pytest.mark.parametrize(
    "app",
    [
        pytest.param("examples.django_shop.asgi:application", id="django"),
        pytest.param("examples.fastapi_shop.app:app", id="fastapi"),
        pytest.param("examples.litestar_shop.app:app", id="litestar"),
        pytest.param("examples.quart_shop.app:app", id="quart"),
        pytest.param("examples.starlette_jinja2.app:app", id="starlette"),
    ],
)
def test_each_framework_example_runs_under_uvicorn(serve: object, app: str) -> None:
    """What `scripts/example NAME` starts: the page with its banner, the assets, a decision, the flush."""
    base, process, store = serve("uvicorn", app)  # type: ignore[operator]
    _visit_decide_and_stop(base, process, store, app)


def _visit_decide_and_stop(base: str, process: subprocess.Popen[bytes], store: Path, server: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/", headers={"accept-encoding": "identity"})
        assert page.status_code == 200
        assert 'id="cookie-gate"' in page.text
        assert page.headers.get("content-length") == str(len(page.content))
        for name in ("banner.js", "banner.css"):
            asset = client.get(f"/_cookie_gate/{name}")
            assert asset.status_code == 200
            assert asset.content == (ROOT / "static" / "banner" / name).read_bytes()
        decided = client.post("/_cookie_gate/consent", json={"accept": ["analytics"]})
        assert decided.status_code == 200
        assert any(v.startswith("cookie_gate=") for v in decided.headers.get_list("set-cookie"))
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=30)[0].decode(errors="replace")
    with sqlite3.connect(store) as connection:
        decisions = connection.execute("SELECT count(*) FROM cookie_gate_consent_log").fetchone()[0]
        page_views = connection.execute("SELECT count(*) FROM cookie_gate_daily").fetchone()[0]
    assert decisions == 1, output
    assert page_views > 0, f"statistics were not flushed when {server} stopped:\n{output}"
