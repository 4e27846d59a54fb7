"""FastAPI behind the gate, mounted with `add_middleware`: the `ConsentDep` dependency, OpenAPI untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse
from fastapi.security import OAuth2PasswordBearer

from cookie_gate import CookieGateMiddleware
from cookie_gate.integrations.fastapi import ConsentDep
from tests.clocks import suite_clock
from tests.conftest import SECRET
from tests.frameworks.support import (
    assert_banner_with_exact_length,
    assert_decision_in_idiom,
    assert_own_cookies_kept_and_trackers_stripped,
    close_gate,
    find_gate,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
PAGE = (
    "<!doctype html><html><head><title>Shop</title></head><body><h1>Shop</h1>" + "<p>row</p>" * 500 + "</body></html>"
)


def fastapi_app(store_url: str, *, gated: bool = True) -> FastAPI:
    app = FastAPI()
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)

    @app.get("/", response_class=HTMLResponse)
    def index(response: Response) -> str:
        response.set_cookie("access_token", "bearer-abc", httponly=True)
        response.set_cookie("csrftoken", "t0ken")
        for name in ("_ga", "_gid", "_fbp"):
            response.set_cookie(name, "tracker-value")
        return PAGE

    @app.get("/decision")
    def decision(consent: ConsentDep) -> dict[str, bool]:
        return {"decided": consent.decided, "analytics": consent.allows("analytics")}

    @app.get("/items/{item_id}")
    def item(item_id: int, consent: ConsentDep, token: str | None = None) -> dict[str, Any]:
        return {"item": item_id, "analytics": consent.allows("analytics"), "oauth": oauth2 is not None}

    if gated:
        app.add_middleware(CookieGateMiddleware, secret_key=SECRET, store=store_url, clock=suite_clock)
    return app


@pytest.fixture
async def fastapi_client(store_url: str, client_for: Clients) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    apps: list[FastAPI] = []

    def factory() -> httpx.AsyncClient:
        apps.append(fastapi_app(store_url))
        return client_for(apps[-1])

    yield factory
    for app in apps:
        if app.middleware_stack is not None:
            close_gate(find_gate(app.middleware_stack))


async def test_fastapi_keeps_its_own_cookies_and_strips_trackers(fastapi_client: Clients) -> None:
    await assert_own_cookies_kept_and_trackers_stripped(fastapi_client(), own={"access_token", "csrftoken"})


async def test_fastapi_pages_get_the_banner_with_an_exact_length(fastapi_client: Clients) -> None:
    await assert_banner_with_exact_length(fastapi_client())


async def test_fastapi_reads_the_decision_through_its_dependency(fastapi_client: Clients) -> None:
    await assert_decision_in_idiom(fastapi_client())


async def test_the_dependency_leaves_the_openapi_schema_as_it_was(fastapi_client: Clients, store_url: str) -> None:
    schema = (await fastapi_client().get("/openapi.json")).json()
    bare = fastapi_app(store_url, gated=False).openapi()
    assert schema == bare
    parameters = {p["name"] for p in schema["paths"]["/items/{item_id}"]["get"]["parameters"]}
    assert parameters == {"item_id", "token"}


async def test_under_a_path_prefix_the_banner_and_endpoints_follow_root_path(store_url: str) -> None:
    """Behind a proxy that strips /shop (uvicorn --root-path /shop), every gateway URL carries the prefix."""
    app = fastapi_app(store_url)
    transport = httpx.ASGITransport(app=app, root_path="/shop")
    async with httpx.AsyncClient(transport=transport, base_url="http://www.shop.example.co.kr") as client:
        page = await client.get("/shop/", headers={"accept-encoding": "identity"})
        assert "/shop/_cookie_gate/banner.js" in page.text
        assert "/_cookie_gate/" not in page.text.replace("/shop/_cookie_gate/", ""), "a gateway URL without the prefix"
        decided = await client.post("/shop/_cookie_gate/consent", json={"accept": []})
        assert decided.status_code == 200
        asset = await client.get("/shop/_cookie_gate/banner.js")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    close_gate(find_gate(app.middleware_stack))
