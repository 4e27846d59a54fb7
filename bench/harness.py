"""In-process ASGI plumbing: hand-built scopes, a counting sink, the two visitors, response checks.

No server and no HTTP client sit between the timer and the app, so what is timed is
the app plus the layer around it and nothing else. The checks exist because a
benchmark that silently gets 404s or skips the banner would report the broken
stack as the fast one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Scope

from bench.apps import APP_COOKIES, BANNER_MARKER, BROWSER_HEADERS, GA_COOKIE, HOST, Stack
from cookie_gate import CookieGateMiddleware
from cookie_gate.own_cookies import COUNTER_COOKIE

RawHeaders = list[tuple[bytes, bytes]]
CONSENT_PATH = "/_cookie_gate/consent"
#: What the consented visitor agreed to through the banner's JSON endpoint.
CONSENT_BODY = json.dumps({"accept": ["analytics"]}).encode()
#: The categories the gate allows each visitor (opt-in mode, the default).
ALLOWED: dict[str, frozenset[str]] = {
    "undecided": frozenset({"necessary"}),
    "consented": frozenset({"necessary", "analytics"}),
}


@dataclass(frozen=True)
class Visitor:
    """One browser: the same headers go to every stack, only the cookie header differs between visitors."""

    name: str
    cookie: str

    @property
    def headers(self) -> RawHeaders:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in BROWSER_HEADERS] + [
            (b"cookie", self.cookie.encode("latin-1"))
        ]


def make_scope(path: str, headers: Sequence[tuple[bytes, bytes]], method: str = "GET") -> Scope:
    """A fresh scope shaped like uvicorn's; fresh because the gate and Starlette both write into it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "headers": list(headers),
        "state": {},
    }


_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> Message:
    """The whole (empty) GET body in one message, as uvicorn delivers it."""
    return _REQUEST


class Sink:
    """A `send` that throws responses away but counts them, so every timed round can be verified."""

    __slots__ = ("body_bytes", "not_ok", "starts")

    def __init__(self) -> None:
        self.starts = 0
        self.not_ok = 0
        self.body_bytes = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.starts += 1
            if message["status"] != 200:
                self.not_ok += 1
        else:
            self.body_bytes += len(message.get("body", b""))


@dataclass(frozen=True)
class Captured:
    status: int
    headers: RawHeaders
    body: bytes
    starts: int

    def header_values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


async def call(app: ASGIApp, scope: Scope, body: bytes = b"") -> Captured:
    """Run one request and keep every message (for setup and checks, never for timing)."""
    messages: list[Message] = []
    sent = False

    async def receive_body() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive_body, send)
    starts = [m for m in messages if m["type"] == "http.response.start"]
    if not starts:
        raise RuntimeError(f"{scope['path']}: the app sent no response")
    return Captured(
        status=starts[0]["status"],
        headers=[(bytes(k), bytes(v)) for k, v in starts[0].get("headers", [])],
        body=b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"),
        starts=len(starts),
    )


def first_cookie(set_cookies: Iterable[bytes], name: str) -> str:
    """`name=value` from the first Set-Cookie for `name` (attributes dropped)."""
    for value in set_cookies:
        pair = value.decode("latin-1").partition(";")[0].strip()
        if pair.partition("=")[0] == name:
            return pair
    raise RuntimeError(f"no Set-Cookie for {name!r}")


def kept_cookie(set_cookies: Iterable[bytes], name: str) -> str:
    """`name=value` from the last Set-Cookie for `name`: what the browser keeps.

    The consent endpoint deletes stray copies of its cookie under other Domains first.
    """
    return first_cookie(reversed(list(set_cookies)), name)


