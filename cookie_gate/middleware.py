"""`CookieGateMiddleware`: the pure-ASGI gateway in front of the app.

One request, in order: the gateway's own endpoints are answered by `endpoints.py`;
any other request is read once (`request.RequestReader`: what the Cookie header
means, cached per distinct header; the app gets a Cookie header without refused
cookies and the decision in `scope["state"]["consent"]`), and its response is handed
to a `responder.Responder`, which drops refused `Set-Cookie`s, expires refused
cookies, emits the page view and streams HTML through the page rewriter. The parts
are built once, from the settings, by `parts.GateParts`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Unpack

from cookie_gate.asgi import ASGIApp, Message, Receive, Scope, Send
from cookie_gate.clock import Clock
from cookie_gate.config import Config, ConfigError, Options, load_config
from cookie_gate.page import MAX_HELD_BODY
from cookie_gate.parts import GateParts
from cookie_gate.placement import BannerPlacement
from cookie_gate.responder import Responder

__all__ = ["GATE_STATE_KEY", "MAX_HELD_BODY", "CookieGateMiddleware"]

#: Where the gate leaves a `BannerPlacement` in `scope["state"]` when the banner is placed by a
#: template (`inject_banner = false`), so a template call can render it (`cookie_gate.integrations`).
GATE_STATE_KEY = "cookie_gate"


class CookieGateMiddleware:
    """Enforces each visitor's cookie choice on every HTTP request and websocket handshake.

    Configuration comes from keyword arguments, then the environment, then the
    `config` TOML file (or `Config` object); it is validated here, once, and every
    mistake raises `ConfigError` naming the key. `clock` is the wall clock every part
    reads (`time.time` unless a test fixes it). `app` is any ASGI application; it is
    typed loosely because Quart and Litestar type theirs with their own scope classes.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        secret_key: str | Sequence[str] | None = None,
        *,
        config: str | os.PathLike[str] | Config | Mapping[str, Any] | None = None,
        clock: Clock = time.time,
        **options: Unpack[Options],
    ) -> None:
        _refuse_inner_placement(app)
        self.app: ASGIApp = app
        self.config = settings = load_config(config, secret_key=secret_key, **options)
        self.parts = parts = GateParts.build(settings, clock)
        # The parts an operator or a test looks at.
        self.classifier = parts.classifier
        self.store = parts.store
        self.statistics = parts.statistics
        self.retention = parts.retention
        self.withdrawals = parts.withdrawals
        self.visits = parts.visits
        self.endpoints = parts.endpoints
        self._requests = parts.requests
        self._responses = parts.responses
        self._banner = parts.banner
        self._mount = settings.mount_path
        self._inject = settings.inject_banner

    @property
    def overrun_pages(self) -> int:
        """Pages whose app sent more body than its own Content-Length after the page was complete."""
        return self._responses.overrun_pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            retention = self.retention
            if retention is not None and retention.thread is None:  # lifespan never came, or a forked worker
                retention.start()
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            mount = self._mount
            if path.startswith(mount) and (len(path) == len(mount) or path[len(mount)] == "/"):
                await self.endpoints(scope, receive, send, path[len(mount) :])
                return
            await self.app(scope, receive, self._responder(scope, root, send).send)
        elif kind == "websocket":
            await self.app(scope, receive, self._websocket_send(scope, send))
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
        else:
            await self.app(scope, receive, send)

    def _responder(self, scope: Scope, root: str, send: Send) -> Responder:
        request = self._requests.enter(scope, root)
        if not self._inject:
            state = scope["state"]
            query = scope.get("query_string", b"")
            placement = BannerPlacement(
                self._banner, state, request.headers.get(b"accept-language"), root, scope["path"], query
            )
            state[GATE_STATE_KEY] = placement
        return Responder(self._responses, scope, request, send)

    def _lifespan_send(self, send: Send) -> Send:
        """Start the parts once the app has started (`GateParts.startup`); stop them before it says it stopped.

        Lifespan may never come (mounted sub-apps, Django, some servers): the writer also
        starts by itself on the first page view, and is stopped at interpreter exit.
        """

        async def lifespan_send(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self.parts.startup()
            elif kind == "lifespan.shutdown.complete":
                await self.parts.shutdown()
            await send(message)

        return lifespan_send

    def _websocket_send(self, scope: Scope, send: Send) -> Send:
        """The handshake's `Set-Cookie`s are filtered like a response's; nothing else of a websocket is."""
        request = self._requests.enter(scope)
        refuses = self._responses.refuses

        async def websocket_send(message: Message) -> None:
            if message["type"] == "websocket.accept" and message.get("headers"):
                kept = [(n, v) for n, v in message["headers"] if not refuses(n, v, request)]
                message = {**message, "headers": kept}
            await send(message)

        return websocket_send


def _refuse_inner_placement(app: object) -> None:
    """Refuse, at start-up, to be built inside a framework's routing rather than around the app.

    Litestar builds app-level `DefineMiddleware` once per route, after routing: the
    gate's own endpoints would be 404s, it would never see lifespan, and Litestar's
    cookie cache would already hold the refused cookies. What it wraps then is one of
    Litestar's internal layers rather than the `Litestar` application.
    """
    kind = type(app)
    if kind.__module__.partition(".")[0] == "litestar" and kind.__name__ != "Litestar":
        raise ConfigError(
            "app",
            f"CookieGateMiddleware is wrapping Litestar's {kind.__name__}, not the application: as "
            "DefineMiddleware it runs after routing, once per route, so /_cookie_gate/* is a 404 and refused "
            "cookies reach handlers. Wrap the application instead: app = CookieGateMiddleware(Litestar(...), ...)",
        )
