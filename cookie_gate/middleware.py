"""`CookieGateMiddleware`: the pure-ASGI gateway in front of the app.

One request, in order: route the gateway's own endpoints; resolve the visitor's
consent from the `Cookie` header (cached); hand the app a `Cookie` header without
refused cookies and the decision in `scope["state"]["consent"]`; on the way out drop
`Set-Cookie`s of refused categories, expire refused cookies the browser still holds,
record a page view, and stream HTML through the page rewriter (banner or settings
control, prior blocking, Consent Mode). A streamed page is never buffered: an HTML
response's start waits for its first body chunk, no longer. Only a page whose app
declared its length (at most `MAX_HELD_BODY`) is held until it is complete, so that
its Content-Length stays exact.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Unpack

import anyio.to_thread
from publicsuffixlist import PublicSuffixList

from cookie_gate.asgi import ASGIApp, Message, RawHeaders, Receive, Scope, Send
from cookie_gate.cache import ENTRY_OVERHEAD, TUPLE_OVERHEAD, BoundedCache, bytes_size, str_size
from cookie_gate.classify import CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import Config, ConfigError, Options, load_config
from cookie_gate.consent import Consent, ConsentCodec
from cookie_gate.cookies import DomainVariants, is_deletion, set_cookie_name
from cookie_gate.endpoints import Endpoints
from cookie_gate.hosts import AllowedHosts, request_host
from cookie_gate.inject import PageRewriter, is_html, is_injectable, weak_etag
from cookie_gate.placement import BannerPlacement, BannerSource, request_nonce
from cookie_gate.shown import shown_digests
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.recorder import Statistics
from cookie_gate.stats.retention import DailyRetention, Retention
from cookie_gate.store import StoreError, open_store, start_store_check
from cookie_gate.visit import Visit, VisitResolver
from cookie_gate.withdrawals import Withdrawals

#: What `_enter` learns from the request headers: visit, time, Host, Accept-Language, User-Agent, Referer.
_Request = tuple[Visit, float, bytes | None, bytes | None, bytes | None, bytes | None]
logger = logging.getLogger("cookie_gate")
#: Host header -> host name, at most 256 KB of them (a header above 2 KB is parsed every time).
_cached_host = BoundedCache(
    request_host,
    lambda raw, host: ENTRY_OVERHEAD + bytes_size(raw) + str_size(host),
    max_bytes=256 * 2**10,
    max_entry_bytes=2 * 2**10,
)
#: Banner and Consent Mode snippets per page and choice: the path and query are the visitor's, so
#: the cache is bounded in bytes; a page whose snippets pass a 64th of it is rendered every time.
SNIPPET_CACHE_BYTES = 8 * 2**20
#: Share of `shutdown_timeout` one store connect or statement may take, so a flush fits in it.
STORE_TIMEOUT_SHARE = 0.4
#: Where the gate leaves a `BannerPlacement` in `scope["state"]` when the banner is placed by a
#: template (`inject_banner = false`), so a template call can render it (`cookie_gate.integrations`).
GATE_STATE_KEY = "cookie_gate"
_UNBUFFERABLE_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopy")
_SECURE = ("https", "wss")
# Header names the gateway reads, to one dict lookup per header instead of a chain of comparisons.
_COOKIE, _GPC, _HOST, _LANGUAGE, _AGENT, _REFERRER = range(6)
_REQUEST_FIELDS = {
    b"cookie": _COOKIE,
    b"sec-gpc": _GPC,
    b"host": _HOST,
    b"accept-language": _LANGUAGE,
    b"user-agent": _AGENT,
    b"referer": _REFERRER,
}
_SET_COOKIE, _CONTENT_TYPE, _CONTENT_LENGTH, _CONTENT_ENCODING, _ETAG, _VARY, _CONTENT_DISPOSITION = range(7)
_RESPONSE_FIELDS = {
    b"set-cookie": _SET_COOKIE,
    b"content-type": _CONTENT_TYPE,
    b"content-length": _CONTENT_LENGTH,
    b"content-encoding": _CONTENT_ENCODING,
    b"etag": _ETAG,
    b"vary": _VARY,
    b"content-disposition": _CONTENT_DISPOSITION,
}


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
        self._clock = clock
        self.config = settings = load_config(config, secret_key=secret_key, **options)
        self.classifier = CookieClassifier(settings)
        self._recorded_set = self.classifier.recorded_set
        shown = shown_digests(settings)
        codec = ConsentCodec(
            settings.secret_keys,
            policy_version=settings.policy_version,
            categories=settings.category_names,
            shown=shown.short_digests if settings.reprompt_on_change else None,
        )
        variants = DomainVariants(PublicSuffixList().privatesuffix, AllowedHosts(settings.allowed_hosts))
        #: The banner for the page rewriter and for every `BannerPlacement` alike.
        self._banner_source = BannerSource(settings)
        try:
            self.store = open_store(settings.store, timeout=settings.shutdown_timeout * STORE_TIMEOUT_SHARE)
        except StoreError as error:
            raise ConfigError("store", str(error)) from None
        self.withdrawals = Withdrawals(
            self.store.withdrawals, lifetime_seconds=settings.consent_lifetime_seconds, clock=clock
        )
        self.visits = VisitResolver(settings, codec, self.classifier, variants, self.withdrawals)
        self.statistics = (
            Statistics(settings, self.store, self.classifier.new_names, clock=clock) if settings.statistics else None
        )
        #: With statistics off there is no writer whose tick runs the daily purge: a thread of its own does.
        self.retention = (
            DailyRetention(Retention(settings, self.store, SiteClock(settings.timezone)), clock)
            if self.statistics is None
            else None
        )
        writer_health = self.statistics.writer.health if self.statistics is not None else None
        self.endpoints = Endpoints(
            settings,
            codec,
            self.classifier,
            self.visits,
            variants,
            self.store,
            clock,
            writer_health=writer_health,
            shown=shown,
        )
        self._mount = settings.mount_path
        self._inject = settings.inject_banner
        self._prior_blocking = settings.prior_blocking
        self._cached_snippets: BoundedCache[_SnippetKey, tuple[bytes, bytes]] = BoundedCache(
            lambda key: self._snippets(*key),
            _snippet_bytes,
            max_bytes=SNIPPET_CACHE_BYTES,
            max_entry_bytes=SNIPPET_CACHE_BYTES // 64,
        )
        self._everything = frozenset(settings.category_names)
        #: Pages whose app sent more body than its own Content-Length after the page was complete.
        self.overrun_pages = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            retention = self.retention
            if retention is not None and retention.thread is None:  # lifespan never came, or a forked worker
                retention.start()
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(self._mount) and (len(path) == len(self._mount) or path[len(self._mount)] == "/"):
                await self.endpoints(scope, receive, send, path[len(self._mount) :])
                return
            await self.app(scope, receive, self._responder(scope, send))
        elif kind == "websocket":
            await self.app(scope, receive, self._websocket_responder(scope, send))
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_responder(send))
        else:
            await self.app(scope, receive, send)

    def _lifespan_responder(self, send: Send) -> Send:
        """Start the statistics writer early (its first round checks the store), or with
        statistics off the daily retention thread; on shutdown flush every queued event within
        `shutdown_timeout`, stop the retention thread, then release the store.

        Lifespan may never come (mounted sub-apps, Django, some servers): the writer also
        starts by itself on the first page view, and is stopped at interpreter exit.
        """

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                if self.statistics is not None:
                    self.statistics.writer.start()
                else:
                    start_store_check(self.store)
                if self.retention is not None:
                    self.retention.start()
            elif kind == "lifespan.shutdown.complete":
                # One deadline for the flush and the close: a writer stuck in a hung store holds
                # the store's lock, and is never waited for past it. Both run on threads of their
                # own limiter, so the app's sync endpoints (anyio's default limiter) cannot delay them.
                deadline = time.monotonic() + self.config.shutdown_timeout
                limiter = anyio.CapacityLimiter(1)
                if self.statistics is not None:
                    stop = self.statistics.writer.stop
                    await anyio.to_thread.run_sync(stop, max(deadline - time.monotonic(), 0.0), limiter=limiter)
                if self.retention is not None:
                    stop_retention = self.retention.stop
                    await anyio.to_thread.run_sync(
                        stop_retention, max(deadline - time.monotonic(), 0.0), limiter=limiter
                    )
                close = self.store.close
                await anyio.to_thread.run_sync(close, max(deadline - time.monotonic(), 0.0), limiter=limiter)
            await send(message)

        return send_wrapper

    def _enter(self, scope: Scope) -> _Request:
        """Resolve the visit and give the app only the cookies it may see.

        One pass over the request headers picks up everything the response side needs
        too (Host, Accept-Language, and for statistics User-Agent and Referer), so no
        header list is scanned twice.
        """
        cookie: bytes | None = None
        cookie_name: bytes | None = None
        more_cookies: list[bytes] | None = None
        gpc = False
        host = language = agent = referrer = None
        headers = scope["headers"]
        for name, value in headers:
            field = _REQUEST_FIELDS.get(name)
            if field is None:
                if name.islower():
                    continue
                field = _REQUEST_FIELDS.get(name.lower())
                if field is None:
                    continue
            if field == _COOKIE:
                if cookie is None:
                    cookie, cookie_name = value, name
                elif more_cookies is None:
                    more_cookies = [cookie, value]
                else:
                    more_cookies.append(value)
            elif field == _GPC:
                gpc = value.strip() == b"1"
            elif field == _HOST:
                host = value
            elif field == _LANGUAGE:
                language = value
            elif field == _AGENT:
                agent = value
            else:
                referrer = value
        if more_cookies is not None:
            # Several Cookie headers are joined with "; " as RFC 9113 8.2.3 says for HTTP/1.1 (once: linear).
            cookie = b"; ".join(more_cookies)
        now = self._clock()
        visit = self.visits.resolve(cookie, gpc, now)
        if more_cookies is not None:
            rebuilt = [(n, v) for n, v in headers if n.lower() != b"cookie"]
        elif visit.refused or visit.conflicting:
            rebuilt = [pair for pair in headers if pair[1] is not cookie or pair[0] is not cookie_name]
        else:
            rebuilt = None
        if rebuilt is not None:
            if visit.app_cookie is not None:
                rebuilt.append((b"cookie", visit.app_cookie))
            scope["headers"] = rebuilt
        state = scope.get("state")
        if state is None:
            scope["state"] = {"consent": visit.consent}
        else:
            state["consent"] = visit.consent
        return visit, now, host, language, agent, referrer

    def _responder(self, scope: Scope, send: Send) -> Send:
        request = self._enter(scope)
        # The gate's own root path: its endpoints are under it, whatever a router inside makes of the scope.
        root = scope.get("root_path", "")
        if not self._inject:
            state = scope["state"]
            language = request[3]
            query = scope.get("query_string", b"")
            state[GATE_STATE_KEY] = BannerPlacement(self._banner_source, state, language, root, scope["path"], query)
        page: _Page | None = None
        may_rewrite = scope["method"] != "HEAD"
        if may_rewrite:
            extensions = scope.get("extensions")
            if extensions and any(e in extensions for e in _UNBUFFERABLE_EXTENSIONS):
                # A file sent by path cannot be rewritten; have the app send bytes instead.
                scope["extensions"] = {k: v for k, v in extensions.items() if k not in _UNBUFFERABLE_EXTENSIONS}

        async def send_wrapper(message: Message) -> None:
            nonlocal page
            if page is not None:
                if await page.send(message, send):
                    page = None
                return
            if message["type"] == "http.response.start":
                message, rewriter = self._start(message, scope, request, root, may_rewrite)
                if rewriter is not None:
                    page = _Page(message, rewriter, self._overrun)
                    return
            await send(message)

        return send_wrapper

    def _start(
        self, message: Message, scope: Scope, request: _Request, root: str, may_rewrite: bool
    ) -> tuple[Message, PageRewriter | None]:
        """Filter the response headers and decide on rewriting from them alone.

        The first pass only reads; most responses (JSON, assets, a consented visitor)
        need no change at all and go out as the very message the app sent.

        A page that will be rewritten keeps at most one Content-Length, the one `_sized`
        makes true to the rewritten body: a second copy left as the app sent it would
        announce two lengths, which a server or proxy answers with an error or, worse, by
        framing the connection on the stale one. Repeated identical values (which RFC 9110
        8.6 lets a recipient fold) become one. Values that differ leave no way to know
        which the app meant, so the page is treated as undeclared: every Content-Length
        goes, the body streams and the server frames it itself. A response that is not
        rewritten keeps the app's headers and bytes as they are, so the gate never makes
        its framing disagree with its body.
        """
        visit, now, host, language, agent, referrer = request
        headers = message.get("headers") or ()
        allowed = visit.consent.categories
        dropped: set[int] = set()  # ids of the refused Set-Cookie values (alive in `headers`), decided once
        content_type = encoding = disposition = None
        for name, value in headers:
            field = _RESPONSE_FIELDS.get(name)
            if field is None:
                if name.islower():
                    continue
                field = _RESPONSE_FIELDS.get(name.lower())
                if field is None:
                    continue
            if field == _SET_COOKIE:
                if self._refuses(value, allowed, now):
                    dropped.add(id(value))
            elif field == _CONTENT_TYPE:
                content_type = value
            elif field == _CONTENT_ENCODING:
                encoding = value
            elif field == _CONTENT_DISPOSITION:
                disposition = value
        status = message["status"]
        html = (
            status == 200
            and content_type is not None
            and encoding is None
            and is_injectable(content_type)
            and (disposition is None or not disposition.lower().startswith(b"attachment"))
        )
        counter_cookie = None
        if (
            self.statistics is not None
            and 200 <= status < 300
            and content_type is not None
            and scope["method"] == "GET"
            and is_html(content_type)
        ):
            counter_cookie = self.statistics.page_view(scope, visit, now, host, agent, referrer)
        if not (html or dropped or visit.refused or counter_cookie):
            return message, None
        rewriter = self._rewriter(scope, root, visit.consent, language) if html and may_rewrite else None
        out: RawHeaders = []
        vary_seen = lengths_differ = False
        for name, value in headers:
            field = _RESPONSE_FIELDS.get(name)
            if field is None and not name.islower():
                field = _RESPONSE_FIELDS.get(name.lower())
            if field == _SET_COOKIE:
                if dropped and id(value) in dropped:
                    continue
            elif field == _VARY and html:
                # The page differs by consent (banner or not), so shared caches must key on Cookie.
                vary_seen = True
                if b"cookie" not in value.lower() and value.strip() != b"*":
                    value = value + b", Cookie"
            elif rewriter is not None and field == _ETAG:
                value = weak_etag(value)
            elif rewriter is not None and field == _CONTENT_LENGTH:
                if rewriter.length_at >= 0:  # a repeated Content-Length: one is kept (see the docstring)
                    lengths_differ = lengths_differ or value.strip() != out[rewriter.length_at][1].strip()
                    continue
                rewriter.length_at = len(out)
            out.append((name, value))
        if lengths_differ and rewriter is not None:
            _undeclare(out, rewriter)
        if html and not vary_seen:
            out.append((b"vary", b"Cookie"))
        if visit.refused:
            out.extend(self.visits.expiry_headers(visit, self._host(scope, host), scope.get("scheme") in _SECURE))
        if counter_cookie is not None:
            out.append((b"set-cookie", counter_cookie))
        return {**message, "headers": out}, rewriter

    def _overrun(self) -> None:
        self.overrun_pages += 1
        if self.overrun_pages == 1:
            logger.warning(
                "cookie_gate: an app sent more HTML than its Content-Length declared; the extra bytes were "
                "dropped (the page was already complete). Further cases are counted in overrun_pages, not logged."
            )

    def _rewriter(self, scope: Scope, root: str, consent: Consent, language: bytes | None) -> PageRewriter:
        nonce = request_nonce(scope.get("state"), self._banner_source.nonce_key)
        path, query = scope["path"], scope.get("query_string", b"")
        if nonce is not None:
            head, body = self._snippets(language, root, path, query, consent.decided, consent.categories, nonce)
        else:
            # Without a nonce the snippets depend only on these, and the same pages come up again and again.
            head, body = self._cached_snippets[language, root, path, query, consent.decided, consent.categories]
        blocking = None if not self._prior_blocking or self._everything <= consent.categories else consent.categories
        return PageRewriter(head, body, blocking)

    def _snippets(
        self,
        language: bytes | None,
        root: str,
        path: str,
        query: bytes,
        decided: bool,
        allowed: frozenset[str],
        nonce: str | None = None,
    ) -> tuple[bytes, bytes]:
        """The head snippet (Consent Mode) and the body snippet (banner or settings control)."""
        consent = Consent(allowed, decided=decided)
        body = self._banner_source.markup(language, root, path, query, consent, nonce) if self._inject else b""
        head = self._banner_source.consent_mode(consent, nonce) if self.config.google_consent_mode else b""
        return head, body

    def _refuses(self, set_cookie: bytes, allowed: frozenset[str], now: float) -> bool:
        """Whether a Set-Cookie must be dropped; the app deleting a cookie is always let through.

        The first time the app sets a name, the classifier sees it (inventory, and the
        judgment of an undeclared name), before the category is asked for.
        """
        if is_deletion(set_cookie):
            return False
        name = set_cookie_name(set_cookie)
        if name not in self._recorded_set:
            self.classifier.was_set(name, set_cookie, now)
        return self.classifier.category(name) not in allowed

    @staticmethod
    def _host(scope: Scope, raw: bytes | None) -> str:
        if raw is not None:
            return _cached_host[raw]
        server = scope.get("server")
        return _cached_host[str(server[0]).encode("latin-1", "replace")] if server else ""

    def _websocket_responder(self, scope: Scope, send: Send) -> Send:
        visit, now = self._enter(scope)[:2]
        allowed = visit.consent.categories

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "websocket.accept" and message.get("headers"):
                kept = [
                    (n, v)
                    for n, v in message["headers"]
                    if n.lower() != b"set-cookie" or not self._refuses(v, allowed, now)
                ]
                message = {**message, "headers": kept}
            await send(message)

        return send_wrapper


#: What the snippets depend on without a nonce: Accept-Language, root path, path, query, decided, allowed.
_SnippetKey = tuple[bytes | None, str, str, bytes, bool, frozenset[str]]


def _snippet_bytes(key: _SnippetKey, snippets: tuple[bytes, bytes]) -> int:
    language, root, path, query, _, allowed = key
    size = ENTRY_OVERHEAD + 2 * TUPLE_OVERHEAD + bytes_size(language) + str_size(root) + str_size(path)
    size += bytes_size(query) + 256 + 64 * len(allowed)  # the set may be a decision's own
    return size + bytes_size(snippets[0]) + bytes_size(snippets[1])


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


MAX_HELD_BODY = 1024 * 1024
"""The largest declared body the gateway holds back to give the rewritten page an exact Content-Length.

