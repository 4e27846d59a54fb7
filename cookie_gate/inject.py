"""Streaming insertion of the banner snippet into HTML responses.

The snippet's length is known before the first body byte, and it is inserted exactly
once (before `</body>`, or at the very end when there is none), so a `Content-Length`
can be raised at `http.response.start` and the start sent at once: nothing is held
back but at most five bytes that might begin a `</body>` split across two chunks.
"""

from __future__ import annotations

import functools
import re

_MARKER = b"</body"
_MARKER_ANY_CASE = re.compile(rb"</body", re.IGNORECASE)
_PARTIAL_MARKERS = tuple(_MARKER[:n] for n in range(len(_MARKER) - 1, 0, -1))


def _last_marker(chunk: bytes) -> int:
    index = chunk.rfind(_MARKER)
    if index >= 0:
        return index
    if b"</B" not in chunk and b"</b" not in chunk:
        return -1
    last = -1
    for match in _MARKER_ANY_CASE.finditer(chunk):
        last = match.start()
    return last


def _partial_marker_length(chunk: bytes) -> int:
    """Length of a tail of `chunk` that could be the start of `</body`."""
    tail = chunk[-(len(_MARKER) - 1) :].lower()
    for prefix in _PARTIAL_MARKERS:
        if tail.endswith(prefix):
            return len(prefix)
    return 0


class Injector:
    """Per-response state: feed it each body chunk, send what it returns."""

    __slots__ = ("_done", "_held", "_snippet")

    def __init__(self, snippet: bytes) -> None:
        self._snippet = snippet
        self._held = b""
        self._done = False

    def feed(self, chunk: bytes, more_body: bool) -> bytes:
        if self._done:
            return chunk
        if self._held:
            chunk = self._held + chunk
            self._held = b""
        index = _last_marker(chunk)
        if index >= 0:
            self._done = True
            view = memoryview(chunk)
            return b"".join((view[:index], self._snippet, view[index:]))
        if not more_body:
            self._done = True
            return chunk + self._snippet
        keep = _partial_marker_length(chunk)
        if keep:
            self._held = chunk[-keep:]
            return chunk[:-keep]
        return chunk


@functools.lru_cache(maxsize=64)
def is_html(content_type: bytes) -> bool:
    """A page, whatever its charset or encoding: what statistics count as a page view."""
    return content_type.partition(b";")[0].strip().lower() in (b"text/html", b"application/xhtml+xml")


@functools.lru_cache(maxsize=64)
def is_injectable(content_type: bytes) -> bool:
    """HTML in an ASCII-compatible charset: our markers and snippet are ASCII bytes.

    The snippet writes non-ASCII text as character references, so it is correct in a
    UTF-8 page and in an EUC-KR one alike; UTF-16/32 pages are left alone.
    """
    media, _, params = content_type.partition(b";")
    if media.strip().lower() not in (b"text/html", b"application/xhtml+xml"):
        return False
    charset = params.lower()
    return b"utf-16" not in charset and b"utf-32" not in charset


def raised_content_length(value: bytes, extra: int) -> bytes | None:
    """The new Content-Length, or None when the app's value is unusable."""
    try:
        length = int(value.strip())
    except ValueError:
        return None
    if length < 0:
        return None
    return str(length + extra).encode("ascii")


def weak_etag(value: bytes) -> bytes:
    """A strong ETag promises byte-identical bodies, which an injected page is not."""
    return value if value.startswith(b"W/") else b"W/" + value
