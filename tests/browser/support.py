"""What the browser tests share: the demo shop served by uvicorn, and how to drive Chromium.

The demo runs in a uvicorn subprocess per mode (opt-in, opt-out), on a socket bound
here to a free port of 127.0.0.1 and handed over with `--fd`, so there is no race for
the port. Its secret and store come from the environment, as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final

from playwright.sync_api import BrowserContext, HttpCredentials, Page, ViewportSize

from cookie_gate.store.sqlite import SQLiteStore
from tests.dashboard_data import seed

ROOT: Final = Path(__file__).resolve().parents[2]
#: Debian's Chromium: `playwright install` is not needed (nor possible everywhere).
CHROMIUM: Final = Path(os.environ.get("COOKIE_GATE_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS: Final = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SECRET: Final = "browser-test-secret-0123456789abcdef"
VIEWPORT: Final[ViewportSize] = {"width": 800, "height": 500}
#: The admin token of the dashboard server, and the period its seeded store covers.
ADMIN_TOKEN: Final = "browser-admin-token-0123456789abcdef"
DASHBOARD_PERIOD: Final = "from=2026-11-01&to=2026-11-30"
#: What a browser context needs to open the dashboard (HTTP Basic, the token as the password).
ADMIN_CREDENTIALS: Final[HttpCredentials] = {"username": "admin", "password": ADMIN_TOKEN}

#: Cookies by who sets them on the demo page: the server, or scripts in the page.
SERVER_SET: Final = {
    "necessary": {"cart_id"},
    "preferences": {"preferred_lang"},
    "analytics": {"_ga"},
    "marketing": {"_fbp"},
}
SCRIPT_SET: Final = {"analytics": {"_ga_js"}, "marketing": {"_fbc"}}
GATEWAY: Final = "cookie_gate"
VISITS: Final = "cookie_gate_visits"  # the analytics visit counter

#: Installed before any page script: records the banner's events and any CSP violation.
RECORDER: Final = """
window.__consent = [];
window.__csp = [];
document.addEventListener("cookie-gate:consent", (e) => window.__consent.push(e.detail));
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def expected_cookies(accepted: set[str], scripts_ran: bool) -> set[str]:
    """What the browser must hold after a decision for `accepted` (and one more page view)."""
    names = {GATEWAY}
    for category in {"necessary", *accepted}:
        names |= SERVER_SET.get(category, set())
        if scripts_ran:
            names |= SCRIPT_SET.get(category, set())
    if "analytics" in accepted:
        names.add(VISITS)
    return names


def cookie_names(context: BrowserContext) -> set[str]:
    return {cookie["name"] for cookie in context.cookies()}


def prepare(page: Page) -> Page:
    page.add_init_script(RECORDER)
    return page


class DemoServer:
    """`examples/demo/app.py` under uvicorn in a subprocess; a context manager."""

    def __init__(
        self, store: Path, mode: str = "opt-in", log: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.store = store
        self.mode = mode
        self.env = dict(env or {})
        self.log_path = log or store.with_suffix(".log")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "COOKIE_GATE_SECRET_KEY": SECRET,
            "COOKIE_GATE_STORE": f"sqlite:///{self.store}",
            "COOKIE_GATE_DEMO_MODE": self.mode,
            **self.env,
        }
        fd = self._socket.fileno()
        command = [sys.executable, "-m", "uvicorn", "examples.demo.app:app", "--fd", str(fd), "--log-level", "warning"]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=[fd], stdout=log, stderr=log)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/cart", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"demo server exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo server did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # uvicorn shuts down cleanly: lifespan flushes statistics
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._socket.close()


def dashboard_server(path: Path) -> DemoServer:
    """The demo shop with an admin token over a store at `path` seeded with a known quarter of traffic."""
    store = SQLiteStore(path)
    try:
        seed(store)
    finally:
        store.close()
    return DemoServer(path, env={"COOKIE_GATE_ADMIN_TOKEN": ADMIN_TOKEN})


def open_dashboard(context: BrowserContext, url: str, query: str = DASHBOARD_PERIOD) -> Page:
    """The dashboard of the seeded period, signed in with HTTP Basic like a browser would."""
    page = context.new_page()
    response = page.goto(f"{url}/_cookie_gate/admin?{query}")
    assert response is not None and response.status == 200, response and response.status
    return page
