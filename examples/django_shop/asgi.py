"""Django behind cookie_gate: `scripts/example django` serves `application` with uvicorn.

`gate` wraps Django's ASGI application and files Django's own cookies (session, CSRF,
messages, language) as necessary, so forms and sign-in keep working for a visitor who
refused everything.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from cookie_gate.integrations.django import gate

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.settings")
application = gate(get_asgi_application())  # secret and store from COOKIE_GATE_SECRET_KEY / COOKIE_GATE_STORE
