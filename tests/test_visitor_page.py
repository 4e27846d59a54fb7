"""The visitor's own page, /_cookie_gate/me: what is held, in their language, and forms that work without script.

The forms are read off the page and sent back as a browser would send them, so the
round trip tests the page and the consent endpoint together.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx
import pytest

from cookie_gate.asgi import Receive, Scope, Send
from cookie_gate.shown import shown_digests
from tests.clocks import SteppedClock
from tests.conftest import HOST, GateFactory, http_scope, kept_cookie, run_asgi

pytestmark = pytest.mark.anyio
Clients = Callable[..., httpx.AsyncClient]
ME = "/_cookie_gate/me"
ORIGIN = {"origin": f"http://{HOST}"}
#: 2026-12-01 12:00 UTC, 21:00 in Seoul.
NOON = 1_796_126_400.0
CATEGORIES = {
    "analytics": {"cookies": ["_ga", "_ga_*"], "retention": {"en": "2 years", "ko": "2년"}},
    "marketing": {"cookies": ["_fbp"]},
}


#: Tags inside a sentence: their text runs on without a space.
INLINE = frozenset({"time", "code", "a", "strong", "span"})


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # hidden inputs
    boxes: dict[str, bool] = field(default_factory=dict)  # accept checkboxes: value -> checked
    disabled: list[str] = field(default_factory=list)  # ids of disabled checkboxes
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value) of submit buttons

    def submission(self, button: str, accept: set[str] | None = None) -> list[tuple[str, str]]:
        """What a browser sends when `button` (an action value) is pressed; `accept` ticks those boxes."""
        ticked = {v for v, on in self.boxes.items() if on} if accept is None else accept
        return [*self.fields, *(("accept", v) for v in self.boxes if v in ticked), ("action", button)]


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.lang = ""
        self.styles: list[str] = []
        self.links: list[str] = []
        self._in_style = False
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if tag not in INLINE:
            self.text.append(" ")
        if tag == "html":
            self.lang = a.get("lang", "")
        elif tag == "style":
            self._in_style = True
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "")))
            self._in_form = True
        elif self._in_form and tag == "input":
            form = self.forms[-1]
            if a.get("type") == "hidden":
                form.fields.append((a["name"], a.get("value", "")))
            elif a.get("type") == "checkbox" and "disabled" in a:
                form.disabled.append(a.get("id", ""))
            elif a.get("type") == "checkbox":
                form.boxes[a["value"]] = "checked" in a
            elif a.get("type") == "radio" and "checked" in a:
                form.fields.append((a["name"], a["value"]))
        elif self._in_form and tag == "button":
            self.forms[-1].buttons.append((a.get("name", ""), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag not in INLINE:
            self.text.append(" ")
        if tag == "form":
            self._in_form = False
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    @property
    def words(self) -> str:
        return " ".join("".join(self.text).split())

    @property
    def change(self) -> Form:
        return next(f for f in self.forms if ("action", "save") in f.buttons)

    @property
    def withdraw(self) -> Form:
        return next(f for f in self.forms if ("action", "withdraw") in f.buttons)


async def visit(client: httpx.AsyncClient, path: str = ME, **headers: str) -> tuple[httpx.Response, Page]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    page = Page()
    page.feed(response.text)
    page.close()
    return response, page


async def submit(
    client: httpx.AsyncClient, form: Form, data: list[tuple[str, str]], cookie: str = ""
) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded", **ORIGIN}
    if cookie:
        headers["cookie"] = cookie
    return await client.post(form.action, content=urlencode(data), headers=headers)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(NOON)


@pytest.fixture
def client(gate: GateFactory, client_for: Clients, clock: SteppedClock) -> httpx.AsyncClient:
    return client_for(gate([], clock=clock, categories=CATEGORIES, timezone="Asia/Seoul"))


async def test_an_undecided_visitor_sees_no_choice_yet_and_every_purpose_with_its_cookies(
    client: httpx.AsyncClient,
) -> None:
    response, page = await visit(client, **{"accept-language": "en"})
    assert page.lang == "en"
    assert "You have not made a choice yet" in page.words
    for label, description in [
        ("Strictly necessary", "Needed for the site to work"),
        ("Analytics", "Count how often people visit"),
        ("Marketing", "Let advertising partners show relevant ads"),
    ]:
        assert label in page.words and description in page.words
    assert "Cookies _ga, _ga_*, other cookies of this kind" in page.words
    assert "Kept for 2 years" in page.words
    assert "If you refuse You still see ads, but they are not based on your visits." in page.words
    assert "Nothing is logged under this consent id." in page.words
    # The current choice: only what is strictly necessary is allowed before a choice (opt-in).
    assert "Strictly necessary Allowed Preferences Refused Analytics Refused Marketing Refused" in page.words
    change = page.change
    assert (change.action, change.method) == ("/_cookie_gate/consent", "post")
    assert ("next", f"{ME}?lang=en&done=saved") in change.fields
    assert change.boxes == {"preferences": False, "analytics": False, "marketing": False}
    assert change.disabled == ["c-necessary"]
    assert {v for _, v in change.buttons} >= {"save", "accept_all", "reject_all"}
    assert page.withdraw.action == "/_cookie_gate/consent"
    assert ("next", f"{ME}?lang=en&done=withdrawn") in page.withdraw.fields


async def test_the_page_has_a_strict_policy_and_is_never_cached(client: httpx.AsyncClient) -> None:
    response, page = await visit(client)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "Cookie" in response.headers["vary"]
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "script-src" not in policy
    (style,) = page.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy, "the one inline style is allowed by its hash, nothing else"
    assert "script" not in page.tags
    # Chrome sends "Origin: null" with forms under no-referrer, which the consent endpoint refuses.
    assert response.headers["referrer-policy"] == "same-origin"


async def test_korean_by_accept_language_and_the_lang_switch_wins(client: httpx.AsyncClient) -> None:
    _, korean = await visit(client, **{"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert korean.lang == "ko"
    assert "아직 선택하지 않으셨습니다" in korean.words and "분석" in korean.words and "보관 기간 2년" in korean.words
    assert ("next", f"{ME}?lang=ko&done=saved") in korean.change.fields
    assert {"?lang=en", "?lang=ko"} <= set(korean.links)
    _, english = await visit(client, f"{ME}?lang=en", **{"accept-language": "ko"})
    assert english.lang == "en" and "Your cookie choice" in english.words
    _, unknown = await visit(client, f"{ME}?lang=%3Cscript%3E&done=%3Cb%3E", **{"accept-language": "ko"})
    assert unknown.lang == "ko", "an unknown language is ignored, not echoed"
    assert "<b>" not in unknown.words and "script" not in unknown.tags


async def test_saving_through_the_pages_form_comes_back_to_the_page_with_the_choice(
    client: httpx.AsyncClient, clock: SteppedClock
) -> None:
    _, page = await visit(client, **{"accept-language": "en"})
    answer = await submit(client, page.change, page.change.submission("save", {"analytics"}))
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location == f"{ME}?lang=en&done=saved"
    cookie = kept_cookie(answer)
    clock.now += 3600
    _, after = await visit(client, location, cookie=cookie)
    assert "Your choice is saved." in after.words
    assert "Strictly necessary Allowed Preferences Refused Analytics Allowed Marketing Refused" in after.words
    assert after.change.boxes == {"preferences": False, "analytics": True, "marketing": False}
    # Made at 12:00 UTC, 21:00 in Seoul; it holds the configured 180 days.
    assert "You made this choice on 2026-12-01 21:00. It holds until 2027-05-30 21:00" in after.words
    assert "Times are in Asia/Seoul." in after.words
    consent_id = (await client.get("/_cookie_gate/consent", headers={"cookie": cookie})).json()["consent_id"]
    assert f"Consent id (quote it if you ask the site about your record): {consent_id}" in after.words
    assert "2026-12-01 21:00 Chose Strictly necessary, Analytics 1 no" in after.words
    # Changing again: the history shows both, the newest first.
    clock.now += 60
    again = await submit(client, after.change, after.change.submission("accept_all"), cookie)
    _, latest = await visit(client, again.headers["location"], cookie=kept_cookie(again))
    assert latest.change.boxes == {"preferences": True, "analytics": True, "marketing": True}
    history = latest.words.split("History under this consent id")[1]
    assert history.index("Accepted all") < history.index("Chose")


async def test_withdrawing_through_the_page_clears_the_choice_and_a_replayed_cookie_shows_the_withdrawal(
    client: httpx.AsyncClient, clock: SteppedClock
) -> None:
    _, page = await visit(client, **{"accept-language": "en"})
    cookie = kept_cookie(await submit(client, page.change, page.change.submission("accept_all")))
    _, decided = await visit(client, cookie=cookie)
    clock.now += 120
    answer = await submit(client, decided.withdraw, decided.withdraw.submission("withdraw"), cookie)
    assert answer.status_code == 303 and answer.headers["location"] == f"{ME}?lang=en&done=withdrawn"
    cleared = next(v for v in reversed(answer.headers.get_list("set-cookie")) if v.startswith("cookie_gate="))
    assert "Max-Age=0" in cleared
    _, after = await visit(client, answer.headers["location"])
    assert "Your consent is withdrawn" in after.words and "You have not made a choice yet" in after.words
    assert after.change.boxes == {"preferences": False, "analytics": False, "marketing": False}
    # A copy of the old cookie sent again is undecided, and its history ends in the withdrawal.
    _, replayed = await visit(client, cookie=cookie)
    assert "You have not made a choice yet" in replayed.words
    assert "You withdrew your consent on 2026-12-01 21:02." in replayed.words
    history = replayed.words.split("History under this consent id")[1]
    assert history.index("Withdrew") < history.index("Accepted all")
    assert replayed.change.boxes == {"preferences": False, "analytics": False, "marketing": False}


async def test_a_choice_made_on_the_korean_page_is_logged_in_korean_whatever_the_browser_prefers(
    gate: GateFactory, client_for: Clients, clock: SteppedClock
) -> None:
    middleware = gate([], clock=clock, categories=CATEGORIES)
    client = client_for(middleware)
    _, page = await visit(client, f"{ME}?lang=ko", **{"accept-language": "en"})
    assert ("lang", "ko") in page.change.fields and ("lang", "ko") in page.withdraw.fields
    headers = {"accept-language": "en"}
    saved = await client.post(
        page.change.action,
        content=urlencode(page.change.submission("accept_all")),
        headers={"content-type": "application/x-www-form-urlencoded", **ORIGIN, **headers},
    )
    assert saved.status_code == 303
    clock.now += 60
    withdrawn = await client.post(
        page.withdraw.action,
        content=urlencode(page.withdraw.submission("withdraw")),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            **ORIGIN,
            **headers,
            "cookie": kept_cookie(saved),
        },
    )
    assert withdrawn.status_code == 303
    digests = shown_digests(middleware.config).by_locale
    assert digests["ko"] != digests["en"]
    logged = [(r.action, r.locale, r.shown) for r in middleware.store.consent_log()]
    assert logged == [("accept_all", "ko", digests["ko"]), ("withdraw", "ko", digests["ko"])]
    forged = await client.post(
        page.change.action,
        content=urlencode([*page.change.submission("accept_all"), ("lang", "xx")]),
        headers={"content-type": "application/x-www-form-urlencoded", **ORIGIN},
    )
    assert forged.status_code == 400 and "lang" in forged.text


async def test_the_pages_forms_obey_the_same_origin_rule(client: httpx.AsyncClient) -> None:
    _, page = await visit(client)
    data = page.change.submission("accept_all")
    forged = await client.post(
        page.change.action,
        content=urlencode(data),
        headers={"content-type": "application/x-www-form-urlencoded", "origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers


async def test_global_privacy_control_is_explained(client: httpx.AsyncClient) -> None:
    _, page = await visit(client, **{"sec-gpc": "1"})
    assert "Your browser sends Global Privacy Control" in page.words


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("opt-out", "Marketing stay refused"), ("opt-in", "Preferences, Analytics, Marketing stay refused")],
)
async def test_the_gpc_sentence_names_what_gpc_refuses_in_this_configuration(
    gate: GateFactory, client_for: Clients, mode: str, expected: str
) -> None:
    client = client_for(gate([], mode=mode, categories=CATEGORIES))
    _, page = await visit(client, f"{ME}?lang=en", **{"sec-gpc": "1"})
    assert expected in page.words
    record = (await client.get("/_cookie_gate/consent", headers={"sec-gpc": "1"})).json()
    labels = {"preferences": "Preferences", "analytics": "Analytics", "marketing": "Marketing"}
    refused = [labels[name] for name, allowed in record["categories"].items() if not allowed and name in labels]
    stated = page.words.split("Global Privacy Control")[1].split(".")[0]
    assert all(label in stated for label in refused) and not any(
        label in stated for label in set(labels.values()) - set(refused)
    ), "the page says what the gate does"


async def test_the_sites_texts_are_escaped(gate: GateFactory, client_for: Clients) -> None:
    hostile = {"label": "<img src=x onerror=alert(1)>", "description": "</p><script>alert(2)</script>"}
    client = client_for(gate([], categories={"partners": {**hostile, "cookies": ["ptn_*"]}}))
    response, page = await visit(client)
    assert "<img src=x onerror=alert(1)>" in page.words
    assert "script" not in page.tags and "img" not in page.tags
    assert page.change.boxes["partners"] is False


async def test_only_get_and_head(client: httpx.AsyncClient) -> None:
    refused = await client.post(ME, headers=ORIGIN)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    head = await client.head(ME)
    assert head.status_code == 200 and head.content == b""


async def test_a_decided_visitors_settings_panel_links_to_the_page(gate: GateFactory, client_for: Clients) -> None:
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def home(request: object) -> HTMLResponse:
        return HTMLResponse("<html><body><p>shop</p></body></html>")

    client = client_for(gate([Route("/", home)]))
    decided = await client.post("/_cookie_gate/consent", json={"accept": []})
    page = await client.get("/", headers={"cookie": kept_cookie(decided)})
    panel = page.text[page.text.index('id="cookie-gate-settings"') :]
    assert re.search(r'<a href="/_cookie_gate/me">What this site holds about your choice</a>', panel)


async def test_under_the_sites_own_policy_the_style_carries_the_sites_nonce(
    gate: GateFactory, client_for: Clients
) -> None:
    """A CSP middleware outside the gateway adds its policy to this page too: the style must pass both."""
    middleware = gate([])

    async def with_nonce(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["csp_nonce"] = 'n0nce"<'
        await middleware(scope, receive, send)

    response = await client_for(with_nonce).get(ME)
    assert '<style nonce="n0nce&quot;&lt;">' in response.text
    assert '<style nonce="' not in (await client_for(middleware).get(ME)).text


async def test_under_a_root_path_the_forms_and_links_keep_it(gate: GateFactory) -> None:
    middleware = gate([])
    scope = http_scope("/shop/_cookie_gate/me", root_path="/shop", query_string=b"lang=en")
    messages = await run_asgi(middleware, scope)
    assert messages[0]["status"] == 200
    page = Page()
    page.feed(b"".join(m.get("body", b"") for m in messages[1:]).decode())
    assert page.change.action == "/shop/_cookie_gate/consent"
    assert ("next", "/shop/_cookie_gate/me?lang=en&done=saved") in page.change.fields
    assert "/shop/_cookie_gate/declaration?lang=en" in page.links
