"""Shared fixtures: a gated Starlette app factory, an httpx client and a raw ASGI harness.

httpx's ASGITransport buffers whole responses, so anything about message order or
streaming goes through `run_asgi`, which records every message the app sends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import ASGIApp, Message, Scope
from tests.clocks import suite_clock

SECRET = "test-secret-key-0123456789"
HOST = "www.shop.example.co.kr"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cookie_gate.sqlite3'}"


POSTGRES_URL = os.environ.get("COOKIE_GATE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@dataclass(frozen=True)
class Postgres:
    url: str  # connects straight into the private schema
    schema: str


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A private schema on the real PostgreSQL server, dropped afterwards.

    Never a mock. Without a server the test skips on a laptop, but in CI (the `CI`
    environment variable is set) a missing server is a failure.
    """
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs PostgreSQL at {POSTGRES_URL}: {error}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL} (set COOKIE_GATE_TEST_POSTGRES): {error}")
    schema = f"cookie_gate_test_{secrets.token_hex(4)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield Postgres(f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}", schema)
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()


GateFactory = Callable[..., CookieGateMiddleware]


@pytest.fixture
def gate(store_url: str) -> Iterator[GateFactory]:
    """Build `CookieGateMiddleware` around an app (or Starlette routes) with test defaults (the suite's clock)."""
    built: list[CookieGateMiddleware] = []

    def factory(app: ASGIApp | Sequence[BaseRoute], **options: Any) -> CookieGateMiddleware:
        inner: ASGIApp = Starlette(routes=list(app)) if isinstance(app, Sequence) else app
        options.setdefault("secret_key", SECRET)
        options.setdefault("store", store_url)
        options.setdefault("clock", suite_clock)
        built.append(CookieGateMiddleware(inner, **options))
        return built[-1]

    yield factory
    for middleware in built:
        if middleware.statistics is not None:
            middleware.statistics.writer.stop()
        if middleware.retention is not None:
            middleware.retention.stop()
        middleware.store.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def factory(app: ASGIApp, base_url: str = f"http://{HOST}") -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


def http_scope(
    path: str = "/", *, method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = (), **extra: Any
) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", HOST.encode()), *headers],
        "client": ("203.0.113.9", 50000),
        "server": (HOST, 80),
    }
    scope.update(extra)
    return scope


async def run_asgi(app: ASGIApp, scope: Scope, body: bytes = b"") -> list[Message]:
    """Call `app` once and return every message it sent, in order."""
    sent: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if requested:
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [value.partition("=")[0] for value in set_cookies(response)]


async def consent_cookie(client: httpx.AsyncClient, accept: list[str] | str) -> str:
    """Decide through the real endpoint and return the `cookie_gate=...` pair to send back."""
    response = await client.post("/_cookie_gate/consent", json={"accept": accept})
    assert response.status_code == 200, response.text
    return kept_cookie(response)


def kept_cookie(response: httpx.Response, name: str = "cookie_gate") -> str:
    """The `name=value` pair a browser keeps: the last Set-Cookie of that name (deletions come first)."""
    for value in reversed(set_cookies(response)):
        if value.startswith(f"{name}="):
            return value.partition(";")[0]
    raise AssertionError(f"no {name} cookie set")
