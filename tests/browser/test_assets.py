"""The banner's files themselves: size, CSP-safety, right-to-left safety, one Consent Mode map.

These need no browser and always run.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from cookie_gate.banner import CONSENT_MODE_SIGNALS, BannerRenderer
from cookie_gate.config import load_config
from cookie_gate.consent import Consent
from tests.browser.screenshots import LAYERS, LOCALES, SCHEMES

ROOT = Path(__file__).resolve().parents[2]
JS = (ROOT / "static" / "banner" / "banner.js").read_text()
CSS = (ROOT / "static" / "banner" / "banner.css").read_text()
BUDGET = 6000  # "6 KB", read strictly


def test_banner_js_and_css_fit_in_6_kb_gzipped() -> None:
    sizes = {name: len(gzip.compress(text.encode(), compresslevel=9)) for name, text in (("js", JS), ("css", CSS))}
    total = sum(sizes.values())
    print(f"banner.js {sizes['js']} B + banner.css {sizes['css']} B = {total} B gzip -9 (budget {BUDGET} B)")
    assert total <= BUDGET


def test_the_script_needs_no_eval_and_writes_no_inline_style() -> None:
    assert JS.lstrip().startswith("/*") and '"use strict";' in JS
    for forbidden in ("eval(", "new Function", 'setTimeout("', "innerHTML", "outerHTML", ".style", "cssText"):
        assert forbidden not in JS, forbidden
    assert not re.search(r"""setAttribute\(\s*["']style""", JS)
    assert not re.search(r"""\bon[a-z]+\s*=""", JS)  # no handler properties; addEventListener only
    assert "import " not in JS and "require(" not in JS  # no dependencies


def test_the_stylesheet_uses_only_logical_directions_and_no_external_fonts() -> None:
    physical = re.compile(
        r"(?<![-\w])(left|right|top|bottom|(margin|padding|border)-(left|right|top|bottom)\w*|"
        r"text-align:\s*(left|right)|float:\s*(left|right))\s*:?"
    )
    declarations = re.sub(r"/\*.*?\*/", "", CSS, flags=re.S)
    found = [m.group(0) for m in physical.finditer(declarations) if ":" in m.group(0)]
    assert found == []
    assert "@import" not in CSS and "@font-face" not in CSS and "url(" not in CSS
    for needed in ("prefers-color-scheme: dark", "prefers-reduced-motion: reduce", "inset-inline", "text-align: start"):
        assert needed in CSS, needed


def test_the_script_knows_the_same_consent_mode_signals_as_the_server() -> None:
    block = re.search(r"const SIGNALS = (\{.*?\});", JS, re.S)
    assert block is not None
    as_json = re.sub(r"(\w+):", r'"\1":', block.group(1)).replace(",\n  }", "\n  }")
    as_json = re.sub(r",\s*([}\]])", r"\1", as_json)
    assert {k: tuple(v) for k, v in json.loads(as_json).items()} == dict(CONSENT_MODE_SIGNALS)


@pytest.mark.parametrize("decided", [False, True])
def test_the_markup_has_no_inline_style_or_handler_and_carries_what_the_script_needs(decided: bool) -> None:
    config = load_config(ROOT / "examples" / "demo" / "cookie-gate.toml", secret_key="s" * 32, settings_button="off")
    consent = Consent(frozenset({"necessary", "analytics"}), decided=decided)
    html = BannerRenderer(config).snippet("ko", "", "/", consent, "n0nce").decode("ascii")
    assert " style=" not in html and not re.search(r"\son[a-z]+=", html)
    assert 'data-allowed="analytics necessary"' in html
    assert 'data-settings-placement="off"' in html
    assert 'data-settings-label="&#53216;&#53412; &#49444;&#51221;"' in html  # "쿠키 설정"
    assert 'dir="ltr"' in html and 'lang="ko"' in html


def test_right_to_left_locales_are_marked_as_such() -> None:
    config = load_config(secret_key="s" * 32, texts={"ar": {"title": "\u0645\u0644\u0641\u0627\u062a"}})
    html = BannerRenderer(config).snippet("ar", "", "/", Consent(frozenset(), decided=False), None).decode()
    assert 'lang="ar" dir="rtl"' in html


def test_the_readme_shows_every_screenshot() -> None:
    readme = (ROOT / "README.md").read_text()
    for layer in LAYERS:
        for locale in LOCALES:
            for scheme in SCHEMES:
                name = f"docs/screenshots/banner-{layer}-{locale}-{scheme}.png"
                assert name in readme
                assert (ROOT / name).stat().st_size < 100_000, name
