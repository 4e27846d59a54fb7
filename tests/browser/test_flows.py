"""Deciding in a real browser, with and without JavaScript, and what the browser holds after.

After each decision the page is visited once more, so the server has had its chance to
set (or not) its own cookies; the browser must then hold exactly what was accepted, plus
the necessary cookies, the gateway's `cookie_gate` and, with analytics, its visit counter.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser.conftest import PageFactory
from tests.browser.support import SCRIPT_SET, DemoServer, cookie_names, expected_cookies

pytestmark = pytest.mark.browser

CHOICES = {
    "accept_all": {"preferences", "analytics", "marketing"},
    "reject_all": set(),
    "choose_analytics": {"analytics"},
}


def decide(page: Page, choice: str) -> None:
    banner = page.locator("#cookie-gate")
    if choice == "accept_all":
        banner.get_by_role("button", name="Accept all").click()
    elif choice == "reject_all":
        banner.get_by_role("button", name="Reject all").click()
    else:
        banner.locator("summary", has_text="Choose").click()
        banner.get_by_role("switch", name="Analytics").check()
        banner.get_by_role("button", name="Save my choice").click()


def is_decision(response: Response) -> bool:
    return response.url.endswith("/_cookie_gate/consent") and response.request.method in ("POST", "DELETE")


def decided(page: Page, choice: str) -> None:
    """Decide with JavaScript and wait until the banner has taken the answer."""
    with page.expect_response(is_decision):
        decide(page, choice)
    expect(page.locator("#cookie-gate")).to_be_hidden()


def recorded(page: Page, name: str) -> list[Any]:
    value: list[Any] = page.evaluate(f"window.{name}")
    return value


@pytest.mark.parametrize("choice", CHOICES)
def test_a_decision_with_javascript_needs_no_reload(demo: DemoServer, new_page: PageFactory, choice: str) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    assert cookie_names(page.context) == {"cart_id"}  # nothing but the necessary before a choice
    page.evaluate("window.__sameDocument = true")
    with page.expect_response(is_decision) as answer:
        decide(page, choice)
    assert answer.value.status == 200
    assert answer.value.request.headers["content-type"] == "application/json"
    expect(page.locator("#cookie-gate")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") is True  # no navigation happened

    accepted = CHOICES[choice]
    events = recorded(page, "__consent")
    assert len(events) == 1 and events[0]["decided"] is True
    assert {name for name, on in events[0]["categories"].items() if on} == {"necessary", *accepted}

    # Newly accepted tags ran without a reload; refused ones did not.
    script_cookies = set().union(*(SCRIPT_SET.get(c, set()) for c in accepted))
    expect(page.locator("#cookie-gate")).to_be_hidden()
    page.wait_for_function("names => names.every((n) => document.cookie.includes(n + '='))", arg=sorted(script_cookies))
    assert cookie_names(page.context) & {"_ga_js", "_fbc"} == script_cookies
    if "analytics" in accepted:  # an external script, with the page's nonce carried over
        page.wait_for_function("() => window.demoAnalytics === 'loaded'")
    else:
        assert page.evaluate("window.demoAnalytics") is None
    frame = page.locator("iframe[data-cookie-category=marketing]")
    if "marketing" in accepted:
        expect(frame).to_have_attribute("src", "/demo/embed.svg")
    else:
        expect(frame).not_to_have_attribute("src", "/demo/embed.svg")
    updates = page.evaluate("dataLayer.filter((a) => a[0] === 'consent' && a[1] === 'update').map((a) => a[2])")
    if accepted:  # Consent Mode hears of a change, and only of one
        assert len(updates) == 1
        assert updates[0]["analytics_storage"] == "granted"
        assert updates[0]["ad_storage"] == ("granted" if "marketing" in accepted else "denied")
    else:
        assert updates == []
    assert recorded(page, "__csp") == []

    page.goto(demo.url + "/")
    assert cookie_names(page.context) == expected_cookies(accepted, scripts_ran=True)
    expect(page.locator("#cookie-gate-settings")).to_be_attached()
    expect(page.locator("[data-cookie-gate=banner]")).to_have_count(0)
    assert recorded(page, "__csp") == []


def test_an_accepted_frame_gets_back_its_srcdoc_and_a_refused_one_does_not(
    demo: DemoServer, new_page: PageFactory
) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    # Frames as the server leaves them for an undecided visitor: srcdoc kept aside as data-srcdoc.
    page.evaluate(
        """() => ["marketing", "ads"].forEach((category) => {
            const frame = document.createElement("iframe");
            frame.setAttribute("data-cookie-category", category);
            frame.setAttribute("data-srcdoc", "<p>" + category + "</p>");
            frame.id = "frame-" + category;
            document.body.append(frame);
        })"""
    )
    decided(page, "accept_all")
    expect(page.locator("#frame-marketing")).to_have_attribute("srcdoc", "<p>marketing</p>")
    expect(page.locator("#frame-marketing")).not_to_have_attribute("data-srcdoc", "<p>marketing</p>")
    assert page.locator("#frame-ads").get_attribute("srcdoc") is None  # no such category: never accepted


@pytest.mark.parametrize("choice", CHOICES)
def test_a_decision_without_javascript_is_a_form_post_answered_with_303(
    demo: DemoServer, new_page: PageFactory, choice: str
) -> None:
    page = new_page(java_script_enabled=False)
    page.goto(demo.url + "/privacy")
    assert cookie_names(page.context) == set()
    with page.expect_response(is_decision) as answer, page.expect_navigation():
        decide(page, choice)
    assert answer.value.status == 303
    assert answer.value.headers["location"] == "/privacy"
    assert answer.value.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert page.url == demo.url + "/privacy"
    expect(page.locator("#cookie-gate-settings")).to_be_attached()
    page.goto(demo.url + "/")
    assert cookie_names(page.context) == expected_cookies(CHOICES[choice], scripts_ran=False)


def test_without_javascript_enter_on_a_switch_saves_what_is_shown_never_accept_all(
    demo: DemoServer, new_page: PageFactory
) -> None:
    """Implicit submission clicks the form's first submit button: it must not be "Accept all"."""
    page = new_page(java_script_enabled=False)
    page.goto(demo.url + "/")
    page.locator("summary", has_text="Choose").click()
    page.get_by_role("switch", name="Analytics").focus()
    page.keyboard.press("Space")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(demo.url + "/")
    assert cookie_names(page.context) == expected_cookies({"analytics"}, scripts_ran=False)


