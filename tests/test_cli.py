"""The admin's command line: config checks before deploy, cookie lookups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cookie_gate.cli import main

DEMO_CONFIG = str(Path(__file__).parent.parent / "examples" / "demo" / "cookie-gate.toml")


def test_check_config_accepts_good_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKIE_GATE_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("COOKIE_GATE_STORE", "postgresql://gate:hunter2@db.internal/gate")
    assert main(["--config", DEMO_CONFIG, "check-config"]) == 0
    out = capsys.readouterr().out
    assert "configuration OK" in out and "policy version: 2026-12" in out
    assert "hunter2" not in out  # credentials in the store URL are never printed


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
    assert capsys.readouterr().out.splitlines() == [
        "_ga\tanalytics\t(catalogue)",
        "preferred_lang\tpreferences\t(site)",
        "cookie_gate\tnecessary\t(gateway)",
        "my_thing\tnecessary\t(unknown)",
    ]


def test_cookies_without_names_prints_the_declaration_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", DEMO_CONFIG, "cookies"]) == 0
    out = capsys.readouterr().out
    assert "preferences  Preferences         preferred_lang" in out


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cookie_gate", "cookies", "_fbp"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "_fbp\tmarketing\t(catalogue)"
