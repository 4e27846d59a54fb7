"""Streaming rewriting of HTML responses: snippets in, unconsented tags neutralised.

Three edits, all made on bytes as the page streams through:
- a head snippet (Google Consent Mode's default) right after `<head>`, or, in a page
  without one, before the first thing that is not a doctype, comment, whitespace or `<html>`;
- `<script data-cookie-category="X">` of a category the visitor has not accepted
  becomes `type="text/plain"` and `<iframe data-cookie-category="X" src>` loses its
  `src` and `srcdoc` (kept as `data-src`, `data-srcdoc`), so nothing of X runs even if
  banner.js never loads;
- the banner (or the settings control) before the last `</body>` of the first chunk
  that has one, or at the end.

Tags are recognised by the HTML tokenizer's rules (`markup.TagScanner`), so a `>` in a
quoted attribute, a `/` between attributes, upper case or a tag cut into one-byte chunks
changes nothing, and a `<script` inside a comment or another script's text is left alone.
Every byte is looked at a bounded number of times. The last chunk is only tokenised as
far as its last possible `data-cookie-category`, and a whole page sent as one chunk is
not tokenised at all unless it has one (or needs the head snippet): most pages cost a
search and the copy that inserts the banner. That search is case-insensitive, so the
only bytes it can look for with `memchr` are the attribute's dashes (`_last_candidate`).
Nothing is held back beyond a `<script>`/`<iframe>` start tag cut by a chunk boundary
(at most `MAX_HELD_TAG` bytes) and the few bytes of a cut `</body`.
"""

from __future__ import annotations

import logging
import re
from html import unescape

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, bytes_size
from cookie_gate.markup import TagScanner, attributes

_MARKER = b"</body"
_MARKER_ANY_CASE = re.compile(rb"</body", re.IGNORECASE)
#: Where a `data-cookie-category` attribute may be: the only case-proof bytes are its dashes.
_CANDIDATE = re.compile(rb"-(?i:cookie-category)")
_CANDIDATE_SIZE = len(b"-cookie-category")
_WINDOW = 4096
_CATEGORY = b"data-cookie-category"
_SPACE = " \t\n\f\r"
_SPACE_BYTES = _SPACE.encode()
MAX_HELD_TAG = 64 * 1024
logger = logging.getLogger("cookie_gate")
_oversized_logged = False
_READ = frozenset((_CATEGORY, b"type", b"src", b"srcdoc"))


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


def _marker_prefix(chunk: bytes) -> int:
    """How many bytes at the end of the chunk may begin a `</body` the next chunk ends."""
    for size in range(min(len(_MARKER) - 1, len(chunk)), 0, -1):
        if chunk[-size:].lower() == _MARKER[:size]:
            return size
    return 0


def _last_candidate(data: bytes | bytearray) -> int:
    """Where the last possible `data-cookie-category` is (at the dash before `cookie`), or -1.

    A regular expression reads every byte, and `bytes.find` of more than one byte is no
    faster; only a one-byte `find` is `memchr`, many times faster. The attribute matches
    in any case, so its dashes are the one byte every spelling has. Checking each dash
    in Python would cost more than the expression where dashes are dense (class names,
    dates, `http-equiv`), so the expression reads `_WINDOW` bytes from each dash `find`
    jumps to, and only stretches without a dash (prose, most of a page) are skipped at
    `memchr` speed. A window's end lets a candidate that starts inside it finish.
    """
    last = -1
    search, find = _CANDIDATE.search, data.find
    dash = find(45)  # -
    while dash >= 0:
        stop = dash + _WINDOW
        match = search(data, dash, stop + _CANDIDATE_SIZE - 1)
        while match is not None:
            last = match.start()
            match = search(data, last + 1, stop + _CANDIDATE_SIZE - 1)
        dash = find(45, stop)
    return last


