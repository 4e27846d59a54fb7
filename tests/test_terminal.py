"""What visitors control reaches the admin's terminal (and dashboard) with control characters escaped.

Issue 7: a visitor's cookie named `x\\x1b[2J\\x1b[31mfake` landed in the inventory and
`cookie-gate cookies` printed the raw escape sequences, clearing and forging the
admin's screen; paths in `cookie-gate stats` too.
"""

from __future__ import annotations

import ast
import json
import re
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from cookie_gate.cli import main
from cookie_gate.dashboard.page import DashboardView, render
from cookie_gate.dashboard.query import DashboardQuery
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.report import build_report, format_report
from cookie_gate.store.sql import StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from cookie_gate.terminal import printable, printable_json

ATTACK = "x\x1b[2J\x1b[31mfake"
#: What a terminal acts on: C0 controls (tab and newline included: they forge columns and lines),
#: DEL, C1 controls (U+009B is a one-character CSI), bidi controls, line and paragraph separators.
TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
FIXED_NOW = 1_796_000_000.0  # 2026-12-01


def test_the_attack_name_is_printed_as_visible_escapes() -> None:
    assert printable(ATTACK) == "x\\x1b[2J\\x1b[31mfake"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("a\rb", "a\\rb"),
        ("a\nFORGED LINE", "a\\nFORGED LINE"),
        ("tab\there", "tab\\there"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b2J", "csi\\x9b2J"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("back\\slash", "back\\\\slash"),
        ("\ud800", "\\ud800"),
        ("/장바구니?q=é", "/장바구니?q=é"),
        ("_ga_ABC123", "_ga_ABC123"),
    ],
)
def test_each_kind_of_control_character_is_escaped_and_nothing_else(text: str, shown: str) -> None:
    assert printable(text) == shown


@given(st.text())
def test_escaped_text_holds_no_control_character_and_reads_back_as_what_was_sent(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    assert not TERMINAL_CONTROLS.search(shown)
    if text.isprintable() and "\\" not in text:
        assert shown == text
    # Read as a Python string literal it is the original again: two different names never look alike.
    assert ast.literal_eval('"' + shown.replace('"', '\\"') + '"') == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(st.characters(codec=None)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(st.characters(codec=None)), inner, max_size=4),
    max_leaves=10,
)


@given(json_values)
def test_printable_json_means_the_same_and_holds_no_control_character(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    shown = printable_json(text)
    assert json.loads(shown) == json.loads(text)
    assert all(line.isprintable() for line in shown.split("\n"))


def inventory_store(tmp_path: Path) -> str:
    store = SQLiteStore(tmp_path / "cli.sqlite3")
    store.add_stats(StatsBatch(cookies={ATTACK: ("necessary", "unknown", "2026-12-01")}))
    store.close()
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def test_cookie_gate_cookies_prints_a_visitors_cookie_name_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", inventory_store(tmp_path), "cookies"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "x\\x1b[2J\\x1b[31mfake  necessary" in out


def test_cookie_gate_cookies_name_echoes_a_looked_up_name_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cookies", ATTACK]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.startswith("x\\x1b[2J\\x1b[31mfake: necessary\n")
    # The override it suggests is valid TOML that files exactly that name.
    suggestion = out.rpartition("in the config file: ")[2].strip()
    table, _, assignment = suggestion.partition(" ")
    assert tomllib.loads(f"{table}\n{assignment}")["categories"]["analytics"]["cookies"] == [ATTACK]


def hostile_stats(tmp_path: Path, day: str) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "stats.sqlite3")
    store.add_stats(
        StatsBatch(
            hourly={(day + "T10", "pageviews"): 3},
            daily={(day, "browser", "Fire\x1b]0;owned\x07fox"): 3, (day, "os", "Linux\r\n  forged"): 3},
            detail={(day, "path", "/a\x1b[2J\x1b[31mfake"): 2, (day, "path", "/\u202etxt.exe"): 1},
        )
    )
    return store


def test_the_stats_report_prints_paths_and_browser_names_escaped(tmp_path: Path) -> None:
    clock = SiteClock("UTC")
    store = hostile_stats(tmp_path, clock.at(FIXED_NOW).day_key)
    text = format_report(build_report(store, clock, days=7, now=FIXED_NOW))
    store.close()
    assert not TERMINAL_CONTROLS.search(text.replace("\n", ""))
    for shown in ("/a\\x1b[2J\\x1b[31mfake", "/\\u202etxt.exe", "Fire\\x1b]0;owned\\x07fox", "Linux\\r\\n  forged"):
        assert shown in text
    assert not any(line.startswith("  forged") for line in text.splitlines())


@pytest.mark.parametrize("as_json", [False, True])
def test_cookie_gate_stats_prints_nothing_a_terminal_acts_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    # The command reports up to its own today; the rows are put there, so no date matters.
    store = hostile_stats(tmp_path, SiteClock("UTC").at(time.time()).day_key)
    store.close()
    url = f"sqlite:///{tmp_path / 'stats.sqlite3'}"
    assert main(["--store", url, "stats", "--days", "2", *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    assert not TERMINAL_CONTROLS.search(out.replace("\n", ""))
    if as_json:
        report = json.loads(out)
        assert {p["path"] for p in report["pages"]} == {"/a\x1b[2J\x1b[31mfake", "/\u202etxt.exe"}
    else:
        assert "/a\\x1b[2J\\x1b[31mfake" in out


def test_the_dashboard_shows_a_bidi_override_as_an_escape(tmp_path: Path) -> None:
    clock = SiteClock("UTC")
    store = hostile_stats(tmp_path, clock.at(FIXED_NOW).day_key)
    health = {"store_reachable": True, "schema_version": 1, "schema_version_expected": 1, "statistics": False}
    report = build_report(store, clock, days=7, now=FIXED_NOW)
    page = render(DashboardView(report, store.inventory(), health, DashboardQuery(7), "en", {}))
    store.close()
    assert "\u202e" not in page and "\x1b" not in page
    assert "/\\u202etxt.exe" in page
