"""Opt-out mode (US style) with Global Privacy Control sent by the browser.

Undecided visitors get everything except what GPC refuses: marketing. The banner is
still shown, and an explicit "Accept all" there overrides the signal.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PageFactory
from tests.browser.support import DemoServer, cookie_names

pytestmark = pytest.mark.browser


def test_gpc_refuses_marketing_and_allows_analytics(demo_opt_out: DemoServer, new_page: PageFactory) -> None:
    page = new_page(extra_http_headers={"Sec-GPC": "1"})
    page.goto(demo_opt_out.url + "/")
    expect(page.locator("[data-cookie-gate=banner]")).to_be_visible()
    page.wait_for_function("() => window.demoAnalytics === 'loaded' && document.cookie.includes('_ga_js=')")
    page.goto(demo_opt_out.url + "/")
    names = cookie_names(page.context)
    assert {"_ga", "_ga_js", "cookie_gate_visits", "preferred_lang", "cart_id"} <= names
    assert not {name for name in names if name.startswith(("_fbp", "_fbc"))}  # no marketing, server or script
    assert page.locator("iframe[data-cookie-category=marketing]").get_attribute("src") is None

    page.get_by_role("button", name="Accept all").click()  # an explicit choice beats the signal
    page.wait_for_function("() => document.cookie.includes('_fbc=')")
    page.goto(demo_opt_out.url + "/")
    assert {"_fbp", "_fbc"} <= cookie_names(page.context)


def test_without_gpc_opt_out_mode_allows_everything_until_refused(
    demo_opt_out: DemoServer, new_page: PageFactory
) -> None:
    page = new_page()
    page.goto(demo_opt_out.url + "/")
    page.wait_for_function("() => document.cookie.includes('_fbc=') && document.cookie.includes('_ga_js=')")
    assert {"_ga", "_fbp"} <= cookie_names(page.context)
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Reject all").click()
    page.goto(demo_opt_out.url + "/")
    assert cookie_names(page.context) == {"cart_id", "cookie_gate"}  # the refused ones were expired
