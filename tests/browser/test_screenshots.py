"""The README's screenshots can be made: both layers, both languages, light and dark."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.screenshots import (
    DASHBOARD_VIEWPORTS,
    LAYERS,
    LOCALES,
    SCHEMES,
    take,
    take_dashboard,
    take_visitor_page,
)
from tests.browser.support import VIEWPORT, DemoServer

pytestmark = pytest.mark.browser


def test_screenshots_of_both_layers_in_both_languages_light_and_dark(
    browser: Browser, demo: DemoServer, tmp_path: Path
) -> None:
    written = take(browser, demo.url, tmp_path)
    assert len(written) == len(LAYERS) * len(LOCALES) * len(SCHEMES)
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (VIEWPORT["width"], VIEWPORT["height"])
        assert len(data) < 100_000, f"{path.name} is {len(data)} bytes"


def test_screenshots_of_the_visitor_page_in_both_languages(browser: Browser, demo: DemoServer, tmp_path: Path) -> None:
    written = take_visitor_page(browser, demo.url, tmp_path)
    assert [p.name for p in written] == [f"visitor-page-{locale}.png" for locale in LOCALES]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width == VIEWPORT["width"] and height > VIEWPORT["height"], "the whole page, not only its top"
        assert len(data) < 400_000, f"{path.name} is {len(data)} bytes"


def test_screenshots_of_the_dashboard_in_both_languages(
    browser: Browser, dashboard: DemoServer, tmp_path: Path
) -> None:
    written = take_dashboard(browser, dashboard.url, tmp_path)
    assert len(written) == len(LOCALES) * len(DASHBOARD_VIEWPORTS)
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        size = DASHBOARD_VIEWPORTS["phone-" if "-phone-" in path.name else ""]
        assert struct.unpack(">II", data[16:24]) == (size["width"], size["height"])
        assert len(data) < 200_000, f"{path.name} is {len(data)} bytes"
