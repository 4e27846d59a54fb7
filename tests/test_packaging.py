"""The released artefacts: wheel and sdist build, and the wheel alone serves the banner assets.

The wheel is installed into a fresh virtual environment (its own dependencies from the
package index, nothing from this checkout) and run from another folder, so an asset or
data file the wheel forgot cannot be found in the source tree by accident.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVE_ASSETS = """
import asyncio, hashlib, sys
import cookie_gate
from cookie_gate import CookieGateMiddleware

async def app(scope, receive, send):
    raise AssertionError("the gate answers its own assets")

async def fetch(gate, path):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [(b"host", b"example.com")], "scheme": "http"}
    await gate(scope, receive, send)
    assert sent[0]["status"] == 200, sent[0]
    return b"".join(m.get("body", b"") for m in sent[1:])

async def main():
    gate = CookieGateMiddleware(app, secret_key="packaging-test-secret-key", store="sqlite:///wheel.sqlite3",
                                statistics=False)
    print(cookie_gate.__file__)
    for name in ("banner.js", "banner.css"):
        print(name, hashlib.sha256(await fetch(gate, "/_cookie_gate/" + name)).hexdigest())
    gate.store.close()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def test_the_sdist_carries_the_licence_it_names(built: tuple[Path, Path]) -> None:
    with tarfile.open(built[1]) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    assert {"LICENSE", "pyproject.toml", "README.md", "static/banner/banner.js"} <= names


def test_the_wheel_declares_its_licence_once_and_carries_every_file_it_needs(built: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(built[0]) as wheel:
        names = set(wheel.namelist())
        metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: License ::" not in metadata  # PEP 639 forbids it beside an expression
    assert {
        "cookie_gate/static/banner/banner.js",
        "cookie_gate/static/banner/banner.css",
        "cookie_gate/data/catalog.json",
        "cookie_gate/py.typed",
        "cookie_gate/integrations/django/templatetags/cookie_gate.py",
    } <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_wheel_alone_serves_the_assets_byte_identical(
    built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    place = tmp_path_factory.mktemp("elsewhere")
    venv = place / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(built[0])], check=True, capture_output=True)
    result = subprocess.run(
        [str(python), "-c", SERVE_ASSETS], cwd=place, check=True, capture_output=True, text=True, env={}
    )
    lines = result.stdout.split("\n")
    assert lines[0].startswith(str(venv)), "cookie_gate was imported from outside the fresh environment"
    for line in lines[1:3]:
        name, digest = line.split()
        assert digest == hashlib.sha256((ROOT / "static" / "banner" / name).read_bytes()).hexdigest(), name
