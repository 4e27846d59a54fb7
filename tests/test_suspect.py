"""The unknown-cookie heuristic (suspect.py), its sightings in the classifier, and `unknown_cookies = "suspect"`."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings, strategies as st
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cookie_gate.classify import (
    MAX_INVENTORY_SENT_NAMES,
    MAX_SIGHTED_NAMES,
    SUSPECT_CATEGORY,
    TRUNCATED,
    CookieClassifier,
)
from cookie_gate.config import load_config
from cookie_gate.suspect import Sighting, judge, set_cookie_sighting, value_shape
from tests.conftest import GateFactory, consent_cookie, set_cookie_names

Clients = Callable[..., httpx.AsyncClient]

NOW = 1_700_000_000.0
UUID = "1f9507d0-58f7-463d-9d32-020133a8f79c"
SESSION_ID = "k3j4h5g6f7d8s9a0q1w2e3r4t5y6u7i8"  # what a framework's random session id looks like


def classifier(mode: str = "allow") -> CookieClassifier:
    return CookieClassifier(
        load_config(None, environ={}, secret_key="a-test-secret-of-some-length", unknown_cookies=mode)
    )


# -- the rules --------------------------------------------------------------------------------


def test_analytics_style_and_timestamped_ids_are_suspected_whatever_the_name() -> None:
    assert judge("auto", Sighting("GA1.2.1416802292.1613229041")).suspect
    assert judge("omni", Sighting("spy.1613227833075.1871783e-644f-47e0-849e-c11d36ba8b41")).suspect
    reasons = judge("auto", Sighting("GA1.2.1416802292.1613229041")).reasons
    assert "analytics-style" in reasons[0] and "only seen in requests" in reasons[-1]


def test_a_random_value_alone_is_what_a_session_looks_like_and_is_kept() -> None:
    """After a restart the app's session arrives in a request before the app sets it again."""
    verdict = judge("app_sess", Sighting(SESSION_ID))
    assert not verdict.suspect
    assert verdict.reasons == ("value is a long random string", "no tracker's word in its name, and not long-lived")
    assert not judge("app_sess", Sighting(UUID)).suspect


def test_a_trackers_word_with_an_identifier_is_suspected() -> None:
    verdict = judge("wow.anonymousId", Sighting(UUID))
    assert verdict.suspect and "name says anonymous" in verdict.reasons
    assert judge("_visitorId", Sighting("4792e20c669c434991f3e0292532db4d")).suspect
    assert not judge("_visitorId", Sighting("1")).suspect  # a flag is not an identifier


def test_httponly_set_by_the_app_and_purpose_words_are_never_suspected() -> None:
    assert not judge("visitor_uid", Sighting(UUID, set_by_app=True, lifetime=400 * 86400, http_only=True)).suspect
    assert not judge("cart_visitor", Sighting(UUID)).suspect
    assert not judge("xsrf_uid", Sighting(UUID)).suspect


def test_a_long_lived_identifier_scripts_can_read_is_suspected() -> None:
    lasting = Sighting(UUID, set_by_app=True, lifetime=365 * 86400)
    verdict = judge("prefs_blob", lasting)
    assert verdict.suspect and "kept 365 days and readable by scripts" in verdict.reasons
    assert not judge("prefs_blob", Sighting(UUID, set_by_app=True, lifetime=30 * 86400)).suspect


def test_value_shapes() -> None:
    assert value_shape("1") is None and value_shape("true") is None and value_shape("en") is None
    assert value_shape("1613229753430") is None  # a bare timestamp: a "last visit" time, but no identifier
    assert value_shape("2266879804123") == "a long number"  # not a plausible Unix time: an id
    assert value_shape("0123456789") == "a long number"
    assert value_shape(f'"{UUID}"') == "a UUID"
    assert value_shape("expires=1613228569&foo=bar") is None  # a time beside words, no id of its own
    assert value_shape("1613227462870-New") is None


def test_set_cookie_sightings_read_max_age_before_expires() -> None:
    header = b"a=b; Expires=Tue, 14 Nov 2023 22:13:20 GMT; Max-Age=60; HttpOnly"
    assert set_cookie_sighting(header, "b", NOW) == Sighting("b", set_by_app=True, lifetime=60, http_only=True)
    expires = set_cookie_sighting(b"a=b; Expires=Wed, 14 Nov 2024 22:13:20 GMT", "b", NOW)
    assert expires.lifetime == 366 * 86400 and not expires.http_only
    assert set_cookie_sighting(b"a=b; Expires=garbage", "b", NOW).lifetime is None
    assert set_cookie_sighting(b"a=b; Max-Age=99999999999999999", "b", NOW).lifetime is None


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=200), value=st.text(max_size=5000), header=st.binary(max_size=5000))
def test_any_input_gives_a_verdict_with_a_reason(name: str, value: str, header: bytes) -> None:
    verdict = judge(name, Sighting(value))
    assert verdict.reasons
    judge(name, set_cookie_sighting(header, value, NOW))


def test_a_huge_value_costs_no_more_than_its_first_bytes() -> None:
    huge = Sighting("a1" * 5_000_000)
    tracemalloc.start()
    judge("x", huge)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100_000


# -- the classifier: sightings, inventory, flooding ----------------------------------------------


def test_the_inventory_says_who_is_a_suspected_tracker() -> None:
    gate = classifier()
    gate.sent("wow.anonymousId", UUID)
    gate.sent("app_sess", SESSION_ID)
    gate.sent("_ga", "GA1.2.1.2")
    entries = {name: (category, source) for name, category, source in gate.new_names}
    assert entries["wow.anonymousId"][0] == "necessary"  # allow mode: shown, not enforced
    assert entries["wow.anonymousId"][1].startswith("suspected tracker: value is a UUID; name says anonymous")
    assert entries["app_sess"] == ("necessary", "unknown")
    assert entries["_ga"] == ("analytics", "catalogue")