An app that declares a length has the whole page in hand, yet may send it in pieces
(Quart sends it and then an empty last message; file and Django responses come in
64 KiB chunks). Holding that much per response lets the rewritten page keep an exact
length, so the server need not chunk it; a larger page streams (and is chunked)
rather than sit in memory. A response without a declared length is never held.
"""
#: A Content-Length of more digits is no real length (and `int()` refuses thousands of digits).
_MAX_LENGTH_DIGITS = 18


def _declared_length(value: bytes) -> int | None:
    """The Content-Length an app declared, or None when it is not a plain number of bytes."""
    value = value.strip()
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        return None
    return int(value)


class _Page:
    """One HTML response on its way through the page rewriter.

    Its start waits for the body, so the Content-Length can be made true to the
    rewritten page. With a declared length of at most `MAX_HELD_BODY`, the pieces
    are held until the declared number of bytes has come (or the app says it is
    done) and the page goes out in one message of exact length. Otherwise, and when
    the body overruns or falls short of what was declared, the page streams: the
    start goes with the first chunk and each chunk is rewritten as it arrives.

    Body bytes the app sends after its declared length was complete would break the
    framing the start announced and would bypass the rewriter; they are dropped and
    reported through `on_overrun`. A piece that carries the body past its declared
    length while it is still held shows the length to be wrong before the start is
    sent: the page then goes out without one, whole and rewritten.
    """

    __slots__ = ("_complete", "_declared", "_held", "_on_overrun", "_overran", "_received", "_rewriter", "_start")

    def __init__(self, start: Message, rewriter: PageRewriter, on_overrun: Callable[[], None]) -> None:
        self._start: Message | None = start
        self._rewriter = rewriter
        self._on_overrun = on_overrun
        self._complete = False
        self._overran = False  # reported already: a page is counted once, however many pieces overrun it
        #: The declared length while the body is held (read at the first piece that is not the last).
        self._declared = 0
        #: The body so far while it is held (see `_hold`).
        self._held: list[bytes | bytearray] | None = None
        self._received = 0

    async def send(self, message: Message, send: Send) -> bool:
        """Forward `message` as rewritten; True once the response needs no more attention from the page."""
        start = self._start
        if message["type"] != "http.response.body":
            if start is not None:
                if self._held is None:
                    # Something other than a body came first: send the page as the app made it.
                    await send(start)
                    await send(message)
                    return True
                piece = {"type": "http.response.body", "more_body": True}
                await self._release(start, piece, b"".join(self._held), True, send)
            await send(message)
            return False
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if start is None:
            if self._complete:
                if chunk:
                    if not self._overran:
                        self._overran = True
                        self._on_overrun()
                    message = {**message, "body": b""}
                await send(message)
            else:
                await send({**message, "body": self._rewriter.feed(chunk, more)})
            return not more
        held = self._held
        if not more:
            # The whole page (or its rest) is here, the common case of one message: its length can be exact.
            self._start = None
            rewriter = self._rewriter
            body = rewriter.feed(chunk if held is None else _joined(held, chunk), False)
            await send(_sized(start, body, False, rewriter))
            await send({**message, "body": body})
            return True
        if held is None:
            at = self._rewriter.length_at
            declared = _declared_length(start["headers"][at][1]) if at >= 0 else None
            if declared is None or declared > MAX_HELD_BODY:
                await self._release(start, message, chunk, True, send)  # a stream: never held
                return False
            self._declared = declared
            self._held = held = []
        _hold(held, chunk)
        declared = self._declared
        self._received += len(chunk)
        if self._received < declared:
            return False
        chunk = b"".join(held)
        if self._received == declared:
            # The whole declared body is here: one message of exact length; the app's last (empty) one follows.
            self._complete = True
            await self._release(start, message, chunk, False, send)
            return False
        # More than declared, already in hand: the length is known to be wrong, so it goes (the server
        # frames the page itself) and the rest streams through the rewriter.
        _undeclare(start["headers"], self._rewriter)
        await self._release(start, message, chunk, True, send)
        return False

    async def _release(self, start: Message, message: Message, chunk: bytes, more: bool, send: Send) -> None:
        """Send the start, sized for what is known now, and the first rewritten chunk; stream from here on."""
        self._start = None
        self._held = None
        body = self._rewriter.feed(chunk, more)
        await send(_sized(start, body, more, self._rewriter))
        await send({**message, "body": body})


def _undeclare(headers: RawHeaders, rewriter: PageRewriter) -> None:
    """Drop the Content-Length from the gateway's own copy of a start's headers (see `_sized`)."""
    if rewriter.length_at >= 0:
        del headers[rewriter.length_at]
        rewriter.length_at = -1


#: A held piece at least this long is kept as it came; shorter ones are copied together.
_OWN_PIECE = 4096


def _hold(held: list[bytes | bytearray], chunk: bytes) -> None:
    """Add `chunk` to a held body, in a bounded number of list entries.

    Large pieces are kept as they are, so the page is copied once, when it is joined.
    Short ones are appended to one growing buffer: a list entry costs a pointer and
    joining it a buffer descriptor each, many times the byte an app sending tiny pieces
    hands over, so a page in one-byte pieces would cost many times its own size.
    """
    if len(chunk) >= _OWN_PIECE:
        held.append(chunk)
    elif held and isinstance(last := held[-1], bytearray):
        last += chunk
    elif chunk:
        held.append(bytearray(chunk))


def _joined(held: list[bytes | bytearray], last: bytes) -> bytes:
    """The held body and its last piece as one `bytes` (an ASGI body is `bytes`)."""
    if not last and len(held) == 1 and isinstance(held[0], bytes):
        return held[0]  # the whole page came in one piece, then an empty last message: no copy
    _hold(held, last)
    return b"".join(held)


def _sized(start: Message, body: bytes, more_body: bool, rewriter: PageRewriter) -> Message:
    """The held start with a Content-Length true to the rewritten page.

    A page in one chunk gets its exact new length. A streamed page gets its old
    length plus the snippets when nothing else changes, and no length at all (the
    server then chunks it) when tags may be neutralised further down. The headers
    list is the gateway's own copy (built in `_start`), so it is edited in place.
    """
    at = rewriter.length_at
    if at < 0:
        return start
    headers = start["headers"]
    name, value = headers[at]
    growth = rewriter.growth
    if not more_body:
        headers[at] = (name, str(len(body)).encode("ascii"))
    elif growth is not None and (declared := _declared_length(value)) is not None:
        headers[at] = (name, str(declared + growth).encode("ascii"))
    else:
        del headers[at]
    return start
