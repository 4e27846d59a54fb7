"""The cookie declaration and PIPA Art. 30(1)7 disclosure: every format read back, and the public endpoint.

Each format is parsed by a reader that knows nothing of ours (json, the csv module, a
CommonMark parser with GFM tables, html.parser) and must say what the configuration and
the inventory say, whatever names visitors sent.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from markdown_it import MarkdownIt

from cookie_gate.classify import TRUNCATED
from cookie_gate.cli import main
from cookie_gate.config import Config, load_config
from cookie_gate.declaration import COLUMNS, FORMATS, Declaration, build_declaration, render
from cookie_gate.declaration_endpoint import REFRESH_SECONDS, RETRY_SECONDS, DeclarationEndpoint, prefers_json
from cookie_gate.store import StoreError
from cookie_gate.store.sql import SQLStore, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import SteppedClock
from tests.conftest import GateFactory

SETTINGS = {
    "secret_key": "test-secret-key-0123456789",
    "consent_lifetime_days": 90,
    "categories": {
        "analytics": {"cookies": ["_ga", "_ga_*"], "retention": {"en": "2 years", "ko": "2년"}},
        "marketing": {"cookies": ["_fbp"]},
    },
}
INVENTORY = [
    ("_ga", "analytics", "site", "2026-11-01", "2026-12-01"),
    ("_ga_AB12", "analytics", "site", "2026-11-02", "2026-11-30"),
    ("cart", "necessary", "catalogue", "2026-11-03", "2026-12-01"),
    ("x_tracker", "marketing", "suspected tracker: an analytics id", "2026-11-04", "2026-11-04"),
]
HOSTILE = [
    '=HYPERLINK("http://evil.example","pay")',
    "+1|2",
    "-x",
    "@SUM(A1)",
    "<script>alert(1)</script>",
    "a|b\\|c",
    "line\nbreak\r\tx",
    "\x1b[2J\x1b[31mfake",
    "rtl\u202eexe.txt",
    "**bold** [link](javascript:alert(1)) `code` www.evil.example",
    "&amp;&lt;",
]


def config(**overrides: Any) -> Config:
    return load_config({**SETTINGS, **overrides})


def rows(names: list[str]) -> list[tuple[str, str, str, str, str]]:
    return [(name, "necessary", "unknown", "2026-11-01", "2026-12-01") for name in names]


# -- readers -------------------------------------------------------------------------------


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table's rows of cell texts, as a CommonMark + GFM-tables parser reads them."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[list[list[str]]] = []
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type == "inline" and tables and token.map is not None and _inside_table(tokens, token):
            tables[-1][-1].append("".join(child.content for child in token.children or [] if child.type == "text"))
    return tables


def _inside_table(tokens: list[Any], token: Any) -> bool:
    depth = 0
    for other in tokens:
        if other is token:
            return depth > 0
        depth += {"table_open": 1, "table_close": -1}.get(other.type, 0)
    return False


def markdown_markup(text: str) -> tuple[set[str], list[str]]:
    """The kinds of inline markup a CommonMark parser finds (links, emphasis, code, raw HTML), and the links."""
    kinds, links = set(), []
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        for child in token.children or []:
            kinds.add(child.type)
            if child.type == "link_open":
                links.append(str(child.attrs.get("href")))
    return kinds, links


class Tables(HTMLParser):
    """The HTML fragment's table cells and every tag it opens."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(text: str) -> Tables:
    parser = Tables()
    parser.feed(text)
    parser.close()
    return parser


# -- what the declaration says ---------------------------------------------------------------


