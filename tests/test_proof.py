"""Proof of consent: each decision logs how it came and what was shown, the log exports and
parses back, it is kept as long as configured, and a changed banner asks visitors again."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, strategies as st
from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cookie_gate import CookieGateMiddleware
from cookie_gate.cli import main
from cookie_gate.config import ConfigError, load_config
from cookie_gate.consent import NECESSARY, ConsentCodec, Decision
from cookie_gate.proof import COLUMNS
from cookie_gate.shown import SHORT_LENGTH, shown_digests
from cookie_gate.stats.recorder import Statistics
from cookie_gate.store import DecisionRecord
from cookie_gate.store.sqlite import SQLiteStore
from cookie_gate.terminal import spreadsheet_cell
from tests.clocks import SteppedClock
from tests.conftest import HOST, SECRET, GateFactory, kept_cookie, set_cookies

Clients = Callable[..., httpx.AsyncClient]
CONSENT = "/_cookie_gate/consent"
ORIGIN = {"origin": f"http://{HOST}"}
FORM = {"content-type": "application/x-www-form-urlencoded", **ORIGIN}
NOW = 1_796_000_000  # 2026-11-30T00:53:20Z
DAY = 86400


async def decided(request: Request) -> Response:
    return PlainTextResponse("yes" if request.state.consent.decided else "no")


ROUTES = [Route("/", decided)]


def logged(middleware: CookieGateMiddleware) -> list[DecisionRecord]:
    return list(middleware.store.consent_log())


# -- what each decision records -------------------------------------------------------------


@pytest.mark.anyio
async def test_each_way_of_deciding_is_logged_with_its_method_locale_and_what_was_shown(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = gate(ROUTES)
    client = client_for(middleware)
    korean = {"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"}
    digests = shown_digests(middleware.config)

    banner = await client.post(CONSENT, json={"accept": ["analytics"], "via": "banner"}, headers=korean)
    cookie = kept_cookie(banner)
    api = await client.post(CONSENT, json={"accept": "all"}, headers={"cookie": cookie})
    form = await client.post(
        CONSENT, content="action=reject_all&next=%2F", headers={**FORM, **korean, "cookie": kept_cookie(api)}
    )
    assert (banner.status_code, api.status_code, form.status_code) == (200, 200, 303)
    deleted = await client.delete(CONSENT, headers={"cookie": kept_cookie(form)})
    assert deleted.status_code == 200
    other = kept_cookie(await client.post(CONSENT, json={"accept": []}))
    withdrawn_by_form = await client.post(
        CONSENT, content="action=withdraw&next=%2F", headers={**FORM, "cookie": other}
    )
    assert withdrawn_by_form.status_code == 303

    rows = logged(middleware)
    assert [(r.action, r.method, r.locale) for r in rows] == [
        ("custom", "banner", "ko"),
        ("accept_all", "api", "en"),
        ("reject_all", "form", "ko"),
        ("withdraw", "withdrawal", "en"),
        ("reject_all", "api", "en"),
        ("withdraw", "withdrawal", "en"),
    ]
    assert [r.shown for r in rows] == [digests.digest(r.locale) for r in rows]
    assert digests.digest("ko") != digests.digest("en")
    # The cookie carries the short digest of the same banner.
    assert banner.headers["set-cookie"].count(digests.digest("ko")[:SHORT_LENGTH]) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("via", ["script", 1, "", ["banner"]])
async def test_a_via_other_than_the_banner_is_refused_and_changes_nothing(
    gate: GateFactory, client_for: Clients, via: Any
) -> None:
    middleware = gate(ROUTES)
    response = await client_for(middleware).post(CONSENT, json={"accept": [], "via": via}, headers=ORIGIN)
    assert response.status_code == 400 and '"via"' in response.json()["error"]
    assert set_cookies(response) == [] and logged(middleware) == []


def test_the_digest_covers_texts_categories_and_cookie_lists_and_nothing_else() -> None:
    base = load_config(secret_key=SECRET)
    digests = shown_digests(base)
    assert shown_digests(load_config(secret_key=SECRET)) == digests  # stable across builds
    changed_text = shown_digests(load_config(secret_key=SECRET, texts={"ko": {"title": "쿠키 안내"}}))
    assert changed_text.digest("ko") != digests.digest("ko") and changed_text.digest("en") == digests.digest("en")
    cookies = shown_digests(load_config(secret_key=SECRET, categories={"analytics": {"cookies": ["_ga", "_ga_*"]}}))
    assert cookies.digest("en") != digests.digest("en") and cookies.digest("ko") != digests.digest("ko")
    lifetime = shown_digests(load_config(secret_key=SECRET, consent_lifetime_days=90))  # "{days}" is shown
    assert lifetime.digest("en") != digests.digest("en")
    unseen = shown_digests(load_config(secret_key=SECRET, statistics=False, mode="opt-out"))
    assert unseen == digests


def test_cookie_gate_shown_prints_the_document_each_logged_digest_is_the_hash_of(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    Path("site.toml").write_text('[texts.ko]\ntitle = "쿠키 안내"\n')
    assert main(["--config", "site.toml", "shown", "--locale", "ko"]) == 0
    digest_line, document, nothing = capsys.readouterr().out.split("\n")
    assert nothing == "" and document.isascii()
    assert digest_line == "ko " + hashlib.sha256(document.encode()).hexdigest()
    config = load_config("site.toml", secret_key=SECRET)
    assert digest_line.split()[1] == shown_digests(config).digest("ko")
    shown = json.loads(document)
    assert shown["texts"]["title"] == "쿠키 안내" and shown["locale"] == "ko"
    assert [c["name"] for c in shown["categories"]] == list(config.category_names)
    assert main(["--config", "site.toml", "check-config"]) == 0
    assert f"ko {digest_line.split()[1][:SHORT_LENGTH]}" in capsys.readouterr().out
    assert main(["shown"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[::2]] == ["en", "ko"]
    assert main(["shown", "--locale", "xx\x1b[2J"]) == 2
    assert "\\x1b" in capsys.readouterr().err


# -- the export -----------------------------------------------------------------------------


def records() -> list[DecisionRecord]:
    """Rows as the log holds them, with an id a spreadsheet would take for a formula."""
    return [
        DecisionRecord("-a1", NOW, "accept_all", ("analytics", "necessary"), "1", False, "banner", "ko", "d" * 64),
        DecisionRecord("=b2", NOW, "reject_all", ("necessary",), "1", True, "form", "en", "e" * 64),
        DecisionRecord("c3", NOW + DAY, "withdraw", ("necessary",), "2", False, "withdrawal", "en", "f" * 64),
        DecisionRecord("-a1", NOW + 2 * DAY, "custom", ("necessary", "preferences"), "2", False, "api", "en", "0"),
        DecisionRecord("old", NOW - DAY, "accept_all", ("necessary",), "1", False),  # logged before version 2
    ]


@pytest.fixture
def filled_store(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "log.sqlite3")
    for record in records():
        store.log_decision(record)
    store.close()
    return f"sqlite:///{tmp_path / 'log.sqlite3'}"


def export(capsys: pytest.CaptureFixture[str], store: str, *args: str) -> str:
    capsys.readouterr()
    assert main(["--store", store, "consents", *args]) == 0
    return capsys.readouterr().out


def from_csv(text: str) -> list[DecisionRecord]:
    """What a reader of the CSV gets back: a leading `'` dropped, as the export documents."""
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    out = []
    for row in rows[1:]:
        cells = dict(zip(COLUMNS, (cell[1:] if cell.startswith("'") else cell for cell in row), strict=True))
        out.append(from_export({**cells, "categories": cells["categories"].split(), "gpc": cells["gpc"] == "true"}))
    return out


def from_export(row: dict[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        row["consent_id"],
        int(datetime.fromisoformat(row["decided_at"]).timestamp()),
        row["action"],
        tuple(row["categories"]),
        row["policy_version"],
        row["gpc"],
        row["method"],
        row["locale"],
        row["shown"],
    )


def oldest_first(rows: list[DecisionRecord]) -> list[DecisionRecord]:
    return sorted(rows, key=lambda r: r.decided_at)  # stable: rows of one second stay in logged order


def test_the_csv_and_json_exports_parse_back_to_the_logged_rows(
    filled_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    text = export(capsys, filled_store)
    assert "\n=b2" not in text and "\n-a1" not in text  # no cell a spreadsheet would run
    assert from_csv(text) == oldest_first(records())
    data = json.loads(export(capsys, filled_store, "--format", "json"))
    assert [from_export(row) for row in data] == oldest_first(records())
    assert data[1]["decided_at"] == "2026-11-30T00:53:20Z" and data[1]["categories"] == ["analytics", "necessary"]


def test_since_and_id_filter_the_export(
    filled_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    everything = oldest_first(records())
    assert from_csv(export(capsys, filled_store, "--id=-a1")) == [r for r in everything if r.consent_id == "-a1"]
    # A day counts from midnight in the configured time zone: 2026-12-01 in Seoul begins at 11-30T15:00Z.
    since_day = [r for r in everything if r.decided_at >= NOW + DAY]
    assert from_csv(export(capsys, filled_store, "--since", "2026-12-01")) == since_day
    seoul = [r for r in everything if r.decided_at >= int(datetime(2026, 11, 30, 15, tzinfo=UTC).timestamp())]
    monkeypatch.chdir(Path(filled_store.removeprefix("sqlite:///")).parent)
    Path("seoul.toml").write_text('timezone = "Asia/Seoul"\n')
    capsys.readouterr()
    assert main(["--config", "seoul.toml", "--store", filled_store, "consents", "--since", "2026-12-01"]) == 0
    assert from_csv(capsys.readouterr().out) == seoul
    instant = export(capsys, filled_store, "--since", "2026-12-01T09:53:20+09:00", "--id", "c3", "--format", "json")
    assert [from_export(r) for r in json.loads(instant)] == [r for r in everything if r.consent_id == "c3"]
    later = export(capsys, filled_store, "--since", "2026-12-01T09:53:21+09:00", "--id", "c3", "--format", "json")
    assert json.loads(later) == []
    assert json.loads(export(capsys, filled_store, "--id", "nobody", "--format", "json")) == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "yesterday"], "YYYY-MM-DD"),
        (["--since", "2026-12-01T10:00:00"], "UTC offset"),
        (["--id", "x\x1b[2J"], "consent id"),
        (["--id", "a" * 65], "consent id"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_bad_filters_are_refused_with_a_reason(
    filled_store: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    problem: str,
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", SECRET)
    with pytest.raises(SystemExit) as exit_:
        main(["--store", filled_store, "consents", *args])
    assert exit_.value.code == 2 and problem in capsys.readouterr().err


def test_the_export_reads_the_log_a_page_at_a_time_in_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "log.sqlite3")
    rows = [DecisionRecord(f"id{n}", NOW + n // 3, "accept_all", (NECESSARY,), "1", False) for n in range(11)]
    for record in rows:
        store.log_decision(record)
    assert list(store.consent_log(page=2)) == rows  # pages split seconds holding several rows
    assert list(store.consent_log(since=NOW + 2, page=2)) == rows[6:]
    store.close()


def test_a_late_page_of_the_export_reads_about_as_much_as_the_first(tmp_path: Path) -> None:
    """Each page starts where the previous one ended: counted in SQLite VM steps, the last page
    of a long log costs about what the first does (it used to scan again from `since`)."""
    steps = [0]

    def counted() -> int:
        steps[0] += 1
        return 0

    path = tmp_path / "log.sqlite3"
    store = SQLiteStore(path, on_connect=lambda connection: connection.set_progress_handler(counted, 100))
    store.probe()  # the schema in place
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO cookie_gate_consent_log (consent_id, decided_at, action, categories, policy_version, gpc)"
            " VALUES (?, ?, 'accept_all', 'necessary', '1', 0)",
            [(f"id{n}", NOW + n // 2) for n in range(6000)],
        )
    steps[0] = 0
    per_page: list[int] = []
    pages = store.consent_log(page=200)
    for n, _ in enumerate(pages, start=1):
        if n % 200 == 0:
            per_page.append(steps[0])
            steps[0] = 0
    assert len(per_page) == 30
    assert max(per_page[1:]) < 3 * max(per_page[0], 1), per_page
    store.close()


@given(st.text())
def test_a_csv_cell_comes_back_whole_and_never_starts_a_formula(text: str) -> None:
    cell = spreadsheet_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
    assert cell.isprintable()
    if text.isprintable() and "\\" not in text:
        assert (cell[1:] if cell.startswith("'") else cell) == text


# -- retention --------------------------------------------------------------------------------


def test_the_log_is_kept_for_the_configured_days(tmp_path: Path) -> None:
    clock = SteppedClock(NOW)
    config = load_config(secret_key=SECRET, consent_log_retention_days=400, consent_lifetime_days=180)
    store = SQLiteStore(tmp_path / "log.sqlite3")
    for age in (401, 400, 399, 1):
        store.log_decision(DecisionRecord(f"age{age}", NOW - age * DAY, "accept_all", (NECESSARY,), "1", False))
    clock.advance(60)  # a minute later: the decision of exactly 400 days is now older than that
    deleted = Statistics(config, store, clock=clock).purge(clock())
    assert deleted["cookie_gate_consent_log"] == 2
    assert [r.consent_id for r in store.consent_log()] == ["age399", "age1"]
    store.close()


def test_the_default_retention_is_three_years_and_outlives_withdrawn_cookies() -> None:
    assert load_config(secret_key=SECRET).consent_log_retention_days == 1095
    with pytest.raises(ConfigError) as error:
        load_config(secret_key=SECRET, consent_lifetime_days=180, consent_log_retention_days=90)
    assert error.value.key == "consent_log_retention_days" and "consent_lifetime_days" in error.value.problem
    for bad in (0, -1, 1.5, True, "1095"):
        with pytest.raises(ConfigError) as error:
            load_config(secret_key=SECRET, consent_log_retention_days=bad)
        assert error.value.key == "consent_log_retention_days"
    with pytest.raises(ConfigError) as error:
        load_config(secret_key=SECRET, reprompt_on_change="yes")
    assert error.value.key == "reprompt_on_change"


# -- asking again when the banner changed -----------------------------------------------------


CHANGES: list[dict[str, Any]] = [
    {"texts": {"en": {"text": "We use cookies, and now say so differently."}}},
    {"categories": {"marketing": {"cookies": ["_fbp"]}}},
]


@pytest.mark.anyio
@pytest.mark.parametrize("change", CHANGES)
async def test_a_changed_banner_asks_again_unless_switched_off(
    gate: GateFactory, client_for: Clients, change: dict[str, Any]
) -> None:
    cookie = kept_cookie(await client_for(gate(ROUTES)).post(CONSENT, json={"accept": "all"}))
    same = client_for(gate(ROUTES))
    assert (await same.get("/", headers={"cookie": cookie})).text == "yes"
    changed = client_for(gate(ROUTES, **change))
    assert (await changed.get("/", headers={"cookie": cookie})).text == "no"
    switched_off = client_for(gate(ROUTES, reprompt_on_change=False, **change))
    assert (await switched_off.get("/", headers={"cookie": cookie})).text == "yes"


@pytest.mark.anyio
async def test_a_change_in_one_language_asks_only_those_who_decided_in_it(
    gate: GateFactory, client_for: Clients
) -> None:
    first = client_for(gate(ROUTES))
    korean = kept_cookie(await first.post(CONSENT, json={"accept": []}, headers={"accept-language": "ko"}))
    english = kept_cookie(await first.post(CONSENT, json={"accept": []}, headers={"accept-language": "en"}))
    changed = client_for(gate(ROUTES, texts={"ko": {"title": "쿠키 안내"}}))
    assert (await changed.get("/", headers={"cookie": korean})).text == "no"
    assert (await changed.get("/", headers={"cookie": english})).text == "yes"


def version_one_cookie(secret: str, decision: Decision) -> str:
    """A cookie as the release before this one wrote it (format 1, no digest), signed as it signed."""
    payload = f"1:{'+'.join(sorted(decision.accepted - {NECESSARY}))}:{decision.policy_version}:"
    payload += f"{int(decision.decided_at):x}:{decision.consent_id}"  # any base-36-valid digits
    signer = Signer(secret, salt="cookie_gate.consent", key_derivation="hmac", digest_method=hashlib.sha256)
    return signer.sign(payload.encode("ascii")).decode("ascii")


@pytest.mark.anyio
async def test_a_version_one_cookie_holds_until_the_policy_version_changes(
    gate: GateFactory, client_for: Clients
) -> None:
    middleware = gate(ROUTES, clock=SteppedClock(NOW))
    value = version_one_cookie(SECRET, Decision(frozenset({NECESSARY}), "1", NOW, "v1id"))
    assert (await client_for(middleware).get("/", headers={"cookie": f"cookie_gate={value}"})).text == "yes"
    bumped = client_for(gate(ROUTES, policy_version="2"))
    assert (await bumped.get("/", headers={"cookie": f"cookie_gate={value}"})).text == "no"


def test_the_check_is_part_of_the_cached_verification() -> None:
    config = load_config(secret_key=SECRET)
    digests = shown_digests(config)
    codec = ConsentCodec(
        config.secret_keys, policy_version="1", categories=config.category_names, shown=digests.short_digests
    )
    stale = ConsentCodec(config.secret_keys, policy_version="1", categories=config.category_names).encode(
        Decision(frozenset({NECESSARY}), "1", NOW, "x", "0" * SHORT_LENGTH)
    )
    assert [codec.decode(stale) for _ in range(100)] == [None] * 100
    assert codec.cache_stats.misses == 1  # verified once; the other 99 reads are the cache's
    fresh = codec.encode(Decision(frozenset({NECESSARY}), "1", NOW, "x", next(iter(digests.short_digests))))
    assert [codec.decode(fresh) for _ in range(100)] == [codec.decode(fresh)] * 100
    assert codec.cache_stats.misses == 2 and codec.decode(fresh) is not None
