"""The banner is an overlay: it appears, opens and goes without moving the page.

Layout shift is what Chromium reports to a buffered `PerformanceObserver` for
`layout-shift`. While the banner appears every entry counts, even one after input
(which CLS would forgive). Opening the second layer makes the banner itself taller: its
top edge moves, which Chromium reports as a shift of the banner alone, right after the
click (`hadRecentInput`, so not part of CLS); the page under it must not move at all.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import PageFactory
from tests.browser.support import DemoServer

pytestmark = pytest.mark.browser

SHIFTS = """() => new Promise((resolve) => {
  const entries = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({ type: "layout-shift", buffered: true });
  setTimeout(() => {
    observer.disconnect();
    resolve(entries.map((e) => ({
      value: e.value,
      input: e.hadRecentInput,
      sources: e.sources.map((s) => (s.node && s.node.id) || (s.node && s.node.nodeName) || "?"),
    })));
  }, 300);
})"""


def layout_shifts(page: Page) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = page.evaluate(SHIFTS)
    return entries


def test_the_banner_appearing_shifts_nothing(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()

    def slow_stylesheet(route: Route) -> None:
        time.sleep(0.3)  # the page paints first; the banner comes after
        route.continue_()

    page.route("**/_cookie_gate/banner.css", slow_stylesheet)
    page.goto(demo.url + "/")
    expect(page.locator("#cookie-gate")).to_be_visible()
    shifts = layout_shifts(page)
    print(f"layout shift while the banner appears: {sum(e['value'] for e in shifts):.4f} ({len(shifts)} entries)")
    assert shifts == []
    assert page.evaluate("() => getComputedStyle(document.getElementById('cookie-gate')).position") == "fixed"

    content = [page.locator(selector).bounding_box() for selector in ("h1", "main p >> nth=0", "iframe")]
    page.locator("#cookie-gate summary").click()  # the second layer opens ...
    expect(page.locator(".cookie-gate__layer")).to_be_visible()
    page.keyboard.press("Escape")  # ... and closes
    later = [e for e in layout_shifts(page) if e not in shifts]
    banner_only = sum(e["value"] for e in later)
    print(f"opening the second layer: {banner_only:.4f} of the banner itself, after input; 0 of the page")
    assert all(e["input"] and e["sources"] == ["cookie-gate"] for e in later), later
    assert [page.locator(selector).bounding_box() for selector in ("h1", "main p >> nth=0", "iframe")] == content


def test_a_decision_and_reopening_shift_nothing(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    page.goto(demo.url + "/")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Accept all").click()
    expect(page.locator("#cookie-gate")).to_be_hidden()
    page.get_by_role("button", name="Cookie settings").click()
    expect(page.locator("#cookie-gate")).to_be_visible()
    shifts = [e for e in layout_shifts(page) if not e["input"]]
    print(f"layout shift (CLS) through a decision and reopening: {sum(e['value'] for e in shifts):.4f}")
    assert shifts == []


@pytest.mark.parametrize(("motion", "animation"), [("no-preference", "cookie-gate-in"), ("reduce", "none")])
def test_reduced_motion_turns_the_animation_off(
    demo: DemoServer, new_page: PageFactory, motion: str, animation: str
) -> None:
    page = new_page(reduced_motion=motion)
    page.goto(demo.url + "/")
    style = "() => getComputedStyle(document.getElementById('cookie-gate')).animationName"
    assert page.evaluate(style) == animation


@pytest.mark.parametrize("direction", ["ltr", "rtl"])
def test_the_settings_corner_follows_the_writing_direction(
    demo: DemoServer, new_page: PageFactory, direction: str
) -> None:
    """The "bottom-left" corner is the inline-start one: bottom right in a right-to-left page."""
    page = new_page()
    page.goto(demo.url + "/")
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Reject all").click()
    page.goto(demo.url + "/")
    page.evaluate(f"() => {{ document.getElementById('cookie-gate-settings').dir = '{direction}'; }}")
    box = page.locator("#cookie-gate-settings > summary").bounding_box()
    assert box is not None
    width = page.viewport_size["width"] if page.viewport_size else 0
    gap = box["x"] if direction == "ltr" else width - box["x"] - box["width"]
    assert gap == pytest.approx(16, abs=1)
    page.locator("#cookie-gate-settings > summary").click()
    text_align = "() => getComputedStyle(document.querySelector('.cookie-gate__purpose')).textAlign"
    assert page.evaluate(text_align) == "start"


def test_nothing_breaks_the_content_security_policy(demo: DemoServer, new_page: PageFactory) -> None:
    page = new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if "Content Security" in message.text else None)
    response = page.goto(demo.url + "/")
    assert response is not None and "script-src 'nonce-" in response.headers["content-security-policy"]
    page.get_by_role("button", name="Accept all").click()
    page.wait_for_function("() => window.demoAnalytics === 'loaded' && document.cookie.includes('_fbc=')")
    page.get_by_role("button", name="Cookie settings").click()
    page.goto(demo.url + "/")
    page.locator("#cookie-gate-settings > summary").click()
    assert page.evaluate("window.__csp") == []
    assert errors == []
