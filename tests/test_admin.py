"""The admin dashboard: there only with a token, and only for whoever holds it."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import GateFactory

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
TOKEN = "admin-token-0123456789abcdef"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


async def page(request: Request) -> Response:
    return HTMLResponse("<html><body>shop</body></html>")


ROUTES = [Route("/", page)]


async def test_without_a_token_there_is_no_dashboard(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    for path in ("/_cookie_gate/admin", "/_cookie_gate/admin/stats.json"):
        response = await client.get(path, headers={"authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 404


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-0123456789",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",  # a prefix of the token
        "Bearer " + TOKEN[:8],
        "Basic !!!",
        basic("admin", ""),  # Basic with an empty password
        basic(TOKEN, ""),  # the token as the user name is not the password
        "Basic " + base64.b64encode(TOKEN.encode()).decode(),  # no colon at all
        basic("admin", TOKEN[:-1]),
        f"Token {TOKEN}",
        "Bearer",
        "Bearer ",
    ],
)
@pytest.mark.parametrize(
    "path", ["/_cookie_gate/admin", "/_cookie_gate/admin/stats.json", "/_cookie_gate/admin/health.json",
             "/_cookie_gate/admin/export/pages.csv", "/_cookie_gate/admin/export/cookies.json"],
)  # fmt: skip
async def test_the_dashboard_asks_for_the_token(
    gate: GateFactory, client_for: Clients, authorization: str | None, path: str
) -> None:
    client = client_for(gate(ROUTES, admin_token=TOKEN))
    headers = {"authorization": authorization} if authorization else {}
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert "pageviews" not in response.text and "cookie" not in response.text.replace("cookie_gate", "")


async def test_the_token_opens_every_route_with_bearer_and_basic(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, admin_token=TOKEN))
    for authorization in (f"Bearer {TOKEN}", basic("admin", TOKEN), basic("", TOKEN)):
        for path in ("", "/stats.json", "/health.json", "/export/pages.csv", "/export/cookies.json"):
            response = await client.get(f"/_cookie_gate/admin{path}", headers={"authorization": authorization})
            assert response.status_code == 200, (authorization, path)


async def test_the_report_as_json_with_a_bearer_token(gate: GateFactory, client_for: Clients) -> None:
    middleware = gate(ROUTES, admin_token=TOKEN)
    client = client_for(middleware)
    for _ in range(3):
        await client.get("/", headers={"user-agent": CHROME})
    assert middleware.statistics is not None and middleware.statistics.writer.flush()
    response = await client.get("/_cookie_gate/admin/stats.json?days=7", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    report = response.json()
    assert report["pageviews"] == 3 and report["period"]["days"] == 7
    assert report["browsers"] == {"Chrome": 3}


async def test_the_page_opens_with_basic_auth_and_runs_no_script(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, admin_token=TOKEN))
    basic = base64.b64encode(f"admin:{TOKEN}".encode()).decode()
    response = await client.get("/_cookie_gate/admin", headers={"authorization": f"Basic {basic}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "unsafe-inline" not in policy
    assert "<script" not in response.text and " style=" not in response.text
    assert "Page views by hour of day" in response.text and "Consent decisions" in response.text
    assert 'id="cookie-gate"' not in response.text  # the gateway's own pages get no banner


@pytest.mark.parametrize("query", ["days=0", "days=abc", "days=10000", "days=-1", "days=801"])
async def test_a_bad_period_is_a_400(gate: GateFactory, client_for: Clients, query: str) -> None:
    client = client_for(gate(ROUTES, admin_token=TOKEN))
    response = await client.get(f"/_cookie_gate/admin?{query}", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400 and "days" in response.json()["error"]


async def test_the_dashboard_is_read_only(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, admin_token=TOKEN))
    response = await client.post("/_cookie_gate/admin", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


def test_the_pages_inline_style_is_the_one_its_policy_allows() -> None:
    import hashlib

    from cookie_gate.dashboard import page

    digest = base64.b64encode(hashlib.sha256(page.STYLE.encode()).digest()).decode()
    assert re.search(rf"style-src 'sha256-{re.escape(digest)}'", page.CSP.decode())


async def test_the_dashboard_lists_suspected_trackers_first_with_their_reason(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = gate(ROUTES, admin_token=TOKEN)
    client = client_for(middleware)
    cookies = "app_pref=1; wow.anonymousId=1f9507d0-58f7-463d-9d32-020133a8f79c; _ga=GA1.2.1.2; <b>x</b>=1"
    await client.get("/", headers={"user-agent": CHROME, "cookie": cookies})
    assert middleware.statistics is not None and middleware.statistics.writer.flush()
    response = await client.get("/_cookie_gate/admin", headers={"authorization": f"Bearer {TOKEN}"})
    text = response.text
    assert "Cookies seen (4)" in text
    suspect = text.index("wow.anonymousId")
    assert suspect < text.index("app_pref") and suspect < text.index("_ga<")
    assert "<strong>suspected tracker: value is a UUID; name says anonymous" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert '[categories.necessary] cookies = ["name"]' in text.replace("&quot;", '"')
