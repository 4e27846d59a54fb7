"""The whole choice by keyboard alone, and where focus goes.

Focus rules, as banner.js implements them:
- when the banner appears and the visitor has not focused anything yet, focus moves to the
  banner dialog itself, so the next Tab is inside it;
- Escape closes the second layer and puts focus on its summary ("Choose");
- after a decision (or Escape on a dismissable panel) focus goes to the element that opened
  the panel if there is one, else to the "Cookie settings" control that reopens it: never
  to `document.body`, never to a hidden element.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageFactory
from tests.browser.support import DemoServer, cookie_names, expected_cookies

pytestmark = pytest.mark.browser

#: Describes the focused element: tag, role or type, and its accessible-ish name.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "body";
  const label = e.labels && e.labels.length ? e.labels[0].textContent : e.textContent;
  return [e.tagName.toLowerCase(), e.getAttribute("role") || e.type || "", label.trim().slice(0, 24)].join(" ");
}"""


def focused(page: Page) -> str:
    description: str = page.evaluate(FOCUSED)
    return description


def tab(page: Page, times: int = 1) -> list[str]:
    seen = []
    for _ in range(times):
        page.keyboard.press("Tab")
        seen.append(focused(page))
    return seen


def test_tab_reaches_every_control_of_both_layers_in_order(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    expect(page.locator("#cookie-gate")).to_be_focused()  # focus moved into the dialog
    assert tab(page, 4) == [
        "a  Privacy policy",
        "button submit Accept all",
        "button submit Reject all",
        "summary  Choose",
    ]
    page.keyboard.press("Enter")  # opens the second layer; focus stays on its summary
    expect(page.locator(".cookie-gate__choose")).to_have_attribute("open", "")
    assert tab(page, 5) == [
        "input switch Preferences",  # "Strictly necessary" is shown on and locked, so not a stop
        "input switch Analytics",
        "input switch Marketing",
        "input radio Remember it for 180 days",
        "button submit Save my choice",
    ]
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "input radio Remember it for 180 days"
    page.keyboard.press("ArrowDown")  # radios move with the arrow keys
    expect(page.get_by_role("radio", name="Ask me on every visit")).to_be_checked()
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "input switch Marketing"
    page.keyboard.press("Enter")  # Enter toggles a switch (and does not submit)
    expect(page.get_by_role("switch", name="Marketing")).to_be_checked()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")  # so does Space
    expect(page.get_by_role("switch", name="Analytics")).to_be_checked()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.get_by_role("switch", name="Analytics")).to_be_checked()
    expect(page.locator("#cookie-gate")).to_be_visible()  # still no decision

    page.keyboard.press("Escape")
    expect(page.locator(".cookie-gate__choose")).not_to_have_attribute("open", "")
    assert focused(page) == "summary  Choose"
    page.keyboard.press("Space")
    expect(page.locator(".cookie-gate__choose")).to_have_attribute("open", "")
    tab(page, 5)
    assert focused(page) == "button submit Save my choice"
    page.keyboard.press("Enter")
    expect(page.locator("#cookie-gate")).to_be_hidden()
    toggle = page.get_by_role("button", name="Cookie settings")
    expect(toggle).to_be_focused()  # not lost: on the control that reopens the choice
    page.goto(demo.url + "/")
    assert cookie_names(page.context) == expected_cookies({"analytics", "marketing"}, scripts_ran=True)
    # "Ask me on every visit": the consent cookie ends with the browser session.
    consent = next(c for c in page.context.cookies() if c["name"] == "cookie_gate")
    assert consent["expires"] == -1


@pytest.mark.parametrize("key", ["Enter", "Space"])
def test_first_layer_buttons_work_with_enter_and_space(demo: DemoServer, new_page: PageFactory, key: str) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    tab(page, 3)
    assert focused(page) == "button submit Reject all"
    page.keyboard.press(key)
    expect(page.locator("#cookie-gate")).to_be_hidden()
    toggle = page.get_by_role("button", name="Cookie settings")
    expect(toggle).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    page.keyboard.press(key)  # reopen without a reload
    banner = page.locator("#cookie-gate")
    expect(banner).to_be_visible()
    expect(banner).to_be_focused()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="Withdraw consent")).to_be_visible()
    page.keyboard.press("Escape")  # first the second layer ...
    assert focused(page) == "summary  Choose"
    expect(banner).to_be_visible()
    page.keyboard.press("Escape")  # ... then the panel, which may be dismissed now a choice exists
    expect(banner).to_be_hidden()
    expect(toggle).to_be_focused()


def test_escape_does_not_dismiss_an_undecided_banner(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    tab(page, 2)
    page.keyboard.press("Escape")
    expect(page.locator("#cookie-gate")).to_be_visible()
    assert focused(page) == "button submit Accept all"


def test_the_settings_control_of_a_decided_visitor_by_keyboard(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    page.get_by_role("button", name="Accept all").press("Enter")
    expect(page.locator("#cookie-gate")).to_be_hidden()
    page.goto(demo.url + "/")
    summary = page.locator("#cookie-gate-settings > summary")
    expect(page.locator("body")).to_be_focused()  # a decided visitor's page keeps its focus
    for _ in range(12):  # the page's own links first, then the settings control at the end
        page.keyboard.press("Tab")
        if focused(page) == "summary  Cookie settings":
            break
    assert focused(page) == "summary  Cookie settings"
    page.keyboard.press("Enter")
    panel = page.get_by_role("dialog", name="Your cookie choice")
    expect(panel).to_be_visible()
    expect(panel).to_be_focused()
    assert tab(page, 7) == [
        "input switch Preferences",
        "input switch Analytics",
        "input switch Marketing",
        "input radio Remember it for 180 days",
        "button submit Save my choice",
        "button submit Withdraw consent",
        "a  What this site holds abo",
    ]
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(summary).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page) == "input switch Analytics"
    page.keyboard.press("Space")  # refuse analytics ...
    tab(page, 3)
    page.keyboard.press("Enter")  # ... and save
    expect(panel).to_be_hidden()
    expect(summary).to_be_focused()
    page.goto(demo.url + "/")
    assert "_ga" not in cookie_names(page.context) and "_fbp" in cookie_names(page.context)
