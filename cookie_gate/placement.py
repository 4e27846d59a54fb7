"""The banner's markup for one request: what the gate injects, and what a template may place.

The gate injects the banner into every page by itself. A site that sets
`inject_banner = false` places it from a template instead (`cookie_gate.integrations`),
and for that the gate leaves a `BannerPlacement` in `scope["state"]`: the one thing
templates and handlers are handed. It renders this request's banner and holds nothing
else, in particular neither the gate nor its settings' credentials (secret keys, admin
token, store URL) nor its store, all of which `request.state` would otherwise show to
every template. Both paths turn a request into markup through `BannerSource.markup`,
so the `next` path, the locale and the nonce are worked out in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from cookie_gate.banner import BannerRenderer, preferred_locale
from cookie_gate.cache import ENTRY_OVERHEAD, TUPLE_OVERHEAD, BoundedCache, bytes_size, str_size
from cookie_gate.config import Config
from cookie_gate.consent import Consent

__all__ = ["BannerPlacement", "BannerSource", "Snippets", "request_nonce"]

#: Banner and Consent Mode snippets per page and choice: the path and query are the visitor's, so
#: the cache is bounded in bytes; a page whose snippets pass a 64th of it is rendered every time.
SNIPPET_CACHE_BYTES = 8 * 2**20


class Snippets(NamedTuple):
    """What the page rewriter inserts: after `<head>` and before `</body>` (empty: nothing)."""

    head: bytes
    body: bytes


#: What the snippets depend on without a nonce: Accept-Language, root path, path, query, decided, allowed.
_SnippetKey = tuple[bytes | None, str, str, bytes, bool, frozenset[str]]


def _snippet_bytes(key: _SnippetKey, snippets: Snippets) -> int:
    language, root, path, query, _, allowed = key
    size = ENTRY_OVERHEAD + 2 * TUPLE_OVERHEAD + bytes_size(language) + str_size(root) + str_size(path)
    size += bytes_size(query) + 256 + 64 * len(allowed)  # the set may be a decision's own
    return size + bytes_size(snippets.head) + bytes_size(snippets.body)


def request_nonce(state: Mapping[str, Any] | None, key: str) -> str | None:
    """The CSP nonce a middleware left in `scope["state"][key]`, or None when there is no usable one."""
    nonce = state.get(key) if state else None
    return nonce if isinstance(nonce, str) and nonce else None


class BannerSource:
    """The gate's banner renderer, fed with what a request says: one per gate.

    It renders from a copy of the settings without their credentials, because every
    `BannerPlacement` handed to the app holds it; the banner never needs them.
    """

    __slots__ = ("_consent_mode", "_default_locale", "_inject", "_locales", "_renderer", "_snippets", "nonce_key")

    def __init__(self, config: Config) -> None:
        self._renderer = BannerRenderer(replace(config, secret_keys=(), admin_token=None, store=""))
        self._locales = config.locales
        self._default_locale = config.default_locale
        self._inject = config.inject_banner
        self._consent_mode = config.google_consent_mode
        #: Where a CSP middleware leaves the request's nonce in `scope["state"]`.
        self.nonce_key = config.csp_nonce_key
        self._snippets: BoundedCache[_SnippetKey, Snippets] = BoundedCache(
            lambda key: self._render(*key, None),
            _snippet_bytes,
            max_bytes=SNIPPET_CACHE_BYTES,
            max_entry_bytes=SNIPPET_CACHE_BYTES // 64,
        )

    def snippets(
        self, language: bytes | None, root: str, path: str, query: bytes, consent: Consent, nonce: str | None
    ) -> Snippets:
        """What the page rewriter puts into one page: Consent Mode for `<head>`, the banner for `<body>`.

        Without a nonce they depend only on the request's language, root path, page and
        decision, and the same pages come up again and again, so they are kept (this is
        the one cache of finished snippets; the renderer keeps only the per-locale parts).
        """
        if nonce is None:
            return self._snippets[language, root, path, query, consent.decided, consent.categories]
        return self._render(language, root, path, query, consent.decided, consent.categories, nonce)

    def _render(
        self,
        language: bytes | None,
        root: str,
        path: str,
        query: bytes,
        decided: bool,
        allowed: frozenset[str],
        nonce: str | None,
    ) -> Snippets:
        consent = Consent(allowed, decided=decided)
        body = self.markup(language, root, path, query, consent, nonce) if self._inject else b""
        head = self._renderer.consent_mode(consent, nonce) if self._consent_mode else b""
        return Snippets(head, body)

    def markup(
        self, language: bytes | None, root: str, path: str, query: bytes, consent: Consent, nonce: str | None
    ) -> bytes:
        """The banner (undecided) or the settings control (decided), ASCII and escaped.

        `root` is the root path the gate itself was called with (its endpoints live
        under it), `path` and `query` the page's, where the banner's forms return to.
        """
        next_path = path + ("?" + query.decode("latin-1") if query else "")
        locale = preferred_locale(language, self._locales, self._default_locale)
        return self._renderer.snippet(locale, root, next_path, consent, nonce)


class BannerPlacement:
    """This request's banner, for a template to place (`inject_banner = false`): `render()` and nothing more.

    The root path, page path and Accept-Language are taken when the request enters the
    gate, before a router inside it (Starlette's `Mount`) rewrites the scope's
    `root_path`; the decision and the CSP nonce are read from the request's state when
    the template renders, since a CSP middleware inside the gate sets the nonce later.
    """

    __slots__ = ("_language", "_path", "_query", "_root", "_source", "_state")

    def __init__(
        self, source: BannerSource, state: Mapping[str, Any], language: bytes | None, root: str, path: str, query: bytes
    ) -> None:
        self._source = source
        self._state = state
        self._language = language
        self._root = root
        self._path = path
        self._query = query

    def render(self) -> str:
        """The markup, already escaped, for a template to emit unescaped."""
        state = self._state
        consent = state["consent"]
        nonce = request_nonce(state, self._source.nonce_key)
        return self._source.markup(self._language, self._root, self._path, self._query, consent, nonce).decode("ascii")
