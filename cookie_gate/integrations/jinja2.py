"""Jinja2 (Starlette's `Jinja2Templates`, FastAPI, Quart): the decision and the banner as template globals.

    templates = Jinja2Templates(directory="templates")
    install(templates.env)

    {% if consent_allows("analytics") %} ... {% endif %}
    {{ cookie_gate_banner() }}     {# where the banner goes, with inject_banner=False #}

Both read the `request` the framework puts in every template's context.
`cookie_gate_banner()` renders only when automatic injection is off (otherwise the
gate injects the banner itself and the call renders nothing, so a page never shows two).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from cookie_gate.asgi import Scope
from cookie_gate.integrations import banner_markup, consent_from_scope

__all__ = ["install"]


def install(environment: Environment) -> None:
    """Add `consent`, `consent_allows(category)` and `cookie_gate_banner()` to `environment`'s globals."""
    environment.globals["consent"] = _consent
    environment.globals["consent_allows"] = _consent_allows
    environment.globals["cookie_gate_banner"] = _banner


def _scope(context: Context) -> Scope:
    request: Any = context.get("request")
    scope = getattr(request, "scope", None)
    if scope is None:
        raise RuntimeError("cookie_gate's template globals need `request` in the template context")
    return scope  # type: ignore[no-any-return]


@pass_context
def _consent(context: Context) -> Any:
    return consent_from_scope(_scope(context))


@pass_context
def _consent_allows(context: Context, category: str) -> bool:
    return consent_from_scope(_scope(context)).allows(category)


@pass_context
def _banner(context: Context) -> Markup:
    return Markup(banner_markup(_scope(context)))  # the gate's own markup, already escaped