def test_the_json_declaration_holds_every_category_and_every_cookie_seen() -> None:
    settings = config()
    data = json.loads(render(build_declaration(settings, INVENTORY, "en"), "json"))
    by_name = {c["name"]: c for c in data["cookies"]}
    # The gateway's own two, every name seen, and the declared pattern nobody has sent yet.
    assert set(by_name) == {"cookie_gate", "cookie_gate_visits", "_ga", "_ga_AB12", "cart", "x_tracker", "_fbp"}
    assert by_name["cookie_gate"]["lifetime"].startswith("90 days, or until the browser closes")
    assert by_name["cookie_gate"]["attributes"] == "HttpOnly; SameSite=Lax; Path=/; Secure on https"
    assert by_name["_fbp"]["party"] == "not seen yet" and by_name["_fbp"]["first_seen"] == ""
    assert "_ga_*" not in by_name, "a declared prefix that matched a cookie seen is listed by that cookie"
    assert by_name["_ga_AB12"] | {"name": "_ga"} == by_name["_ga"] | {
        "first_seen": "2026-11-02",
        "last_seen": "2026-11-30",
    }
    assert by_name["_ga"]["lifetime"] == "2 years" and by_name["_ga"]["party"] == "first party"
    assert by_name["cart"]["lifetime"] == "not declared", "no retention configured: nothing invented"
    assert by_name["cart"]["attributes"] == "", "the inventory records no attributes: none invented"
    assert by_name["x_tracker"]["filed_by"].startswith("suspected tracker")
    purposes = {p["category"]: p for p in data["disclosure"]["purposes"]}
    assert list(purposes) == list(settings.category_names)
    for category in settings.categories:
        shown = purposes[category.name]
        assert shown["label"] == category.label["en"]
        assert shown["purpose"] == category.description["en"]
        assert shown["cookies"] == list(category.cookies)
        assert shown["refusal"] == category.refusal["en"]
    assert purposes["analytics"]["retention"] == "2 years"
    assert any("/_cookie_gate/me" in item for item in data["disclosure"]["refusal"])
    assert any("90 days" in item for item in data["disclosure"]["refusal"])


def test_the_declaration_speaks_korean_from_the_korean_configuration() -> None:
    data = json.loads(render(build_declaration(config(), INVENTORY, "ko"), "json"))
    assert data["disclosure"]["title"] == "개인정보 자동 수집 장치의 설치·운영 및 거부에 관한 사항"
    assert data["columns"]["lifetime"] == "보관 기간"
    assert {p["label"] for p in data["disclosure"]["purposes"]} == {"필수", "기능", "분석", "마케팅"}
    ga = next(c for c in data["cookies"] if c["name"] == "_ga")
    assert ga["lifetime"] == "2년" and ga["category_label"] == "분석"


def test_the_gateways_own_attributes_follow_the_configuration() -> None:
    settings = config(cookie_name="__Secure-choice", cookie_domain="example.com")
    (own,) = [c for c in build_declaration(settings, [], "ko").cookies if c.name == "__Secure-choice"]
    assert own.attributes == "HttpOnly; SameSite=Lax; Path=/; Domain=example.com; Secure"
    assert own.lifetime.startswith("90일")


def test_without_statistics_there_is_no_visit_counter_to_declare() -> None:
    names = {c.name for c in build_declaration(config(statistics=False), [], "en").cookies}
    assert "cookie_gate_visits" not in names and "cookie_gate" in names


def test_a_truncated_inventory_is_a_note_not_a_cookie() -> None:
    inventory = [*INVENTORY, (TRUNCATED, "-", "the inventory is full: further names were not recorded", "", "")]
    declaration = build_declaration(config(), inventory, "en")
    assert TRUNCATED not in {c.name for c in declaration.cookies}
    note = "The list of cookies seen was cut short: the inventory is full: further names were not recorded."
    assert declaration.notes == (note,)
    assert note in render(declaration, "html") and json.loads(render(declaration, "json"))["notes"] == [note]
    assert TRUNCATED not in render(declaration, "md")


def _unguarded(cell: str, wanted: str) -> str:
    """A CSV cell without the apostrophe that keeps a spreadsheet from reading it as a formula."""
    if wanted.startswith(("=", "+", "-", "@", "\t", "\r", "\n", "'")):  # terminal.FORMULA_STARTS
        assert cell == "'" + wanted
        return wanted
    return cell


def formats_agree(declaration: Declaration) -> None:
    """Every format lists the same cookies, in the same order, with the same cells."""
    expected = [
        [c.category_label if k == "category" else str(getattr(c, k)) for k in COLUMNS] for c in declaration.cookies
    ]
    data = json.loads(render(declaration, "json"))
    assert [c["name"] for c in data["cookies"]] == [row[0] for row in expected]
    table = csv_rows(render(declaration, "csv"))
    assert table[0] == [declaration.headings[c] for c in COLUMNS]
    assert [[_unguarded(cell, wanted) for cell, wanted in zip(row, want, strict=True)] for row, want in
            zip(table[1:], expected, strict=True)] == expected  # fmt: skip
    md = markdown_tables(render(declaration, "md"))
    assert len(md) == 1
    assert md[0][0] == [declaration.headings[c] for c in COLUMNS]
    assert md[0][1:] == [[" ".join(cell.split()) for cell in row] for row in expected]
    html = html_tables(render(declaration, "html"))
    assert html.rows[0] == [declaration.headings[c] for c in COLUMNS]
    assert html.rows[1:] == expected


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_every_format_reads_back_to_the_same_table(locale: str) -> None:
    formats_agree(build_declaration(config(), INVENTORY, locale))


