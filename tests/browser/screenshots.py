"""Screenshots of both banner layers, the visitor's page and the admin dashboard, Korean and English, for the README.

    python -m tests.browser.screenshots [OUTPUT_DIR]     # default: docs/screenshots

Serves the demo shop like the browser tests do and writes eight 800x500 PNGs named
`banner-<layer>-<locale>-<scheme>.png`, and `visitor-page-<locale>.png` (the whole page of
a visitor who chose analytics), then serves it again over a seeded store with an admin token
and writes `dashboard-<locale>-light.png` (the top of the page, desktop width) and
`dashboard-phone-<locale>-light.png`; the test suite runs it into a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Literal

from playwright.sync_api import Browser, ViewportSize, sync_playwright

from tests.browser.support import (
    ADMIN_CREDENTIALS,
    CHROMIUM,
    LAUNCH_ARGS,
    ROOT,
    VIEWPORT,
    DemoServer,
    dashboard_server,
    open_dashboard,
)

LOCALES = {"en": "en-US", "ko": "ko-KR"}
SCHEMES: tuple[Literal["light", "dark"], ...] = ("light", "dark")
LAYERS = ("first", "second")
DASHBOARD_VIEWPORTS: dict[str, ViewportSize] = {
    "": {"width": 1100, "height": 1150},
    "phone-": {"width": 390, "height": 844},
}


def take(browser: Browser, url: str, output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for locale, language in LOCALES.items():
        for scheme in SCHEMES:
            context = browser.new_context(viewport=VIEWPORT, locale=language, color_scheme=scheme)
            try:
                page = context.new_page()
                page.goto(url + "/")
                for layer in LAYERS:
                    if layer == "second":
                        page.locator("#cookie-gate summary").click()
                        page.locator("#cookie-gate .cookie-gate__layer").wait_for()
                    page.mouse.move(0, 0)  # no hover effect in the picture
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    path = output / f"banner-{layer}-{locale}-{scheme}.png"
                    page.screenshot(path=str(path), animations="disabled")
                    written.append(path)
            finally:
                context.close()
    return written


def take_visitor_page(browser: Browser, url: str, output: Path) -> list[Path]:
    """The visitor's page after a choice made on it (analytics only), top to bottom, in each language."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for locale, language in LOCALES.items():
        context = browser.new_context(viewport=VIEWPORT, locale=language, java_script_enabled=False)
        try:
            page = context.new_page()
            page.goto(url + "/_cookie_gate/me")
            page.locator("input[name=accept][value=analytics]").check()
            with page.expect_navigation():
                page.locator("button[value=save]").click()
            page.mouse.move(0, 0)
            path = output / f"visitor-page-{locale}.png"
            page.screenshot(path=str(path), full_page=True, animations="disabled")
            written.append(path)
        finally:
            context.close()
    return written


def take_dashboard(browser: Browser, url: str, output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for locale, language in LOCALES.items():
        for kind, viewport in DASHBOARD_VIEWPORTS.items():
            context = browser.new_context(
                viewport=viewport, locale=language, color_scheme="light", http_credentials=ADMIN_CREDENTIALS
            )
            try:
                page = open_dashboard(context, url)
                path = output / f"dashboard-{kind}{locale}-light.png"
                page.screenshot(path=str(path), animations="disabled")
                written.append(path)
            finally:
                context.close()
    return written


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else ROOT / "docs" / "screenshots"
    with tempfile.TemporaryDirectory() as store, DemoServer(Path(store) / "cookie_gate.sqlite3") as server:
        server.wait_ready()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                for path in [*take(browser, server.url, output), *take_visitor_page(browser, server.url, output)]:
                    print(f"{path} ({path.stat().st_size // 1024} KiB)")
            finally:
                browser.close()
    with tempfile.TemporaryDirectory() as store, dashboard_server(Path(store) / "cookie_gate.sqlite3") as server:
        server.wait_ready()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                for path in take_dashboard(browser, server.url, output):
                    print(f"{path} ({path.stat().st_size // 1024} KiB)")
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
