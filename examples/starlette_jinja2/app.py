"""Starlette with Jinja2 behind cookie_gate: `scripts/example starlette`.

Automatic injection is off: the template places the banner (or, once decided, the
settings control) with `{{ cookie_gate_banner() }}` and asks `consent_allows(...)`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from cookie_gate import CookieGateMiddleware
from cookie_gate.integrations.jinja2 import install

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
install(templates.env)


def shop(request: Request) -> Response:
    request.session["cart"] = 0
    response = templates.TemplateResponse(request, "shop.html")
    response.set_cookie("_ga", "GA1.1.example", max_age=34560000)
    return response


app = Starlette(
    routes=[Route("/", shop)],
    middleware=[
        Middleware(GZipMiddleware),  # outside the gate: it compresses the page the gate has rewritten
        Middleware(CookieGateMiddleware, inject_banner=False),  # the template places the banner
        Middleware(SessionMiddleware, secret_key="example-only-not-secret-session-key"),
    ],
)
