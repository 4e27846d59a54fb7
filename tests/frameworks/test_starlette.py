"""Starlette behind the gate, mounted with `Middleware(...)`: sessions, Jinja2 globals, explicit banner placement."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("jinja2")

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.templating import Jinja2Templates

from cookie_gate import CookieGateMiddleware
from cookie_gate.integrations.jinja2 import install
from tests.clocks import suite_clock
from tests.conftest import SECRET
from tests.frameworks.support import (
    MARKER,
    assert_banner_with_exact_length,
    assert_decision_in_idiom,
    assert_own_cookies_kept_and_trackers_stripped,
    close_gate,
    decide,
    find_gate,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
PAGE = """<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>
{% if consent_allows("analytics") %}<p id="analytics-on">analytics</p>{% endif %}
<p>{{ "row " * 5000 }}</p><footer>{{ cookie_gate_banner() }}</footer></body></html>"""


def starlette_app(tmp_path: Path, store_url: str, **options: Any) -> Starlette:
    (tmp_path / "page.html").write_text(PAGE)
    templates = Jinja2Templates(directory=str(tmp_path))
    install(templates.env)

    def page(request: Request) -> Response:
        request.session["cart"] = "3 items"
        response = templates.TemplateResponse(request, "page.html")
        response.set_cookie("csrftoken", "t0ken", samesite="strict")
        for name in ("_ga", "_gid", "_fbp"):
            response.set_cookie(name, "tracker-value")
        return response

    def decision(request: Request) -> Response:
        consent = request.state.consent
        return JSONResponse({"decided": consent.decided, "analytics": consent.allows("analytics")})

    return Starlette(
        routes=[Route("/", page), Route("/decision", decision)],
        middleware=[
            # Outermost first: GZip compresses the page the gate has rewritten; the gate sees every request.
            Middleware(GZipMiddleware, minimum_size=500),
            Middleware(CookieGateMiddleware, secret_key=SECRET, store=store_url, clock=suite_clock, **options),
            Middleware(SessionMiddleware, secret_key="starlette-session-secret"),
        ],
    )


@pytest.fixture
async def starlette_client(
    tmp_path: Path, store_url: str, client_for: Clients
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    apps: list[Starlette] = []

    def factory(**options: Any) -> httpx.AsyncClient:
        apps.append(starlette_app(tmp_path, store_url, **options))
        return client_for(apps[-1])

    yield factory
    for app in apps:
        if app.middleware_stack is not None:
            close_gate(find_gate(app.middleware_stack))


async def test_starlette_keeps_its_session_and_strips_trackers(starlette_client: Clients) -> None:
    await assert_own_cookies_kept_and_trackers_stripped(starlette_client(), own={"session", "csrftoken"})


async def test_starlette_pages_get_the_banner_with_an_exact_length(starlette_client: Clients) -> None:
    await assert_banner_with_exact_length(starlette_client())


async def test_starlette_reads_request_state_and_the_jinja2_global(starlette_client: Clients) -> None:
    client = starlette_client()
    await assert_decision_in_idiom(client)
    analytics = await decide(client, ["analytics"])
    assert 'id="analytics-on"' in (await client.get("/", headers={"cookie": analytics})).text


async def test_the_template_places_the_banner_when_injection_is_off(starlette_client: Clients) -> None:
    placed = (await starlette_client(inject_banner=False).get("/")).text
    assert placed.count(MARKER) == 1
    footer = placed[placed.index("<footer>") : placed.index("</footer>")]
    assert MARKER in footer
    injected = (await starlette_client().get("/")).text
    assert injected.count(MARKER) == 1
    assert MARKER not in injected[injected.index("<footer>") : injected.index("</footer>")]


async def test_gzip_outside_the_gate_compresses_the_rewritten_page(starlette_client: Clients) -> None:
    response = await starlette_client().get("/", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert MARKER in response.text


@pytest.mark.parametrize("inject_banner", [True, False])
async def test_a_page_under_a_mount_points_the_banner_at_the_gates_own_endpoints(
    tmp_path: Path, store_url: str, client_for: Clients, inject_banner: bool
) -> None:
    """`Mount` rewrites the scope's root_path on its way in; the gate's endpoints stay where the gate is."""
    (tmp_path / "page.html").write_text(PAGE)
    templates = Jinja2Templates(directory=str(tmp_path))
    install(templates.env)

    def page(request: Request) -> Response:
        return templates.TemplateResponse(request, "page.html")

    shop = Starlette(routes=[Route("/", page)])
    app = CookieGateMiddleware(
        Starlette(routes=[Mount("/shop", app=shop)]),
        secret_key=SECRET,
        store=store_url,
        clock=suite_clock,
        inject_banner=inject_banner,
    )
    try:
        client = client_for(app)
        html = (await client.get("/shop/")).text
        assert MARKER in html
        actions = re.findall(r'<form[^>]* action="([^"]*)"', html)
        assert actions and set(actions) == {"/_cookie_gate/consent"}
        assert '<script defer src="/_cookie_gate/banner.js"' in html
        assert 'name="next" value="/shop/"' in html
        origin = {"origin": str(client.base_url).rstrip("/")}
        answer = await client.post(actions[0], data={"action": "reject_all", "next": "/shop/"}, headers=origin)
        assert answer.status_code == 303 and answer.headers["location"] == "/shop/"
    finally:
        close_gate(app)