def test_the_choice_reopens_without_a_reload_and_shows_the_current_choice(
    demo: DemoServer, new_page: PageFactory
) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    decided(page, "choose_analytics")
    toggle = page.get_by_role("button", name="Cookie settings")
    expect(toggle).to_be_visible()
    expect(toggle).to_be_focused()
    toggle.click()
    banner = page.locator("#cookie-gate")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("switch", name="Analytics")).to_be_checked()
    expect(banner.get_by_role("switch", name="Marketing")).not_to_be_checked()
    banner.get_by_role("switch", name="Marketing").check()
    banner.get_by_role("button", name="Save my choice").click()
    expect(banner).to_be_hidden()
    page.wait_for_function("() => document.cookie.includes('_fbc=')")  # marketing's script started now
    expect(page.locator("iframe[data-cookie-category=marketing]")).to_have_attribute("src", "/demo/embed.svg")
    assert [e["categories"]["marketing"] for e in recorded(page, "__consent")] == [False, True]


def test_withdrawal_is_one_click_and_uses_delete(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    decided(page, "accept_all")
    page.goto(demo.url + "/")
    assert "_fbp" in cookie_names(page.context)
    page.locator("#cookie-gate-settings > summary").click()
    panel = page.get_by_role("dialog", name="Your cookie choice")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("switch", name="Marketing")).to_be_checked()
    with page.expect_response(is_decision) as answer:
        panel.get_by_role("button", name="Withdraw consent").click()
    assert answer.value.request.method == "DELETE" and answer.value.status == 200
    expect(panel).to_be_hidden()
    assert recorded(page, "__consent")[-1]["decided"] is False
    expect(page.locator("#cookie-gate-c-marketing")).not_to_be_checked()  # the form follows the record
    page.goto(demo.url + "/")
    assert cookie_names(page.context) == {"cart_id"}
    expect(page.locator("[data-cookie-gate=banner]")).to_be_visible()


def test_withdrawal_without_javascript(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page(java_script_enabled=False)
    page.goto(demo.url + "/")
    with page.expect_navigation():
        decide(page, "accept_all")
    page.locator("summary", has_text="Cookie settings").click()
    with page.expect_response(is_decision) as answer, page.expect_navigation():
        page.get_by_role("button", name="Withdraw consent").click()
    assert answer.value.status == 303
    assert cookie_names(page.context) == {"cart_id"}


def test_the_sites_own_link_opens_the_settings(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    decided(page, "reject_all")
    page.goto(demo.url + "/")
    link = page.locator("nav").get_by_role("link", name="Cookie settings")
    link.click()
    assert page.url == demo.url + "/"  # no navigation to the link's no-script target
    panel = page.get_by_role("dialog", name="Your cookie choice")
    expect(panel).to_be_visible()
    expect(panel).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(link).to_be_focused()  # focus goes back to what opened it


def test_the_three_first_layer_buttons_look_the_same(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    looks = page.evaluate(
        """() => [...document.querySelector("#cookie-gate .cookie-gate__actions").children]
            .map((e) => (e.tagName === "DETAILS" ? e.querySelector("summary") : e))
            .map((e) => {
              const s = getComputedStyle(e), r = e.getBoundingClientRect();
              return [Math.round(r.width), Math.round(r.height), s.backgroundColor, s.color, s.fontWeight,
                      s.fontSize, s.borderTopColor, s.borderTopWidth, s.borderRadius, Math.round(r.top)];
            })"""
    )
    assert len(looks) == 3
    assert looks[0] == looks[1] == looks[2], looks
