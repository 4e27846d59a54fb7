"""Quart: the decision on `g.consent`, and `consent` / `consent_allows` in every template.

app = Quart(__name__)
init_app(app)
asgi = CookieGateMiddleware(app, secret_key=...)   # serve `asgi`, not `app`
"""

from __future__ import annotations

from typing import Any

from quart import Quart, g, request

from cookie_gate.consent import Consent
from cookie_gate.integrations import consent_from_scope

__all__ = ["init_app"]


def init_app(app: Quart) -> None:
    """Set `g.consent` before each request and give templates `consent` and `consent_allows(category)`."""

    @app.before_request
    async def _read_consent() -> None:
        g.consent = consent_from_scope(request.scope)

    @app.context_processor
    async def _consent_context() -> dict[str, Any]:
        consent: Consent | None = g.get("consent")
        if consent is None:  # a template rendered outside a request (a background task, a CLI command)
            return {}
        return {"consent": consent, "consent_allows": consent.allows}
