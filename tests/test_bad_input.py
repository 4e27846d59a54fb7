"""Hostile input to the gateway's own endpoints gets a 4xx with a reason, never a 500.

First the inputs of issue 7 that used to raise (a RecursionError, a reason that could
not be encoded, digits `int()` refuses); then a property: arbitrary methods, paths,
query strings, headers and bodies, raw bytes and huge values included, through every
endpoint (consent POST/GET/DELETE, the banner assets, the admin page and its JSON with
and without the token). No response is a 5xx, no exception leaves the ASGI app, every
request is answered exactly once and in bounded time.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import Message, Receive, Scope, Send
from tests.conftest import HOST, SECRET, http_scope

TOKEN = "admin-token-0123456789abcdef"
BEARER = f"Bearer {TOKEN}".encode()
BASIC = b"Basic " + base64.b64encode(f"admin:{TOKEN}".encode())
MOUNT = "/_cookie_gate"
#: Far more than any of these requests needs on a loaded machine, far less than a hang.
SECONDS_PER_REQUEST = 5.0


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<html><body>shop</body></html>"})


@functools.cache
def gateway(store_dir: str) -> CookieGateMiddleware:
    return CookieGateMiddleware(
        page, secret_key=SECRET, store=f"sqlite:///{store_dir}/bad-input.sqlite3", admin_token=TOKEN, statistics=False
    )


def exchange(
    tmp_path: Path,
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    body: Sequence[bytes] = (b"",),
) -> list[Message]:
    """One request through the gateway; the body arrives in the given chunks."""
    scope = http_scope(path, method=method, headers=headers, query_string=query)
    chunks = list(body)
    sent: list[Message] = []

    async def receive() -> Message:
        if not chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    started = time.monotonic()
    asyncio.run(gateway(str(tmp_path))(scope, receive, send))
    assert time.monotonic() - started < SECONDS_PER_REQUEST
    return sent


def answered(messages: list[Message]) -> tuple[int, bytes]:
    """The status and body of a well-formed response: one start, then body chunks to the last."""
    starts = [m for m in messages if m["type"] == "http.response.start"]
    assert len(starts) == 1 and messages[0] is starts[0]
    assert messages[-1]["type"] == "http.response.body" and not messages[-1].get("more_body", False)
    return starts[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


def reason(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error
    return error


JSON = [(b"content-type", b"application/json")]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"[" * 16_000, 400, "nests too deeply"),
        (b"{" * 16_000, 400, "not valid JSON"),
        (b'{"accept": ' + b"[" * 8000 + b"]" * 8000 + b"}", 400, "nests too deeply"),
        (b'{"\\ud800": 1}', 400, "unknown field"),
        (b'{"accept": ["\\udfff"]}', 400, "unknown category"),
        (b'{"accept": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ],
    ids=["16000 [", "16000 {", "deep accept", "lone surrogate field", "lone surrogate category", "5000 digits"],
)
def test_a_hostile_json_choice_gets_400_with_a_reason(tmp_path: Path, body: bytes, status: int, words: str) -> None:
    got, response = answered(exchange(tmp_path, "POST", f"{MOUNT}/consent", headers=JSON, body=[body]))
    assert got == status
    assert words in reason(response)


def test_a_lone_surrogate_is_echoed_as_a_json_escape(tmp_path: Path) -> None:
    _, response = answered(exchange(tmp_path, "POST", f"{MOUNT}/consent", headers=JSON, body=[b'{"\\ud800": 1}']))
    assert b"\\ud800" in response
    assert reason(response) == "unknown field(s): '\\ud800'"


@pytest.mark.parametrize(
    "content_length, status",
    [(b"9" * 5000, 413), (b"\xc2\xb2", 400), (b"12abc", 400), (b"-1", 400), (b"+5", 400)],
    ids=["5000 digits", "superscript two", "trailing junk", "negative", "plus sign"],
)
def test_a_content_length_int_cannot_read_gets_a_4xx(tmp_path: Path, content_length: bytes, status: int) -> None:
    headers = [*JSON, (b"content-length", content_length)]
    got, response = answered(exchange(tmp_path, "POST", f"{MOUNT}/consent", headers=headers, body=[b"{}"]))
    assert got == status
    assert "Content-Length" in reason(response) or "larger than" in reason(response)


def test_a_content_length_of_many_leading_zeros_is_read_as_its_number(tmp_path: Path) -> None:
    body = b'{"accept": []}'
    headers = [*JSON, (b"content-length", b"0" * 5000 + str(len(body)).encode())]
    status, _ = answered(exchange(tmp_path, "POST", f"{MOUNT}/consent", headers=headers, body=[body]))
    assert status == 200


@pytest.mark.parametrize(
    "query",
    [b"days=\xc2\xb2", b"days=%C2%B2", b"days=" + b"7" * 5000, b"days=%D9%A3", b"days=0", b"days=801", b"days=-1"],
    ids=["raw superscript", "encoded superscript", "5000 digits", "arabic-indic three", "zero", "too many", "negative"],
)
@pytest.mark.parametrize("subpath", ["/admin", "/admin/stats.json"])
def test_an_admin_days_value_int_cannot_read_gets_400(tmp_path: Path, query: bytes, subpath: str) -> None:
    headers = [(b"authorization", BEARER)]
    status, response = answered(exchange(tmp_path, "GET", MOUNT + subpath, headers=headers, query=query))
    assert status == 400
    assert "days must be a whole number" in reason(response)


def test_a_good_days_value_still_works(tmp_path: Path) -> None:
    headers = [(b"authorization", BEARER)]
    status, response = answered(
        exchange(tmp_path, "GET", f"{MOUNT}/admin/stats.json", headers=headers, query=b"days=7")
    )
    assert status == 200 and json.loads(response)["period"]["days"] == 7


def test_an_app_content_length_of_thousands_of_digits_does_not_break_the_page(tmp_path: Path) -> None:
    """The response side: a streamed page whose Content-Length int() cannot read still goes out."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", b"9" * 5000)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<html><body>", "more_body": True})
        await send({"type": "http.response.body", "body": b"</body></html>"})

    # Without prior blocking the page only grows by the banner, so its length is adjusted rather than dropped.
    store = f"sqlite:///{tmp_path}/app.sqlite3"
    gate = CookieGateMiddleware(app, secret_key=SECRET, store=store, statistics=False, prior_blocking=False)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(gate(http_scope("/"), receive, send))
    status, body = answered(sent)
    assert status == 200 and b"cookie-gate" in body
    assert all(name != b"content-length" for name, _ in sent[0]["headers"])  # unknowable: the server chunks it


