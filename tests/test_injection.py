"""Banner injection into HTML: where, when, and what it does to the response headers.

Streaming behaviour is checked with the raw harness: httpx would buffer the body and
hide whether the gateway held anything back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from html import unescape

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from cookie_gate.asgi import Message, Receive, Scope, Send
from cookie_gate.inject import PageRewriter
from cookie_gate.middleware import MAX_HELD_BODY
from tests.conftest import GateFactory, consent_cookie, http_scope, run_asgi

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
PAGE = "<!doctype html><html><head><title>t</title></head><body><h1>Shop</h1></body></html>"
MARKER = 'id="cookie-gate"'


def page(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"etag": '"v1"'})


def html_app(
    headers: Sequence[tuple[bytes, bytes]], chunks: Sequence[bytes], status: int = 200
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


def body_of(messages: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def header_of(message: Message, name: bytes) -> bytes | None:
    return next((v for n, v in message["headers"] if n.lower() == name), None)


async def test_undecided_visitors_get_the_banner_before_the_closing_body_tag(
    gate: GateFactory, client_for: Clients
) -> None:
    response = await client_for(gate([Route("/", page)])).get("/")
    html = response.text
    assert html.index(MARKER) < html.rindex("</body>")
    assert html.startswith(PAGE[: PAGE.index("</body>")])
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["etag"] == 'W/"v1"'
    assert response.headers["vary"] == "Cookie"
    assert 'action="/_cookie_gate/consent"' in html
    assert '<input type="hidden" name="next" value="/">' in html


async def test_decided_visitors_get_the_settings_control_instead_of_the_banner(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate([Route("/", page)]))
    cookie = await consent_cookie(client, [])
    response = await client.get("/", headers={"cookie": cookie})
    assert 'data-cookie-gate="settings"' in response.text
    assert 'data-cookie-gate="banner"' not in response.text
    assert response.text.index("cookie-gate-settings") < response.text.rindex("</body>")
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["vary"] == "Cookie"


async def test_without_the_banner_the_page_is_untouched_for_a_visitor_who_accepted_everything(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate([Route("/", page)], inject_banner=False))
    cookie = await consent_cookie(client, "all")
    response = await client.get("/", headers={"cookie": cookie})
    assert response.text == PAGE
    assert response.headers["vary"] == "Cookie"


async def test_the_banner_speaks_the_visitors_language(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate([Route("/", page)]))
    korean = unescape((await client.get("/", headers={"accept-language": "ko-KR,ko;q=0.9,en;q=0.8"})).text)
    english = unescape((await client.get("/", headers={"accept-language": "en-US,en;q=0.9,ko;q=0.5"})).text)
    assert 'lang="ko"' in korean and "모두 거부" in korean
    assert 'lang="en"' in english and "Reject all" in english


async def test_the_banner_is_ascii_so_it_fits_any_ascii_compatible_charset(gate: GateFactory) -> None:
    app = gate(html_app([(b"content-type", b"text/html; charset=euc-kr")], ["<body>\ud55c</body>".encode("euc-kr")]))
    messages = await run_asgi(app, http_scope("/", headers=[(b"accept-language", b"ko")]))
    body = body_of(messages)
    assert body.startswith("<body>\ud55c".encode("euc-kr"))
    snippet = body[len("<body>\ud55c".encode("euc-kr")) : -len(b"</body>")]
    assert snippet.isascii() and b"&#" in snippet


async def test_next_path_keeps_the_query_and_is_escaped(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate([Route("/search", page)]))
    html = (await client.get("/search", params={"q": '"><script>'})).text
    assert 'name="next" value="/search?q=%22%3E%3Cscript%3E"' in html


@pytest.mark.parametrize(
    ("label", "status", "headers", "method"),
    [
        ("json", 200, [(b"content-type", b"application/json")], "GET"),
        ("no content type", 200, [], "GET"),
        ("compressed", 200, [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], "GET"),
        ("attachment", 200, [(b"content-type", b"text/html"), (b"content-disposition", b"attachment; x.html")], "GET"),
        ("utf-16", 200, [(b"content-type", b"text/html; charset=UTF-16")], "GET"),
        ("event stream", 200, [(b"content-type", b"text/event-stream")], "GET"),
        ("not found page", 404, [(b"content-type", b"text/html")], "GET"),
        ("redirect", 302, [(b"content-type", b"text/html"), (b"location", b"/")], "GET"),
        ("not modified", 304, [(b"content-type", b"text/html")], "GET"),
        ("no content", 204, [(b"content-type", b"text/html")], "GET"),
        ("head", 200, [(b"content-type", b"text/html")], "HEAD"),
    ],
)
async def test_responses_that_must_not_be_touched(
    gate: GateFactory, label: str, status: int, headers: list[tuple[bytes, bytes]], method: str
) -> None:
    body = b"<body>x</body>"
    app = gate(html_app([*headers, (b"content-length", str(len(body)).encode())], [body], status=status))
    messages = await run_asgi(app, http_scope("/", method=method))
    assert body_of(messages) == body, label
    assert header_of(messages[0], b"content-length") == str(len(body)).encode(), label


async def test_mixed_case_headers_and_xhtml_are_recognised(gate: GateFactory) -> None:
    app = gate(html_app([(b"Content-Type", b"application/xhtml+xml"), (b"Content-Length", b"14")], [b"<BODY>x</BODY>"]))
    messages = await run_asgi(app, http_scope("/"))
    body = body_of(messages)
    assert MARKER.encode() in body and body.endswith(b"</BODY>")
    assert header_of(messages[0], b"content-length") == str(len(body)).encode()


async def test_a_page_without_a_body_tag_gets_the_banner_at_the_end(gate: GateFactory) -> None:
    messages = await run_asgi(gate(html_app([(b"content-type", b"text/html")], [b"<p>fragment"])), http_scope("/"))
    body = body_of(messages)
    assert body.startswith(b"<p>fragment") and body.endswith(b"</div>")


async def test_the_last_closing_body_tag_is_used(gate: GateFactory) -> None:
    page_bytes = b"<body><script>x='</body>'</script></body>"
    body = body_of(await run_asgi(gate(html_app([(b"content-type", b"text/html")], [page_bytes])), http_scope("/")))
    assert body.index(MARKER.encode()) > body.index(b"</script>")


async def test_an_existing_vary_header_is_extended(gate: GateFactory) -> None:
    app = gate(html_app([(b"content-type", b"text/html"), (b"vary", b"Accept-Encoding")], [b"<body></body>"]))
    assert header_of((await run_asgi(app, http_scope("/")))[0], b"vary") == b"Accept-Encoding, Cookie"


async def test_a_file_response_is_sent_as_bytes_so_it_can_carry_the_banner(
    gate: GateFactory,
) -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope.get("extensions"))
        await html_app([(b"content-type", b"text/html")], [b"<body></body>"])(scope, receive, send)

    await run_asgi(gate(app), http_scope("/", extensions={"http.response.pathsend": {}, "other": {}}))
    assert seen == [{"other": {}}]


# -- streaming ------------------------------------------------------------------------------------


async def test_a_streamed_page_is_never_buffered(gate: GateFactory) -> None:
    """The first chunk must reach the client while the app is still producing the rest."""
    release = anyio.Event()
    forwarded: list[Message] = []
    first_chunk_seen = anyio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html><body><p>first</p>", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"<p>second</p></body></html>", "more_body": False})

    async def send(message: Message) -> None:
        forwarded.append(message)
        if message["type"] == "http.response.body":
            first_chunk_seen.set()

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    async with anyio.create_task_group() as group:
        group.start_soon(gate(slow_app), http_scope("/"), receive, send)
        with anyio.fail_after(5):
            await first_chunk_seen.wait()
        assert [m["type"] for m in forwarded] == ["http.response.start", "http.response.body"]
        assert forwarded[1]["body"] == b"<html><body><p>first</p>"
        release.set()
    body = body_of(forwarded)
    assert body.index(MARKER.encode()) > body.index(b"<p>second</p>")
    assert body.endswith(b"</body></html>")


@pytest.mark.parametrize("split", range(1, len("</body>")))
async def test_a_closing_body_tag_split_across_chunks_is_found(gate: GateFactory, split: int) -> None:
    tail = b"</body></html>"
    chunks = [b"<body><p>a</p>" + tail[:split], tail[split:]]
    body = body_of(await run_asgi(gate(html_app([(b"content-type", b"text/html")], chunks)), http_scope("/")))
    assert body.index(b'<link rel="stylesheet"') == len(b"<body><p>a</p>")
    assert body.endswith(tail)


async def test_a_streamed_page_too_long_to_hold_loses_its_length_when_tags_may_change(gate: GateFactory) -> None:
    """Neutralising unconsented tags changes the length by an amount unknown at the start."""
    chunks = [b"<body>", b"<p>" * (MAX_HELD_BODY // 3 + 1), b"</bo", b"dy>"]
    headers = [(b"content-type", b"text/html"), (b"content-length", str(sum(map(len, chunks))).encode())]
    messages = await run_asgi(gate(html_app(headers, chunks)), http_scope("/"))
    assert header_of(messages[0], b"content-length") is None
    assert [m["type"] for m in messages].count("http.response.body") == len(chunks)
    assert MARKER.encode() in body_of(messages)


async def test_a_streamed_page_gets_an_exact_new_length_when_only_snippets_change(
    gate: GateFactory, client_for: Clients
) -> None:
    chunks = [b"<body>", b"<p>" * 1000, b"</bo", b"dy>"]
    headers = [(b"content-type", b"text/html"), (b"content-length", str(sum(map(len, chunks))).encode())]
    app = gate(html_app(headers, chunks))
    cookie = (await consent_cookie(client_for(app), "all")).encode()
    messages = await run_asgi(app, http_scope("/", headers=[(b"cookie", cookie)]))
    assert int(header_of(messages[0], b"content-length") or b"0") == len(body_of(messages))


async def test_starlette_streaming_response_gets_the_banner(gate: GateFactory, client_for: Clients) -> None:
    async def stream() -> object:
        for part in ("<html><body>", "<p>row</p>" * 100, "</body></html>"):
            yield part

    def streamed(request: Request) -> Response:
        return StreamingResponse(stream(), media_type="text/html")  # type: ignore[arg-type]

    response = await client_for(gate([Route("/", streamed)])).get("/")
    assert response.text.index(MARKER) > response.text.rindex("<p>row</p>")


def test_the_rewriter_inserts_exactly_once() -> None:
    rewriter = PageRewriter(b"", b"[B]", None)
    out = [rewriter.feed(c, True) for c in (b"<body>", b"</body>", b"</body>")] + [rewriter.feed(b"", False)]
    assert b"".join(out) == b"<body>[B]</body></body>"


# -- mounting --------------------------------------------------------------------------------


async def test_banner_urls_and_endpoints_follow_a_mount_prefix(gate: GateFactory, client_for: Clients) -> None:
    inner = gate([Route("/", page)])
    from starlette.applications import Starlette

    outer = Starlette(routes=[Mount("/shop", app=inner)])
    client = client_for(outer)
    html = (await client.get("/shop/")).text
    assert 'action="/shop/_cookie_gate/consent"' in html
    assert 'value="/shop/"' in html
    assert (await client.get("/shop/_cookie_gate/consent")).json()["decided"] is False


# -- prior blocking, consent mode, CSP nonce, locales -------------------------------------------------

TAGGED = (
    b'<html><head><script data-cookie-category="analytics" src="/ga.js"></script>'
    b"<script type='module' data-cookie-category='marketing'>track()</script>"
    b'<script data-cookie-category="necessary">essential()</script></head>'
    b'<body><iframe data-cookie-category="marketing" src="https://video.example/embed"></iframe></body></html>'
)


def tagged_app(chunks: Sequence[bytes]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return html_app([(b"content-type", b"text/html; charset=utf-8")], chunks)


async def test_tags_of_unaccepted_categories_cannot_run(gate: GateFactory) -> None:
    body = body_of(await run_asgi(gate(tagged_app([TAGGED])), http_scope("/")))
    assert b'<script type="text/plain" data-cookie-category="analytics" src="/ga.js">' in body
    assert b"<script type=\"text/plain\" data-cookie-gate-type='module' data-cookie-category='marketing'>" in body
    assert b'<script data-cookie-category="necessary">essential()</script>' in body
    assert b'<iframe data-cookie-category="marketing" data-src="https://video.example/embed">' in body


async def test_tags_are_recognised_as_a_browser_does_through_the_gate(gate: GateFactory) -> None:
    page = (
        b'<!-- <script data-cookie-category="analytics"> --><script data-x="a>b" data-cookie-category="analytics"'
        b' src="/a.js"></script><SCRIPT/DATA-COOKIE-CATEGORY=marketing src=/m.js></SCRIPT>'
    )
    chunks = [page[i : i + 5] for i in range(0, len(page), 5)]
    body = body_of(await run_asgi(gate(tagged_app(chunks)), http_scope("/")))
    assert body.startswith(b'<!-- <script data-cookie-category="analytics"> -->')
    assert b'<script type="text/plain" data-x="a>b" data-cookie-category="analytics" src="/a.js">' in body
    assert b'<SCRIPT type="text/plain"/DATA-COOKIE-CATEGORY=marketing src=/m.js>' in body


async def test_tags_of_accepted_categories_are_left_alone(gate: GateFactory, client_for: Clients) -> None:
    app = gate(tagged_app([TAGGED]))
    cookie = (await consent_cookie(client_for(app), ["analytics"])).encode()
    body = body_of(await run_asgi(app, http_scope("/", headers=[(b"cookie", cookie)])))
    assert b'<script data-cookie-category="analytics" src="/ga.js">' in body
    assert b'data-src="https://video.example/embed"' in body  # marketing is still refused


@pytest.mark.parametrize("size", [1, 7, 31, 64])
async def test_tags_split_across_chunks_are_neutralised_too(gate: GateFactory, size: int) -> None:
    chunks = [TAGGED[i : i + size] for i in range(0, len(TAGGED), size)]
    whole = body_of(await run_asgi(gate(tagged_app([TAGGED])), http_scope("/")))
    streamed = body_of(await run_asgi(gate(tagged_app(chunks)), http_scope("/")))
    assert streamed == whole


async def test_consent_mode_defaults_are_written_right_after_head(gate: GateFactory, client_for: Clients) -> None:
    app = gate(tagged_app([TAGGED]), google_consent_mode=True)
    body = body_of(await run_asgi(app, http_scope("/")))
    assert body.startswith(b"<html><head><script>window.dataLayer=window.dataLayer||[];")
    assert b'"ad_storage":"denied"' in body and b'"analytics_storage":"denied"' in body
    cookie = (await consent_cookie(client_for(app), ["analytics"])).encode()
    body = body_of(await run_asgi(app, http_scope("/", headers=[(b"cookie", cookie)])))
    assert b'"analytics_storage":"granted"' in body and b'"ad_user_data":"denied"' in body


async def test_the_requests_csp_nonce_is_put_on_every_tag_the_gateway_adds(gate: GateFactory) -> None:
    app = gate(tagged_app([TAGGED]), google_consent_mode=True)
    body = body_of(await run_asgi(app, http_scope("/", state={"csp_nonce": "r4nd0m"})))
    assert body.count(b'nonce="r4nd0m"') == 3  # consent mode, banner.css, banner.js
    assert b" on" + b"click=" not in body and b"javascript:" not in body  # nothing inline besides the nonced script


async def test_admins_add_locales_and_choose_the_default(gate: GateFactory, client_for: Clients) -> None:
    texts = {"ja": {"title": "クッキーについて", "accept_all": "すべて許可"}, "en": {"title": "About cookies"}}
    app = gate([Route("/", page)], texts=texts, default_locale="ko")
    client = client_for(app)
    assert "쿠키" in unescape((await client.get("/")).text)  # no Accept-Language: the site's default
    japanese = unescape((await client.get("/", headers={"accept-language": "ja-JP,ja;q=0.9"})).text)
    assert "クッキーについて" in japanese and "すべて許可" in japanese
    assert "Reject all" in japanese  # keys the admin did not translate fall back to English
    assert "About cookies" in unescape((await client.get("/", headers={"accept-language": "en"})).text)


async def test_the_second_layer_lists_purpose_cookies_retention_and_what_refusing_changes(
    gate: GateFactory, client_for: Clients
) -> None:
    app = gate([Route("/", page)], categories={"analytics": {"cookies": ["_ga", "_ga_*"]}})
    html = unescape((await client_for(app).get("/", headers={"accept-language": "en"})).text)
    layer = html[html.index('class="cookie-gate__layer"') :]
    assert 'type="checkbox" role="switch" id="cookie-gate-c-necessary" checked disabled' in layer
    assert layer.count(" checked") == 2  # necessary, and "remember my choice": nothing else is pre-ticked
    assert "_ga, _ga_*" in layer and "13 months at most" in layer
    assert "If you refuse" in layer and "Ask me on every visit" in layer


async def test_prior_blocking_can_be_switched_off_by_a_site_that_tags_nothing(gate: GateFactory) -> None:
    body = body_of(await run_asgi(gate(tagged_app([TAGGED]), prior_blocking=False), http_scope("/")))
    assert b'<script data-cookie-category="analytics" src="/ga.js">' in body
    assert MARKER.encode() in body  # the banner is still there


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            b"<!doctype html><!-- <head> --><html lang=ko><head><title>t</title>",
            b"<!doctype html><!-- <head> --><html lang=ko><head>[H]<title>t</title>",
        ),
        (b"<html><head data-x='>'><title>", b"<html><head data-x='>'>[H]<title>"),
        (b"<!doctype html>\n<p>no head", b"<!doctype html>\n[H]<p>no head"),
        (b"\xef\xbb\xbf<html>\n<body>", b"\xef\xbb\xbf<html>\n[H]<body>"),
        (b"<!doctype html><html>", b"<!doctype html><html>[H]"),
        (b"text first<head>", b"[H]text first<head>"),
        (b"<headline><head>", b"[H]<headline><head>"),
    ],
)
def test_the_head_snippet_goes_after_head_or_before_the_first_content(page: bytes, expected: bytes) -> None:
    """Consent Mode's default must come before any script, wherever the chunks are cut."""
    for size in (len(page), 1, 3):
        rewriter = PageRewriter(b"[H]", b"", frozenset({"necessary"}))
        out = [rewriter.feed(page[i : i + size], True) for i in range(0, len(page), size)]
        assert b"".join(out) + rewriter.feed(b"", False) == expected, size
