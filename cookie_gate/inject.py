"""Streaming rewriting of HTML responses: snippets in, unconsented tags neutralised.

Three edits, all made on bytes as the page streams through:
- a head snippet (Google Consent Mode's default) right after `<head>`;
- `<script data-cookie-category="X">` of a category the visitor has not accepted
  becomes `type="text/plain"` and `<iframe data-cookie-category="X" src>` loses its
  `src` (kept as `data-src`), so nothing of X runs even if banner.js never loads;
- the banner (or the settings control) before the last `</body>`, or at the end.

Nothing is buffered beyond a tag cut in two by a chunk boundary (at most 4 KiB): the
rest of every chunk goes out as soon as it arrives.
"""

from __future__ import annotations

import re

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, bytes_size

_MARKER = b"</body"
_MARKER_ANY_CASE = re.compile(rb"</body", re.IGNORECASE)
_HEAD = re.compile(rb"<head(?=[\s>/])[^>]*>", re.IGNORECASE)
_HTML = re.compile(rb"<html(?=[\s>/])[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!doctype[^>]*>", re.IGNORECASE)
_TAGGED = b"data-cookie-category"
_TAG = re.compile(rb"<(script|iframe)(\s[^>]*)?>", re.IGNORECASE)
_CATEGORY = re.compile(rb"""\sdata-cookie-category\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_TYPE = re.compile(rb"""(\s)type(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)""", re.IGNORECASE)
_SRC = re.compile(rb"(\s)src(\s*=)", re.IGNORECASE)
MAX_HELD_TAG = 4096


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


def _unfinished_tag(chunk: bytes) -> int:
    """Where a tag that the next chunk completes begins, or -1."""
    index = chunk.rfind(b"<")
    if index < 0 or chunk.find(b">", index) >= 0 or len(chunk) - index > MAX_HELD_TAG:
        return -1
    return index


class PageRewriter:
    """Per-response state: feed it each body chunk, send what it returns."""

    __slots__ = ("_allowed", "_body", "_head", "_held", "growth", "length_at")

    def __init__(self, head: bytes, body: bytes, allowed: frozenset[str] | None) -> None:
        self._head = head or None
        self._body = body or None
        #: Categories whose tagged elements may run; None when everything may.
        self._allowed = allowed
        self._held = b""
        #: How many bytes the page grows by, when that is known before seeing it: not when
        #: tags may be neutralised, which changes the length by an amount nobody knows yet.
        self.growth = None if allowed is not None else len(head) + len(body)
        #: Where the response's Content-Length sits in its (rewritten) headers; -1 for none.
        self.length_at = -1

    def feed(self, chunk: bytes, more_body: bool) -> bytes:
        if self._held:
            chunk = self._held + chunk
            self._held = b""
        if more_body:
            cut = _unfinished_tag(chunk)
            if cut >= 0:
                self._held = chunk[cut:]
                chunk = chunk[:cut]
        if self._head is not None:
            chunk = self._insert_head(chunk, self._head)
            self._head = None
        if self._allowed is not None and _TAGGED in chunk:
            chunk = _TAG.sub(self._neutralise, chunk)
        if self._body is not None:
            index = _last_marker(chunk)
            if index >= 0:
                view = memoryview(chunk)
                chunk = b"".join((view[:index], self._body, view[index:]))
                self._body = None
            elif not more_body:
                chunk += self._body
                self._body = None
        return chunk

    @staticmethod
    def _insert_head(chunk: bytes, snippet: bytes) -> bytes:
        """After `<head>`; a page without one gets it after `<html>` or the doctype (never before it)."""
        for pattern in (_HEAD, _HTML, _DOCTYPE):
            match = pattern.search(chunk)
            if match is not None:
                return chunk[: match.end()] + snippet + chunk[match.end() :]
        return snippet + chunk

    def _neutralise(self, match: re.Match[bytes]) -> bytes:
        tag = match.group(0)
        attributes = match.group(2) or b""
        found = _CATEGORY.search(attributes)
        if found is None:
            return tag
        category = (found.group(1) or found.group(2) or found.group(3) or b"").decode("latin-1").strip()
        if self._allowed is not None and category in self._allowed:
            return tag
        name = match.group(1)
        if name.lower() == b"iframe":
            return b"<" + name + _SRC.sub(rb"\1data-src\2", attributes) + b">"
        kind = _TYPE.search(attributes)
        if kind is not None and kind.group(3).strip(b"\"'").lower() == b"text/plain":
            return tag
        if kind is not None:
            # Keep the real type for banner.js, which restores it when the category is accepted.
            attributes = _TYPE.sub(rb"\1data-cookie-gate-type\2\3", attributes, count=1)
        return b"<" + name + b' type="text/plain"' + attributes + b">"


def _is_html(content_type: bytes) -> bool:
    """A page, whatever its charset or encoding: what statistics count as a page view."""
    return content_type.partition(b";")[0].strip().lower() in (b"text/html", b"application/xhtml+xml")


def _is_injectable(content_type: bytes) -> bool:
    """HTML in an ASCII-compatible charset: our markers and snippet are ASCII bytes.

    The snippet writes non-ASCII text as character references, so it is correct in a
    UTF-8 page and in an EUC-KR one alike; UTF-16/32 pages are left alone.
    """
    media, _, params = content_type.partition(b";")
    if media.strip().lower() not in (b"text/html", b"application/xhtml+xml"):
        return False
    charset = params.lower()
    return b"utf-16" not in charset and b"utf-32" not in charset


def _content_type_bytes(content_type: bytes, _: bool) -> int:
    return ENTRY_OVERHEAD + bytes_size(content_type)


# Apps send the same few Content-Types again and again: each answer is cached, in at most 64 KB
# (a Content-Type over 1 KB is read every time).
is_html = BoundedCache(_is_html, _content_type_bytes, max_bytes=64 * 2**10, max_entry_bytes=2**10).__getitem__
is_injectable = BoundedCache(
    _is_injectable, _content_type_bytes, max_bytes=64 * 2**10, max_entry_bytes=2**10
).__getitem__


def weak_etag(value: bytes) -> bytes:
    """A strong ETag promises byte-identical bodies, which an injected page is not."""
    return value if value.startswith(b"W/") else b"W/" + value