def consent_request_headers(cookie: str) -> RawHeaders:
    """What the banner's script sends when the visitor saves a choice (same-origin JSON POST)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in BROWSER_HEADERS]
    return headers + [
        (b"origin", f"http://{HOST}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(CONSENT_BODY)).encode()),
        (b"cookie", cookie.encode("latin-1")),
    ]


async def make_visitors(stacks: dict[Stack, ASGIApp]) -> tuple[Visitor, Visitor]:
    """Both visitors carry a genuine Starlette session and an old `_ga`; one has also said yes to analytics.

    The session cookie comes from SessionMiddleware itself and the consent cookie from
    the gate's own consent endpoint, so both are exactly what a browser would hold.
    """
    login = await call(stacks["session"], make_scope("/login", Visitor("x", GA_COOKIE).headers))
    session = first_cookie(login.header_values(b"set-cookie"), "session")
    undecided = Visitor("undecided", f"{session}; {GA_COOKIE}")
    gate = stacks["gate"]
    if not isinstance(gate, CookieGateMiddleware):
        raise TypeError("stacks['gate'] is not a CookieGateMiddleware")
    answer = await call(gate, make_scope(CONSENT_PATH, consent_request_headers(undecided.cookie), "POST"), CONSENT_BODY)
    if answer.status != 200:
        raise RuntimeError(f"consent POST answered {answer.status}: {answer.body[:200]!r}")
    consent = kept_cookie(answer.header_values(b"set-cookie"), gate.config.cookie_name)
    # A returning visitor also sends back the visit counter its first page view set, as a browser
    # would; without it every request would be a first visit and sign a new counter.
    first_view = await call(gate, make_scope("/page", Visitor("x", f"{undecided.cookie}; {consent}").headers))
    counter = first_cookie(first_view.header_values(b"set-cookie"), COUNTER_COOKIE)
    return undecided, Visitor("consented", f"{undecided.cookie}; {consent}; {counter}")


def _kept_names(set_cookies: Iterable[bytes]) -> list[str]:
    """Names of the Set-Cookies that set (not delete) a cookie."""
    names = []
    for value in set_cookies:
        if b"max-age=0" in value.lower():
            continue
        names.append(value.decode("latin-1").partition("=")[0].strip())
    return names


def check_response(
    stack: Stack,
    route: str,
    visitor: str,
    status: int,
    headers: RawHeaders,
    body: bytes,
    categories: dict[str, str],
) -> None:
    """Raise unless the response is what this stack must produce for this visitor.

    `categories` is the gate's own filing of the app's cookies, so the check follows
    the catalogue instead of hard-coding it; `_fbp` (marketing, refused by both
    visitors) is also checked by name as a guard against a catalogue regression.
    """
    where = f"{stack} {route} {visitor}"
    problems = []
    set_cookies = [v for k, v in headers if k.lower() == b"set-cookie"]
    gate = stack == "gate"
    if status != 200:
        problems.append(f"status {status}")
    if route == "/page":
        if not body.endswith(b"</body></html>"):
            problems.append("page does not end with </body></html>")
        if (BANNER_MARKER in body) != (gate and visitor == "undecided"):
            problems.append("banner present" if BANNER_MARKER in body else "banner missing")
        if gate and not any(k.lower() == b"vary" and b"cookie" in v.lower() for k, v in headers):
            problems.append("no Vary: Cookie on a gated page")
    if route == "/cookies":
        everything = [name for name, _, _ in APP_COOKIES]
        allowed = ALLOWED[visitor]
        expected = [n for n in everything if categories[n] in allowed] if gate else everything
        kept = _kept_names(set_cookies)
        if kept != expected:
            problems.append(f"Set-Cookie names {kept}, expected {expected}")
        if gate and "_fbp" in kept:
            problems.append("_fbp (marketing) got through the gate")
    expires_ga = any(v.startswith(b"_ga=") and b"max-age=0" in v.lower() for v in set_cookies)
    if expires_ga != (gate and visitor == "undecided"):
        problems.append("_ga expired" if expires_ga else "refused _ga not expired")
    if problems:
        raise RuntimeError(f"{where}: " + "; ".join(problems))


async def as_browser(app: ASGIApp, route: str, visitor: Visitor) -> RawHeaders:
    """The visitor's headers after one untimed request, with the visit counter it was given.

    A browser stores the counter cookie each time the gate rewrites it (at most once a
    minute, to keep the 30-minute visit rule exact); replaying a stale one would make
    every timed request rewrite and sign it, which no real visitor causes.
    """
    headers = visitor.headers
    answer = await call(app, make_scope(route, headers))
    fresh = [
        v.split(b";")[0] for v in answer.header_values(b"set-cookie") if v.startswith(COUNTER_COOKIE.encode() + b"=")
    ]
    if not fresh:
        return headers
    kept = [
        c for c in visitor.cookie.encode("latin-1").split(b"; ") if not c.startswith(COUNTER_COOKIE.encode() + b"=")
    ]
    return [(n, v) for n, v in headers if n != b"cookie"] + [(b"cookie", b"; ".join([*kept, fresh[0]]))]


@contextmanager
def private_schema(url: str, prefix: str = "cookie_gate_bench") -> Iterator[str]:
    """A fresh schema on the PostgreSQL server at `url`, dropped afterwards; yields a URL into it."""
    import psycopg

    schema = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            separator = "&" if "?" in url else "?"
            yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
