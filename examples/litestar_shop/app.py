"""Litestar behind cookie_gate: `scripts/example litestar`.

The gate wraps the Litestar application (its supported placement): as app-level
`DefineMiddleware` it would run after routing, once per route, and refuses to start.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import Cookie
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.response import Response

from cookie_gate import CookieGateMiddleware


@get("/", sync_to_thread=False)
def shop(request: Request[Any, Any, Any]) -> Response[str]:
    request.set_session({"cart": 0})
    allowed = "allowed" if request.state.consent.allows("analytics") else "refused"
    page = f"<!doctype html><html><body><h1>Litestar shop</h1><p>Analytics: {allowed}.</p></body></html>"
    return Response(page, media_type="text/html", cookies=[Cookie(key="_ga", value="GA1.1.example")])


shop_app = Litestar([shop], middleware=[ServerSideSessionConfig().middleware])
app = CookieGateMiddleware(shop_app)  # secret and store from COOKIE_GATE_SECRET_KEY / COOKIE_GATE_STORE
