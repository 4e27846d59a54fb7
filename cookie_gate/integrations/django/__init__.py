"""Django: wrap the ASGI application, read `request.consent`, place the banner from a template.

    # asgi.py
    from django.core.asgi import get_asgi_application
    from cookie_gate.integrations.django import gate
    application = gate(get_asgi_application(), secret_key=...)

    # settings.py
    INSTALLED_APPS += ["cookie_gate.integrations.django"]        # the {% load cookie_gate %} tags
    MIDDLEWARE += ["cookie_gate.integrations.django.ConsentMiddleware"]       # request.consent
    TEMPLATES[0]["OPTIONS"]["context_processors"] += ["cookie_gate.integrations.django.consent"]

`gate` files Django's own cookies (the session, CSRF, messages and language cookies,
under the names the settings give them) as necessary, so signing in, forms and
messages work for a visitor who refused everything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Unpack

from cookie_gate.asgi import ASGIApp
from cookie_gate.clock import Clock
from cookie_gate.config import Config, Options, load_config
from cookie_gate.consent import Consent
from cookie_gate.integrations import consent_from_scope, with_necessary
from cookie_gate.middleware import CookieGateMiddleware

__all__ = ["ConsentMiddleware", "consent", "django_cookie_names", "gate"]


def django_cookie_names() -> tuple[str, ...]:
    """The cookies Django itself sets, under the names this project's settings give them."""
    from django.conf import settings
    from django.contrib.messages.storage.cookie import CookieStorage

    return (
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        settings.LANGUAGE_COOKIE_NAME,
        CookieStorage.cookie_name,
    )


def gate(
    application: ASGIApp,
    secret_key: str | Sequence[str] | None = None,
    *,
    config: str | os.PathLike[str] | Config | Mapping[str, Any] | None = None,
    clock: Clock = time.time,
    **options: Unpack[Options],
) -> CookieGateMiddleware:
    """`CookieGateMiddleware` around Django's ASGI application, with Django's own cookies necessary.

    Settings are the middleware's (keywords, environment, TOML file). Call it after
    `get_asgi_application()`, which loads Django's settings.
    """
    settings = load_config(config, secret_key=secret_key, **options)
    return CookieGateMiddleware(application, config=with_necessary(settings, django_cookie_names()), clock=clock)


class ConsentMiddleware:
    """Sets `request.consent` from the gate's decision; works in sync and async stacks alike."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        request.consent = _consent_of(request)
        if self._async:
            return self._call_async(request)
        return self.get_response(request)

    async def _call_async(self, request: Any) -> Any:
        return await self.get_response(request)


def consent(request: Any) -> dict[str, Consent]:
    """Template context processor: `{{ consent }}` (and `{% if consent|allows:"analytics" %}`)."""
    return {"consent": _consent_of(request)}


def _consent_of(request: Any) -> Consent:
    scope = getattr(request, "scope", None)
    if scope is None:
        raise RuntimeError(
            "cookie_gate needs Django served over ASGI: serve `gate(get_asgi_application(), ...)` from asgi.py "
            "with an ASGI server (uvicorn, hypercorn, granian), not WSGI"
        )
    return consent_from_scope(scope)
