"""health.json costs the store little and answers in bounded time, whoever else holds the store.

Real SQLite files; another connection holding the file's write lock is a second process's write.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from cookie_gate.store.sql import HEALTH_CACHE_SECONDS
from tests.clocks import SteppedClock
from tests.conftest import GateFactory

TOKEN = "admin-token-0123456789"
NOW = 1_796_000_000.0
AUTHORISED = {"authorization": f"Bearer {TOKEN}"}


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>hello</body></html>")


ROUTES = [Route("/{path:path}", page)]


@pytest.mark.anyio
async def test_health_is_reused_for_a_few_seconds_then_checked_again_without_waiting_on_a_busy_store(
    gate: GateFactory, client_for: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    clock = SteppedClock(NOW)
    path = tmp_path / "health.sqlite3"
    middleware = gate(ROUTES, admin_token=TOKEN, clock=clock, store=f"sqlite:///{path}", statistics=False)
    client = client_for(middleware)
    first = await client.get("/_cookie_gate/admin/health.json", headers=AUTHORISED)
    assert first.status_code == 200 and first.json()["store_reachable"] is True
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # another process writing: the file is locked
    try:
        clock.advance(HEALTH_CACHE_SECONDS / 2)
        with anyio.fail_after(5):  # the answer of a moment ago, not a new transaction
            again = await client.get("/_cookie_gate/admin/health.json", headers=AUTHORISED)
        assert again.status_code == 200 and again.json() == first.json()
        clock.advance(HEALTH_CACHE_SECONDS)
        started = time.monotonic()
        with anyio.fail_after(20):
            busy = await client.get("/_cookie_gate/admin/health.json", headers=AUTHORISED)
        assert time.monotonic() - started < 10  # far below SQLite's 30 s wait for a write
        assert busy.status_code == 503 and "locked" in busy.json()["store_problem"]
    finally:
        other_process.rollback()
        other_process.close()
    clock.advance(HEALTH_CACHE_SECONDS)
    back = await client.get("/_cookie_gate/admin/health.json", headers=AUTHORISED)
    assert back.status_code == 200  # and the store's own writes wait as long as before


@pytest.mark.anyio
async def test_health_does_not_wait_for_a_thread_that_holds_the_store(
    gate: GateFactory, client_for: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    clock = SteppedClock(NOW)
    path = tmp_path / "stuck.sqlite3"
    middleware = gate(ROUTES, admin_token=TOKEN, clock=clock, store=f"sqlite:///{path}", statistics=False)
    client = client_for(middleware)
    store = middleware.store
    store.probe()  # opened and migrated before another process takes the lock
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    stuck = threading.Thread(target=store.probe)  # a writer thread stuck in the store, waiting for the file
    try:
        stuck.start()
        started = time.monotonic()
        while not store.busy and time.monotonic() - started < 5:
            await anyio.sleep(0.001)
        assert store.busy
        with anyio.fail_after(20):
            busy = await client.get("/_cookie_gate/admin/health.json", headers=AUTHORISED)
    finally:
        other_process.rollback()
        other_process.close()
        stuck.join(40)
    assert busy.status_code == 503 and "busy" in busy.json()["store_problem"]
