"""Framework integrations: each framework's own way of reading the visitor's decision.

The gateway itself is pure ASGI and works in front of any framework unchanged; these
small modules only add the idioms (`request.consent` in Django, a FastAPI dependency,
`g.consent` in Quart, template globals). Each imports its framework, which is an
optional extra (`pip install cookie-gate[django]`), so the core never needs one.
What they share lives here: reading the decision from the scope, placing the banner
from a template, and filing a framework's own cookies as necessary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cookie_gate.asgi import Scope
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent
from cookie_gate.middleware import GATE_STATE_KEY
from cookie_gate.placement import BannerPlacement

__all__ = ["MissingGateError", "banner_markup", "consent_from_scope", "with_necessary"]


class MissingGateError(RuntimeError):
    """The app asked for the decision on a request that did not pass through the gate."""


def consent_from_scope(scope: Mapping[str, Any]) -> Consent:
    """The decision the gate left in `scope["state"]["consent"]`, or a clear error saying how to mount it."""
    state = scope.get("state")
    consent = state.get("consent") if isinstance(state, Mapping) else None
    if not isinstance(consent, Consent):
        raise MissingGateError(
            "no cookie consent on this request: wrap the ASGI application in CookieGateMiddleware "
            "(the outermost layer, so that every request passes through it)"
        )
    return consent


def banner_markup(scope: Scope) -> str:
    """The banner (or, for a decided visitor, the settings control) for a template to place.

    Only with `inject_banner = false`: otherwise the gate injects it into every page
    itself and this returns "", so a page never shows two banners. The markup is ASCII
    (non-ASCII text is written as character references) and already escaped. The gate
    hands templates a `BannerPlacement` for the request, never itself.
    """
    consent_from_scope(scope)  # a request that did not pass through the gate is an error, not a missing banner
    placement = scope["state"].get(GATE_STATE_KEY)
    return placement.render() if isinstance(placement, BannerPlacement) else ""


def with_necessary(config: Config, names: Iterable[str]) -> Config:
    """`config` with a framework's own cookie names filed as necessary, unless the site filed them itself.

    A session or CSRF cookie refused for want of consent logs the visitor out or breaks
    every form, whatever a public catalogue says about a cookie of the same name
    elsewhere; the site's own `categories` still win.
    """
    exact = {name for category in config.categories for name in category.exact_names}
    prefixes = tuple(prefix for category in config.categories for prefix in category.prefixes)
    missing = tuple(dict.fromkeys(name for name in names if name not in exact and not name.startswith(prefixes)))
    if not missing:
        return config
    categories = tuple(
        replace(category, cookies=category.cookies + missing) if category.name == NECESSARY else category
        for category in config.categories
    )
    return replace(config, categories=categories)
