"""The catalogue measured against real sites' declarations, as a ratchet, and the names that must never break.

`scripts/measure_catalog.py` computes breakage and leak on the CookieBlock consent
crawl (tests/data); `scripts/catalog_figures.json` holds the committed figures. A
change that makes either rate worse, for either truth or either `unknown_cookies`
mode, fails here until the figures are rewritten on purpose (`--write`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cookie_gate.catalog import builtin_catalog, explain

REPO = Path(__file__).resolve().parent.parent


@functools.cache
def measure_script() -> Any:
    spec = importlib.util.spec_from_file_location("measure_catalog", REPO / "scripts" / "measure_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["measure_catalog"] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def figures() -> dict[str, dict[str, dict[str, Any]]]:
    result: dict[str, dict[str, dict[str, Any]]] = measure_script().measure()
    return result


def test_no_rate_is_worse_than_the_committed_figures() -> None:
    committed = json.loads((REPO / "scripts" / "catalog_figures.json").read_text(encoding="utf-8"))
    assert measure_script().regressions(figures(), committed) == []
    # The ratchet compares what is committed: every mode and truth has both rates recorded.
    for mode in ("allow", "suspect"):
        for truth in ("raw", "consensus"):
            assert set(committed[mode][truth]) == {"breakage", "leak"}


def test_the_ratchet_notices_a_worse_rate() -> None:
    worse = {"allow": {"consensus": {"breakage": 0.0, "leak": 0.0}}}
    assert measure_script().regressions(figures(), worse) != []


def test_the_measured_population_is_the_issues() -> None:
    consensus = figures()["allow"]["consensus"]
    assert (consensus["necessary"], consensus["trackers"]) == (522, 838)
    raw = figures()["allow"]["raw"]
    assert (raw["necessary"], raw["trackers"]) == (529, 812)


def test_the_catalogue_halves_the_leak_of_the_old_one_and_breaks_less() -> None:
    """Figures before this catalogue (issue 10): consensus breakage 20/522, leak 188/838."""
    consensus = figures()["allow"]["consensus"]
    assert consensus["broken"] < 20
    assert consensus["leaked"] <= 188 // 2 + 5


def test_suspect_mode_lets_fewer_trackers_through() -> None:
    assert figures()["suspect"]["consensus"]["leaked"] < figures()["allow"]["consensus"]["leaked"]


FRAMEWORK_COOKIES = [
    # Django
    "sessionid", "csrftoken", "messages", "django_language",
    # Rails (the cookie store is _<app>_session) and Devise
    "_myshop_session", "_session_id", "remember_user_token",
    # Laravel
    "laravel_session", "XSRF-TOKEN", "myapp_session", "remember_web_59ba36addc2b2f9401580f014c7f58ea4e30989d",
    # Express
    "connect.sid", "_csrf", "session.sig",
    # PHP, Java
    "PHPSESSID", "JSESSIONID", "SESSION", "remember-me",
    # ASP.NET
    "ASP.NET_SessionId", ".AspNetCore.Session", ".AspNetCore.Antiforgery.x1y2", ".AspNetCore.Cookies",
    ".AspNetCore.Culture", ".AspNetCore.Identity.Application", ".ASPXAUTH", "__RequestVerificationToken",
    "ARRAffinity",
    # WordPress and WooCommerce
    "wordpress_logged_in_0123abcd", "wordpress_sec_0123abcd", "wordpress_test_cookie", "wp-settings-1",
    "wp-settings-time-1", "wp-postpass_0123abcd", "woocommerce_cart_hash", "woocommerce_items_in_cart",
    "wp_woocommerce_session_0123abcd",
    # Shopify (its necessary cookies; _shopify_y and friends are its analytics)
    "cart", "cart_sig", "cart_ts", "cart_currency", "checkout_token", "secure_customer_sig", "_secure_session_id",
    "_tracking_consent", "storefront_digest", "localization",
    # NextAuth / Auth.js
    "next-auth.session-token", "next-auth.csrf-token", "next-auth.callback-url", "__Secure-next-auth.session-token",
    "__Host-next-auth.csrf-token", "authjs.session-token", "__Secure-authjs.session-token",
    # Keycloak
    "KEYCLOAK_SESSION", "KEYCLOAK_IDENTITY", "AUTH_SESSION_ID", "KC_RESTART", "KEYCLOAK_LOCALE",
    "KEYCLOAK_SESSION_LEGACY", "AUTH_SESSION_ID_LEGACY",
    # Starlette, FastAPI, Flask, Quart, Litestar
    "session",
]  # fmt: skip
GENERIC_COOKIES = ["session", "sid", "token", "auth", "uid", "id", "user", "locale", "lang", "theme", "cart", "s", "t"]


def test_at_least_60_framework_cookies_are_listed() -> None:
    assert len(set(FRAMEWORK_COOKIES)) >= 60


@pytest.mark.parametrize("name", FRAMEWORK_COOKIES + GENERIC_COOKIES)
def test_framework_and_generic_cookies_are_necessary_with_a_documented_source(name: str) -> None:
    assert builtin_catalog().category(name) == "necessary"
    rule = explain(name)
    assert rule is not None and "https://" in rule.reason, rule


def test_shopify_analytics_stay_analytics() -> None:
    for name in ("_shopify_y", "_shopify_s", "_shopify_sa_t", "_y", "_s"):
        assert builtin_catalog().category(name) == "analytics", name


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("_hjAbsoluteSessionInProgress", "analytics"),
        ("_hjFirstSeen", "analytics"),
        ("_hjIncludedInPageviewSample", "analytics"),
        ("_hjTLDTest", "analytics"),
        ("_hjSessionUser_123456", "analytics"),
        ("__atuvc", "marketing"),
        ("__atuvs", "marketing"),
        ("utag_main", "analytics"),
        ("utag_main_v_id", "analytics"),
        ("cto_bundle", "marketing"),
        ("cto_tld_test", "marketing"),
        ("criteo_write_test", "marketing"),
        ("permutive-id", "marketing"),
        ("dtCookie", "analytics"),
        ("rxVisitor", "analytics"),
        ("intercom-session-abc123", "necessary"),
    ],
)
def test_reviewed_tracker_families_cite_their_vendor(name: str, category: str) -> None:
    assert builtin_catalog().category(name) == category
    rule = explain(name)
    assert rule is not None and rule.reason.split(": ", 1)[-1].startswith(("https://", "http://")), rule
