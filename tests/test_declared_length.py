"""A page whose app declared its length keeps an exact Content-Length after rewriting.

Apps that know their length may still send the body in pieces: Quart sends the whole
page with `more_body=True` and then an empty last message, Django and file responses
send 64 KiB chunks. Up to `MAX_HELD_BODY` the gateway holds such a page and sends it
with its new exact length; everything else streams as before. The raw harness records
every message, so holding and streaming are both visible here.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from itertools import accumulate

import anyio
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cookie_gate.asgi import Message, RawHeaders, Receive, Scope, Send
from cookie_gate.middleware import MAX_HELD_BODY
from tests.conftest import GateFactory, http_scope, run_asgi

pytestmark = pytest.mark.anyio
MARKER = b'id="cookie-gate"'
PAGE = b"<!doctype html><html><head><title>t</title></head><body>" + b"<p>row</p>" * 50 + b"</body></html>"


def app_sending(
    chunks: Sequence[bytes], declared: int | bytes | None, *, final_empty: bool = False
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A raw app: an HTML start (with `declared` as its Content-Length, if any), then `chunks`."""
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    if declared is not None:
        headers.append((b"content-length", declared if isinstance(declared, bytes) else str(declared).encode()))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1 and not final_empty
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
        if final_empty:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def body_of(messages: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def length_of(messages: list[Message]) -> int | None:
    value = next((v for n, v in messages[0]["headers"] if n.lower() == b"content-length"), None)
    return None if value is None else int(value)


def pieces(page: bytes, size: int) -> list[bytes]:
    return [page[i : i + size] for i in range(0, len(page), size)]


async def test_a_quart_style_body_then_empty_last_message_keeps_an_exact_length(gate: GateFactory) -> None:
    messages = await run_asgi(gate(app_sending([PAGE], len(PAGE), final_empty=True)), http_scope("/"))
    body = body_of(messages)
    assert MARKER in body
    assert length_of(messages) == len(body)


async def test_a_declared_page_in_many_chunks_goes_out_whole_with_its_new_length(gate: GateFactory) -> None:
    """Django's and file responses' 64 KiB pieces: the visitor still gets an exact length."""
    page = PAGE[:-14] + b"<script data-cookie-category='analytics' src='/a.js'></script>" * 3000 + PAGE[-14:]
    messages = await run_asgi(gate(app_sending(pieces(page, 65536), len(page))), http_scope("/"))
    body = body_of(messages)
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert length_of(messages) == len(body)
    assert body.count(b'type="text/plain"') == 3000 and MARKER in body


async def test_a_declared_page_larger_than_the_bound_streams_as_before(gate: GateFactory) -> None:
    page = PAGE[:-14] + b"x" * MAX_HELD_BODY + PAGE[-14:]
    chunks = pieces(page, 65536)
    messages = await run_asgi(gate(app_sending(chunks, len(page))), http_scope("/"))
    assert [m["type"] for m in messages].count("http.response.body") == len(chunks)
    assert length_of(messages) is None  # tags may change further down: the server chunks it
    assert MARKER in body_of(messages)


async def test_a_page_without_a_declared_length_is_never_held(gate: GateFactory) -> None:
    """The first chunk reaches the client while the app is still producing the rest."""
    release = anyio.Event()
    forwarded: list[Message] = []
    first_chunk_seen = anyio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE[:100], "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": PAGE[100:], "more_body": False})

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
        release.set()
    assert length_of(forwarded) is None
    assert MARKER in body_of(forwarded)


async def test_a_body_longer_than_declared_streams_through_rewritten(gate: GateFactory) -> None:
    """The app's mistake stays the app's (the server will refuse the extra bytes), never a 500 here."""
    chunks = pieces(PAGE, 100)
    messages = await run_asgi(gate(app_sending(chunks, len(PAGE) - 150)), http_scope("/"))
    body = body_of(messages)
    assert body.replace(body[body.index(b"<link") : body.index(b"</body>")], b"") == PAGE
    assert length_of(messages) is None
    # Held until the declared length was passed, then streamed: the first five pieces, then the last.
    assert [len(m["body"]) > 0 for m in messages[1:]] == [True, True]