def test_hostile_names_stay_text_in_every_format() -> None:
    declaration = build_declaration(config(), rows(HOSTILE), "en")
    formats_agree(declaration)
    for form in FORMATS:
        out = render(declaration, form)
        assert "\x1b" not in out and "\u202e" not in out and "\r" not in out, form
    for row in csv_rows(render(declaration, "csv"))[1:]:
        assert not row[0].startswith(("=", "+", "-", "@")), row[0]
    html = html_tables(render(declaration, "html"))
    assert html.tags <= {"section", "h2", "h3", "h4", "div", "table", "thead", "tbody", "tr", "th", "td", "code", "p",
                         "ul", "li", "strong", "a"}  # fmt: skip
    assert html.links == ["/_cookie_gate/me"]
    kinds, links = markdown_markup(render(declaration, "md"))
    assert "code_inline" not in kinds and "html_inline" not in kinds and "em_open" not in kinds
    assert links == ["/_cookie_gate/me"], "the only link is the declaration's own, to the visitor page"
    bold = [c for c in markdown_tables(render(declaration, "md"))[0][1:] if c[0].startswith("**")]
    assert bold and bold[0][0] == "**bold** [link](javascript:alert(1)) `code` www.evil.example"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=1, max_size=100), min_size=1, max_size=8, unique=True))
def test_any_names_read_back_row_for_row(names: list[str]) -> None:
    names = [n for n in names if n not in ("cookie_gate", "cookie_gate_visits", TRUNCATED)]
    declaration = build_declaration(config(), rows(names), "en")
    formats_agree(declaration)
    for form in FORMATS:
        assert all(line.isprintable() for line in render(declaration, form).split("\n")), form


# -- the command line ------------------------------------------------------------------------


def store_with(tmp_path: Path, inventory: list[tuple[str, str, str, str, str]]) -> str:
    path = tmp_path / "declaration.sqlite3"
    store = SQLiteStore(path)
    store.add_stats(
        StatsBatch(cookies={name: (category, source, last) for name, category, source, _, last in inventory})
    )
    store.close()
    return f"sqlite:///{path}"


