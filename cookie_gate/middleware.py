"""`CookieGateMiddleware`: the pure-ASGI gateway in front of the app.

One request, in order: route the gateway's own endpoints; resolve the visitor's
consent from the `Cookie` header (cached); hand the app a `Cookie` header without
refused cookies and the decision in `scope["state"]["consent"]`; on the way out drop
`Set-Cookie`s of refused categories, expire refused cookies the browser still holds,
and stream the banner into HTML for undecided visitors. No message is ever held.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from publicsuffixlist import PublicSuffixList

from cookie_gate.asgi import ASGIApp, Message, RawHeaders, Receive, Scope, Send, header
from cookie_gate.banner import BannerRenderer, preferred_locale
from cookie_gate.classify import CookieClassifier
from cookie_gate.config import Config, Mode, UnknownCookies, load_config
from cookie_gate.consent import ConsentCodec
from cookie_gate.cookies import DomainVariants, is_deletion, request_host, set_cookie_name
from cookie_gate.endpoints import Endpoints
from cookie_gate.inject import Injector, is_injectable, raised_content_length, weak_etag
from cookie_gate.visit import Visit, VisitResolver

_UNBUFFERABLE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopy")


class CookieGateMiddleware:
    """Enforces each visitor's cookie choice on every HTTP request and websocket handshake.

    Configuration comes from keyword arguments, then the environment, then the
    `config` TOML file (or `Config` object); it is validated here, once, and every
    mistake raises `ConfigError` naming the key.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Sequence[str] | None = None,
        *,
        config: str | os.PathLike[str] | Config | Mapping[str, Any] | None = None,
        store: str | None = None,
        admin_token: str | None = None,
        mode: Mode | None = None,
        policy_version: str | None = None,
        consent_lifetime_days: int | None = None,
        categories: Mapping[str, Any] | None = None,
        cookie_name: str | None = None,
        cookie_domain: str | None = None,
        mount_path: str | None = None,
        unknown_cookies: UnknownCookies | None = None,
        allowed_origins: Sequence[str] | None = None,
        privacy_policy_url: str | None = None,
        inject_banner: bool | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.config = settings = load_config(
            config,
            secret_key=secret_key,
            store=store,
            admin_token=admin_token,
            mode=mode,
            policy_version=policy_version,
            consent_lifetime_days=consent_lifetime_days,
            categories=categories,
            cookie_name=cookie_name,
            cookie_domain=cookie_domain,
            mount_path=mount_path,
            unknown_cookies=unknown_cookies,
            allowed_origins=allowed_origins,
            privacy_policy_url=privacy_policy_url,
            inject_banner=inject_banner,
            max_body_bytes=max_body_bytes,
        )
        self.classifier = CookieClassifier(settings)
        codec = ConsentCodec(
            settings.secret_keys, policy_version=settings.policy_version, categories=settings.category_names
        )
        variants = DomainVariants(PublicSuffixList().privatesuffix)
        self.visits = VisitResolver(settings, codec, self.classifier, variants)
        self.banner = BannerRenderer(settings)
        self.endpoints = Endpoints(settings, codec, self.classifier, self.visits, variants)
        self._mount = settings.mount_path
        self._inject = settings.inject_banner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(self._mount) and (len(path) == len(self._mount) or path[len(self._mount)] == "/"):
                await self.endpoints(scope, receive, send, path[len(self._mount) :])
                return
            visit = self._enter(scope)
            await self.app(scope, receive, self._responder(scope, visit, send))
        elif kind == "websocket":
            visit = self._enter(scope)
            await self.app(scope, receive, self._websocket_responder(visit, send))
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_responder(send))
        else:
            await self.app(scope, receive, send)

    def _lifespan_responder(self, send: Send) -> Send:
        """Release the store once the app has shut down; lifespan may never come, which is fine."""

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.endpoints.store.close()
            await send(message)

        return send_wrapper

    def _enter(self, scope: Scope) -> Visit:
        """Resolve the visit and give the app only the cookies it may see."""
        cookie: bytes | None = None
        gpc = False
        headers = scope["headers"]
        cookie_headers = 0
        for name, value in headers:
            size = len(name)
            if size == 6 and name.lower() == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
                cookie_headers += 1
            elif size == 7 and name.lower() == b"sec-gpc":
                gpc = value.strip() == b"1"
        visit = self.visits.resolve(cookie, gpc, time.time())
        if visit.refused or cookie_headers > 1:
            # Several Cookie headers are joined with "; " as RFC 9113 8.2.3 says for HTTP/1.1.
            rebuilt = [(n, v) for n, v in headers if n.lower() != b"cookie"]
            if visit.app_cookie is not None:
                rebuilt.append((b"cookie", visit.app_cookie))
            scope["headers"] = rebuilt
        state = scope.get("state")
        if state is None:
            scope["state"] = {"consent": visit.consent}
        else:
            state["consent"] = visit.consent
        return visit

    def _responder(self, scope: Scope, visit: Visit, send: Send) -> Send:
        injector: Injector | None = None
        may_inject = self._inject and not visit.consent.decided and scope["method"] != "HEAD"
        if may_inject:
            extensions = scope.get("extensions")
            if extensions and any(e in extensions for e in _UNBUFFERABLE_EXTENSIONS):
                # A file sent by path cannot get the banner; have the app send bytes instead.
                scope["extensions"] = {k: v for k, v in extensions.items() if k not in _UNBUFFERABLE_EXTENSIONS}

        async def send_wrapper(message: Message) -> None:
            nonlocal injector
            if injector is not None and message["type"] == "http.response.body":
                more = message.get("more_body", False)
                message = {**message, "body": injector.feed(message.get("body", b""), more)}
                if not more:
                    injector = None
            elif message["type"] == "http.response.start":
                message, injector = self._start(message, scope, visit, may_inject)
            await send(message)

        return send_wrapper

    def _start(self, message: Message, scope: Scope, visit: Visit, may_inject: bool) -> tuple[Message, Injector | None]:
        """Filter the response headers; decide on injection from them alone."""
        allowed = visit.consent.categories
        category = self.classifier.category
        out: RawHeaders = []
        content_type = encoding = disposition = None
        length_at = etag_at = vary_at = -1
        for name, value in message.get("headers", ()):
            lower = name.lower()
            if lower == b"set-cookie":
                if category(set_cookie_name(value)) not in allowed and not is_deletion(value):
                    continue
            elif lower == b"content-type":
                content_type = value
            elif lower == b"content-length":
                length_at = len(out)
            elif lower == b"content-encoding":
                encoding = value
            elif lower == b"etag":
                etag_at = len(out)
            elif lower == b"vary":
                vary_at = len(out)
            elif lower == b"content-disposition":
                disposition = value
            out.append((lower, value))
        if visit.refused:
            out.extend(self.visits.expiry_headers(visit, _host(scope), scope.get("scheme") in ("https", "wss")))
        injector = None
        if (
            message["status"] == 200
            and content_type is not None
            and encoding is None
            and is_injectable(content_type)
            and (disposition is None or not disposition.lower().startswith(b"attachment"))
        ):
            # The page differs by consent (banner or not), so shared caches must key on Cookie.
            if vary_at < 0:
                out.append((b"vary", b"Cookie"))
            elif b"cookie" not in out[vary_at][1].lower() and out[vary_at][1].strip() != b"*":
                out[vary_at] = (b"vary", out[vary_at][1] + b", Cookie")
            if may_inject:
                snippet = self._snippet(scope)
                if length_at >= 0:
                    raised = raised_content_length(out[length_at][1], len(snippet))
                    if raised is not None:
                        out[length_at] = (b"content-length", raised)
                        injector = Injector(snippet)
                else:
                    injector = Injector(snippet)
                if injector is not None and etag_at >= 0:
                    out[etag_at] = (b"etag", weak_etag(out[etag_at][1]))
        return {**message, "headers": out}, injector

    def _snippet(self, scope: Scope) -> bytes:
        query = scope.get("query_string", b"")
        next_path = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        locale = preferred_locale(header(scope, b"accept-language"))
        return self.banner.snippet(locale, scope.get("root_path", ""), next_path)

    def _websocket_responder(self, visit: Visit, send: Send) -> Send:
        allowed = visit.consent.categories
        category = self.classifier.category

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "websocket.accept" and message.get("headers"):
                kept = [
                    (n, v)
                    for n, v in message["headers"]
                    if n.lower() != b"set-cookie" or category(set_cookie_name(v)) in allowed or is_deletion(v)
                ]
                message = {**message, "headers": kept}
            await send(message)

        return send_wrapper


def _host(scope: Scope) -> str:
    raw = header(scope, b"host")
    if raw is not None:
        return request_host(raw)
    server = scope.get("server")
    return str(server[0]).lower() if server else ""
