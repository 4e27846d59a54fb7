"""The admin's command line: config checks before deploy, cookie lookups."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cookie_gate.classify import TRUNCATED
from cookie_gate.cli import build_parser, main
from cookie_gate.store.sql import SCHEMA_VERSION, StatsBatch
from cookie_gate.store.sqlite import SQLiteStore
from tests.clocks import suite_clock

DEMO_CONFIG = str(Path(__file__).parent.parent / "examples" / "demo" / "cookie-gate.toml")


def test_check_config_accepts_good_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("COOKIE_GATE_STORE", f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    assert main(["--config", DEMO_CONFIG, "check-config"]) == 0
    out = capsys.readouterr().out
    assert "configuration OK" in out and "policy version: 2026-12" in out
    assert "store OK" in out and f"schema version {SCHEMA_VERSION}" in out


def test_check_config_names_the_broken_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", "s" * 32)
    bad = tmp_path / "bad.toml"
    bad.write_text('[categories.analytics]\ncookies = ["g*"]\n', encoding="utf-8")
    assert main(["--config", str(bad), "check-config"]) == 2
    assert "categories.analytics.cookies[0]" in capsys.readouterr().err


def test_cookies_tells_who_filed_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", DEMO_CONFIG, "cookies", "_ga", "preferred_lang", "cookie_gate", "my_thing"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "_ga: analytics",
        "  filed by: the built-in catalogue, exact name '_ga'",
        "  source: Open Cookie Database row (Google Analytics: analytics)",
    ]
    assert "preferred_lang: preferences\n  filed by: your configuration ([categories.*] cookies)" in out
    assert "cookie_gate: necessary\n  filed by: the gateway itself" in out
    assert "my_thing: necessary\n  filed by: nobody declared it; unknown names: necessary" in out
    assert "  heuristic: the gateway has not seen it yet" in out
    assert 'to file it yourself, in the config file: [categories.necessary] cookies = ["_ga"]' in out
    assert 'to file it yourself, in the config file: [categories.analytics] cookies = ["my_thing"]' in out


def test_cookies_name_explains_a_framework_cookie_and_the_heuristics_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    store = SQLiteStore(tmp_path / "inventory.sqlite3")
    verdict = "suspected tracker: value is a UUID; name says visitor; only seen in requests: a script set it"
    store.add_stats(StatsBatch(cookies={"visitor_key": ("necessary", verdict, "2026-12-01")}))
    store.close()
    assert main(["--config", DEMO_CONFIG, "--store", url, "cookies", "sessionid", "visitor_key", "c"]) == 0
    out = capsys.readouterr().out
    assert "sessionid: necessary\n  filed by: the built-in catalogue, exact name 'sessionid'" in out
    assert "  source: Django: https://docs.djangoproject.com/" in out
    assert f"  heuristic: {verdict}" in out
    assert "visitor_key: necessary\n" in out  # unknown_cookies = "allow": marked, not refused
    assert "  not filed from: Open Cookie Database row about a vendor's own domain" in out
    suspecting = tmp_path / "suspect.toml"
    suspecting.write_text('unknown_cookies = "suspect"\n', encoding="utf-8")
    assert main(["--config", str(suspecting), "--store", url, "cookies", "visitor_key"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("visitor_key: marketing\n") and "suspected trackers refused as marketing" in out


def test_cookies_without_names_prints_the_declaration_table_and_the_inventory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    assert main(["--config", DEMO_CONFIG, "--store", url, "cookies"]) == 0
    out = capsys.readouterr().out
    assert "preferences  Preferences         preferred_lang" in out
    assert "No cookies seen yet" in out
    store = SQLiteStore(tmp_path / "inventory.sqlite3")
    store.add_stats(StatsBatch(cookies={"_ga": ("analytics", "catalogue", "2026-12-01")}))
    store.add_stats(StatsBatch(cookies={"_ga": ("analytics", "catalogue", "2026-12-03")}))
    store.close()
    assert main(["--config", DEMO_CONFIG, "--store", url, "cookies"]) == 0
    assert "_ga     analytics  catalogue  2026-12-01  2026-12-03" in capsys.readouterr().out


def test_a_truncated_inventory_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    store = SQLiteStore(tmp_path / "inventory.sqlite3")
    note = "the inventory is full: further names seen only in requests were not recorded"
    store.add_stats(
        StatsBatch(cookies={TRUNCATED: ("-", note, "2026-12-01"), "_ga": ("analytics", "catalogue", "2026-12-01")})
    )
    store.close()
    assert main(["--config", DEMO_CONFIG, "--store", url, "cookies"]) == 0
    out = capsys.readouterr().out
    assert "Cookies seen on this site (1)" in out and f"(truncated: {note})" in out
    assert TRUNCATED not in out.replace(f"(truncated: {note})", "")


@pytest.mark.anyio
async def test_the_gateway_fills_the_inventory_with_every_name_it_sees(tmp_path: Path) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from cookie_gate import CookieGateMiddleware

    def page(request: object) -> PlainTextResponse:
        response = PlainTextResponse("ok")
        response.set_cookie("_fbp", "x")
        return response

    gate = CookieGateMiddleware(
        Starlette(routes=[Route("/", page)]), secret_key="s" * 32, store=f"sqlite:///{tmp_path / 'i.sqlite3'}"
    )
    transport = httpx.ASGITransport(app=gate)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as client:
        await client.get("/", headers={"cookie": "_ga=1; cart=2"})
    assert gate.statistics is not None
    gate.statistics.writer.flush()
    names = {row[0]: row[1:3] for row in gate.store.inventory()}
    gate.store.close()
    assert names == {
        "_ga": ("analytics", "catalogue"),
        "cart": ("necessary", "catalogue"),
        "_fbp": ("marketing", "catalogue"),
    }


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cookie_gate", "cookies", "_fbp"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "_fbp: marketing"


def suggestion(out: str) -> str:
    """The TOML the lookup suggests, as the admin would paste it."""
    line = next(line for line in out.splitlines() if "in the config file:" in line)
    table, _, assignment = line.partition("in the config file: ")[2].partition("] ")
    return f"{table}]\n{assignment}\n"


@pytest.mark.parametrize("name", ['a"b', "back\\slash", 'x"]\n[evil', "tab\there", "del\x7fname", "쿠키_이름", "é\x00"])
def test_the_override_suggestion_is_valid_toml_for_any_name(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", DEMO_CONFIG, "cookies", name]) == 0
    parsed = tomllib.loads(suggestion(capsys.readouterr().out))
    assert next(iter(parsed["categories"].values()))["cookies"] == [name]


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=30))
def test_the_override_suggestion_parses_back_to_the_name(name: str) -> None:
    from cookie_gate.cli import _toml_string

    assert tomllib.loads(f"cookies = [{_toml_string(name)}]\n")["cookies"] == [name]


def test_a_generic_name_says_the_unknown_cookies_setting_decides_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocking = tmp_path / "block.toml"
    blocking.write_text('unknown_cookies = "block"\n', encoding="utf-8")
    assert main(["--config", str(blocking), "cookies", "uid", "sessionid"]) == 0
    out = capsys.readouterr().out
    assert "uid: undeclared\n  filed by: a generic name, decided as unknown names are: blocked" in out
    assert "  catalogue: Generic names apps use for themselves: https://" in out
    assert "sessionid: necessary\n  filed by: the built-in catalogue" in out


def test_every_command_runs_its_own_function() -> None:
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    runs = {name: parser.get_default("run") for name, parser in commands.choices.items()}
    assert set(runs) == {"check-config", "migrate", "cookies", "stats", "consents", "shown", "purge"}
    assert all(callable(run) for run in runs.values())
    functions = [inspect.unwrap(run) for run in runs.values()]
    assert len(set(functions)) == len(functions)


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (["check-config"], "configuration OK"),
        (["migrate"], f"store schema version: {SCHEMA_VERSION} (this release writes {SCHEMA_VERSION})"),
        (["cookies"], "category     label (en)          cookies declared by the site"),
        (["cookies", "_fbp"], "_fbp: marketing"),
        (["cookies", "--format", "json"], "{"),
        (["stats"], "cookie_gate statistics  "),
        (["consents"], "consent_id,decided_at,action,categories,policy_version,gpc,method,locale,shown"),
        (["shown", "--locale", "ko"], "ko "),
        (["purge"], "purged: "),
    ],
)
def test_each_command_does_its_own_work(
    argv: list[str],
    first_line: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", "s" * 32)
    assert main(["--store", f"sqlite:///{tmp_path / 'gate.sqlite3'}", *argv], clock=suite_clock) == 0
    assert capsys.readouterr().out.startswith(first_line)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["purge-all"], "argument command: invalid choice: 'purge-all'"),
        (["Purge"], "argument command: invalid choice: 'Purge'"),
        ([], "the following arguments are required: command"),
    ],
)
def test_an_unknown_or_missing_command_is_a_usage_error_not_a_purge(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "gate.sqlite3"
    with pytest.raises(SystemExit) as exited:
        main(["--store", f"sqlite:///{store}", *argv])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "purged" not in err
    assert err.startswith("usage: cookie-gate") and f"cookie-gate: error: {message}" in err
    assert not store.exists()