class PageRewriter:
    """Per-response state: feed it each body chunk, send what it returns."""

    __slots__ = (
        "_allowed",
        "_body",
        "_fed",
        "_head",
        "_held",
        "_held_at",
        "_marker_tail",
        "_rewriting",
        "_scanner",
        "growth",
        "oversized",
    )

    def __init__(self, head: bytes, body: bytes, allowed: frozenset[str] | None) -> None:
        self._head = head or None
        self._body = body or None
        #: Categories whose tagged elements may run; None when everything may.
        self._allowed = allowed
        #: Whether the page may still need the head snippet or a tag neutralised.
        self._rewriting = bool(head) or allowed is not None
        self._scanner: TagScanner | None = None  # made by the first chunk that needs tokenising
        self._held = bytearray()  # bytes not sent yet: a tag that may still be rewritten
        self._held_at = 0  # stream offset of the first held byte
        self._fed = 0  # stream offset of the end of what has been fed
        self._marker_tail = b""
        #: How many bytes the page grows by, when that is known before seeing it: not when
        #: tags may be neutralised, which changes the length by an amount nobody knows yet.
        self.growth = None if allowed is not None else len(head) + len(body)
        #: Tags longer than `MAX_HELD_TAG` that were neutralised without being seen whole.
        self.oversized = 0

    def feed(self, chunk: bytes, more_body: bool) -> bytes:
        if self._rewriting:
            chunk = self._rewrite(chunk, more_body)
        if self._body is not None:
            chunk = self._insert_body(chunk, more_body)
        return chunk

    def _rewrite(self, chunk: bytes, more_body: bool) -> bytes:
        scanner = self._scanner
        last = -2  # not searched yet
        if scanner is None:
            if not more_body and self._head is None:
                # A whole page in one chunk and no head snippet: without a candidate nothing is tokenised.
                last = _last_candidate(chunk)
                if last < 0:
                    self._rewriting = False
                    return chunk
            scanner = self._scanner = TagScanner(head_pending=self._head is not None)
        start = self._fed
        self._fed += len(chunk)
        data: bytes | bytearray = chunk
        data_at = start
        if self._held:
            self._held += chunk
            data, data_at = self._held, self._held_at
        if self._allowed is None:
            limit = -1  # only the head snippet's place is wanted
        elif more_body:
            limit = self._fed
        else:
            # The last chunk: nothing after its last candidate can need rewriting.
            if last == -2:
                last = _last_candidate(data)
            limit = data_at + last if last >= 0 else -1
        if not scanner.scan(chunk, not more_body, limit):
            self._rewriting = False
        hold = scanner.hold_from if more_body else -1
        oversized = -1
        if hold >= 0 and self._fed - hold > MAX_HELD_TAG:
            self.oversized += 1
            _log_oversized_once()
            scanner.release()
            oversized, hold = hold, -1
        cut = len(data) if hold < 0 else hold - data_at
        edits = self._edits(data, data_at, scanner, cut, oversized)
        if not more_body and self._head is not None:
            edits.append((cut, cut, self._head))  # nothing but doctype, comments and <html>
            self._head = None
        if hold >= 0:
            if cut == 0 and not edits:
                if not self._held:
                    self._held, self._held_at = bytearray(chunk), start
                return b""
            self._held, self._held_at = bytearray(data[cut:]), hold
        elif self._held:
            self._held = bytearray()
        if not edits:
            return data if cut == len(data) and isinstance(data, bytes) else bytes(data[:cut])
        pieces: list[bytes | memoryview] = []
        view = memoryview(data)
        done = 0
        for begin, finish, replacement in sorted(edits, key=lambda edit: edit[0]):
            pieces.append(view[done:begin])
            pieces.append(replacement)
            done = finish
        pieces.append(view[done:cut])
        return b"".join(pieces)

    def _edits(
        self, data: bytes | bytearray, data_at: int, scanner: TagScanner, cut: int, oversized: int
    ) -> list[tuple[int, int, bytes]]:
        """(begin, end, replacement) within `data[:cut]`: the head snippet and the tags made inert."""
        edits: list[tuple[int, int, bytes]] = []
        if scanner.head_at >= 0 and self._head is not None:
            at = scanner.head_at - data_at
            edits.append((at, at, self._head))
            self._head = None
        for tag in scanner.found:
            begin, finish = tag.start - data_at, tag.end - data_at
            replacement = self._neutralised(data[begin:finish], tag.name)
            if replacement is not None:
                edits.append((begin, finish, replacement))
        if oversized >= 0:
            begin = oversized - data_at
            name = bytes(data[begin + 1 : begin + 7]).lower()
            replacement = self._neutralised(data[begin:cut], name, oversized=True)
            if replacement is not None:
                edits.append((begin, cut, replacement))
        return edits

    def _neutralised(self, tag: bytes | bytearray, name: bytes, oversized: bool = False) -> bytes | None:
        """The tag made inert, or None to keep it: its category is accepted, or it is inert already.

        A tag cut short (`oversized`) may carry its category further on: unless an
        accepted one is among what was seen, it is neutralised, because letting it run
        would be a way around the visitor's choice, and a start tag that long is no page's
        normal markup.
        """
        found = attributes(tag, _READ)
        seen: dict[bytes, int] = {}
        for index, attribute in enumerate(found):
            seen.setdefault(attribute.name, index)
        category_at = seen.get(_CATEGORY)
        if category_at is None:
            if not oversized:
                return None
        else:
            raw = bytes(tag[found[category_at].value_start : found[category_at].value_end]).decode("latin-1")
            category = (unescape(raw) if "&" in raw else raw).strip(_SPACE)
            if self._allowed is not None and category in self._allowed:
                return None
        name_end = len(name) + 1
        if name == b"iframe":
            pieces = [bytes(tag[:name_end]), b' srcdoc=""'] if oversized else [bytes(tag[:name_end])]
            done = name_end
            for attribute in found:
                if attribute.name in (b"src", b"srcdoc"):
                    pieces.append(bytes(tag[done : attribute.name_start]))
                    pieces.append(b"data-" + bytes(tag[attribute.name_start : attribute.name_end]))
                    done = attribute.name_end
            pieces.append(bytes(tag[done:]))
            return b"".join(pieces)
        type_at = seen.get(b"type")
        rest = bytes(tag[name_end:])
        if type_at is not None:
            kind = found[type_at]
            if bytes(tag[kind.value_start : kind.value_end]).strip(_SPACE_BYTES).lower() == b"text/plain":
                return None
            # Keep the real type for banner.js, which restores it when the category is accepted.
            rest = bytes(tag[name_end : kind.name_start]) + b"data-cookie-gate-type" + bytes(tag[kind.name_end :])
        return bytes(tag[:name_end]) + b' type="text/plain"' + rest

    def _insert_body(self, chunk: bytes, more_body: bool) -> bytes:
        body = self._body
        assert body is not None
        if self._marker_tail:
            chunk = self._marker_tail + chunk
            self._marker_tail = b""
        index = _last_marker(chunk)
        if index >= 0:
            view = memoryview(chunk)
            self._body = None
            return b"".join((view[:index], body, view[index:]))
        if not more_body:
            self._body = None
            return chunk + body
        keep = _marker_prefix(chunk)
        if keep:
            self._marker_tail = chunk[-keep:]
            return chunk[:-keep]
        return chunk


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


def _log_oversized_once() -> None:
    """Say once per process that a page carried a start tag too long to hold, and what was done."""
    global _oversized_logged
    if not _oversized_logged:
        _oversized_logged = True
        logger.warning(
            "cookie_gate neutralised a <script>/<iframe> start tag longer than %d bytes without seeing it whole "
            "(counted in PageRewriter.oversized; logged once)",
            MAX_HELD_TAG,
        )
