"""No header a client or an app can send makes the gateway raise.

Property-based: hypothesis generates arbitrary bytes for every header the gateway
reads, on the way in and on the way out, and the response must still go through.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from cookie_gate import CookieGateMiddleware
from cookie_gate.asgi import Message, Receive, Scope, Send
from tests.conftest import SECRET, http_scope, run_asgi

header_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
cookie_headers = st.lists(
    st.one_of(
        header_bytes,
        st.lists(
            st.tuples(st.sampled_from(["_ga", "_fbp", "cookie_gate", "JSESSIONID", "x", ""]), header_bytes),
            max_size=6,
        ).map(lambda pairs: b"; ".join(n.encode() + b"=" + v for n, v in pairs)),
    ),
    max_size=3,
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def gateway(store_dir: str) -> CookieGateMiddleware:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["state"]["response_headers"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<body>x</body>", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return CookieGateMiddleware(app, secret_key=SECRET, store=f"sqlite:///{store_dir}/robust.sqlite3")


def exchange(
    tmp_path: Path, request_headers: list[tuple[bytes, bytes]], response_headers: list[tuple[bytes, bytes]]
) -> list[Message]:
    scope = http_scope("/", headers=request_headers, state={"response_headers": response_headers})
    return asyncio.run(run_asgi(gateway(str(tmp_path)), scope))


@PROPERTY
@given(
    cookies=cookie_headers,
    gpc=header_bytes,
    language=header_bytes,
    host=header_bytes,
)
def test_any_request_header_is_survived(
    tmp_path: Path, cookies: list[bytes], gpc: bytes, language: bytes, host: bytes
) -> None:
    headers = [(b"cookie", c) for c in cookies] + [(b"sec-gpc", gpc), (b"accept-language", language), (b"host", host)]
    messages = exchange(tmp_path, headers, [(b"content-type", b"text/html"), (b"set-cookie", b"_ga=1")])
    assert messages[0]["status"] == 200
    assert [m["type"] for m in messages][-1] == "http.response.body"


@PROPERTY
@given(
    set_cookies=st.lists(header_bytes, max_size=5),
    content_type=header_bytes,
    content_length=header_bytes,
    etag=header_bytes,
    vary=header_bytes,
    disposition=header_bytes,
)
def test_any_response_header_is_survived(
    tmp_path: Path,
    set_cookies: list[bytes],
    content_type: bytes,
    content_length: bytes,
    etag: bytes,
    vary: bytes,
    disposition: bytes,
) -> None:
    headers = [(b"Set-Cookie", v) for v in set_cookies] + [
        (b"content-type", content_type),
        (b"content-length", content_length),
        (b"etag", etag),
        (b"vary", vary),
        (b"content-disposition", disposition),
    ]
    messages = exchange(tmp_path, [(b"cookie", b"_ga=1; JSESSIONID=2")], headers)
    start = messages[0]
    assert start["status"] == 200
    kept = [v for n, v in start["headers"] if n == b"set-cookie" and b"Max-Age=0; Expires=Thu" not in v]
    assert all(v in set_cookies for v in kept)