# -- the property ---------------------------------------------------------------------------------------------------

raw = st.binary(max_size=200)
huge = st.sampled_from([b"9" * 5000, b"[" * 16_000, b"\xff" * 9000, b"a=" * 4000, b"\\ud800" * 500, b"x;" * 4000])
header_values = st.one_of(raw, huge, st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
header_names = st.one_of(
    st.sampled_from(
        [b"content-type", b"content-length", b"cookie", b"origin", b"sec-fetch-site", b"host", b"authorization",
         b"if-none-match", b"sec-gpc", b"accept-language", b"accept", b"referer", b"user-agent", b"Content-Type",
         b"COOKIE"]
    ),
    st.binary(min_size=1, max_size=20),
)  # fmt: skip
headers = st.lists(
    st.one_of(
        st.tuples(header_names, header_values),
        st.tuples(st.just(b"authorization"), st.sampled_from([BEARER, BASIC, b"Bearer", b"Basic !!", b"Basic"])),
        st.tuples(
            st.just(b"content-type"),
            st.sampled_from([b"application/json", b"application/x-www-form-urlencoded", b"text/plain", b""]),
        ),
        st.tuples(st.just(b"origin"), st.sampled_from([f"http://{HOST}".encode(), b"https://evil.example", b"null"])),
    ),
    max_size=8,
)
#: Text as JSON can carry it: lone surrogates too (hypothesis leaves them out of st.text by default).
json_text = st.one_of(
    st.text(max_size=20), st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)
#: Nesting of any depth up to the body limit, closed or not, alone or as a field's value.
nested = st.tuples(st.integers(1, 8000), st.sampled_from([b"[", b"{", b'{"a":', b'[{"accept":']), st.booleans()).map(
    lambda t: t[1] * t[0] + (b"]" * t[0] if t[2] else b"")
)
choices = st.fixed_dictionaries(
    {},
    optional={
        "accept": st.one_of(
            st.just("all"), st.lists(st.sampled_from(["analytics", "marketing", "necessary", "x"])), json_values
        ),
        "remember": st.one_of(st.booleans(), json_values),
    },
)
bodies = st.one_of(
    raw,
    huge,
    nested,
    nested.map(lambda inner: b'{"accept": ' + inner + b"}"),
    json_values.map(lambda v: json.dumps(v).encode()),
    choices.map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.tuples(st.sampled_from(["action", "accept", "next", "remember", "x"]), st.text(max_size=30)), max_size=6
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")),
)
queries = st.one_of(
    raw,
    huge,
    st.sampled_from(
        [
            b"lang=ko",
            b"lang=%00",
            b"lang=en&done=saved",
            b"done=" + b"x" * 5000,
            b"days=7",
            b"days=\xc2\xb2",
            b"days=%C2%B2",
            b"days=",
            b"days=1&days=x",
            b"days=" + b"1" * 5000,
        ]
    ),
)
subpaths = st.one_of(
    st.sampled_from(
        ["/consent", "/banner.js", "/banner.css", "/admin", "/admin/stats.json", "/admin/", "/admin/x", "", "/",
         "/consent/", "/nope", "/me", "/declaration", "/me/"]
    ),
    st.text(max_size=30).map(lambda t: "/" + t),
)  # fmt: skip
methods = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"]), st.text(max_size=10))
content_types = st.sampled_from(
    [b"application/json", b"application/x-www-form-urlencoded", b"application/json; charset=utf-8", b"text/plain", b""]
)
content_lengths = st.one_of(
    st.integers(0, 20_000).map(lambda n: str(n).encode()),
    huge,
    raw,
    st.sampled_from([b"\xc2\xb2", b"-1", b"+5", b" 7 "]),
)
authorizations = st.sampled_from([BEARER, BASIC, b"Bearer", b"Bearer " + b"x" * 5000, b"Basic !!", b"Basic", b""])


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, list[tuple[bytes, bytes]], list[bytes]]:
    """(method, path under the mount, query, headers, body chunks), shaped for one endpoint or none."""
    endpoint = draw(st.sampled_from(["decide", "consent", "asset", "admin", "pages", "anything"]))
    extra = draw(headers)
    body = draw(st.lists(bodies, min_size=1, max_size=3))
    query = draw(queries)
    if endpoint == "decide":
        shaped = [(b"content-type", draw(content_types))]
        if draw(st.booleans()):
            shaped.append((b"content-length", draw(content_lengths)))
        return "POST", "/consent", query, [*shaped, *extra], body
    if endpoint == "consent":
        return draw(st.sampled_from(["GET", "DELETE", "HEAD", "PUT"])), "/consent", query, extra, body
    if endpoint == "asset":
        method = draw(st.sampled_from(["GET", "HEAD", "POST"]))
        return method, draw(st.sampled_from(["/banner.js", "/banner.css"])), query, extra, body
    if endpoint == "pages":  # the visitor's page and the declaration: queries and headers of any shape
        method = draw(st.sampled_from(["GET", "HEAD", "POST"]))
        return method, draw(st.sampled_from(["/me", "/declaration"])), query, extra, body
    if endpoint == "admin":
        subpath = draw(st.sampled_from(["/admin", "/admin/stats.json", "/admin/", "/admin/x"]))
        auth = [(b"authorization", draw(authorizations))] if draw(st.booleans()) else []
        return draw(st.sampled_from(["GET", "HEAD", "POST"])), subpath, query, [*auth, *extra], body
    return draw(methods), draw(subpaths), query, extra, body


FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(request=requests())
def test_no_request_to_an_endpoint_gets_a_5xx(
    tmp_path: Path, request: tuple[str, str, bytes, list[tuple[bytes, bytes]], list[bytes]]
) -> None:
    method, subpath, query, request_headers, body = request
    status, response = answered(
        exchange(tmp_path, method, MOUNT + subpath, headers=request_headers, query=query, body=body)
    )
    assert 200 <= status < 500
    if status >= 400 and method != "HEAD":
        reason(response)  # every refusal says why, in JSON


@FUZZ
@given(
    subpath=st.sampled_from(["/admin", "/admin/stats.json"]),
    authorization=st.sampled_from([BEARER, BASIC]),
    query=queries,
    request_headers=headers,
)
def test_no_query_to_the_admin_gets_a_5xx(
    tmp_path: Path, subpath: str, authorization: bytes, query: bytes, request_headers: list[tuple[bytes, bytes]]
) -> None:
    request_headers = [(b"authorization", authorization), *request_headers]
    status, response = answered(exchange(tmp_path, "GET", MOUNT + subpath, headers=request_headers, query=query))
    assert status in (200, 400)
    if status == 400:  # a refusal names the parameter it refuses
        assert any(key in reason(response) for key in ("days", "from", "to", "lang", "query", "period")), reason(
            response
        )
