"""Django 5 behind the gate, wrapped the Django way (`gate(get_asgi_application())`).

The real stack: sessions, CSRF, authentication and messages middleware, the ORM on
SQLite, templates with the context processor and the `{% load cookie_gate %}` tags.
A visitor who rejected every optional cookie must still be able to sign in.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

from cookie_gate.middleware import CookieGateMiddleware  # noqa: E402
from tests.clocks import suite_clock  # noqa: E402
from tests.conftest import HOST, SECRET, set_cookie_names, set_cookies  # noqa: E402
from tests.frameworks.support import (  # noqa: E402
    assert_banner_with_exact_length,
    assert_decision_in_idiom,
    assert_own_cookies_kept_and_trackers_stripped,
    decide,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]

TEMPLATES = {
    "page.html": """{% load cookie_gate %}<!doctype html><html><head><title>Shop</title></head><body>
<h1>Shop</h1>
<p id="user">{% if user.is_authenticated %}Signed in as {{ user.username }}{% else %}anonymous{% endif %}</p>
{% for message in messages %}<p class="message">{{ message }}</p>{% endfor %}
{% if consent|allows:"analytics" %}<p id="analytics-on">analytics</p>{% endif %}
<p>{{ filler }}</p>{% cookie_gate_banner %}</body></html>""",
    "login.html": """<!doctype html><html><body><form method="post">{% csrf_token %}
<input name="username"><input name="password" type="password"></form></body></html>""",
}


def _configure() -> None:
    if settings.configured:
        return
    database = Path(tempfile.mkdtemp(prefix="cookie-gate-django-")) / "db.sqlite3"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="django-test-secret-key-0123456789-abcdefghij",
        ALLOWED_HOSTS=[HOST],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "cookie_gate.integrations.django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",  # sets Content-Length, as in every new project
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "cookie_gate.integrations.django.ConsentMiddleware",
        ],
        MESSAGE_STORAGE="django.contrib.messages.storage.cookie.CookieStorage",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [("django.template.loaders.locmem.Loader", TEMPLATES)],
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                        "cookie_gate.integrations.django.consent",
                    ],
                },
            }
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    User.objects.create_user("alice", password="correct horse")


_configure()

from django.contrib import messages  # noqa: E402
from django.contrib.auth import authenticate, login  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import translation  # noqa: E402

from cookie_gate.integrations.django import gate  # noqa: E402


def page(request: HttpRequest) -> HttpResponse:
    request.session["seen"] = True
    response = render(request, "page.html", {"filler": "row " * 20000})  # over 64 KiB: Django sends it in chunks
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, translation.get_language() or "en")
    for name in ("_ga", "_gid", "_fbp"):
        response.set_cookie(name, "tracker-value")
    return response


def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
        if user is None:
            return HttpResponse("bad credentials", status=403)
        login(request, user)
        messages.success(request, "Welcome back, alice")
        return HttpResponseRedirect("/")
    return render(request, "login.html")


def decision(request: HttpRequest) -> JsonResponse:
    consent: Any = request.consent
    return JsonResponse({"decided": consent.decided, "analytics": consent.allows("analytics")})


urlpatterns = [path("", page), path("login/", sign_in), path("decision", decision)]


@pytest.fixture
async def django_gate(store_url: str) -> AsyncIterator[Callable[..., CookieGateMiddleware]]:
    built: list[CookieGateMiddleware] = []

    def factory(**options: Any) -> CookieGateMiddleware:
        options.setdefault("store", store_url)
        built.append(gate(get_asgi_application(), SECRET, clock=suite_clock, **options))
        return built[-1]

    yield factory
    for middleware in built:
        if middleware.statistics is not None:
            middleware.statistics.writer.stop()
        middleware.store.close()


async def test_django_keeps_its_own_cookies_and_strips_trackers(
    django_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    client = client_for(django_gate())
    await assert_own_cookies_kept_and_trackers_stripped(client, own={"sessionid", "django_language"})


async def test_django_sign_in_csrf_and_messages_work_for_a_visitor_who_rejected_all(
    django_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    client = client_for(django_gate())
    rejected = await decide(client, [])
    client.cookies.set("cookie_gate", rejected.partition("=")[2], domain=HOST)
    form = await client.get("/login/")
    assert "csrftoken" in set_cookie_names(form)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = await client.post(
        "/login/",
        data={"csrfmiddlewaretoken": token.group(1), "username": "alice", "password": "correct horse"},
    )
    assert signed_in.status_code == 302, signed_in.text
    assert {"sessionid", "messages"} <= set(set_cookie_names(signed_in))
    home = await client.get("/")
    assert "Signed in as alice" in home.text
    assert "Welcome back, alice" in home.text
    assert not [v for v in set_cookies(home) if v.startswith("sessionid=") and "max-age=0" in v.lower()]


async def test_django_pages_over_64_kib_keep_an_exact_length(
    django_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    await assert_banner_with_exact_length(client_for(django_gate()))


async def test_django_reads_request_consent_and_the_template_filter(
    django_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    client = client_for(django_gate())
    await assert_decision_in_idiom(client)
    analytics = await decide(client, ["analytics"])
    assert 'id="analytics-on"' in (await client.get("/", headers={"cookie": analytics})).text


async def test_django_template_tag_places_the_banner_when_injection_is_off(
    django_gate: Callable[..., CookieGateMiddleware], client_for: Clients
) -> None:
    injected = (await client_for(django_gate()).get("/")).text
    placed = (await client_for(django_gate(inject_banner=False)).get("/")).text
    assert injected.count('id="cookie-gate"') == 1 and placed.count('id="cookie-gate"') == 1
    # Placed by the tag right where the template puts it, just before </body>.
    assert placed.index('id="cookie-gate"') > placed.index("row row")


async def test_django_names_stay_necessary_whatever_the_catalogue_says(
    django_gate: Callable[..., CookieGateMiddleware],
) -> None:
    middleware = django_gate()
    for name in ("sessionid", "csrftoken", "messages", "django_language"):
        assert middleware.classifier.category(name) == "necessary", name


async def test_a_site_that_files_a_django_cookie_itself_keeps_its_choice(
    django_gate: Callable[..., CookieGateMiddleware],
) -> None:
    middleware = django_gate(categories={"preferences": {"cookies": ["django_language"]}})
    assert middleware.classifier.category("django_language") == "preferences"
    assert middleware.classifier.category("sessionid") == "necessary"


async def test_a_site_prefix_covering_a_django_name_keeps_its_choice(
    django_gate: Callable[..., CookieGateMiddleware],
) -> None:
    middleware = django_gate(categories={"preferences": {"cookies": ["django_lang*"]}})
    assert middleware.classifier.category("django_language") == "preferences"
