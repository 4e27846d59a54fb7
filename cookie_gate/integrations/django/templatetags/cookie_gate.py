"""`{% load cookie_gate %}`: `{% cookie_gate_banner %}` places the banner; `consent|allows:"analytics"` tests it.

The banner tag renders only with `inject_banner=False` (otherwise the gate injects it
into every page and the tag renders nothing, so a page never shows two banners).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from cookie_gate.consent import Consent
from cookie_gate.integrations import banner_markup

register = template.Library()


def cookie_gate_banner(context: Any) -> SafeString:
    request = context.get("request")
    scope = getattr(request, "scope", None)
    if scope is None:
        raise template.TemplateSyntaxError(
            "{% cookie_gate_banner %} needs the request in the context "
            "(django.template.context_processors.request) and Django served over ASGI"
        )
    return mark_safe(banner_markup(scope))  # the gate's own markup, already escaped


def allows(consent: Consent, category: str) -> bool:
    return isinstance(consent, Consent) and consent.allows(category)


register.simple_tag(cookie_gate_banner, takes_context=True)
register.filter("allows", allows)
