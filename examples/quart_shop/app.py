"""Quart behind cookie_gate: `scripts/example quart`; the decision on `g.consent` and in templates."""

from __future__ import annotations

from quart import Quart, g, render_template_string, session
from quart.typing import ResponseReturnValue

from cookie_gate import CookieGateMiddleware
from cookie_gate.integrations.quart import init_app

PAGE = """<!doctype html><html><body><h1>Quart shop</h1>
<p>Analytics: {% if consent_allows("analytics") %}allowed{% else %}refused{% endif %}.</p></body></html>"""

shop_app = Quart(__name__)
shop_app.secret_key = "example-only-not-secret-quart-key"
init_app(shop_app)


@shop_app.get("/")
async def shop() -> ResponseReturnValue:
    session["cart"] = 0
    response = await shop_app.make_response(await render_template_string(PAGE))
    response.set_cookie("_ga", "GA1.1.example", max_age=34560000)
    return response


@shop_app.get("/api/consent")
async def decision() -> ResponseReturnValue:
    return {"decided": g.consent.decided, "categories": sorted(g.consent.categories)}


app = CookieGateMiddleware(shop_app)  # serve this, not shop_app; secret and store from the environment
