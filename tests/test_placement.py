"""What the gate hands the app for placing the banner from a template (`inject_banner = false`).

Templates and handlers see `request.state`; what the gate leaves there must render this
request's banner and lead nowhere else: not to the gate, its settings' secret keys,
admin token or store URL, nor its store.
"""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator
from typing import Any

import pytest

from cookie_gate.asgi import Receive, Scope, Send
from cookie_gate.integrations import banner_markup
from cookie_gate.middleware import GATE_STATE_KEY
from cookie_gate.placement import BannerPlacement
from tests.conftest import SECRET, GateFactory, http_scope, run_asgi

pytestmark = pytest.mark.anyio
ADMIN_TOKEN = "admin-token-that-must-stay-inside-the-gate"
MARKER = 'id="cookie-gate"'


def reachable(root: object, limit: int = 50_000) -> Iterator[object]:
    """Every object reachable from `root` through data: attributes, containers, closures and bound methods.

    Classes, modules and functions' globals are not followed: what they lead to is
    the program, not something this object was given.
    """
    seen = {id(root)}
    stack = [root]
    while stack:
        obj = stack.pop()
        yield obj
        if isinstance(obj, types.FunctionType):
            nexts: list[Any] = [cell.cell_contents for cell in obj.__closure__ or ()]
            nexts.extend(obj.__defaults__ or ())
        elif isinstance(obj, type | types.ModuleType | types.CodeType | types.BuiltinFunctionType):
            continue
        else:
            nexts = gc.get_referents(obj)
        for other in nexts:
            if id(other) not in seen:
                seen.add(id(other))
                assert len(seen) < limit, "the placement leads to far more objects than a banner needs"
                stack.append(other)


async def test_the_state_holds_a_placement_that_leads_to_no_secret_and_no_store(
    gate: GateFactory, store_url: str
) -> None:
    handed: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handed.update(scope["state"])
        markup = banner_markup(scope).encode()
        page = b"<html><body>" + markup + b"</body></html>"
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    middleware = gate(app, inject_banner=False, admin_token=ADMIN_TOKEN)
    messages = await run_asgi(middleware, http_scope("/shop", query_string=b"page=2"))
    assert MARKER.encode() in messages[1]["body"]
    placement = handed[GATE_STATE_KEY]
    assert isinstance(placement, BannerPlacement)
    assert [name for name in dir(placement) if not name.startswith("_")] == ["render"]
    assert MARKER in placement.render() and 'value="/shop?page=2"' in placement.render()

    forbidden = {id(middleware), id(middleware.config), id(middleware.store), id(middleware.endpoints)}
    secrets = (SECRET, ADMIN_TOKEN, store_url)
    for obj in reachable(placement):
        assert id(obj) not in forbidden, f"the placement leads to {type(obj).__name__}"
        if isinstance(obj, str):
            assert not any(secret in obj for secret in secrets), "the placement leads to a credential"


async def test_with_injection_on_the_state_holds_no_placement(gate: GateFactory) -> None:
    handed: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handed.update(scope["state"])
        assert banner_markup(scope) == ""  # the gate injects it: a template call must not add a second one
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html><body></body></html>"})

    messages = await run_asgi(gate(app), http_scope("/"))
    assert GATE_STATE_KEY not in handed
    assert b"".join(m.get("body", b"") for m in messages[1:]).count(MARKER.encode()) == 1
