"""Litestar behind the gate, wrapped around the application (its supported placement).

App-level `DefineMiddleware` runs after routing, once per route; the gate refuses that
placement at start-up with an error that says what to do instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("litestar")

from litestar import Litestar, Request, get, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.response import Response

from cookie_gate import ConfigError, CookieGateMiddleware
from tests.clocks import suite_clock
from tests.conftest import SECRET, set_cookie_names
from tests.frameworks.support import (
    assert_banner_with_exact_length,
    assert_decision_in_idiom,
    assert_own_cookies_kept_and_trackers_stripped,
    close_gate,
    decide,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
PAGE = (
    "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>" + "<p>row</p>" * 500 + "</body></html>"
)
TRACKERS = [Cookie(key=name, value="tracker-value") for name in ("_ga", "_gid", "_fbp")]


@get("/", sync_to_thread=False)
def index(request: Request[Any, Any, Any]) -> Response[str]:
    request.set_session({"cart": "3 items"})
    return Response(PAGE, media_type="text/html", cookies=TRACKERS)


@get("/decision", sync_to_thread=False)
def decision(request: Request[Any, Any, Any]) -> dict[str, bool]:
    consent = request.state.consent
    return {"decided": consent.decided, "analytics": consent.allows("analytics")}


@post("/cart", sync_to_thread=False)
def add_to_cart(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"cart": str(request.session.get("cart"))}


def litestar_app(*middleware: DefineMiddleware) -> Litestar:
    session = ServerSideSessionConfig()
    return Litestar(
        [index, decision, add_to_cart],
        middleware=[session.middleware, *middleware],
        csrf_config=CSRFConfig(secret="litestar-csrf-secret-0123456789"),
        logging_config=None,  # Litestar would otherwise configure logging for the whole test process
    )


@pytest.fixture
async def litestar_gate(store_url: str) -> AsyncIterator[Callable[..., CookieGateMiddleware]]:
    built: list[CookieGateMiddleware] = []

    def factory() -> CookieGateMiddleware:
        built.append(CookieGateMiddleware(litestar_app(), SECRET, store=store_url, clock=suite_clock))
        return built[-1]

    yield factory
    for gate in built:
        close_gate(gate)


async def test_litestar_keeps_its_session_and_csrf_cookies_and_strips_trackers(
    litestar_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    await assert_own_cookies_kept_and_trackers_stripped(client_for(litestar_gate()), own={"session", "csrftoken"})


async def test_litestar_csrf_post_works_for_a_visitor_who_rejected_all(
    litestar_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    client = client_for(litestar_gate())
    rejected = await decide(client, [])
    page = await client.get("/", headers={"cookie": rejected})
    assert {"session", "csrftoken"} <= set(set_cookie_names(page))
    token = page.cookies["csrftoken"]
    cookies = f"{rejected}; csrftoken={token}; session={page.cookies['session']}"
    posted = await client.post("/cart", headers={"cookie": cookies, "x-csrftoken": token})
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"cart": "3 items"}


async def test_litestar_pages_get_the_banner_with_an_exact_length(
    litestar_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    await assert_banner_with_exact_length(client_for(litestar_gate()))


async def test_litestar_reads_request_state_consent(
    litestar_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    await assert_decision_in_idiom(client_for(litestar_gate()))


def test_litestar_define_middleware_placement_fails_at_start_up(store_url: str) -> None:
    middleware: Any = CookieGateMiddleware
    gate = DefineMiddleware(middleware, secret_key=SECRET, store=store_url, clock=suite_clock)
    with pytest.raises(ConfigError, match=r"DefineMiddleware.*CookieGateMiddleware\(Litestar"):
        litestar_app(gate)