async def test_body_after_a_complete_declared_page_is_dropped_counted_and_logged_once(
    gate: GateFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes past the announced length would corrupt the framing and skip the rewriter; a page counts once."""
    tail = b"<script data-cookie-category='marketing' src='/t.js'></script>"
    app = gate(app_sending([PAGE, tail, tail], len(PAGE)))
    for _ in range(3):
        messages = await run_asgi(app, http_scope("/"))
        body = body_of(messages)
        assert length_of(messages) == len(body)
        assert b"/t.js" not in body
    assert app.overrun_pages == 3
    assert [r.levelname for r in caplog.records if r.name == "cookie_gate"] == ["WARNING"]


async def test_a_body_shorter_than_declared_gets_the_length_of_what_came(gate: GateFactory) -> None:
    short = PAGE[:-100]
    messages = await run_asgi(gate(app_sending(pieces(short, 100), len(PAGE))), http_scope("/"))
    body = body_of(messages)
    assert body.startswith(short) and MARKER in body
    assert length_of(messages) == len(body)


@pytest.mark.parametrize("declared", [b"abc", b"-5", b"1" * 5000, b" 12 "])
async def test_a_malformed_declared_length_is_never_a_500(gate: GateFactory, declared: bytes) -> None:
    messages = await run_asgi(gate(app_sending(pieces(PAGE, 100), declared)), http_scope("/"))
    assert messages[0]["status"] == 200
    assert MARKER in body_of(messages)


async def test_a_non_body_message_while_holding_releases_the_page_rewritten(gate: GateFactory) -> None:
    page = PAGE.replace(b"<p>row</p>", b"<script data-cookie-category='marketing'></script>", 1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page[:200], "more_body": True})
        await send({"type": "http.response.debug", "info": {}})
        await send({"type": "http.response.body", "body": page[200:], "more_body": False})

    messages = await run_asgi(gate(app), http_scope("/"))
    assert [m["type"] for m in messages] == [
        "http.response.start",
        "http.response.body",
        "http.response.debug",
        "http.response.body",
    ]
    assert b'type="text/plain"' in body_of(messages) and MARKER in body_of(messages)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(PAGE)), max_size=8),
    offset=st.integers(min_value=-40, max_value=40),
    final_empty=st.booleans(),
)
async def test_any_split_and_any_declared_length_give_a_consistent_page(
    gate: GateFactory, cuts: list[int], offset: int, final_empty: bool
) -> None:
    """Whatever the chunking and however wrong the declared length, the page keeps its bytes and banner."""
    bounds = [0, *sorted(cuts), len(PAGE)]
    chunks = [PAGE[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    messages = await run_asgi(gate(app_sending(chunks, len(PAGE) + offset, final_empty=final_empty)), http_scope("/"))
    body = body_of(messages)
    assert body.count(MARKER) == 1
    declared = len(PAGE) + offset
    sent = body.replace(body[body.index(b"<link") : body.rindex(b"</div>") + 6], b"")
    # Either the whole page, or (when a chunk ended exactly at a too-short declared length) that much of it.
    assert sent == PAGE or (offset < 0 and sent == PAGE[:declared] and declared in accumulate(map(len, chunks)))
    length = length_of(messages)
    if offset == 0:
        assert length == len(body)
    if length is not None:
        assert length == len(body) or offset != 0
    assert messages[-1]["type"] == "http.response.body" and not messages[-1].get("more_body", False)


def app_with(headers: RawHeaders, chunks: Sequence[bytes]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A raw app sending exactly `headers`, then `chunks` (the last one ends the body)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


def lengths_of(messages: list[Message]) -> list[bytes]:
    return [v for n, v in messages[0]["headers"] if n.lower() == b"content-length"]


HTML = (b"content-type", b"text/html; charset=utf-8")


@pytest.mark.parametrize("split", [1, 2, 5])
async def test_a_repeated_identical_content_length_goes_out_once_and_true(gate: GateFactory, split: int) -> None:
    """Two Content-Lengths, one rewritten and one stale, would give the connection two framings."""
    declared = str(len(PAGE)).encode()
    headers = [HTML, (b"content-length", declared), (b"Content-Length", b" " + declared)]
    messages = await run_asgi(gate(app_with(headers, pieces(PAGE, -(-len(PAGE) // split)))), http_scope("/"))
    body = body_of(messages)
    assert MARKER in body
    assert lengths_of(messages) == [str(len(body)).encode()]


@pytest.mark.parametrize("split", [1, 3])
async def test_content_lengths_that_disagree_leave_the_page_undeclared(gate: GateFactory, split: int) -> None:
    """Which one the app meant is unknowable: no length at all, and the server frames the page itself."""
    headers = [HTML, (b"content-length", str(len(PAGE)).encode()), (b"content-length", b"7")]
    chunks = pieces(PAGE, -(-len(PAGE) // split))
    messages = await run_asgi(gate(app_with(headers, chunks)), http_scope("/"))
    body = body_of(messages)
    assert lengths_of(messages) == []
    assert MARKER in body and body.startswith(PAGE[:50])
    assert [m["type"] for m in messages].count("http.response.body") == len(chunks)  # streamed, never held


async def test_a_response_that_is_not_rewritten_keeps_the_apps_framing_byte_for_byte(gate: GateFactory) -> None:
    """The gate edits its headers (a refused Set-Cookie goes) but never its length or its bytes."""
    payload = b'{"ok": true}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"set-cookie", b"_ga=GA1.1.1; Path=/"),
        (b"content-length", b"99"),  # the app's own mistake, passed on as it was
    ]
    messages = await run_asgi(gate(app_with(headers, [payload[:5], payload[5:]])), http_scope("/"))
    assert [n for n, _ in messages[0]["headers"]].count(b"set-cookie") == 0
    assert lengths_of(messages) == [str(len(payload)).encode(), b"99"]
    assert body_of(messages) == payload


def alternating(page: bytes) -> list[bytes]:
    """Pieces of 4096 bytes and of one byte in turn: no run of short pieces lasts."""
    chunks: list[bytes] = []
    at = 0
    while at < len(page):
        chunks.extend((page[at : at + 4096], page[at + 4096 : at + 4097]))
        at += 4097
    return chunks


@pytest.mark.parametrize(
    "cut", [lambda page: [page[i : i + 1] for i in range(len(page))], alternating], ids=["one-byte", "alternating"]
)
async def test_a_declared_page_held_in_tiny_pieces_costs_a_few_times_its_size(
    gate: GateFactory, cut: Callable[[bytes], list[bytes]]
) -> None:
    """A held piece costs its bytes, not a list slot and a join descriptor each."""
    page = PAGE[:-14] + b"x" * (MAX_HELD_BODY - len(PAGE)) + PAGE[-14:]
    chunks = cut(page)  # CPython shares one-byte objects: the one-byte pieces cost the app nothing
    app = gate(app_sending(chunks, len(page)))
    await run_asgi(app, http_scope("/"))  # warm the caches, so only the page is measured
    tracemalloc.start()
    try:
        messages = await run_asgi(app, http_scope("/"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    body = body_of(messages)
    assert length_of(messages) == len(body) and MARKER in body
    assert peak < 5 * len(page), f"peak {peak} bytes for a {len(page)}-byte page"


TAG = b"<script data-cookie-category='marketing' src='/m.js'>"
TAGGED = PAGE.replace(b"<p>row</p>", TAG + b"</script>", 1)
TAG_AT = TAGGED.index(TAG)


@pytest.mark.parametrize("final_empty", [False, True])
async def test_a_tag_cut_anywhere_across_held_pieces_is_neutralised(gate: GateFactory, final_empty: bool) -> None:
    app = None
    for cut in range(TAG_AT, TAG_AT + len(TAG) + 1):
        app = gate(app_sending([TAGGED[:cut], TAGGED[cut:]], len(TAGGED), final_empty=final_empty), statistics=False)
        messages = await run_asgi(app, http_scope("/"))
        body = body_of(messages)
        assert TAG not in body and b"<script type=\"text/plain\" data-cookie-category='marketing'" in body, cut
        assert length_of(messages) == len(body)
    assert app is not None and app.overrun_pages == 0


async def test_a_page_ending_short_of_its_length_is_neutralised_and_sized_to_what_came(gate: GateFactory) -> None:
    """The app stops early (more_body=False) with a tag cut between two held pieces."""
    short = TAGGED[: TAG_AT + len(TAG) + 20]
    chunks = [short[: TAG_AT + 9], short[TAG_AT + 9 :]]
    messages = await run_asgi(gate(app_sending(chunks, len(TAGGED))), http_scope("/"))
    body = body_of(messages)
    assert TAG not in body and b'type="text/plain"' in body and MARKER in body
    assert length_of(messages) == len(body)


async def test_a_piece_past_the_declared_length_drops_the_length_even_when_growth_is_known(
    gate: GateFactory,
) -> None:
    """Without prior blocking the growth is known up front; a length of declared + growth would still be short."""
    app = gate(app_sending(pieces(PAGE, 100), len(PAGE) - 150), prior_blocking=False)
    messages = await run_asgi(app, http_scope("/"))
    body = body_of(messages)
    assert MARKER in body and body.startswith(PAGE[:100])
    assert length_of(messages) is None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(TAGGED)), max_size=8),
    offset=st.integers(min_value=-(len(TAGGED) - TAG_AT), max_value=60),
    final_empty=st.booleans(),
    prior_blocking=st.booleans(),
)
async def test_no_split_and_no_declared_length_lets_a_tag_run_or_the_length_lie(
    gate: GateFactory, cuts: list[int], offset: int, final_empty: bool, prior_blocking: bool
) -> None:
    """Whatever the app declares and however it cuts the page: a length sent is the body's, a tag sent is inert."""
    bounds = [0, *sorted(cuts), len(TAGGED)]
    chunks = [TAGGED[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    declared = len(TAGGED) + offset
    app = gate(app_sending(chunks, declared, final_empty=final_empty), statistics=False, prior_blocking=prior_blocking)
    messages = await run_asgi(app, http_scope("/"))
    body = body_of(messages)
    length = length_of(messages)
    assert length is None or length == len(body)
    if prior_blocking:
        assert TAG not in body
    truncated = b"</html>" not in body
    if truncated:  # the page was complete at its declared length and the rest was dropped, and counted
        assert declared in accumulate(map(len, chunks)) and app.overrun_pages == 1
    else:
        assert app.overrun_pages == 0
