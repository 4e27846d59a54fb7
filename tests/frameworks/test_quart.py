"""Quart behind the gate: its session kept, trackers stripped, an exact Content-Length, the decision on `g`."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

quart = pytest.importorskip("quart")

from quart import Quart, g, make_response, render_template_string, session  # noqa: E402
from quart.typing import ResponseReturnValue  # noqa: E402

from cookie_gate.integrations.quart import init_app  # noqa: E402
from tests.conftest import GateFactory  # noqa: E402
from tests.frameworks.support import (  # noqa: E402
    assert_banner_with_exact_length,
    assert_decision_in_idiom,
    assert_own_cookies_kept_and_trackers_stripped,
    decide,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
PAGE = """<!doctype html><html><head><title>Shop</title></head><body>
<h1>Shop</h1>{% if consent_allows("analytics") %}<p id="analytics-on">analytics</p>{% endif %}
<p>{{ "row " * 2000 }}</p></body></html>"""


def quart_app() -> Quart:
    app = Quart(__name__)
    app.secret_key = "quart-test-secret-0123456789"
    init_app(app)

    @app.get("/")
    async def index() -> ResponseReturnValue:
        session["cart"] = "3 items"
        response = await make_response(await render_template_string(PAGE))
        response.set_cookie("remember_token", "u1", httponly=True)
        for name in ("_ga", "_gid", "_fbp"):
            response.set_cookie(name, "tracker-value")
        return response

    @app.get("/decision")
    async def decision() -> ResponseReturnValue:
        return {"decided": g.consent.decided, "analytics": g.consent.allows("analytics")}

    return app


async def test_quart_keeps_its_session_and_strips_trackers(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(quart_app()))
    await assert_own_cookies_kept_and_trackers_stripped(client, own={"session", "remember_token"})


async def test_quart_pages_keep_an_exact_content_length(gate: GateFactory, client_for: Clients) -> None:
    """Quart sends the body with more_body=True and then an empty message; the length must survive."""
    await assert_banner_with_exact_length(client_for(gate(quart_app())))


async def test_quart_reads_the_decision_on_g_and_in_templates(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(quart_app()))
    await assert_decision_in_idiom(client)
    client.cookies.clear()
    assert 'id="analytics-on"' not in (await client.get("/")).text
    analytics = await decide(client, ["analytics"])
    assert 'id="analytics-on"' in (await client.get("/", headers={"cookie": analytics})).text


async def test_quart_without_the_gate_says_how_to_mount_it(client_for: Clients) -> None:
    app = quart_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError, match="CookieGateMiddleware"):
        await client_for(app).get("/decision")
