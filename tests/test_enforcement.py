"""Enforcement on every request: what the app sees and what reaches the browser."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings, strategies as st
from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cookie_gate.asgi import Message, Receive, Scope, Send
from cookie_gate.classify import CookieClassifier
from cookie_gate.config import load_config
from cookie_gate.consent import ConsentCodec, Decision
from cookie_gate.cookies import MAX_DOMAIN_ATTRIBUTES, MAX_EXPIRED_PER_RESPONSE, MAX_EXPIRY_BYTES, DomainVariants
from cookie_gate.store.sqlite import SQLiteStore
from cookie_gate.visit import VisitResolver
from tests.clocks import SteppedClock
from tests.conftest import (
    HOST,
    SECRET,
    GateFactory,
    consent_cookie,
    http_scope,
    run_asgi,
    set_cookie_names,
    set_cookies,
)

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]

# Names whose category the built-in catalogue knows.
ANALYTICS = "_ga"
MARKETING = "_fbp"
NECESSARY = "JSESSIONID"
PREFERENCES_COOKIE = "preferred_lang"


async def sets_trackers(request: Request) -> Response:
    response = PlainTextResponse("ok")
    response.set_cookie(ANALYTICS, "GA1.2.111.222")
    response.set_cookie(MARKETING, "fb.1.123.456")
    response.set_cookie(NECESSARY, "s3ss10n")
    response.set_cookie(PREFERENCES_COOKIE, "ko")
    return response


async def echo(request: Request) -> Response:
    consent = request.state.consent
    return JSONResponse(
        {
            "cookies": request.cookies,
            "raw": request.headers.get("cookie"),
            "decided": consent.decided,
            "allowed": sorted(consent.categories),
            "analytics": consent.allows("analytics"),
        }
    )


ROUTES = [Route("/trackers", sets_trackers), Route("/echo", echo)]
PREFS = {"preferences": {"cookies": [PREFERENCES_COOKIE]}}


# -- Set-Cookie on the way out --------------------------------------------------------------


async def test_undecided_visitor_receives_only_necessary_cookies(gate: GateFactory, client_for: Clients) -> None:
    response = await client_for(gate(ROUTES, categories=PREFS)).get("/trackers")
    assert set_cookie_names(response) == [NECESSARY]


async def test_accepted_categories_pass_and_refused_ones_are_dropped(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, categories=PREFS))
    cookie = await consent_cookie(client, ["analytics", "preferences"])
    response = await client.get("/trackers", headers={"cookie": cookie})
    assert set_cookie_names(response) == [ANALYTICS, NECESSARY, PREFERENCES_COOKIE]


async def test_accept_all_lets_every_cookie_through(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, categories=PREFS))
    cookie = await consent_cookie(client, "all")
    response = await client.get("/trackers", headers={"cookie": cookie})
    assert set_cookie_names(response) == [ANALYTICS, MARKETING, NECESSARY, PREFERENCES_COOKIE]


def raw_app(headers: list[tuple[bytes, bytes]]) -> Callable[[Scope, Receive, Send], Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.mark.parametrize(
    ("header_name", "value", "kept"),
    [
        (b"set-cookie", b"_ga=GA1.2.3.4; Path=/", False),
        (b"Set-Cookie", b"_ga=GA1.2.3.4; Path=/", False),
        (b"SET-COOKIE", b"_fbp=fb.1; Path=/", False),
        (b"set-cookie", b"_ga=x; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/", False),
        (b"set-cookie", b'_ga="quoted, value"; Path=/', False),
        (b"set-cookie", b"  _ga  =x", False),
        (b"set-cookie", b"_ga_ABC123=GS1.1; Path=/", False),
        (b"set-cookie", b"_gat_gtag_UA_12345_1=1", False),
        (b"set-cookie", b"_ga=; Max-Age=0; Path=/", True),  # the app deleting a tracker is fine
        (b"set-cookie", b"JSESSIONID=abc; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly", True),
        (b"set-cookie", b"csrftoken=" + b"x" * 5000, True),
        (b"set-cookie", b"app_\xff\xfe=1", True),  # undeclared, not in the catalogue: necessary
        (b"set-cookie", b"nameless-value", True),
    ],
)
async def test_set_cookie_truth_table_for_an_undecided_visitor(
    gate: GateFactory, header_name: bytes, value: bytes, kept: bool
) -> None:
    app = gate(raw_app([(b"content-type", b"application/json"), (header_name, value)]))
    start = (await run_asgi(app, http_scope("/")))[0]
    assert ((b"set-cookie", value) in start["headers"]) is kept


async def test_repeated_set_cookie_headers_are_filtered_one_by_one(gate: GateFactory) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a_session=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
        (b"Set-Cookie", b"_ga=GA1; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
        (b"set-cookie", b"b_session=2"),
        (b"set-cookie", b"_fbp=fb"),
        (b"set-cookie", b"c_session=3"),
    ]
    start = (await run_asgi(gate(raw_app(headers)), http_scope("/")))[0]
    assert [v for n, v in start["headers"] if n == b"set-cookie"] == [
        b"a_session=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        b"b_session=2",
        b"c_session=3",
    ]


# -- Cookie on the way in -------------------------------------------------------------------


async def test_refused_cookies_are_hidden_from_the_app(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    sent = f'{ANALYTICS}=GA1.2.3; {NECESSARY}=abc; lt={{"id":"0.38","d":"2020"}}; {MARKETING}=fb.1'
    body = (await client.get("/echo", headers={"cookie": sent})).json()
    assert body["raw"] == f'{NECESSARY}=abc; lt={{"id":"0.38","d":"2020"}}'
    assert body["decided"] is False
    assert body["allowed"] == ["necessary"]


async def test_kept_cookie_segments_reach_the_app_byte_for_byte(gate: GateFactory) -> None:
    seen: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend(v for n, v in scope["headers"] if n == b"cookie")
        await raw_app([])(scope, receive, send)

    cookie = b'a="x y";_ga=1;  b=\xff\xfe;big=' + b"v" * 5000 + b"; _fbp=2;eq=e=f"
    await run_asgi(gate(app), http_scope("/", headers=[(b"cookie", cookie)]))
    assert seen == [b'a="x y";  b=\xff\xfe;big=' + b"v" * 5000 + b";eq=e=f"]


async def test_huge_cookie_headers_are_filtered_too(gate: GateFactory, client_for: Clients) -> None:
    big = "v" * 10_000
    body = (await client_for(gate(ROUTES)).get("/echo", headers={"cookie": f"{ANALYTICS}=1; big={big}"})).json()
    assert body["raw"] == f"big={big}"


async def test_several_cookie_headers_are_joined_for_the_app(gate: GateFactory) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append([(n, v) for n, v in scope["headers"] if n.lower() == b"cookie"])
        await raw_app([])(scope, receive, send)

    headers = [(b"cookie", b"a=1"), (b"Cookie", b"_ga=2"), (b"cookie", b"b=3")]
    await run_asgi(gate(app), http_scope("/", headers=headers))
    assert seen == [[(b"cookie", b"a=1; b=3")]]


async def test_a_request_without_refused_cookies_keeps_its_headers_untouched(gate: GateFactory) -> None:
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        await raw_app([])(scope, receive, send)

    scope = http_scope("/", headers=[(b"cookie", b"a=1; b=2")])
    original = scope["headers"]
    await run_asgi(gate(app), scope)
    assert seen == [original] and seen[0] is original


async def test_the_app_reads_the_decision_from_request_state(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, ["analytics"])
    body = (await client.get("/echo", headers={"cookie": f"{cookie}; {ANALYTICS}=1; {MARKETING}=2"})).json()
    assert body["decided"] is True
    assert body["allowed"] == ["analytics", "necessary"]
    assert body["analytics"] is True
    assert ANALYTICS in body["cookies"] and MARKETING not in body["cookies"]


# -- expiring refused cookies the browser still has -----------------------------------------


def expiries(response: httpx.Response) -> dict[str, list[str]]:
    """Expiring Set-Cookies by cookie name, each as its Domain attribute ("" = host-only)."""
    found: dict[str, list[str]] = {}
    for value in set_cookies(response):
        if "Max-Age=0" not in value:
            continue
        name = value.partition("=")[0]
        domain = next((a.split("=", 1)[1] for a in value.split("; ") if a.startswith("Domain=")), "")
        assert "Path=/" in value.split("; ")
        found.setdefault(name, []).append(domain)
    return found


async def test_refused_cookies_are_expired_under_every_domain_up_to_the_public_suffix(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    response = await client.get("/echo", headers={"cookie": f"{ANALYTICS}=1; {MARKETING}=2; {NECESSARY}=3"})
    domains = ["", "www.shop.example.co.kr", "shop.example.co.kr", "example.co.kr"]
    assert expiries(response) == {ANALYTICS: domains, MARKETING: domains}


async def test_expiry_repeats_on_every_response_while_the_cookie_comes_back(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    for _ in range(3):
        response = await client.get("/echo", headers={"cookie": f"{MARKETING}=2"})
        assert list(expiries(response)) == [MARKETING]


async def test_expiry_never_targets_accepted_or_necessary_cookies(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, ["analytics"])
    sent = f"{cookie}; {ANALYTICS}=1; _ga_XYZ=2; {NECESSARY}=3; unknown_app_cookie=4; {MARKETING}=5"
    response = await client.get("/echo", headers={"cookie": sent})
    assert list(expiries(response)) == [MARKETING]


async def test_expiry_on_an_ip_host_is_host_only(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES), base_url="http://127.0.0.1:8000")
    response = await client.get("/echo", headers={"cookie": f"{MARKETING}=2"})
    assert expiries(response) == {MARKETING: [""]}


async def test_expiry_over_https_is_secure(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES), base_url=f"https://{HOST}")
    response = await client.get("/echo", headers={"cookie": f"{MARKETING}=2"})
    assert all(v.endswith("; Secure") or "; Secure;" in v for v in set_cookies(response))


# -- the consent cookie itself ----------------------------------------------------------------


async def test_tampered_expired_or_foreign_consent_cookies_mean_undecided(
    gate: GateFactory, client_for: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_for(gate(ROUTES))
    good = (await consent_cookie(client, "all")).partition("=")[2]
    payload, _, signature = good.rpartition(".")
    variants = {
        "tampered payload": payload.replace(":analytics", ":analytics+x", 1) + "." + signature,
        "tampered signature": payload + "." + signature[::-1],
        "unsigned": payload,
        "garbage": "%%%not a cookie%%%",
        "empty": "",
    }
    raw = {label: f"cookie_gate={value}".encode() for label, value in variants.items()}
    raw["non-utf8"] = b"cookie_gate=\xff\xfe." + signature.encode()
    raw["100 KB"] = b"cookie_gate=" + good.encode() * (100_000 // len(good))
    other_salt = Signer(SECRET, salt="another.salt", key_derivation="hmac", digest_method=hashlib.sha256)
    raw["other salt"] = b"cookie_gate=" + other_salt.sign(payload.encode())
    for label, value in raw.items():
        body = (await client.get("/echo", headers=[(b"cookie", value)])).json()
        assert body["decided"] is False, label
    other = client_for(gate(ROUTES, secret_key="another-secret-key-0123456789"))
    assert (await other.get("/echo", headers={"cookie": f"cookie_gate={good}"})).json()["decided"] is False
    newer = client_for(gate(ROUTES, policy_version="2"))
    assert (await newer.get("/echo", headers={"cookie": f"cookie_gate={good}"})).json()["decided"] is False


async def test_an_expired_decision_is_not_served_from_the_cache(gate: GateFactory, client_for: Clients) -> None:
    clock = SteppedClock(1_796_137_200.0)  # 2026-12-02 00:00 in Seoul
    client = client_for(gate(ROUTES, consent_lifetime_days=1, clock=clock))
    cookie = await consent_cookie(client, "all")
    clock.advance(86399)
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["decided"] is True
    clock.advance(2)
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["decided"] is False


async def test_rotated_keys_still_verify_old_cookies_and_sign_with_the_first(
    gate: GateFactory, client_for: Clients
) -> None:
    old_key, new_key = "old-secret-key-0123456789", "new-secret-key-0123456789"
    before = client_for(gate(ROUTES, secret_key=old_key))
    cookie = await consent_cookie(before, ["analytics"])
    rotated = gate(ROUTES, secret_key=[new_key, old_key])
    after = client_for(rotated)
    assert (await after.get("/echo", headers={"cookie": cookie})).json()["allowed"] == ["analytics", "necessary"]
    fresh = await consent_cookie(after, ["analytics"])
    only_new = client_for(gate(ROUTES, secret_key=new_key))
    assert (await only_new.get("/echo", headers={"cookie": fresh})).json()["decided"] is True
    assert (await only_new.get("/echo", headers={"cookie": cookie})).json()["decided"] is False


async def test_the_signed_consent_cookie_is_compact(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, categories=PREFS))
    assert len(await consent_cookie(client, "all")) < 160


# -- configuration that changes enforcement ---------------------------------------------------


async def test_unknown_cookies_are_necessary_unless_the_admin_blocks_them(
    gate: GateFactory, client_for: Clients
) -> None:
    sent = {"cookie": "my_app_thing=1; JSESSIONID=2"}
    allowing = client_for(gate(ROUTES))
    assert (await allowing.get("/echo", headers=sent)).json()["raw"] == "my_app_thing=1; JSESSIONID=2"
    blocking = client_for(gate(ROUTES, unknown_cookies="block"))
    assert (await blocking.get("/echo", headers=sent)).json()["raw"] == "JSESSIONID=2"
    everything = await consent_cookie(blocking, "all")
    raw = (await blocking.get("/echo", headers={"cookie": f"{everything}; my_app_thing=1"})).json()["raw"]
    assert "my_app_thing" not in raw


async def test_admin_patterns_win_over_the_catalogue(gate: GateFactory, client_for: Clients) -> None:
    app = gate(ROUTES, categories={"necessary": {"cookies": ["_ga"]}, "marketing": {"cookies": ["shop_track_*"]}})
    body = (await client_for(app).get("/echo", headers={"cookie": "_ga=1; shop_track_42=2; shop_cart=3"})).json()
    assert body["raw"] == "_ga=1; shop_cart=3"


async def test_custom_categories_can_be_accepted(gate: GateFactory, client_for: Clients) -> None:
    chat = {"chat": {"label": {"en": "Live chat", "ko": "실시간 상담"}, "cookies": ["chat_*"]}}
    client = client_for(gate(ROUTES, categories=chat))
    assert (await client.get("/echo", headers={"cookie": "chat_id=1"})).json()["raw"] is None
    cookie = await consent_cookie(client, ["chat"])
    assert (await client.get("/echo", headers={"cookie": f"chat_id=1; {cookie}"})).json()["cookies"]["chat_id"] == "1"


# -- opt-out mode and Global Privacy Control --------------------------------------------------


async def test_opt_out_allows_everything_until_refused(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, mode="opt-out", categories=PREFS))
    assert set_cookie_names(await client.get("/trackers")) == [ANALYTICS, MARKETING, NECESSARY, PREFERENCES_COOKIE]
    refused = await consent_cookie(client, [])
    assert set_cookie_names(await client.get("/trackers", headers={"cookie": refused})) == [NECESSARY]


async def test_global_privacy_control_refuses_marketing_in_opt_out_mode(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, mode="opt-out"))
    gpc = {"sec-gpc": "1"}
    assert set_cookie_names(await client.get("/trackers", headers=gpc)) == [ANALYTICS, NECESSARY, PREFERENCES_COOKIE]
    body = (await client.get("/echo", headers={**gpc, "cookie": f"{MARKETING}=1; {ANALYTICS}=2"})).json()
    assert body["cookies"] == {ANALYTICS: "2"}
    explicit = await consent_cookie(client, ["marketing"])
    response = await client.get("/trackers", headers={**gpc, "cookie": explicit})
    assert MARKETING in set_cookie_names(response)


async def test_global_privacy_control_changes_nothing_in_opt_in_mode(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, "all")
    response = await client.get("/trackers", headers={"sec-gpc": "1", "cookie": cookie})
    assert MARKETING in set_cookie_names(response)


# -- other scopes -------------------------------------------------------------------------------


async def test_websocket_handshake_loses_refused_cookies_and_refused_set_cookies(gate: GateFactory) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"set-cookie", b"_ga=1"), (b"set-cookie", b"ws_id=2")]})
        await send({"type": "websocket.close", "code": 1000})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope("/ws", headers=[(b"cookie", b"_ga=1; ws_session=2")], type="websocket", scheme="ws")
    await gate(app)(scope, receive, send)
    assert (b"cookie", b"ws_session=2") in seen[0]
    assert sent[0]["headers"] == [(b"set-cookie", b"ws_id=2")]
    assert sent[1] == {"type": "websocket.close", "code": 1000}


async def test_lifespan_passes_through_and_shutdown_releases_the_store(gate: GateFactory) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        for _ in range(2):
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})

    sent: list[Message] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message)

    gated = gate(app)
    gated.store.decisions("warm-up")  # opens the SQLite connection
    await gated({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert gated.store._connection is None


# -- a Host header cannot multiply the deletions --------------------------------------------------

TRACKERS = "; ".join(f"_ga_{n}=1" for n in range(MAX_EXPIRED_PER_RESPONSE))


def with_host(host: bytes, cookie: str, path: str = "/echo") -> Scope:
    scope = http_scope(path, headers=[(b"cookie", cookie.encode())])
    scope["headers"][0] = (b"host", host)
    return scope


def response_set_cookies(messages: list[Message]) -> list[bytes]:
    return [v for n, v in messages[0]["headers"] if n.lower() == b"set-cookie"]


@pytest.mark.parametrize("host", [b"a." * 1000 + b"com", b"a." * 3000 + b"com"], ids=["2 KB", "6 KB"])
async def test_a_huge_host_header_gets_one_host_only_deletion_per_cookie(gate: GateFactory, host: bytes) -> None:
    headers = response_set_cookies(await run_asgi(gate(ROUTES), with_host(host, TRACKERS)))
    assert len(headers) == MAX_EXPIRED_PER_RESPONSE
    assert not any(b"domain=" in value.lower() for value in headers)
    assert sum(map(len, headers)) < MAX_EXPIRY_BYTES


async def test_the_deepest_valid_host_name_keeps_deletions_bounded(gate: GateFactory) -> None:
    host = b"a." * 117 + b"shop.example.co.kr"
    assert len(host) <= 253
    headers = response_set_cookies(await run_asgi(gate(ROUTES), with_host(host, TRACKERS)))
    assert len(headers) <= MAX_EXPIRED_PER_RESPONSE * (1 + MAX_DOMAIN_ATTRIBUTES)
    assert sum(map(len, headers)) <= MAX_EXPIRY_BYTES
    assert any(value.endswith(b"; Domain=example.co.kr") for value in headers)


@pytest.mark.parametrize(
    ("allowed_hosts", "domains"),
    [
        ([], ["", HOST, "shop.example.co.kr", "example.co.kr"]),
        (["*"], ["", HOST, "shop.example.co.kr", "example.co.kr"]),
        ([".example.co.kr"], ["", HOST, "shop.example.co.kr", "example.co.kr"]),
        ([HOST], ["", HOST, "shop.example.co.kr", "example.co.kr"]),
        (["shop.example.co.kr", "localhost"], [""]),
    ],
)
async def test_allowed_hosts_decide_which_hosts_earn_parent_domains(
    gate: GateFactory, client_for: Clients, allowed_hosts: list[str], domains: list[str]
) -> None:
    client = client_for(gate(ROUTES, allowed_hosts=allowed_hosts))
    response = await client.get("/echo", headers={"cookie": f"{MARKETING}=2"})
    assert response.status_code == 200  # a host outside the list is never refused, only kept host-only
    assert expiries(response) == {MARKETING: domains}


# -- several consent cookies ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["accept first", "reject first"])
async def test_conflicting_consent_cookies_allow_only_what_all_of_them_allow(
    gate: GateFactory, client_for: Clients, reverse: bool
) -> None:
    client = client_for(gate(ROUTES))
    everything = await consent_cookie(client, "all")
    nothing = await consent_cookie(client, [])
    pair = [everything, nothing][::-1] if reverse else [everything, nothing]
    response = await client.get("/echo", headers={"cookie": f"{pair[0]}; {ANALYTICS}=1; {pair[1]}; {NECESSARY}=2"})
    body = response.json()
    assert body["decided"] is True
    assert body["allowed"] == ["necessary"]
    assert body["raw"] == f"{NECESSARY}=2"  # neither consent cookie reaches the app's own parser
    assert list(expiries(response)) == [ANALYTICS]


async def test_overlapping_consent_cookies_allow_their_common_categories(
    gate: GateFactory, client_for: Clients
) -> None:
    client = client_for(gate(ROUTES))
    one = await consent_cookie(client, ["analytics", "preferences"])
    other = await consent_cookie(client, ["analytics", "marketing"])
    body = (await client.get("/echo", headers={"cookie": f"{one}; {other}"})).json()
    assert body["allowed"] == ["analytics", "necessary"]


@pytest.mark.parametrize("mode", ["opt-in", "opt-out"])
async def test_an_invalid_consent_cookie_beside_a_valid_one_allows_less(
    gate: GateFactory, client_for: Clients, mode: str
) -> None:
    client = client_for(gate(ROUTES, mode=mode))
    refused_marketing = await consent_cookie(client, ["analytics", "preferences"])
    for junk in ("cookie_gate=forged", "cookie_gate=" + refused_marketing.partition("=")[2][:-2] + "xx"):
        body = (await client.get("/echo", headers={"cookie": f"{junk}; {refused_marketing}"})).json()
        assert body["decided"] is False  # asked again
        expected = ["analytics", "necessary", "preferences"] if mode == "opt-out" else ["necessary"]
        assert body["allowed"] == expected
        assert body["raw"] is None


async def test_the_same_consent_cookie_sent_twice_is_one_decision(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, ["analytics"])
    body = (await client.get("/echo", headers={"cookie": f"{cookie}; {cookie}"})).json()
    assert body["decided"] is True and body["allowed"] == ["analytics", "necessary"]
    assert body["raw"] == f"{cookie}; {cookie}"


# -- a withdrawn consent id sent again ------------------------------------------------------------------


async def test_a_replayed_copy_of_a_withdrawn_cookie_no_longer_counts(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES))
    cookie = await consent_cookie(client, "all")
    assert (await client.get("/echo", headers={"cookie": f"{cookie}; {ANALYTICS}=1"})).json()["analytics"] is True
    assert (await client.delete("/_cookie_gate/consent", headers={"cookie": cookie})).status_code == 200
    response = await client.get("/echo", headers={"cookie": f"{cookie}; {ANALYTICS}=1"})
    assert response.json()["decided"] is False
    assert ANALYTICS not in response.json()["cookies"]
    assert list(expiries(response)) == [ANALYTICS]
    fresh = await consent_cookie(client, ["analytics"])  # deciding again works, under a new id
    assert (await client.get("/echo", headers={"cookie": fresh})).json()["allowed"] == ["analytics", "necessary"]


async def test_another_instance_learns_of_a_withdrawal_without_making_a_request_wait(
    gate: GateFactory, client_for: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = gate(ROUTES)
    cookie = await consent_cookie(client_for(first), "all")
    assert (await client_for(first).delete("/_cookie_gate/consent", headers={"cookie": cookie})).status_code == 200
    release = threading.Event()
    looked_up: list[list[str]] = []
    real = SQLiteStore.withdrawals

    def slow_withdrawals(self: SQLiteStore, consent_ids: list[str]) -> dict[str, int]:
        looked_up.append(consent_ids)
        release.wait(30)
        return real(self, consent_ids)

    monkeypatch.setattr(SQLiteStore, "withdrawals", slow_withdrawals)
    second = gate(ROUTES)  # another process on the same store, which never saw the withdrawal
    client = client_for(second)
    # The store is stuck: the request goes on with the cookie as it reads, and is not held up.
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["decided"] is True
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["decided"] is True
    release.set()
    assert second.withdrawals.wait(30)
    assert len(looked_up) == 1  # once per consent id, however often it comes back
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["decided"] is False


async def test_a_store_that_is_down_never_reaches_a_request(gate: GateFactory, client_for: Clients) -> None:
    cookie = await consent_cookie(client_for(gate(ROUTES)), ["analytics"])
    broken = gate(ROUTES, store="sqlite:////nonexistent-dir/cookie_gate.sqlite3")
    client = client_for(broken)
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["analytics"] is True
    assert broken.withdrawals.wait(30)
    assert broken.withdrawals.failed == 1
    assert (await client.get("/echo", headers={"cookie": cookie})).json()["analytics"] is True


def _resolver(mode: str) -> tuple[VisitResolver, ConsentCodec]:
    config = load_config(secret_key=SECRET, environ={}, mode=mode)
    codec = ConsentCodec(config.secret_keys, policy_version="1", categories=config.category_names)
    return VisitResolver(config, codec, CookieClassifier(config), DomainVariants(lambda host: None)), codec


OPTIONAL = ("preferences", "analytics", "marketing")


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["opt-in", "opt-out"]),
    gpc=st.booleans(),
    choices=st.lists(st.sets(st.sampled_from(OPTIONAL)), max_size=4),
    junk=st.lists(st.sampled_from(["", "x", "1:analytics:1:1:id", "1:analytics:1:1:id.forged"]), max_size=2),
    order=st.randoms(use_true_random=False),
)
def test_no_mix_of_consent_cookies_allows_more_than_any_valid_one(
    mode: str, gpc: bool, choices: list[set[str]], junk: list[str], order: random.Random
) -> None:
    resolver, codec = _resolver(mode)
    now = 1_796_000_000
    values = [
        codec.encode(Decision(frozenset(c) | {"necessary"}, "1", now - n, f"id{n}")) for n, c in enumerate(choices)
    ]
    sent = values + junk
    order.shuffle(sent)
    header = "; ".join(f"cookie_gate={v}" for v in sent).encode() or None
    consent = resolver.resolve(header, gpc, now).consent
    for choice in choices:
        assert consent.categories <= frozenset(choice) | {"necessary"}
    if junk:
        assert consent.categories <= resolver.undecided(gpc).categories
    if choices and not junk:
        assert consent.decided
        assert consent.categories == frozenset.intersection(*(frozenset(c) for c in choices)) | {"necessary"}
