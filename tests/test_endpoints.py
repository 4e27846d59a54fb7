"""The consent endpoints under /_cookie_gate, as the contract describes them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cookie_gate.asgi import Receive, Scope, Send
from cookie_gate.cookies import MAX_EXPIRED_PER_RESPONSE, MAX_EXPIRY_BYTES, DomainVariants
from cookie_gate.endpoints import Endpoints
from cookie_gate.store import DecisionRecord
from cookie_gate.visitor_page import MAX_HISTORY_SHOWN as MAX_HISTORY
from tests.clocks import suite_clock
from tests.conftest import (
    HOST,
    GateFactory,
    consent_cookie,
    http_scope,
    kept_cookie,
    run_asgi,
    set_cookie_names,
    set_cookies,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
CONSENT = "/_cookie_gate/consent"
#: What a browser sends with the banner's own form (the tests of the checks leave the origin out).
ORIGIN = {"origin": f"http://{HOST}"}
FORM = {"content-type": "application/x-www-form-urlencoded", **ORIGIN}


async def home(request: Request) -> Response:
    return PlainTextResponse("home")


ROUTES = [Route("/", home)]


def cookie_attributes(response: httpx.Response, name: str = "cookie_gate") -> list[str]:
    value = next(v for v in reversed(set_cookies(response)) if v.startswith(f"{name}="))
    return value.split("; ")[1:]


async def record(client: httpx.AsyncClient, cookie: str | None = None) -> dict[str, object]:
    headers = {"cookie": cookie} if cookie else {}
    response = await client.get(CONSENT, headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    data = response.json()
    assert isinstance(data, dict)
    return data


# -- deciding with JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("all", {"necessary": True, "preferences": True, "analytics": True, "marketing": True}),
        ([], {"necessary": True, "preferences": False, "analytics": False, "marketing": False}),
        (["analytics"], {"necessary": True, "preferences": False, "analytics": True, "marketing": False}),
        (["necessary", "marketing"], {"necessary": True, "preferences": False, "analytics": False, "marketing": True}),
    ],
)
async def test_a_json_decision_is_stored_in_the_cookie_and_shown_back(
    gate: GateFactory, client_for: Clients, accept: list[str] | str, expected: dict[str, bool]
) -> None:
    client = client_for(gate(ROUTES))
    response = await client.post(CONSENT, json={"accept": accept})
    assert response.status_code == 200
    assert response.json()["categories"] == expected
    cookie = kept_cookie(response)
    shown = await record(client, cookie)
    assert shown["decided"] is True
    assert shown["categories"] == expected
    assert shown["policy_version"] == "1"
    assert shown["consent_id"] == response.json()["consent_id"]


async def test_the_consent_cookie_has_safe_attributes(gate: GateFactory, client_for: Clients) -> None:
    response = await client_for(gate(ROUTES)).post(CONSENT, json={"accept": []})
    assert cookie_attributes(response) == ["Max-Age=15552000", "Path=/", "HttpOnly", "SameSite=Lax"]
    secure = await client_for(gate(ROUTES), base_url=f"https://{HOST}").post(CONSENT, json={"accept": []})
    assert cookie_attributes(secure)[-1] == "Secure"
    scoped = await client_for(gate(ROUTES, cookie_domain="example.co.kr")).post(CONSENT, json={"accept": []})
    assert "Domain=example.co.kr" in cookie_attributes(scoped)


async def test_the_record_holds_the_history_of_decisions_under_one_id(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    first = await consent_cookie(client, "all")
    second_response = await client.post(CONSENT, json={"accept": ["analytics"]}, headers={"cookie": first})
    second = kept_cookie(second_response)
    shown = await record(client, second)
    history = shown["history"]
    assert isinstance(history, list)
    assert [(h["action"], h["categories"]) for h in history] == [
        ("accept_all", ["analytics", "marketing", "necessary", "preferences"]),
        ("custom", ["analytics", "necessary"]),
    ]
    assert shown["decided_at"] == history[-1]["decided_at"]
    assert isinstance(shown["expires_at"], str) and shown["expires_at"] > str(shown["decided_at"])


async def test_a_long_history_is_capped_to_the_newest_decisions_and_says_so(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = gate(ROUTES)
    client = client_for(middleware)
    cookie = await consent_cookie(client, [])
    consent_id = (await record(client, cookie))["consent_id"]
    assert isinstance(consent_id, str)
    first = (await record(client, cookie))["history"]
    assert isinstance(first, list) and len(first) == 1
    long_ago = 1_000_000_000  # before the visitor's own decision
    for n in range(MAX_HISTORY + 50):
        middleware.store.log_decision(
            DecisionRecord(consent_id, long_ago + n, "custom", ("necessary",), f"p{n}", False)
        )
    client.cookies.clear()
    shown = await record(client, cookie)
    history = shown["history"]
    assert isinstance(history, list) and len(history) == MAX_HISTORY and shown["history_truncated"] is True
    # The newest ones, oldest first as before: of 251, the 51 oldest are left out.
    assert [h["policy_version"] for h in history[:2]] == ["p51", "p52"]
    assert history[-1]["action"] == "reject_all"
    answer = await client.post(CONSENT, json={"accept": ["analytics"]}, headers={"cookie": cookie})
    assert len(answer.json()["history"]) == MAX_HISTORY and answer.json()["history_truncated"] is True
    assert answer.json()["history"][-1]["action"] == "custom"
    client.cookies.clear()
    page = await client.get("/_cookie_gate/me?lang=en", headers={"cookie": cookie})
    assert f"Only the latest {MAX_HISTORY} decisions are shown" in page.text
    assert (await record(client, await consent_cookie(client, [])))["history_truncated"] is False


async def test_an_undecided_visitor_sees_an_empty_record(gate: GateFactory, client_for: Clients) -> None:
    shown = await record(client_for(gate(ROUTES)))
    assert shown["decided"] is False
    assert shown["consent_id"] is None and shown["history"] == []
    assert shown["categories"] == {"necessary": True, "preferences": False, "analytics": False, "marketing": False}


async def test_a_decision_expires_the_refused_cookies_the_browser_sent(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    response = await client.post(CONSENT, json={"accept": ["analytics"]}, headers={"cookie": "_ga=1; _fbp=2; sid=3"})
    expired = {v.partition("=")[0] for v in set_cookies(response) if "Max-Age=0" in v} - {"cookie_gate"}
    assert expired == {"_fbp"}


# -- deciding with a plain form (no JavaScript) --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "analytics", "marketing"),
    [
        ("action=accept_all&next=%2Fshop%3Fpage%3D2", True, True),
        ("action=reject_all&next=%2Fshop%3Fpage%3D2", False, False),
        ("action=save&accept=marketing&next=%2Fshop%3Fpage%3D2", False, True),
        ("action=save&accept=analytics&accept=marketing&next=%2Fshop%3Fpage%3D2", True, True),
    ],
)
async def test_a_form_post_answers_303_back_to_the_page(
    gate: GateFactory, client_for: Clients, body: str, analytics: bool, marketing: bool
) -> None:
    client = client_for(gate(ROUTES))
    response = await client.post(CONSENT, content=body, headers=FORM)
    assert response.status_code == 303
    assert response.headers["location"] == "/shop?page=2"
    cookie = kept_cookie(response)
    categories = (await record(client, cookie))["categories"]
    assert isinstance(categories, dict)
    assert (categories["analytics"], categories["marketing"]) == (analytics, marketing)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x", "x"])
async def test_a_form_never_redirects_off_site(gate: GateFactory, client_for: Clients, target: str) -> None:
    response = await client_for(gate(ROUTES)).post(CONSENT, data={"action": "accept_all", "next": target}, headers=FORM)
    assert response.status_code == 400
    assert "local path" in response.json()["error"]
    assert set_cookies(response) == []


# -- refusing what is not the visitor's own decision ---------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": f"https://{HOST}"},  # wrong scheme: the site is served over http here
        {"origin": f"http://{HOST}.evil.example"},  # the site's name as a prefix
        {"origin": f"http://evil-{HOST}"},  # the site's name as a suffix
        {"origin": f"http://{HOST}:8080"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example", "sec-fetch-site": "same-origin"},
    ],
)
async def test_cross_site_writes_are_refused_and_change_nothing(
    gate: GateFactory, client_for: Clients, headers: dict[str, str]
) -> None:
    client = client_for(gate(ROUTES))
    for method in ("POST", "DELETE"):
        response = await client.request(method, CONSENT, json={"accept": "all"}, headers=headers)
        assert response.status_code == 403, method
        assert set_cookies(response) == []
        assert "refused" in response.json()["error"]
    assert (await record(client))["history"] == []


async def test_same_origin_and_configured_origins_are_allowed(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, allowed_origins=["https://shop.example.co.kr"]))
    for headers in (
        {"origin": f"http://{HOST}", "sec-fetch-site": "same-origin"},
        {"origin": "https://shop.example.co.kr", "sec-fetch-site": "same-site"},
        {"sec-fetch-site": "same-origin"},
        {},
    ):
        response = await client.post(CONSENT, json={"accept": []}, headers=headers)
        assert response.status_code == 200, headers


@pytest.mark.parametrize("body", ["action=accept_all&next=%2F", "action=withdraw&next=%2F"])
async def test_a_form_post_that_hides_where_it_comes_from_is_refused(
    gate: GateFactory, client_for: Clients, body: str
) -> None:
    """A cross-site page with `<meta name="referrer" content="no-referrer">`, on a browser without Origin on forms."""
    client = client_for(gate(ROUTES))
    cookie = kept_cookie(await client.post(CONSENT, json={"accept": []}))
    response = await client.post(
        CONSENT, content=body, headers={"content-type": "application/x-www-form-urlencoded", "cookie": cookie}
    )
    assert response.status_code == 403
    assert "refused" in response.json()["error"] and "Referer" in response.json()["error"]
    assert set_cookies(response) == []
    history = (await record(client, cookie))["history"]
    assert isinstance(history, list) and [h["action"] for h in history] == ["reject_all"]


async def test_clients_no_page_can_drive_need_no_origin(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    decided = await client.post(CONSENT, json={"accept": "all"})  # JSON needs a CORS preflight cross-site
    assert decided.status_code == 200
    withdrawn = await client.delete(CONSENT, headers={"cookie": kept_cookie(decided)})  # so does DELETE
    assert withdrawn.status_code == 200 and withdrawn.json()["decided"] is False


# -- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b"{}", "application/json", 400, 'missing "accept"'),
        (b'{"accept": "some"}', "application/json", 400, '"accept" must be'),
        (b'{"accept": ["fun"]}', "application/json", 400, "unknown category 'fun'"),
        (b'{"accept": [1]}', "application/json", 400, "strings"),
        (b'{"accept": [], "extra": 1}', "application/json", 400, "unknown field"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        (b"action=maybe", "application/x-www-form-urlencoded", 400, "action must be one of"),
        (b"next=%2F", "application/x-www-form-urlencoded", 400, "action must be one of"),
        (b"action=save&accept=fun", "application/x-www-form-urlencoded", 400, "unknown category"),
        (b"action=save&accept=%ff", "application/x-www-form-urlencoded", 400, "malformed form"),
        (b"a=1", "text/plain", 415, "application/json"),
        (b"a=1", "multipart/form-data; boundary=x", 415, "application/json"),
    ],
)
async def test_malformed_decisions_get_a_reason_and_change_nothing(
    gate: GateFactory, client_for: Clients, content: bytes, content_type: str, status: int, reason: str
) -> None:
    client = client_for(gate(ROUTES))
    response = await client.post(CONSENT, content=content, headers={"content-type": content_type, **ORIGIN})
    assert response.status_code == status
    assert reason in response.json()["error"]
    assert set_cookies(response) == []


async def test_oversized_bodies_are_refused(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, max_body_bytes=1024))
    big = b'{"accept": [' + b'"analytics",' * 200 + b'"analytics"]}'
    response = await client.post(CONSENT, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413

    async def chunks() -> object:
        for _ in range(10):
            yield b" " * 200

    streamed = await client.post(
        CONSENT,
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_unsupported_methods_and_paths(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    response = await client.put(CONSENT, json={})
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST, DELETE"
    assert (await client.get("/_cookie_gate/nothing")).status_code == 404
    assert (await client.get("/_cookie_gate/admin")).status_code == 404
    assert (await client.get("/_cookie_gateway")).text == "Not Found"  # not ours: the app answers


async def test_a_broken_store_answers_503_and_sets_nothing(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, store="sqlite:////nonexistent-dir/cookie_gate.sqlite3"))
    response = await client.post(CONSENT, json={"accept": "all"})
    assert response.status_code == 503
    assert "nothing was changed" in response.json()["error"]
    assert set_cookies(response) == []


# -- withdrawing ---------------------------------------------------------------------------------


async def test_withdrawal_clears_the_choice_and_expires_every_non_necessary_cookie(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, "all")
    response = await client.delete(CONSENT, headers={"cookie": f"{cookie}; _ga=1; _fbp=2; JSESSIONID=3"})
    assert response.status_code == 200
    assert response.json()["decided"] is False
    assert cookie_attributes(response)[:2] == ["Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
    expired = {v.partition("=")[0] for v in set_cookies(response) if "Max-Age=0" in v}
    assert expired == {"cookie_gate", "_ga", "_fbp"}
    history = await record(client, cookie)
    assert history["decided"] is False  # a copy of the old cookie sent again no longer counts
    assert history["categories"] == {"necessary": True, "preferences": False, "analytics": False, "marketing": False}
    entries = history["history"]
    assert isinstance(entries, list)
    assert [h["action"] for h in entries] == ["accept_all", "withdraw"]


async def test_a_form_can_withdraw_without_javascript(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, "all")
    response = await client.post(
        CONSENT, content="action=withdraw&next=%2Fprivacy", headers={**FORM, "cookie": f"{cookie}; _ga=1"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/privacy"
    assert set(set_cookie_names(response)) == {"cookie_gate", "_ga"}


# -- static assets -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "media"), [("banner.js", "text/javascript"), ("banner.css", "text/css")])
async def test_banner_assets_are_cacheable(gate: GateFactory, client_for: Clients, name: str, media: str) -> None:
    client = client_for(gate(ROUTES))
    response = await client.get(f"/_cookie_gate/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert "max-age" in response.headers["cache-control"]
    assert len(response.content) > 100
    again = await client.get(f"/_cookie_gate/{name}", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = await client.head(f"/_cookie_gate/{name}")
    assert head.content == b"" and head.headers["content-length"] == str(len(response.content))


@pytest.mark.parametrize(
    ("request_body", "content_type"),
    [
        (b'{"accept": ["analytics"], "remember": false}', "application/json"),
        (b"action=save&accept=analytics&remember=no&next=%2F", "application/x-www-form-urlencoded"),
    ],
)
async def test_ask_me_every_visit_keeps_the_choice_for_the_browser_session_only(
    gate: GateFactory, client_for: Clients, request_body: bytes, content_type: str
) -> None:
    response = await client_for(gate(ROUTES)).post(
        CONSENT, content=request_body, headers={"content-type": content_type, **ORIGIN}
    )
    assert response.status_code in (200, 303)
    attributes = cookie_attributes(response)
    assert not any(a.startswith(("Max-Age", "Expires")) for a in attributes)
    assert attributes == ["Path=/", "HttpOnly", "SameSite=Lax"]


@pytest.mark.parametrize(
    ("request_body", "content_type"),
    [
        (b'{"accept": [], "remember": "no"}', "application/json"),
        (b"action=reject_all&remember=maybe", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_bad_remember_value_is_refused(
    gate: GateFactory, client_for: Clients, request_body: bytes, content_type: str
) -> None:
    response = await client_for(gate(ROUTES)).post(
        CONSENT, content=request_body, headers={"content-type": content_type, **ORIGIN}
    )
    assert response.status_code == 400 and "remember" in response.json()["error"]


# -- what withstood attacks, and what no longer gets through ------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"referer": "https://evil.example/"},
        {"referer": "https://evil.example/page?from=" + HOST},
        {"referer": f"https://{HOST}/"},  # wrong scheme
        {"referer": f"http://{HOST}.evil.example/"},
        {"referer": f"http://evil.example/{HOST}"},
        {"referer": "not a url"},
        {"referer": "http://[::1"},
        {"sec-fetch-site": "none"},
        {"sec-fetch-site": "cross-site", "referer": f"http://{HOST}/"},
    ],
)
async def test_a_cross_site_referer_is_refused_like_a_cross_site_origin(
    gate: GateFactory, client_for: Clients, headers: dict[str, str]
) -> None:
    client = client_for(gate(ROUTES))
    for method in ("POST", "DELETE"):
        response = await client.request(method, CONSENT, json={"accept": "all"}, headers=headers)
        assert response.status_code == 403, method
        assert "refused" in response.json()["error"]
        assert set_cookies(response) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"referer": f"http://{HOST}/shop?page=2"},
        {"referer": f"HTTP://{HOST.upper()}/"},
        {"referer": "https://shop.example.co.kr/checkout"},  # in allowed_origins
    ],
)
async def test_a_same_origin_referer_is_allowed(
    gate: GateFactory, client_for: Clients, headers: dict[str, str]
) -> None:
    client = client_for(gate(ROUTES, allowed_origins=["https://shop.example.co.kr"]))
    form = {"content-type": "application/x-www-form-urlencoded"}
    response = await client.post(CONSENT, content="action=reject_all&next=%2F", headers={**form, **headers})
    assert response.status_code == 303


@pytest.mark.parametrize(
    "body",
    [
        b"action=accept_all&next=%2F%2Fevil.example",
        b"action=accept_all&next=%2F%5Cevil.example",
        b"action=accept_all&next=%5C%2Fevil.example",
        b"action=accept_all&next=%252F%252Fevil.example",
        b"action=accept_all&next=%2F%09%2Fevil.example",
        b"action=accept_all&next=https%3Aevil.example",
        b"action=accept_all&next=%2Fa%0D%0ALocation%3A%20https%3A%2F%2Fevil.example",
        b"action=accept_all&next=%2Fa%00",
        b"action=accept_all&next=" + b"%2Fa" * 5000,
    ],
)
async def test_no_next_trick_leaves_the_site(gate: GateFactory, client_for: Clients, body: bytes) -> None:
    response = await client_for(gate(ROUTES)).post(CONSENT, content=body, headers=FORM)
    assert response.status_code == (413 if len(body) > 16 * 1024 else 400)
    assert "location" not in response.headers
    assert set_cookies(response) == []


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"x-http-method-override": "DELETE"}, b'{"accept": "all"}'),
        ({"x-method-override": "PUT"}, b'{"accept": "all"}'),
    ],
)
async def test_method_overrides_are_not_obeyed(
    gate: GateFactory, client_for: Clients, headers: dict[str, str], body: bytes
) -> None:
    response = await client_for(gate(ROUTES)).post(
        CONSENT, content=body, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 200 and response.json()["decided"] is True


@pytest.mark.parametrize("host", [b"a." * 1000 + b"com", b"a." * 3000 + b"com"], ids=["2 KB", "6 KB"])
@pytest.mark.parametrize(("method", "body"), [("POST", b'{"accept": []}'), ("DELETE", b"")])
async def test_the_endpoints_bound_their_deletions_whatever_the_host(
    gate: GateFactory, host: bytes, method: str, body: bytes
) -> None:
    trackers = "; ".join(f"_ga_{n}=1" for n in range(200)).encode()
    scope = http_scope(CONSENT, method=method, headers=[(b"cookie", trackers), (b"content-type", b"application/json")])
    scope["headers"][0] = (b"host", host)
    messages = await run_asgi(gate(ROUTES), scope, body)
    assert messages[0]["status"] == 200
    values = [v for n, v in messages[0]["headers"] if n == b"set-cookie"]
    assert len(values) == MAX_EXPIRED_PER_RESPONSE + 1  # the consent cookie, and 32 host-only deletions
    assert not any(b"Domain=" in v for v in values)
    assert sum(map(len, values)) < MAX_EXPIRY_BYTES + 500


async def test_a_decision_replaces_consent_cookies_tossed_under_a_parent_domain(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    tossed = await consent_cookie(client, "all")
    response = await client.post(CONSENT, json={"accept": []}, headers={"cookie": tossed})
    consent = [v for v in set_cookies(response) if v.startswith("cookie_gate=")]
    deleted = [next((a for a in v.split("; ") if a.startswith("Domain=")), "") for v in consent[:-1]]
    assert deleted == ["Domain=www.shop.example.co.kr", "Domain=shop.example.co.kr", "Domain=example.co.kr"]
    assert all("Max-Age=0" in v for v in consent[:-1])
    assert "Max-Age=0" not in consent[-1] and "Domain=" not in consent[-1]  # the new one comes last
    scoped = client_for(gate(ROUTES, cookie_domain="example.co.kr"))
    response = await scoped.post(CONSENT, json={"accept": []})
    consent = [v for v in set_cookies(response) if v.startswith("cookie_gate=")]
    assert [next((a for a in v.split("; ") if a.startswith("Domain=")), "") for v in consent] == [
        "",
        "Domain=www.shop.example.co.kr",
        "Domain=shop.example.co.kr",
        "Domain=example.co.kr",
    ]
    assert consent[-1].startswith("cookie_gate=2:") and "Max-Age=0" not in consent[-1]


async def test_a_tossed_cookie_beside_the_visitors_own_does_not_fix_their_consent_id(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = gate(ROUTES)
    tossed = await consent_cookie(client_for(middleware), "all")
    mine = await consent_cookie(client_for(middleware), [])
    client = client_for(middleware)

    async def shown_id(cookie: str) -> object:
        client.cookies.clear()
        return (await record(client, cookie))["consent_id"]

    attackers_id, my_id = await shown_id(tossed), await shown_id(mine)
    assert attackers_id != my_id
    for both in (f"{tossed}; {mine}", f"{mine}; {tossed}"):
        client.cookies.clear()
        response = await client.post(CONSENT, json={"accept": ["analytics"]}, headers={"cookie": both})
        assert response.status_code == 200
        assert response.json()["consent_id"] not in (attackers_id, my_id)
    client.cookies.clear()
    seen_by_attacker = (await record(client, tossed))["history"]
    assert isinstance(seen_by_attacker, list) and [h["action"] for h in seen_by_attacker] == ["accept_all"]
    # One cookie of one's own keeps its id, so the history stays under it.
    client.cookies.clear()
    again = await client.post(CONSENT, json={"accept": []}, headers={"cookie": mine})
    assert again.json()["consent_id"] == my_id


async def test_withdrawal_withdraws_every_consent_cookie_the_browser_sent(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    mine = await consent_cookie(client, [])
    tossed = await consent_cookie(client, "all")
    assert (await client.delete(CONSENT, headers={"cookie": f"{tossed}; {mine}"})).status_code == 200
    for cookie in (mine, tossed):
        shown = await record(client, cookie)
        assert shown["decided"] is False
        history = shown["history"]
        assert isinstance(history, list) and history[-1]["action"] == "withdraw"


async def test_the_record_agrees_with_the_log_on_an_instance_that_never_saw_the_withdrawal(
    gate: GateFactory, client_for: Clients
) -> None:
    first = client_for(gate(ROUTES))
    cookie = await consent_cookie(first, ["analytics"])
    assert (await first.delete(CONSENT, headers={"cookie": cookie})).status_code == 200
    other = gate(ROUTES)
    client = client_for(other)
    shown = await record(client, cookie)
    assert shown["decided"] is False
    assert shown["categories"] == {"necessary": True, "preferences": False, "analytics": False, "marketing": False}
    history = shown["history"]
    assert isinstance(history, list) and [h["action"] for h in history] == ["custom", "withdraw"]
    assert (await client.get("/", headers={"cookie": cookie})).status_code == 200
    assert other.visits.resolve(cookie.encode(), False, suite_clock()).consent.decided is False


async def test_deciding_again_after_a_withdrawal_starts_a_new_record(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    old = await consent_cookie(client, "all")
    await client.delete(CONSENT, headers={"cookie": old})
    response = await client.post(CONSENT, json={"accept": ["analytics"]}, headers={"cookie": old})
    assert response.json()["consent_id"] != (await record(client, old))["consent_id"]
    shown = await record(client, kept_cookie(response))
    assert shown["decided"] is True
    history = shown["history"]
    assert isinstance(history, list) and [h["action"] for h in history] == ["custom"]


# -- the __Host- prefix ------------------------------------------------------------------------------


async def test_a_host_prefixed_consent_cookie_is_secure_host_only_and_read_back(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES, cookie_name="__Host-cookie_gate"), base_url=f"https://{HOST}")
    response = await client.post(CONSENT, json={"accept": ["analytics"]})
    values = set_cookies(response)
    assert len(values) == 1  # no Domain variant can exist, so none is deleted
    assert values[0].split("; ")[1:] == ["Max-Age=15552000", "Path=/", "HttpOnly", "SameSite=Lax", "Secure"]
    cookie = kept_cookie(response, "__Host-cookie_gate")
    shown = await record(client, cookie)
    assert shown["decided"] is True and shown["categories"]["analytics"] is True  # type: ignore[index]
    withdrawn = await client.delete(CONSENT, headers={"cookie": cookie})
    assert set_cookies(withdrawn) == [
        "__Host-cookie_gate=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax; Secure"
    ]


async def test_a_host_prefixed_consent_cookie_over_plain_http_is_still_secure_and_says_why(
    gate: GateFactory, client_for: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(gate(ROUTES, cookie_name="__Host-cookie_gate"))
    for _ in range(2):
        response = await client.post(CONSENT, json={"accept": []})
        assert response.status_code == 200
        assert set_cookies(response)[0].endswith("; Secure")
    warnings = [r for r in caplog.records if "is sent with Secure" in r.getMessage()]
    assert len(warnings) == 1


async def test_the_endpoints_teach_withdrawals_to_the_resolver_they_were_given(
    gate: GateFactory, client_for: Clients
) -> None:
    """Endpoints built without a `Withdrawals` of their own cannot keep a withdrawal from the pages."""
    parts = gate(ROUTES)
    endpoints = Endpoints(
        parts.config,
        parts.visits._codec,
        parts.classifier,
        parts.visits,
        DomainVariants(lambda host: None),
        parts.store,
        suite_clock,
    )

    async def consent_only(scope: Scope, receive: Receive, send: Send) -> None:
        await endpoints(scope, receive, send, "/consent")

    client = client_for(consent_only)
    cookie = kept_cookie(await client.post(CONSENT, json={"accept": "all"}))
    assert parts.visits.resolve(cookie.encode(), False, suite_clock()).consent.decided
    assert (await client.delete(CONSENT, headers={"cookie": cookie})).status_code == 200
    assert not parts.visits.resolve(cookie.encode(), False, suite_clock()).consent.decided
