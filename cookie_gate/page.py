"""One HTML response on its way through the page rewriter: its headers, its framing, its body.

A page is rewritten as it streams, but its start waits for the first body chunk, so
the Content-Length can be made true to the rewritten page (`Page`), and its headers
say that it differs by consent (`page_headers`). A page whose app declared a length of
at most `MAX_HELD_BODY` is held until complete, so it keeps an exact length; any other
page streams, never held past its first chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cookie_gate.asgi import Message, RawHeaders, Send
from cookie_gate.inject import PageRewriter, weak_etag

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


class Page:
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

    __slots__ = (
        "_complete",
        "_declared",
        "_held",
        "_length_at",
        "_on_overrun",
        "_overran",
        "_received",
        "_rewriter",
        "_start",
    )

    def __init__(self, start: Message, length_at: int, rewriter: PageRewriter, on_overrun: Callable[[], None]) -> None:
        self._start: Message | None = start
        #: Where the start's one Content-Length is in its headers (the gate's own copy), -1 for none.
        self._length_at = length_at
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
            await send(self._sized(start, body, False))
            await send({**message, "body": body})
            return True
        if held is None:
            at = self._length_at
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
        self._undeclare(start["headers"])
        await self._release(start, message, chunk, True, send)
        return False

    async def _release(self, start: Message, message: Message, chunk: bytes, more: bool, send: Send) -> None:
        """Send the start, sized for what is known now, and the first rewritten chunk; stream from here on."""
        self._start = None
        self._held = None
        body = self._rewriter.feed(chunk, more)
        await send(self._sized(start, body, more))
        await send({**message, "body": body})

    def _undeclare(self, headers: RawHeaders) -> None:
        """Drop the Content-Length from the gate's own copy of the start's headers (see `_sized`)."""
        if self._length_at >= 0:
            del headers[self._length_at]
            self._length_at = -1

    def _sized(self, start: Message, body: bytes, more_body: bool) -> Message:
        """The held start with a Content-Length true to the rewritten page.

        A page in one chunk gets its exact new length. A streamed page gets its old
        length plus the snippets when nothing else changes, and no length at all (the
        server then chunks it) when tags may be neutralised further down. The headers
        list is the gate's own copy (built by `page_headers`), so it is edited in place.
        """
        at = self._length_at
        if at < 0:
            return start
        headers = start["headers"]
        name, value = headers[at]
        growth = self._rewriter.growth
        if not more_body:
            headers[at] = (name, str(len(body)).encode("ascii"))
        elif growth is not None and (declared := _declared_length(value)) is not None:
            headers[at] = (name, str(declared + growth).encode("ascii"))
        else:
            del headers[at]
        return start


def page_headers(headers: Sequence[tuple[bytes, bytes]], refused: list[int], rewriting: bool) -> tuple[RawHeaders, int]:
    """An HTML response's headers as the gate sends them, and where its one Content-Length is (-1: none).

    The Set-Cookies at the `refused` positions go. The page differs by consent (banner
    or not), so shared caches must key on Cookie: `Vary` gains it. A page being
    rewritten (`rewriting`) gets a weak ETag and keeps at most one Content-Length, the
    one `Page` makes true to the rewritten body: a second copy left as the app sent it
    would announce two lengths, which a server or proxy answers with an error or, worse,
    by framing the connection on the stale one. Repeated identical values (which RFC
    9110 8.6 lets a recipient fold) become one. Values that differ leave no way to know
    which the app meant, so the page is treated as undeclared: every Content-Length
    goes, the body streams and the server frames it itself.
    """
    out: RawHeaders = []
    length_at = -1
    vary_seen = lengths_differ = False
    for index, (name, value) in enumerate(headers):
        if refused and index in refused:
            continue
        lowered = name if name.islower() else name.lower()
        if lowered == b"vary":
            vary_seen = True
            if b"cookie" not in value.lower() and value.strip() != b"*":
                value = value + b", Cookie"
        elif rewriting and lowered == b"etag":
            value = weak_etag(value)
        elif rewriting and lowered == b"content-length":
            if length_at >= 0:
                lengths_differ = lengths_differ or value.strip() != out[length_at][1].strip()
                continue
            length_at = len(out)
        out.append((name, value))
    if lengths_differ:
        del out[length_at]
        length_at = -1
    if not vary_seen:
        out.append((b"vary", b"Cookie"))
    return out, length_at


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
