"""The visitor's page in Chromium: see, change and withdraw the choice, with and without JavaScript.

The page itself runs no script; with JavaScript on, the way to it is the banner's own:
decide without a reload, open "Cookie settings", follow the link.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageFactory
from tests.browser.support import GATEWAY, DemoServer, cookie_names, expected_cookies
from tests.browser.test_accessibility import violations

pytestmark = pytest.mark.browser
ME = "/_cookie_gate/me"


def state(page: Page, label: str) -> str:
    """What the "Current choice" table says of a category."""
    row = page.locator("section[aria-labelledby=current] tr", has=page.locator("th", has_text=label))
    return row.locator("td").inner_text()


def test_without_javascript_the_page_changes_and_withdraws_the_choice(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page(java_script_enabled=False)
    page.goto(demo.url + ME)
    expect(page.locator("main")).to_contain_text("You have not made a choice yet")
    assert state(page, "Analytics") == "Refused"
    page.get_by_role("checkbox", name="Analytics").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Save my choice").click()
    assert page.url == f"{demo.url}{ME}?lang=en&done=saved"
    expect(page.get_by_role("status")).to_have_text("Your choice is saved.")
    assert state(page, "Analytics") == "Allowed" and state(page, "Marketing") == "Refused"
    expect(page.get_by_role("checkbox", name="Analytics")).to_be_checked()
    expect(page.locator("section[aria-labelledby=history] tbody tr")).to_have_count(1)
    page.goto(demo.url + "/")
    page.goto(demo.url + "/")  # the server sets what analytics allows on the next view
    assert cookie_names(page.context) == expected_cookies({"analytics"}, scripts_ran=False)

    page.goto(demo.url + ME)
    with page.expect_navigation():
        page.get_by_role("button", name="Withdraw consent").click()
    assert page.url == f"{demo.url}{ME}?lang=en&done=withdrawn"
    expect(page.get_by_role("status")).to_contain_text("Your consent is withdrawn")
    expect(page.locator("main")).to_contain_text("You have not made a choice yet")
    assert state(page, "Analytics") == "Refused"
    assert cookie_names(page.context) == {"cart_id"}, "the choice and the analytics cookies are gone"


def test_with_javascript_the_settings_control_leads_to_the_page(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    with page.expect_response(lambda r: r.url.endswith("/_cookie_gate/consent") and r.request.method == "POST"):
        page.locator("#cookie-gate").get_by_role("button", name="Accept all").click()
    expect(page.locator("#cookie-gate")).to_be_hidden()
    page.goto(demo.url + "/")
    page.locator("#cookie-gate-settings > summary").click()
    with page.expect_navigation():
        page.get_by_role("link", name="What this site holds about your choice").click()
    assert page.url == demo.url + ME
    assert all(state(page, label) == "Allowed" for label in ("Preferences", "Analytics", "Marketing"))
    expect(page.locator("main")).to_contain_text("You made this choice on")
    with page.expect_navigation():
        page.get_by_role("button", name="Reject all").click()
    assert all(state(page, label) == "Refused" for label in ("Preferences", "Analytics", "Marketing"))
    expect(page.locator("section[aria-labelledby=history] tbody tr").first).to_contain_text("Rejected all")
    assert page.evaluate("window.__csp") == [], "nothing on the page breaks its policy"
    page.goto(demo.url + "/")
    expect(page.locator("#cookie-gate-settings")).to_be_attached()  # the banner's script sees the new choice
    assert cookie_names(page.context) == {"cart_id", GATEWAY}


def test_korean_and_the_language_switch(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page(locale="ko-KR", java_script_enabled=False)
    page.goto(demo.url + ME)
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator("h1")).to_have_text("나의 쿠키 선택")
    with page.expect_navigation():
        page.get_by_role("button", name="모두 허용").click()
    expect(page.get_by_role("status")).to_have_text("선택을 저장했습니다.")
    assert state(page, "분석") == "허용"
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Your cookie choice")
    assert state(page, "Analytics") == "Allowed"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("locale", {"en": "en-US", "ko": "ko-KR"}.values())
def test_the_page_has_no_axe_violations(demo: DemoServer, new_page: PageFactory, locale: str, scheme: str) -> None:
    page = new_page(locale=locale, color_scheme=scheme)
    page.goto(demo.url + ME)
    assert violations(page) == []  # undecided
    with page.expect_navigation():
        page.locator("button[value=save]").click()
    expect(page.get_by_role("status")).to_be_visible()
    assert violations(page) == []  # decided, with a confirmation and a history
