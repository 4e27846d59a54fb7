"""What every framework's app must show through the gate, whatever its idiom.

Each framework test builds a realistic app that sets its own session (and CSRF or
auth) cookies plus the trackers `_ga`, `_gid` and `_fbp` on `/`, and serves the
visitor's decision as JSON on `/decision`. These checks then run against it for an
undecided visitor, one who rejected everything and one who accepted analytics only.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from cookie_gate.middleware import CookieGateMiddleware
from tests.conftest import consent_cookie, set_cookie_names, set_cookies

TRACKERS = ("_ga", "_gid", "_fbp")
ANALYTICS = ("_ga", "_gid")
MARKER = 'id="cookie-gate"'
#: What the browser still holds from before the visitor's choice.
OLD_TRACKERS = "_ga=GA1.1.1.1; _gid=GA1.1.2.2; _fbp=fb.1.1.1"


async def decide(client: httpx.AsyncClient, accept: list[str] | str) -> str:
    """The consent cookie for `accept`, kept out of the client's jar so every request says who it is."""
    cookie = await consent_cookie(client, accept)
    client.cookies.clear()
    return cookie


async def assert_own_cookies_kept_and_trackers_stripped(
    client: httpx.AsyncClient, own: Iterable[str], path: str = "/"
) -> None:
    own = set(own)
    client.cookies.clear()
    undecided = await client.get(path)
    client.cookies.clear()
    assert undecided.status_code == 200, undecided.text
    names = set(set_cookie_names(undecided))
    assert own <= names, f"own cookies dropped for an undecided visitor: {own - names}"
    assert not names & set(TRACKERS), f"trackers set before any choice: {names & set(TRACKERS)}"

    rejected = await decide(client, [])
    response = await client.get(path, headers={"cookie": f"{rejected}; {OLD_TRACKERS}"})
    names = set(set_cookie_names(response))
    assert own <= names, f"own cookies dropped after reject-all: {own - names}"
    expired = {v.partition("=")[0] for v in set_cookies(response) if "max-age=0" in v.lower()}
    assert set(TRACKERS) <= expired, f"trackers the browser holds were not expired: {set(TRACKERS) - expired}"
    assert not own & expired, f"own cookies expired after reject-all: {own & expired}"

    analytics = await decide(client, ["analytics"])
    response = await client.get(path, headers={"cookie": analytics})
    names = set(set_cookie_names(response))
    assert own | set(ANALYTICS) <= names
    assert "_fbp" not in names


async def assert_banner_with_exact_length(client: httpx.AsyncClient, path: str = "/") -> None:
    client.cookies.clear()
    response = await client.get(path, headers={"accept-encoding": "identity"})
    assert MARKER in response.text
    assert response.headers.get("content-length") == str(len(response.content)), response.headers
    assert response.text.index(MARKER) < response.text.rindex("</body>")


async def assert_decision_in_idiom(client: httpx.AsyncClient, path: str = "/decision") -> None:
    """The app's own handler reports what it read through the framework's idiom."""
    client.cookies.clear()
    undecided = (await client.get(path)).json()
    assert undecided == {"decided": False, "analytics": False}
    analytics = await decide(client, ["analytics"])
    decided = (await client.get(path, headers={"cookie": analytics})).json()
    assert decided == {"decided": True, "analytics": True}


def find_gate(app: object) -> CookieGateMiddleware:
    """The gate inside a framework's built middleware stack (followed through `.app`)."""
    seen = 0
    while not isinstance(app, CookieGateMiddleware):
        app = getattr(app, "app", None) or getattr(app, "middleware_stack", None)
        seen += 1
        if app is None or seen > 50:
            raise AssertionError("no CookieGateMiddleware in the stack")
    return app


def close_gate(gate: CookieGateMiddleware) -> None:
    if gate.statistics is not None:
        gate.statistics.writer.stop()
    gate.store.close()
