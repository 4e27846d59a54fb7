"""The request side of the gate: what a request's headers say, and the app's view of them.

`RequestReader.enter` reads the headers once, resolves what the Cookie header means
(`visit.VisitResolver`, cached per distinct header), hands the app a Cookie header
without refused cookies and leaves the decision in `scope["state"]["consent"]`. What
the response side needs from the request comes back as one `Request`.

Servers give header names in lower case, each once except Cookie at most: then the
headers read as one C-level `dict(headers)`. Anything else (an upper-case name from a
non-conforming server or test client, several Cookie headers, any repeated header)
takes the plain loop, which gives the same answer: the last value of a header wins,
and several Cookie headers are joined with "; " (RFC 9113 8.2.3).
"""

from __future__ import annotations

from cookie_gate.asgi import RawHeaders, Scope
from cookie_gate.clock import Clock
from cookie_gate.visit import Visit, VisitResolver

#: Extensions that let an app send a file by path: such a body cannot be rewritten, so they are hidden.
PATHSEND, ZEROCOPY = "http.response.pathsend", "http.response.zerocopy"
UNBUFFERABLE_EXTENSIONS = (PATHSEND, ZEROCOPY)


class Request:
    """What the response side needs from one request: its visit, when it came, and its headers."""

    __slots__ = ("headers", "now", "visit")

    def __init__(self, visit: Visit, now: float, headers: dict[bytes, bytes]) -> None:
        self.visit = visit
        self.now = now
        #: Header name (lower case) -> value, the last one of a repeated header; Cookie as the browser sent it.
        self.headers = headers


class RequestReader:
    """Turns a scope into a `Request`, and the scope into what the app may see."""

    __slots__ = ("_clock", "_visits")

    def __init__(self, visits: VisitResolver, clock: Clock) -> None:
        self._visits = visits
        self._clock = clock

    def enter(self, scope: Scope) -> Request:
        headers: RawHeaders = scope["headers"]
        fields = dict(headers)
        if len(fields) == len(headers) and b"".join(fields).islower():
            cookie = fields.get(b"cookie")
            several = lowered = False
        else:
            cookie, several, fields = _read_slowly(headers)
            lowered = True
        gpc = fields.get(b"sec-gpc")
        visit = self._visits.resolve(cookie, gpc is not None and gpc.strip() == b"1", now := self._clock())
        if several or visit.refused or visit.conflicting:
            scope["headers"] = _for_app(headers, visit.app_cookie, lowered)
        state = scope.get("state")
        if state is None:
            scope["state"] = {"consent": visit.consent}
        else:
            state["consent"] = visit.consent
        return Request(visit, now, fields)


def _read_slowly(headers: RawHeaders) -> tuple[bytes | None, bool, dict[bytes, bytes]]:
    """The Cookie header (several joined), whether there were several, and every other header, names lowered."""
    fields: dict[bytes, bytes] = {}
    cookies: list[bytes] = []
    for name, value in headers:
        name = name.lower()
        if name == b"cookie":
            cookies.append(value)
        else:
            fields[name] = value
    if len(cookies) > 1:
        return b"; ".join(cookies), True, fields  # joined once: linear however many there are
    return (cookies[0] if cookies else None), False, fields


def _for_app(headers: RawHeaders, cookie: bytes | None, any_case: bool) -> RawHeaders:
    """The request headers with the one Cookie header the app may see (None: without any).

    `any_case`: the names may not all be lower case, so each is lowered to be compared.
    """
    if any_case:
        kept = [pair for pair in headers if pair[0].lower() != b"cookie"]
    else:
        kept = [pair for pair in headers if pair[0] != b"cookie"]
    if cookie is not None:
        kept.append((b"cookie", cookie))
    return kept
