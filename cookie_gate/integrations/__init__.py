"""Framework integrations: each framework's own way of reading the visitor's decision.

The gateway itself is pure ASGI and works in front of any framework unchanged; these
small modules only add the idioms (`request.consent` in Django, a FastAPI dependency,
`g.consent` in Quart, template globals). Each imports its framework, which is an
optional extra (`pip install cookie-gate[django]`), so the core never needs one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cookie_gate.consent import Consent

__all__ = ["MissingGateError", "consent_from_scope"]


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
