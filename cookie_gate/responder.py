"""The response side of the gate: one `Responder` per HTTP response, the policy shared by all.

`ResponsePolicy` (one per gate) decides from a response's start alone what it needs;
`Responder` (one per response, in the shape of Starlette's GZip responder) carries that
decision through the body. Most responses (JSON, assets: anything but a page, for a
visitor with no refused cookie, that sets none the choice refuses) need nothing, and go
out as the very messages the app sent, after one read-only pass over the response
headers. Otherwise the start is a copy: it loses the refused
`Set-Cookie`s and gains the deletions of refused cookies the browser still holds and
the visit counter's cookie; an HTML page also goes through the page rewriter (`page.Page`).
"""

from __future__ import annotations

import logging

from cookie_gate.asgi import Message, Scope, Send
from cookie_gate.config import Config
from cookie_gate.hosts import cached_request_host
from cookie_gate.inject import PageRewriter, is_html, is_injectable
from cookie_gate.page import Page, page_headers
from cookie_gate.page_views import PageViews
from cookie_gate.placement import BannerSource, request_nonce
from cookie_gate.request import Request
from cookie_gate.set_cookie_filter import SetCookieFilter
from cookie_gate.visit import VisitResolver

logger = logging.getLogger("cookie_gate")
_SECURE = ("https", "wss")


class ResponsePolicy:
    """What the gate does to responses, for every visitor: built once, read by every `Responder`."""

    def __init__(
        self,
        config: Config,
        set_cookies: SetCookieFilter,
        visits: VisitResolver,
        banner: BannerSource,
        page_views: PageViews | None,
    ) -> None:
        self._set_cookies = set_cookies
        self._visits = visits
        self._banner = banner
        self._page_views = page_views
        self._rewrites = config.inject_banner or config.google_consent_mode or config.prior_blocking
        self._prior_blocking = config.prior_blocking
        self._everything = frozenset(config.category_names)
        #: Pages whose app sent more body than its own Content-Length after the page was complete.
        self.overrun_pages = 0

    def start(self, message: Message, scope: Scope, request: Request) -> tuple[Message, Page | None]:
        """The start to send (the app's own when nothing changes), and the page to stream the body through."""
        visit = request.visit
        allowed = visit.consent.categories
        headers = message.get("headers") or ()
        set_cookies: list[int] = []
        content_type = encoding = disposition = None
        for index, (name, value) in enumerate(headers):
            if not name.islower():
                name = name.lower()  # Django and some apps send "Set-Cookie", "Content-Type"
            if name == b"set-cookie":
                set_cookies.append(index)
            elif name == b"content-type":
                content_type = value
            elif name == b"content-encoding":
                encoding = value
            elif name == b"content-disposition":
                disposition = value
        refused = self._set_cookies.refused(headers, set_cookies, allowed, request.now) if set_cookies else set_cookies
        status = message["status"]
        html = (
            status == 200
            and content_type is not None
            and encoding is None
            and is_injectable(content_type)
            and (disposition is None or not disposition.lower().startswith(b"attachment"))
        )
        counter = None
        if (
            self._page_views is not None
            and 200 <= status < 300
            and content_type is not None
            and scope["method"] == "GET"
            and is_html(content_type)
        ):
            counter = self._page_views.page_view(request, scope)
        if not (html or refused or visit.refused or counter):
            return message, None
        rewriter = self._rewriter(scope, request) if html and request.rewritable else None
        length_at = -1  # where the one Content-Length of a rewritten page is
        if html:
            out, length_at = page_headers(headers, refused, rewriter is not None)
        elif refused:
            out = [pair for index, pair in enumerate(headers) if index not in refused]
        else:
            out = list(headers)
        if visit.refused:
            out.extend(
                self._visits.expiry_headers(
                    visit, _host(scope, request.headers.get(b"host")), scope.get("scheme") in _SECURE
                )
            )
        if counter is not None:
            out.append((b"set-cookie", counter))
        message = {**message, "headers": out}
        return message, (Page(message, length_at, rewriter, self._overrun) if rewriter is not None else None)

    def refuses(self, name: bytes, value: bytes, request: Request) -> bool:
        """Whether a header the app sends with a websocket handshake is a refused `Set-Cookie`."""
        if name.lower() != b"set-cookie":
            return False
        return self._set_cookies.refuses(value, request.visit.consent.categories, request.now)

    def _rewriter(self, scope: Scope, request: Request) -> PageRewriter | None:
        """The page's rewriter; None when this page gets no snippet and nothing in it may be blocked."""
        if not self._rewrites:
            return None
        consent = request.visit.consent
        blocking = None if not self._prior_blocking or self._everything <= consent.categories else consent.categories
        nonce = request_nonce(scope.get("state"), self._banner.nonce_key)
        path, query = scope["path"], scope.get("query_string", b"")
        head, body = self._banner.snippets(
            request.headers.get(b"accept-language"), request.root, path, query, consent, nonce
        )
        if not head and not body and blocking is None:
            return None
        return PageRewriter(head, body, blocking)

    def _overrun(self) -> None:
        self.overrun_pages += 1
        if self.overrun_pages == 1:
            logger.warning(
                "cookie_gate: an app sent more HTML than its Content-Length declared; the extra bytes were "
                "dropped (the page was already complete). Further cases are counted in overrun_pages, not logged."
            )


class Responder:
    """One HTTP response on its way out; `send` is what the app is given to send with."""

    __slots__ = ("_page", "_policy", "_request", "_scope", "_send")

    def __init__(self, policy: ResponsePolicy, scope: Scope, request: Request, send: Send) -> None:
        self._policy = policy
        self._scope = scope
        self._request = request
        self._send = send
        self._page: Page | None = None

    async def send(self, message: Message) -> None:
        page = self._page
        if page is not None:
            if await page.send(message, self._send):
                self._page = None
            return
        if message["type"] == "http.response.start":
            message, page = self._policy.start(message, self._scope, self._request)
            if page is not None:
                self._page = page  # the start goes out with the first body chunk
                return
        await self._send(message)


def _host(scope: Scope, raw: bytes | None) -> str:
    if raw is not None:
        return cached_request_host[raw]
    server = scope.get("server")
    return cached_request_host[str(server[0]).encode("latin-1", "replace")] if server else ""
