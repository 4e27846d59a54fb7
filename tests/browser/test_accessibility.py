"""axe-core finds nothing on either layer, in Korean and in English, light and dark.

The whole page is checked, not only the banner: a banner that breaks the page's landmarks,
headings or contrast would be a violation too. The settings control of a decided visitor
is checked open.
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageFactory
from tests.browser.support import DemoServer

pytestmark = pytest.mark.browser

AXE = Axe()
LOCALES = {"en": "en-US", "ko": "ko-KR"}


def violations(page: Page) -> list[dict[str, Any]]:
    results = AXE.run(page)
    found: list[dict[str, Any]] = results.response["violations"]
    if found:
        print(results.generate_report())
    passes = len(results.response.get("passes", []))
    print(f"axe {results.response['testEngine']['version']}: {len(found)} violations, {passes} rules passed")
    return found


def settle(page: Page) -> None:
    """Wait for the banner's entrance animation, so contrast is measured at full opacity."""
    page.wait_for_function("() => document.getAnimations().every((a) => a.playState !== 'running')")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("layer", ["first", "second"])
def test_the_banner_has_no_axe_violations(
    demo: DemoServer, new_page: PageFactory, locale: str, layer: str, scheme: str
) -> None:
    page = new_page(locale=LOCALES[locale], color_scheme=scheme)
    page.goto(demo.url + "/")
    banner = page.locator("#cookie-gate")
    expect(banner).to_have_attribute("lang", locale)
    if layer == "second":
        banner.locator("summary").click()
        expect(banner.locator(".cookie-gate__layer")).to_be_visible()
    settle(page)
    assert violations(page) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_the_settings_control_has_no_axe_violations(demo: DemoServer, new_page: PageFactory, locale: str) -> None:
    page = new_page(locale=LOCALES[locale])
    page.goto(demo.url + "/")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.locator("#cookie-gate button[value=reject_all]").click()
    page.goto(demo.url + "/")
    assert violations(page) == []  # closed: just the small control
    page.locator("#cookie-gate-settings > summary").click()
    expect(page.locator("#cookie-gate-panel")).to_be_visible()
    settle(page)
    assert violations(page) == []


def test_the_reopened_banner_has_no_axe_violations(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.locator("#cookie-gate button[value=accept_all]").click()
    toggle = page.locator(".cookie-gate-toggle")
    expect(toggle).to_be_visible()
    assert violations(page) == []
    toggle.click()
    expect(page.locator("#cookie-gate")).to_be_visible()
    settle(page)
    assert violations(page) == []
