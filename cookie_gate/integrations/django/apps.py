from __future__ import annotations

from django.apps import AppConfig


class CookieGateConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Installs the `{% load cookie_gate %}` template tags under the label `cookie_gate`."""

    name = "cookie_gate.integrations.django"
    label = "cookie_gate"
    verbose_name = "Cookie gate"
