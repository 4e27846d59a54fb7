"""`GET /_cookie_gate/declaration`: the cookie declaration, public and cacheable, for a privacy page.

An HTML fragment (one `<section>`, no style, no script) by default, JSON when the
`Accept` header prefers `application/json`; Korean or English by `?lang=` or
`Accept-Language`. The same for every visitor, so shared caches may keep it
(`Cache-Control: public`, an `ETag`, `Vary` on the two headers it reads). Rebuilt
from the store's inventory at most every `REFRESH_SECONDS`, so a page embedding it
costs one inventory read per interval, however often it is fetched.

The public page lists only names a rule vouches for today (the site's configuration,
the built-in catalogue, the gateway itself). A name that nobody declared may have been
made up by any visitor, and a privacy page must not publish text a stranger chose.
For the same reason a name is shown verbatim only
when an exact rule names it: everything after `_ga_` is the visitor's, so the names a
prefix or suffix rule files share one row named by the pattern (`_ga_*`,
`declaration.public_inventory`). `cookie-gate cookies --format ...` shows the admin
every name.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread

from cookie_gate.asgi import Scope, Send, header, respond, respond_error
from cookie_gate.banner import preferred_locale
from cookie_gate.clock import Clock
from cookie_gate.config import LOCALES, Config
from cookie_gate.declaration import build_declaration, public_inventory, to_html, to_json
from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore

#: How long a built declaration is served before the inventory is read again; also its max-age.
REFRESH_SECONDS = 300
#: How long after a failed inventory read requests are answered without trying again.
RETRY_SECONDS = 5
#: Media ranges of an Accept header looked at; a longer list is a client's mistake, not a preference.
MAX_MEDIA_RANGES = 32
_TYPES = {"html": b"text/html; charset=utf-8", "json": b"application/json; charset=utf-8"}


class DeclarationEndpoint:
    def __init__(self, config: Config, store: SQLStore, clock: Clock) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        default = config.default_locale if config.default_locale in LOCALES else "en"
        self._default_locale = default
        #: (locale, format) -> (built at, body, etag)
        self._built: dict[tuple[str, str], tuple[float, bytes, bytes]] = {}
        self._lock = anyio.Lock()
        #: When the inventory last failed to read (the injected clock), None once a read succeeds.
        self._failed_at: float | None = None

    async def __call__(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond_error(send, 405, "the declaration is read-only", [(b"allow", b"GET, HEAD")])
            return
        locale = self._locale(scope)
        form = "json" if prefers_json(header(scope, b"accept")) else "html"
        try:
            body, etag = await self._body(locale, form)
        except StoreError:
            await respond_error(send, 503, "the cookie inventory is unavailable; try again later")
            return
        headers = [
            (b"etag", etag),
            (b"cache-control", f"public, max-age={REFRESH_SECONDS}".encode("ascii")),
            (b"vary", b"Accept, Accept-Language"),
            (b"content-language", locale.encode("ascii")),
            (b"access-control-allow-origin", b"*"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors *"),
        ]
        if _matches(header(scope, b"if-none-match"), etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(send, 200, body, _TYPES[form], headers, head_only=scope["method"] == "HEAD")

    def _locale(self, scope: Scope) -> str:
        query: bytes = scope.get("query_string", b"")
        try:
            fields = parse_qsl(query.decode("latin-1"), max_num_fields=16)
        except ValueError:
            fields = []
        asked = dict(fields).get("lang", "")
        if asked in LOCALES:
            return asked
        return preferred_locale(header(scope, b"accept-language"), LOCALES, self._default_locale)

    async def _body(self, locale: str, form: str) -> tuple[bytes, bytes]:
        """The cached declaration, rebuilt when due; requests arriving meanwhile wait for that one build.

        A body still due to be served is served without waiting for the lock. When the
        inventory cannot be read, the last body built is served (stale beats an error on
        a privacy page), and the failure is remembered for `RETRY_SECONDS`, so requests
        in that time answer at once rather than queue to retry the read one by one.
        """
        key = (locale, form)
        found = self._usable(key)
        if found is not None:
            return found
        async with self._lock:
            found = self._usable(key)
            if found is not None:
                return found
            now = self._clock()
            try:
                body, etag = await anyio.to_thread.run_sync(self._build, locale, form)
            except StoreError:
                self._failed_at = now
                stale = self._built.get(key)
                if stale is None:
                    raise
                return stale[1], stale[2]
            self._failed_at = None
            self._built[key] = (now, body, etag)
            return body, etag

    def _usable(self, key: tuple[str, str]) -> tuple[bytes, bytes] | None:
        """The body to serve for `key` without reading the store, if there is one; raises in a known outage.

        Fresh if built less than `REFRESH_SECONDS` ago; during `RETRY_SECONDS` after a failed
        read the last one built, however old, or `StoreError` when none was.
        """
        now = self._clock()
        built = self._built.get(key)
        if built is not None and 0 <= now - built[0] < REFRESH_SECONDS:
            return built[1], built[2]
        if self._failed_at is not None and 0 <= now - self._failed_at < RETRY_SECONDS:
            if built is None:
                raise StoreError("the cookie inventory was unavailable moments ago")
            return built[1], built[2]
        return None

    def _build(self, locale: str, form: str) -> tuple[bytes, bytes]:
        declaration = build_declaration(self._config, public_inventory(self._config, self._store.inventory()), locale)
        body = (to_json(declaration, compact=True) if form == "json" else to_html(declaration)).encode("utf-8")
        return body, b'"' + hashlib.sha256(body).hexdigest()[:32].encode("ascii") + b'"'


def prefers_json(accept: bytes | None) -> bool:
    """Whether `Accept` ranks `application/json` above HTML (a browser's `*/*` gets HTML)."""
    if not accept:
        return False
    best = {"json": 0.0, "html": 0.0}
    for item in accept.decode("latin-1").split(",")[:MAX_MEDIA_RANGES]:
        media, _, params = item.partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        if media == "application/json":
            best["json"] = max(best["json"], q)
        elif media in ("text/html", "text/*", "*/*"):
            best["html"] = max(best["html"], q - (0.001 if media != "text/html" else 0.0))
    return best["json"] > 0 and best["json"] > best["html"]


def _matches(if_none_match: bytes | None, etag: bytes) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")[:MAX_MEDIA_RANGES]]
    return b"*" in tags or etag in tags