def settings_file(tmp_path: Path) -> str:
    path = tmp_path / "cookie-gate.toml"
    path.write_text(
        'consent_lifetime_days = 90\n[categories.analytics]\ncookies = ["_ga", "_ga_*"]\n'
        'retention = { en = "2 years", ko = "2년" }\n[categories.marketing]\ncookies = ["_fbp"]\n'
    )
    return str(path)


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("locale", ["en", "ko"])
def test_the_command_prints_the_declaration_in_each_format(
    form: str, locale: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store_with(tmp_path, [*INVENTORY, *rows(HOSTILE)])
    assert (
        main(["--config", settings_file(tmp_path), "--store", url, "cookies", "--format", form, "--locale", locale])
        == 0
    )
    out = capsys.readouterr().out
    assert all(line.isprintable() for line in out.split("\n")), "no control character reaches the terminal"
    store = SQLiteStore(tmp_path / "declaration.sqlite3")
    expected = build_declaration(config(), store.inventory(), locale)
    store.close()
    assert out == render(expected, form)
    names = {c.name for c in expected.cookies}
    assert {"_ga", "_ga_AB12", "cart", "_fbp", "cookie_gate"} <= names


def test_the_declaration_options_are_refused_with_a_name_look_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cookies", "_ga", "--format", "json"]) == 2
    assert "--format and --locale apply to the declaration" in capsys.readouterr().err


# -- the endpoint ----------------------------------------------------------------------------

DECLARATION = "/_cookie_gate/declaration"


def test_prefers_json_only_when_the_client_ranks_it_above_html() -> None:
    assert prefers_json(b"application/json")
    assert prefers_json(b"application/json, */*;q=0.5")
    assert prefers_json(b"text/html;q=0.5, application/json")
    assert not prefers_json(None)
    assert not prefers_json(b"*/*")
    assert not prefers_json(b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    assert not prefers_json(b"application/json;q=0, text/html")
    assert not prefers_json(b"application/json;q=nonsense")
    assert not prefers_json(b",;;=," * 10_000)


@pytest.mark.anyio
async def test_the_endpoint_serves_html_or_json_publicly_cacheable(
    gate: GateFactory, client_for: Any, tmp_path: Path
) -> None:
    clock = SteppedClock(1_764_600_000.0)
    middleware = gate([], config=settings_file(tmp_path), clock=clock)
    middleware.store.add_stats(StatsBatch(cookies={"_ga_AB12": ("analytics", "site", "2026-11-30")}))
    client = client_for(middleware)
    page = await client.get(DECLARATION, headers={"accept-language": "ko"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == f"public, max-age={REFRESH_SECONDS}"
    assert page.headers["vary"] == "Accept, Accept-Language"
    assert page.headers["content-language"] == "ko"
    assert "set-cookie" not in page.headers
    cells = html_tables(page.text)
    assert "_ga_*" in {row[0] for row in cells.rows}
    assert "개인정보 자동 수집 장치의 설치·운영 및 거부에 관한 사항" in page.text
    assert page.text.startswith('<section class="cookie-gate-declaration" lang="ko">')
    data = (await client.get(DECLARATION, headers={"accept": "application/json", "accept-language": "ko"})).json()
    assert data["locale"] == "ko" and "_ga_*" in {c["name"] for c in data["cookies"]}
    english = await client.get(DECLARATION + "?lang=en", headers={"accept-language": "ko"})
    assert english.headers["content-language"] == "en" and "Cookies on this site" in english.text
    assert (await client.get(DECLARATION + "?lang=<script>")).headers["content-language"] == "en"
    # Conditional requests: the same bytes answer 304, and HEAD has the headers without the body.
    etag = page.headers["etag"]
    again = await client.get(DECLARATION, headers={"accept-language": "ko", "if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == page.headers["cache-control"]
    head = await client.head(DECLARATION, headers={"accept-language": "ko"})
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    refused = await client.post(DECLARATION)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


@pytest.mark.anyio
async def test_a_new_cookie_shows_once_the_cached_declaration_is_due(
    gate: GateFactory, client_for: Any, tmp_path: Path
) -> None:
    clock = SteppedClock(1_764_600_000.0)
    middleware = gate([], clock=clock)
    client = client_for(middleware)
    first = await client.get(DECLARATION, headers={"accept": "application/json"})
    middleware.store.add_stats(StatsBatch(cookies={"PHPSESSID": ("necessary", "catalogue", "2026-12-01")}))
    clock.now += REFRESH_SECONDS - 1
    cached = await client.get(DECLARATION, headers={"accept": "application/json"})
    assert cached.headers["etag"] == first.headers["etag"], "one inventory read per interval, however many fetches"
    clock.now += 1
    fresh = await client.get(DECLARATION, headers={"accept": "application/json"})
    assert "PHPSESSID" in {c["name"] for c in fresh.json()["cookies"]}
    assert fresh.headers["etag"] != first.headers["etag"]


@pytest.mark.anyio
async def test_the_public_declaration_publishes_no_name_a_stranger_could_have_made_up(
    gate: GateFactory, client_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    middleware = gate([], clock=SteppedClock(1_764_600_000.0))
    middleware.store.add_stats(
        StatsBatch(
            cookies={
                "refunds_at_evil.example": ("necessary", "unknown", "2026-12-01"),
                "x_visitor_id": ("marketing", "suspected tracker: an id-shaped value", "2026-12-01"),
                "_ga": ("analytics", "catalogue", "2026-12-01"),
            }
        )
    )
    data = (await client_for(middleware).get(DECLARATION, headers={"accept": "application/json"})).json()
    names = {c["name"] for c in data["cookies"]}
    assert "_ga" in names
    assert not names & {"refunds_at_evil.example", "x_visitor_id"}
    # The admin still sees every name.
    assert main(["--store", middleware.config.store, "cookies", "--format", "json"]) == 0
    assert "refunds_at_evil.example" in capsys.readouterr().out


@pytest.mark.anyio
async def test_the_public_declaration_folds_names_a_prefix_rule_files_into_the_pattern(
    gate: GateFactory, client_for: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = "Visit-evil.example-for-FREE-money"
    middleware = gate([], config=settings_file(tmp_path), clock=SteppedClock(1_764_600_000.0))
    client = client_for(middleware)
    cookies = f"_ga_{marker}=1; _ga_Other-{marker}=1; AMCV_{marker}=1; _gid=1; csrftoken=1"
    await client.get("/", headers={"cookie": cookies})
    assert middleware.statistics is not None and middleware.statistics.writer.flush()
    assert f"_ga_{marker}" in {row[0] for row in middleware.store.inventory()}
    page = await client.get(DECLARATION, headers={"accept": "application/json"})
    assert marker not in page.text
    names = [c["name"] for c in page.json()["cookies"]]
    assert names.count("_ga_*") == 1, "the site's pattern, once, for every name it files"
    assert "AMCV_*" in names, "the catalogue's prefix rule, named by its pattern"
    assert {"_gid", "csrftoken"} <= set(names), "exact names stay as they are"
    assert marker not in (await client.get(DECLARATION)).text
    # The admin still sees every name.
    assert main(["--store", middleware.config.store, "cookies", "--format", "json"]) == 0
    assert f"_ga_{marker}" in capsys.readouterr().out


@pytest.mark.anyio
async def test_many_requests_at_once_read_the_inventory_once(gate: GateFactory, client_for: Any) -> None:
    middleware = gate([], clock=SteppedClock(1_764_600_000.0))
    reads = []
    inventory = middleware.store.inventory

    def counted() -> list[tuple[str, str, str, str, str]]:
        reads.append(1)
        return inventory()

    middleware.store.inventory = counted  # type: ignore[method-assign]
    client = client_for(middleware)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(client.get, DECLARATION)
    assert len(reads) == 1


class FlakyInventory:
    """A store double whose inventory reads are counted and fail while `down`."""

    def __init__(self) -> None:
        self.reads = 0
        self.down = False

    def inventory(self) -> list[tuple[str, str, str, str, str]]:
        self.reads += 1
        if self.down:
            raise StoreError("down")
        return [("_ga", "analytics", "site", "2026-11-01", "2026-12-01")]


class HeldInventory(FlakyInventory):
    """A store double whose inventory read, once `hold` is set, waits until `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.entered, self.release = threading.Event(), threading.Event()

    def inventory(self) -> list[tuple[str, str, str, str, str]]:
        if self.hold:
            self.entered.set()
            self.release.wait(10)
        return super().inventory()


async def fetch(endpoint: DeclarationEndpoint, query: bytes = b"") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await endpoint({"type": "http", "method": "GET", "headers": [], "query_string": query}, send)
    return sent


@pytest.mark.anyio
async def test_during_an_outage_requests_answer_at_once_and_the_last_good_body_is_served() -> None:
    clock = SteppedClock(1_764_600_000.0)
    store = FlakyInventory()
    endpoint = DeclarationEndpoint(config(), cast(SQLStore, store), clock)
    store.down = True
    answers: list[int] = []

    async def one() -> None:
        answers.append((await fetch(endpoint))[0]["status"])

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(one)
    assert answers == [503] * 6 and store.reads == 1, "one failed read answers every request of the outage"
    clock.now += RETRY_SECONDS
    store.down = False
    good = await fetch(endpoint)
    assert good[0]["status"] == 200 and b"_ga" in good[1]["body"] and store.reads == 2
    # Due again while the store is down: the last good body, and the next requests do not retry.
    clock.now += REFRESH_SECONDS
    store.down = True
    for _ in range(3):
        stale = await fetch(endpoint)
        assert stale[0]["status"] == 200 and stale[1]["body"] == good[1]["body"]
    assert store.reads == 3


@pytest.mark.anyio
async def test_a_fresh_declaration_is_served_while_another_is_being_built() -> None:
    store = HeldInventory()
    endpoint = DeclarationEndpoint(config(), cast(SQLStore, store), SteppedClock(1_764_600_000.0))
    assert (await fetch(endpoint))[0]["status"] == 200
    store.hold = True
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(fetch, endpoint, b"lang=ko")  # builds the Korean one, stuck reading the store
            assert await anyio.to_thread.run_sync(store.entered.wait, 5.0)
            with anyio.fail_after(5):
                fresh = await fetch(endpoint)
            assert fresh[0]["status"] == 200, "a body still valid never waits for a build"
            store.release.set()
    finally:
        store.release.set()
    assert store.reads == 2


def test_names_blocked_as_undeclared_are_declared_as_such() -> None:
    declaration = build_declaration(config(unknown_cookies="block"), [("odd", "undeclared", "unknown", "d", "d")], "en")
    (odd,) = [c for c in declaration.cookies if c.name == "odd"]
    assert odd.category_label == "Not declared (blocked)" and odd.lifetime == "not declared"