def test_made_up_names_from_requests_cannot_crowd_out_the_apps_own_cookies() -> None:
    gate = classifier()
    for i in range(MAX_INVENTORY_SENT_NAMES + 4000):
        gate.sent(f"junk{i}", "1")
    gate.was_set("my_app_session_token", b"my_app_session_token=abc; Path=/; HttpOnly", NOW)
    names = [name for name, _, _ in gate.new_names]
    assert "my_app_session_token" in names
    assert len([n for n in names if n.startswith("junk")]) == MAX_INVENTORY_SENT_NAMES
    truncated = [entry for entry in gate.new_names if entry[0] == TRUNCATED]
    assert len(truncated) == 1 and "not recorded" in truncated[0][2]
    assert gate.unrecorded == 4000


def test_suspect_mode_files_a_suspect_as_marketing_and_keeps_other_unknown_names() -> None:
    gate = classifier("suspect")
    gate.sent("wow.anonymousId", UUID)
    gate.sent("app_sess", SESSION_ID)
    assert gate.category("wow.anonymousId") == SUSPECT_CATEGORY
    assert gate.category("app_sess") == "necessary"
    assert gate.category("never_seen") == "necessary"
    assert gate.category("_ga") == "analytics"


def test_the_app_setting_a_name_with_httponly_clears_a_suspicion_from_requests() -> None:
    gate = classifier("suspect")
    changes: list[int] = []
    gate.on_change.append(lambda: changes.append(1))
    gate.sent("device_uid", UUID)
    assert gate.category("device_uid") == SUSPECT_CATEGORY
    gate.was_set("device_uid", f"device_uid={UUID}; HttpOnly; Max-Age=31536000".encode(), NOW)
    assert gate.category("device_uid") == "necessary"
    assert changes == [1]


# -- through the middleware --------------------------------------------------------------------


async def echo(request: Request) -> Response:
    return JSONResponse({"raw": request.headers.get("cookie")})


async def sets_device_uid(request: Request) -> Response:
    response = PlainTextResponse("ok")
    response.set_cookie("device_uid", UUID, httponly=True)
    return response


async def sets_a_tracker(request: Request) -> Response:
    response = PlainTextResponse("ok")
    response.set_cookie("prefs_blob", UUID, max_age=365 * 86400)
    return response


ROUTES = [Route("/echo", echo), Route("/device", sets_device_uid), Route("/blob", sets_a_tracker)]
SENT = {"cookie": f"wow.anonymousId={UUID}; app_sess={SESSION_ID}"}


@pytest.mark.anyio
async def test_suspect_mode_refuses_a_suspected_tracker_on_the_first_request(
    gate: GateFactory, client_for: Clients
) -> None:
    allowing = client_for(gate(ROUTES))
    assert (await allowing.get("/echo", headers=SENT)).json()["raw"] == SENT["cookie"]
    suspecting = client_for(gate(ROUTES, unknown_cookies="suspect"))
    assert (await suspecting.get("/echo", headers=SENT)).json()["raw"] == f"app_sess={SESSION_ID}"
    everything = await consent_cookie(suspecting, "all")
    raw = (await suspecting.get("/echo", headers={"cookie": f"{SENT['cookie']}; {everything}"})).json()["raw"]
    assert "wow.anonymousId" in raw


@pytest.mark.anyio
async def test_suspect_mode_drops_a_long_lived_readable_identifier_the_app_sets(
    gate: GateFactory, client_for: Clients
) -> None:
    suspecting = client_for(gate(ROUTES, unknown_cookies="suspect"))
    assert "prefs_blob" not in set_cookie_names(await suspecting.get("/blob"))
    assert "prefs_blob" in set_cookie_names(await client_for(gate(ROUTES)).get("/blob"))


@pytest.mark.anyio
async def test_a_cached_visit_is_redone_when_the_app_clears_a_suspicion(gate: GateFactory, client_for: Clients) -> None:
    client = client_for(gate(ROUTES, unknown_cookies="suspect"))
    sent = {"cookie": f"device_uid={UUID}"}
    assert (await client.get("/echo", headers=sent)).json()["raw"] is None
    await client.get("/device")  # the app sets it, HttpOnly: no script can read it
    assert (await client.get("/echo", headers=sent)).json()["raw"] == sent["cookie"]


def test_a_flood_of_made_up_names_cannot_switch_the_heuristic_off() -> None:
    """Past every budget, a tracker is still judged on sight and the app's own verdicts stay."""
    gate = classifier("suspect")
    gate.was_set("prefs_blob", f"prefs_blob={UUID}; Max-Age=31536000".encode(), NOW)
    for i in range(MAX_SIGHTED_NAMES + 1000):
        gate.sent(f"junk{i}", "1")
    assert len(gate.sighted) == MAX_SIGHTED_NAMES
    gate.sent("wow.anonymousId", UUID)
    assert gate.category("wow.anonymousId") == SUSPECT_CATEGORY
    assert gate.category("prefs_blob") == SUSPECT_CATEGORY


def test_the_classifiers_memory_of_sightings_is_bounded_whatever_the_names() -> None:
    gate = classifier("suspect")
    tracemalloc.start()
    for i in range(MAX_SIGHTED_NAMES * 2):
        gate.sent(f"{i:08d}" + "n" * 92, "v" * 4000)  # the longest names it remembers, with huge values
        gate.sent(f"{i:08d}" + "x" * 4000, "1")  # longer names: not remembered at all
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(gate.sighted) == MAX_SIGHTED_NAMES
    assert peak < 8_000_000
