"""Fixtures for the browser tests: Chromium, the demo shop, fresh contexts.

Without `/usr/bin/chromium` the tests skip with the reason, except when `CI` is set:
there a missing browser is a failure, so CI can never pass by skipping them. Everything
is package-scoped: one browser and one server per mode for the whole folder, torn
down before the rest of the suite runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser.support import CHROMIUM, LAUNCH_ARGS, VIEWPORT, DemoServer, dashboard_server, prepare

ContextFactory = Callable[..., BrowserContext]
PageFactory = Callable[..., Page]


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests must run: install Debian's chromium")
    pytest.skip(f"{reason} (apt-get install chromium, or run scripts/test as root)")


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    yield launched
    launched.close()


def _serve(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[DemoServer]:
    store = tmp_path_factory.mktemp(f"demo-{mode}") / "cookie_gate.sqlite3"
    with DemoServer(store, mode) as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo shop in its configured (opt-in) mode."""
    yield from _serve(tmp_path_factory, "opt-in")


@pytest.fixture(scope="package")
def demo_opt_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """A second instance in US-style opt-out mode, where Global Privacy Control matters."""
    yield from _serve(tmp_path_factory, "opt-out")


@pytest.fixture(scope="package")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo shop with an admin token, over a store seeded with a known quarter of traffic."""
    with dashboard_server(tmp_path_factory.mktemp("dashboard") / "cookie_gate.sqlite3") as server:
        server.wait_ready()
        yield server


@pytest.fixture
def new_context(browser: Browser) -> Iterator[ContextFactory]:
    """Fresh browser contexts (no cookies), closed after the test; English unless told."""
    contexts: list[BrowserContext] = []

    def factory(**options: Any) -> BrowserContext:
        options.setdefault("viewport", VIEWPORT)
        options.setdefault("locale", "en-US")
        context = browser.new_context(**options)
        context.set_default_timeout(5_000)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def new_page(new_context: ContextFactory) -> PageFactory:
    """A page in a fresh context, with the banner's events and CSP violations recorded."""

    def factory(**options: Any) -> Page:
        return prepare(new_context(**options).new_page())

    return factory
