"""A small shop behind cookie_gate: the app sets trackers freely, the gateway decides.

Run it with `scripts/demo`. Every page shows what the app itself saw, so the effect
of accepting or refusing is visible: refused cookies never reach the app and never
reach the browser.

The shop tries both ways trackers arrive: its server sets `_ga` (analytics) and `_fbp`
(marketing) on every page, and tagged scripts in the page set `_ga_js` (analytics) and
`_fbc` (marketing) from JavaScript. The gateway drops the first kind from the response
and neutralises the second kind until the visitor accepts the category; banner.js then
starts those scripts without a reload.

The page runs under a strict Content-Security-Policy with a per-request nonce (no inline
script or style without it), which the gateway puts on everything it adds.

Environment: `COOKIE_GATE_SECRET_KEY` and `COOKIE_GATE_STORE` as for any gated app, and
`COOKIE_GATE_DEMO_MODE=opt-out` for the US-style mode (Global Privacy Control honoured).
"""

from __future__ import annotations

import os
import secrets
from html import escape
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import ASGIApp, Message, Receive, Scope, Send

CONFIG = Path(__file__).with_name("cookie-gate.toml")
NONCE_KEY = "csp_nonce"

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Demo shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">:root{{color-scheme:light dark}}
body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem 16rem}}
code{{background:#eceef2;color:#1b1c20;padding:0 .2em}} nav a{{margin-inline-end:.75rem}}
iframe{{display:block;border:1px solid #c6c8cf;margin:1rem 0}}
@media (prefers-color-scheme: dark){{html{{background:#121316;color:#e6e7ea}} a{{color:#9ec1ff}}}}</style>
<script nonce="{nonce}" data-cookie-category="analytics">
document.cookie = "_ga_js=GA1.1.js-set; path=/; max-age=34560000; samesite=lax";
</script>
<script nonce="{nonce}" data-cookie-category="analytics" src="/demo/analytics.js"></script>
<script nonce="{nonce}" type="module" data-cookie-category="marketing">
document.cookie = "_fbc=fb.1.js-set; path=/; max-age=7776000; samesite=lax";
</script>
</head>
<body><header><nav aria-label="Site"><a href="/">Shop</a><a href="/privacy">Privacy</a>
<a href="/api/cart">Cart (JSON)</a><a href="/privacy#cookies" data-cookie-gate-open>Cookie settings</a></nav></header>
<main><h1>{title}</h1>{content}</main></body></html>"""

ANALYTICS_JS = b'window.demoAnalytics = "loaded";\n'
EMBED_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180" viewBox="0 0 320 180">'
    b'<rect width="320" height="180" fill="#24292f"/><path d="M140 65v50l40-25z" fill="#fff"/></svg>'
)


class ContentSecurityPolicy:
    """A strict CSP with a fresh nonce per request, left where the gateway looks for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})[NONCE_KEY] = nonce
        policy = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
            "img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
        ).encode("ascii")

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"content-security-policy", policy)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)


def page(request: Request, title: str, content: str) -> HTMLResponse:
    nonce = getattr(request.state, NONCE_KEY, "")
    return HTMLResponse(LAYOUT.format(title=escape(title), content=content, nonce=escape(nonce)))


def what_the_app_saw(request: Request) -> str:
    consent = request.state.consent
    seen = ", ".join(f"<code>{escape(name)}</code>" for name in sorted(request.cookies)) or "none"
    state = "decided" if consent.decided else "not decided yet"
    allowed = ", ".join(sorted(consent.categories))
    return f"<p>Your choice: {state}; allowed: {allowed}.</p><p>Cookies the app received: {seen}.</p>"


async def shop(request: Request) -> Response:
    response = page(
        request,
        "Shop",
        "<p>This page sets a cart cookie (necessary), a language preference, Google Analytics' "
        "<code>_ga</code> and Facebook's <code>_fbp</code> from the server, and <code>_ga_js</code> and "
        "<code>_fbc</code> from scripts in the page, whatever you chose. The gateway lets through only what "
        "you accepted.</p>"
        '<iframe data-cookie-category="marketing" src="/demo/embed.svg" width="320" height="180" '
        'title="Partner video (marketing)"></iframe>' + what_the_app_saw(request),
    )
    response.set_cookie("cart_id", "c-1001", httponly=True, samesite="lax")
    response.set_cookie("preferred_lang", "en", samesite="lax")
    response.set_cookie("_ga", "GA1.1.1234567890.1764547200", max_age=60 * 60 * 24 * 400)
    response.set_cookie("_fbp", "fb.1.1764547200000.987654321", max_age=60 * 60 * 24 * 90)
    return response


async def privacy(request: Request) -> Response:
    return page(
        request,
        "Privacy",
        "<h2 id='cookies'>Cookies</h2>"
        "<p>See <a href='/_cookie_gate/consent'>the record this site holds about your choice</a>.</p>"
        "<form method='post' action='/_cookie_gate/consent'>"
        "<input type='hidden' name='next' value='/privacy'>"
        "<button name='action' value='withdraw'>Withdraw my consent</button></form>" + what_the_app_saw(request),
    )


async def cart(request: Request) -> Response:
    return JSONResponse({"items": [], "cookies_seen": sorted(request.cookies)})


async def analytics_script(request: Request) -> Response:
    return Response(ANALYTICS_JS, media_type="text/javascript")


async def embed(request: Request) -> Response:
    return Response(EMBED_SVG, media_type="image/svg+xml")


def create_app(mode: str | None = None, **options: Any) -> Starlette:
    """The demo shop; `mode` defaults to `COOKIE_GATE_DEMO_MODE` (else the config's opt-in).

    Other keyword arguments go to `CookieGateMiddleware` (they override the TOML file).
    """
    mode = mode or os.environ.get("COOKIE_GATE_DEMO_MODE") or None
    if mode is not None:
        options["mode"] = mode
    options.setdefault("google_consent_mode", True)
    return Starlette(
        routes=[
            Route("/", shop),
            Route("/privacy", privacy),
            Route("/api/cart", cart),
            Route("/demo/analytics.js", analytics_script),
            Route("/demo/embed.svg", embed),
        ],
        middleware=[
            Middleware(ContentSecurityPolicy),
            Middleware(CookieGateMiddleware, config=CONFIG, csp_nonce_key=NONCE_KEY, **options),
        ],
    )


app = create_app()
