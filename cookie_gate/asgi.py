"""Minimal ASGI typing and response helpers shared by the middleware and endpoints.

The gateway speaks raw ASGI so it can sit in front of any framework; these aliases
match Starlette's so apps type-check the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


def style_csp(style: str, directives: str) -> bytes:
    """A Content-Security-Policy that allows nothing but this one inline `<style>` (by its hash) and `directives`.

    The gateway's own pages (dashboard, visitor page) carry their CSS inline and run no
    script, so this is their whole policy.
    """
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'sha256-{digest}'; {directives}".encode("ascii")


def header(scope: Scope, name: bytes) -> bytes | None:
    """First value of a request header; `name` must be lower case."""
    for key, value in scope["headers"]:
        if key == name or key.lower() == name:
            return bytes(value)
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    head_only: bool = False,
) -> None:
    raw: RawHeaders = [(b"content-length", str(len(body)).encode("ascii"))]
    if content_type is not None:
        raw.append((b"content-type", content_type))
    raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


async def respond_json(
    send: Send, status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = (), head_only: bool = False
) -> None:
    # A lone surrogate (JSON can carry one, e.g. in an echoed field name) has no UTF-8 form:
    # backslashreplace writes it as the JSON escape \udXXX, so the body is still valid JSON.
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    extra = [(b"cache-control", b"no-store"), *headers]
    await respond(send, status, body, b"application/json", extra, head_only)


async def respond_error(send: Send, status: int, reason: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await respond_json(send, status, {"error": reason}, headers)
