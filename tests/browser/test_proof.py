"""What a real browser's decision leaves in the consent log: how it came, in which language."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from cookie_gate.store import DecisionRecord
from cookie_gate.store.sqlite import SQLiteStore
from tests.browser.conftest import PageFactory
from tests.browser.support import DemoServer
from tests.browser.test_flows import is_decision

pytestmark = pytest.mark.browser


def logged(demo: DemoServer, context: BrowserContext) -> list[DecisionRecord]:
    """The log's rows under the consent id of the cookie this browser holds."""
    value = next(c["value"] for c in context.cookies() if c["name"] == "cookie_gate")
    consent_id = value.split(":")[4]
    store = SQLiteStore(demo.store)
    try:
        return store.decisions(consent_id)
    finally:
        store.close()


@pytest.mark.parametrize(("javascript", "method"), [(True, "banner"), (False, "form")])
@pytest.mark.parametrize(("locale", "button"), [("en-US", "Reject all"), ("ko-KR", "모두 거부")])
def test_the_banner_logs_how_and_in_which_language_the_choice_was_made(
    demo: DemoServer, new_page: PageFactory, javascript: bool, method: str, locale: str, button: str
) -> None:
    page = new_page(java_script_enabled=javascript, locale=locale)
    page.goto(demo.url + "/")
    with page.expect_response(is_decision) as answer:
        page.locator("#cookie-gate").get_by_role("button", name=button).click()
    assert answer.value.status == (200 if javascript else 303)
    expect(page.locator("#cookie-gate")).to_be_hidden()  # taken by the script, or the page reloaded
    [row] = logged(demo, page.context)
    assert (row.action, row.method, row.locale, len(row.shown)) == ("reject_all", method, locale[:2], 64)
