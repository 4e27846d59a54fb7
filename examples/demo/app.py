"""A small shop behind cookie_gate: the app sets trackers freely, the gateway decides.

Run it with `scripts/demo`. Every page shows what the app itself saw, so the effect
of accepting or refusing is visible: refused cookies never reach the app and never
reach the browser.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware

CONFIG = Path(__file__).with_name("cookie-gate.toml")

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Demo shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem 14rem}}
code{{background:#f2f2f2;padding:0 .2em}}</style></head>
<body><nav><a href="/">Shop</a> | <a href="/privacy">Privacy</a> | <a href="/api/cart">Cart (JSON)</a></nav>
<h1>{title}</h1>{content}</body></html>"""


def page(title: str, content: str) -> HTMLResponse:
    return HTMLResponse(LAYOUT.format(title=escape(title), content=content))


def what_the_app_saw(request: Request) -> str:
    consent = request.state.consent
    seen = ", ".join(f"<code>{escape(name)}</code>" for name in sorted(request.cookies)) or "none"
    state = "decided" if consent.decided else "not decided yet"
    allowed = ", ".join(sorted(consent.categories))
    return f"<p>Your choice: {state}; allowed: {allowed}.</p><p>Cookies the app received: {seen}.</p>"


async def shop(request: Request) -> Response:
    response = page(
        "Shop",
        "<p>This page sets a cart cookie (necessary), a language preference, Google Analytics' "
        "<code>_ga</code> and Facebook's <code>_fbp</code>, whatever you chose. The gateway lets through "
        "only what you accepted.</p>" + what_the_app_saw(request),
    )
    response.set_cookie("cart_id", "c-1001", httponly=True, samesite="lax")
    response.set_cookie("preferred_lang", "en", samesite="lax")
    response.set_cookie("_ga", "GA1.1.1234567890.1764547200", max_age=60 * 60 * 24 * 400)
    response.set_cookie("_fbp", "fb.1.1764547200000.987654321", max_age=60 * 60 * 24 * 90)
    return response


async def privacy(request: Request) -> Response:
    return page(
        "Privacy",
        "<p>See <a href='/_cookie_gate/consent'>the record this site holds about your choice</a>.</p>"
        "<form method='post' action='/_cookie_gate/consent'>"
        "<input type='hidden' name='next' value='/privacy'>"
        "<button name='action' value='withdraw'>Withdraw my consent</button></form>" + what_the_app_saw(request),
    )


async def cart(request: Request) -> Response:
    return JSONResponse({"items": [], "cookies_seen": sorted(request.cookies)})


app = Starlette(
    routes=[Route("/", shop), Route("/privacy", privacy), Route("/api/cart", cart)],
    middleware=[Middleware(CookieGateMiddleware, config=CONFIG)],
)
