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
from typing import Any

from cookie_gate.banner import BannerRenderer, preferred_locale
from cookie_gate.config import Config
from cookie_gate.consent import Consent

__all__ = ["BannerPlacement", "BannerSource", "request_nonce"]


def request_nonce(state: Mapping[str, Any] | None, key: str) -> str | None:
    """The CSP nonce a middleware left in `scope["state"][key]`, or None when there is no usable one."""
    nonce = state.get(key) if state else None
    return nonce if isinstance(nonce, str) and nonce else None


class BannerSource:
    """The gate's banner renderer, fed with what a request says: one per gate.

    It renders from a copy of the settings without their credentials, because every
    `BannerPlacement` handed to the app holds it; the banner never needs them.
    """

    __slots__ = ("_default_locale", "_locales", "_renderer", "nonce_key")

    def __init__(self, config: Config) -> None:
        self._renderer = BannerRenderer(replace(config, secret_keys=(), admin_token=None, store=""))
        self._locales = config.locales
        self._default_locale = config.default_locale
        #: Where a CSP middleware leaves the request's nonce in `scope["state"]`.
        self.nonce_key = config.csp_nonce_key

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

    def consent_mode(self, consent: Consent, nonce: str | None) -> bytes:
        """Google Consent Mode's default for `consent`, for the page's `<head>`."""
        return self._renderer.consent_mode(consent, nonce)


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
