"""The admin dashboard in Chromium: accessible in both languages, usable on a phone, no script needed.

It is served by the demo shop (whose own CSP middleware wraps the gateway, as a real
site's would) over a store seeded with a known quarter of traffic.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ContextFactory
from tests.browser.support import ADMIN_CREDENTIALS, DemoServer, open_dashboard
from tests.browser.test_accessibility import LOCALES, violations

pytestmark = pytest.mark.browser
PHONE = {"width": 360, "height": 740}
OVERFLOW = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map((e) => e.tagName)"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("locale", LOCALES)
def test_the_dashboard_has_no_axe_violations(
    dashboard: DemoServer, new_context: ContextFactory, locale: str, scheme: str
) -> None:
    context = new_context(locale=LOCALES[locale], color_scheme=scheme, http_credentials=ADMIN_CREDENTIALS)
    page = open_dashboard(context, dashboard.url)
    expect(page.locator("html")).to_have_attribute("lang", locale)
    assert violations(page) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_on_a_phone_nothing_overflows_sideways(dashboard: DemoServer, new_context: ContextFactory, locale: str) -> None:
    context = new_context(viewport=PHONE, locale=LOCALES[locale], http_credentials=ADMIN_CREDENTIALS)
    page = open_dashboard(context, dashboard.url)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    print(f"{locale}: page {widths[0]} px wide in a {widths[1]} px viewport")
    assert widths[0] <= widths[1]
    assert page.evaluate(OVERFLOW) == []
    # The stylesheet applied (allowed by the demo's nonce as well as by the dashboard's own hash).
    assert page.evaluate("() => getComputedStyle(document.querySelector('.totals')).display") == "grid"


def test_the_period_form_and_the_language_switch_work_without_javascript(
    dashboard: DemoServer, new_context: ContextFactory
) -> None:
    context = new_context(java_script_enabled=False, http_credentials=ADMIN_CREDENTIALS)
    page = open_dashboard(context, dashboard.url)
    assert page.locator("script").count() == 0
    page.get_by_label("From", exact=True).fill("2026-11-24")
    page.get_by_label("To", exact=True).fill("2026-11-30")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("header p").first).to_have_text("2026-11-24 to 2026-11-30 (7 days, UTC)")
    assert "from=2026-11-24&to=2026-11-30" in page.url
    page.get_by_role("link", name="한국어").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator("header p").first).to_have_text("2026-11-24 ~ 2026-11-30 (7일, UTC)")
    with page.expect_download() as download:
        page.locator("a[href*='export/pages.csv']").click()
    assert download.value.suggested_filename == "cookie-gate-pages-2026-11-24-2026-11-30.csv"
