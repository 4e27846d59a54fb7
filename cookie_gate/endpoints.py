"""The gateway's own HTTP endpoints under the mount path (default `/_cookie_gate`).

`/consent` takes decisions (POST, JSON or a plain form), shows the visitor the
record held about them (GET) and withdraws (DELETE, or a form post with
`action=withdraw` since forms cannot send DELETE). Writes are same-origin only, with
a body size cap, and every malformed input gets a 4xx with a reason in JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread

from cookie_gate.admin import Dashboard, WriterHealthSource
from cookie_gate.asgi import RawHeaders, Receive, Scope, Send, header, respond, respond_error, respond_json
from cookie_gate.classify import CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent, ConsentCodec, Decision, new_consent_id
from cookie_gate.cookies import DomainVariants, expiring_set_cookies, request_host
from cookie_gate.store import DecisionRecord, StoreError
from cookie_gate.store.sql import SQLStore
from cookie_gate.visit import Visit, VisitResolver

ACTIONS = ("accept_all", "reject_all", "save", "withdraw")
_STATIC_TYPES = {"banner.js": b"text/javascript; charset=utf-8", "banner.css": b"text/css; charset=utf-8"}


class _Choice(NamedTuple):
    accepted: frozenset[str]
    action: str
    next_path: str
    remember: bool


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Endpoints:
    def __init__(
        self,
        config: Config,
        codec: ConsentCodec,
        classifier: CookieClassifier,
        visits: VisitResolver,
        variants: DomainVariants,
        store: SQLStore,
        clock: Clock,
        *,
        writer_health: WriterHealthSource | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._codec = codec
        self._classifier = classifier
        self._visits = visits
        self._variants = variants
        self._optional = frozenset(config.optional_categories)
        self._allowed_origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins)
        self.store = store
        self._dashboard = (
            Dashboard(config.admin_token, store, config.timezone, clock, writer_health) if config.admin_token else None
        )
        self._static = {name: _load_static(name) for name in _STATIC_TYPES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send, subpath: str) -> None:
        method = scope["method"]
        if subpath == "/consent":
            try:
                if method == "GET":
                    await self._show(scope, send)
                elif method == "POST":
                    await self._decide(scope, receive, send)
                elif method == "DELETE":
                    self._check_same_origin(scope)
                    await self._withdraw(scope, send, as_form_next=None)
                else:
                    await respond_error(
                        send, 405, f"{method} is not supported here", [(b"allow", b"GET, POST, DELETE")]
                    )
            except BadRequest as error:
                await respond_error(send, error.status, error.reason)
            except StoreError:
                await respond_error(send, 503, "the consent log is unavailable; nothing was changed, try again later")
            return
        if subpath == "/admin" or subpath.startswith("/admin/"):
            if self._dashboard is None:
                await respond_error(send, 404, "no such cookie_gate endpoint")
            else:
                await self._dashboard(scope, send, subpath[len("/admin") :])
            return
        name = subpath[1:]
        if name in self._static:
            await self._asset(scope, send, name)
            return
        await respond_error(send, 404, "no such cookie_gate endpoint")

    # -- reading ---------------------------------------------------------------------------

    def _visit(self, scope: Scope) -> Visit:
        cookies = [v for n, v in scope["headers"] if n.lower() == b"cookie"]
        gpc = (header(scope, b"sec-gpc") or b"").strip() == b"1"
        return self._visits.resolve(b"; ".join(cookies) if cookies else None, gpc, self._clock())

    async def _show(self, scope: Scope, send: Send) -> None:
        visit = self._visit(scope)
        history: list[DecisionRecord] = []
        if visit.consent.consent_id is not None:
            history = await anyio.to_thread.run_sync(self.store.decisions, visit.consent.consent_id)
        await respond_json(send, 200, self._record(visit.consent, history))

    def _record(self, consent: Consent, history: Iterable[DecisionRecord]) -> dict[str, Any]:
        return {
            "decided": consent.decided,
            "mode": self._config.mode,
            "gpc": consent.gpc,
            "categories": {name: consent.allows(name) for name in self._config.category_names},
            "policy_version": consent.policy_version,
            "decided_at": _iso(consent.decided_at),
            "expires_at": _iso(consent.expires_at),
            "consent_id": consent.consent_id,
            "history": [
                {
                    "decided_at": _iso(r.decided_at),
                    "action": r.action,
                    "categories": list(r.categories),
                    "policy_version": r.policy_version,
                    "gpc": r.gpc,
                }
                for r in history
            ],
        }

    # -- deciding --------------------------------------------------------------------------

    async def _decide(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._check_same_origin(scope)
        content_type = (header(scope, b"content-type") or b"").partition(b";")[0].strip().lower()
        if content_type == b"application/json":
            is_form = False
            accepted, action, next_path, remember = self._parse_json(await self._body(scope, receive))
        elif content_type == b"application/x-www-form-urlencoded":
            is_form = True
            accepted, action, next_path, remember = self._parse_form(await self._body(scope, receive))
        else:
            raise BadRequest(415, "send application/json or application/x-www-form-urlencoded")
        if action == "withdraw":
            await self._withdraw(scope, send, as_form_next=next_path if is_form else None)
            return
        visit = self._visit(scope)
        now = int(self._clock())
        consent_id = visit.decision.consent_id if visit.decision is not None else new_consent_id()
        decision = Decision(accepted | {NECESSARY}, self._config.policy_version, now, consent_id)
        record = DecisionRecord(
            consent_id, now, action, tuple(sorted(decision.accepted)), decision.policy_version, visit.consent.gpc
        )
        await anyio.to_thread.run_sync(self.store.log_decision, record)
        secure = scope.get("scheme") == "https"
        # "Ask me every visit": a session cookie, so the choice ends with the browser session.
        max_age = None if remember else -1
        headers: RawHeaders = [(b"set-cookie", self._consent_cookie(self._codec.encode(decision), secure, max_age))]
        refused = [name for name, category in visit.sent if category not in decision.accepted]
        headers += self._expire(scope, refused, secure)
        consent = Consent(
            decision.accepted,
            decided=True,
            gpc=visit.consent.gpc,
            policy_version=decision.policy_version,
            decided_at=now,
            expires_at=now + self._config.consent_lifetime_seconds,
            consent_id=consent_id,
        )
        if is_form:
            await respond(send, 303, headers=[(b"location", next_path.encode("utf-8")), *headers])
        else:
            history = await anyio.to_thread.run_sync(self.store.decisions, consent_id)
            await respond_json(send, 200, {**self._record(consent, history), "remember": remember}, headers)

    async def _withdraw(self, scope: Scope, send: Send, as_form_next: str | None) -> None:
        visit = self._visit(scope)
        if visit.decision is not None:
            record = DecisionRecord(
                visit.decision.consent_id,
                int(self._clock()),
                "withdraw",
                (NECESSARY,),
                self._config.policy_version,
                visit.consent.gpc,
            )
            await anyio.to_thread.run_sync(self.store.log_decision, record)
        secure = scope.get("scheme") == "https"
        headers: RawHeaders = [(b"set-cookie", self._consent_cookie("", secure, max_age=0))]
        headers += self._expire(scope, [name for name, category in visit.sent if category != NECESSARY], secure)
        if as_form_next is not None:
            await respond(send, 303, headers=[(b"location", as_form_next.encode("utf-8")), *headers])
        else:
            await respond_json(send, 200, self._record(self._visits.undecided(visit.consent.gpc), []), headers)

    def _consent_cookie(self, value: str, secure: bool, max_age: int | None = None) -> bytes:
        """The consent cookie; `max_age` None is the configured lifetime, -1 a session cookie, 0 deletion."""
        age = self._config.consent_lifetime_seconds if max_age is None else max_age
        parts = [f"{self._config.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if age >= 0:
            parts.insert(1, f"Max-Age={age}")
        if age == 0:
            parts.insert(2, "Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        if self._config.cookie_domain:
            parts.append(f"Domain={self._config.cookie_domain}")
        if secure:
            parts.append("Secure")
        return "; ".join(parts).encode("latin-1")

    def _expire(self, scope: Scope, names: Iterable[str], secure: bool) -> RawHeaders:
        unique = [n for n in dict.fromkeys(names) if n and n != self._config.cookie_name]
        if not unique:
            return []
        domains = self._variants.domains(request_host(header(scope, b"host") or b""))
        return [(b"set-cookie", value) for name in unique for value in expiring_set_cookies(name, domains, secure)]

    # -- input -----------------------------------------------------------------------------

    def _check_same_origin(self, scope: Scope) -> None:
        """Refuse writes a third-party page could trigger (CSRF): decisions are the visitor's."""
        origin = header(scope, b"origin")
        site = header(scope, b"sec-fetch-site")
        if origin is not None:
            text = origin.decode("latin-1").strip().lower()
            host = (header(scope, b"host") or b"").decode("latin-1").strip().lower()
            own = f"{scope.get('scheme', 'http')}://{host}"
            if text == own or text in self._allowed_origins:
                return
            raise BadRequest(403, f"cross-origin request from {text!r} refused; nothing was changed")
        if site is not None and site.strip().lower() != b"same-origin":
            raise BadRequest(403, "cross-site request refused (Sec-Fetch-Site); nothing was changed")

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self._config.max_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise BadRequest(413, f"request body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadRequest(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _categories(self, names: Iterable[Any], key: str) -> frozenset[str]:
        chosen = set()
        for name in names:
            if not isinstance(name, str):
                raise BadRequest(400, f"{key} must hold category names as strings")
            if name == NECESSARY:
                continue
            if name not in self._optional:
                known = ", ".join(self._config.optional_categories)
                raise BadRequest(400, f"unknown category {name!r} (known: {known})")
            chosen.add(name)
        return frozenset(chosen)

    def _parse_json(self, body: bytes) -> _Choice:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(400, f"body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise BadRequest(400, 'body must be a JSON object like {"accept": ["analytics"]}')
        unknown = set(data) - {"accept", "remember"}
        if unknown:
            raise BadRequest(400, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
        if "accept" not in data:
            raise BadRequest(400, 'missing "accept": a list of categories, [] to reject all, or "all"')
        remember = data.get("remember", True)
        if not isinstance(remember, bool):
            raise BadRequest(400, '"remember" must be true (keep the choice) or false (ask every visit)')
        accept = data["accept"]
        if accept == "all":
            return _Choice(self._optional, "accept_all", "/", remember)
        if not isinstance(accept, list):
            raise BadRequest(400, '"accept" must be a list of categories or "all"')
        accepted = self._categories(accept, '"accept"')
        return _Choice(accepted, _action_for(accepted, self._optional), "/", remember)

    def _parse_form(self, body: bytes) -> _Choice:
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64, errors="strict")
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(400, f"malformed form body: {error}") from None
        values: dict[str, list[str]] = {}
        for key, value in fields:
            values.setdefault(key, []).append(value)
        actions = values.get("action", [])
        if len(actions) != 1 or actions[0] not in ACTIONS:
            raise BadRequest(400, f"form field action must be one of {', '.join(ACTIONS)}")
        next_values = values.get("next", ["/"])
        next_path = next_values[-1] or "/"
        if not _is_local_path(next_path):
            raise BadRequest(400, "form field next must be a local path such as /page")
        remember_values = values.get("remember", ["yes"])
        if remember_values[-1] not in ("yes", "no"):
            raise BadRequest(400, "form field remember must be yes or no")
        remember = remember_values[-1] == "yes"
        action = actions[0]
        if action == "accept_all":
            return _Choice(self._optional, action, next_path, remember)
        if action in ("reject_all", "withdraw"):
            return _Choice(frozenset(), action, next_path, remember)
        accepted = self._categories(values.get("accept", []), "accept")
        return _Choice(accepted, _action_for(accepted, self._optional), next_path, remember)

    # -- static ----------------------------------------------------------------------------

    async def _asset(self, scope: Scope, send: Send, name: str) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond_error(send, 405, "assets are read-only", [(b"allow", b"GET, HEAD")])
            return
        body, etag = self._static[name]
        headers = [(b"etag", etag), (b"cache-control", b"public, max-age=86400")]
        if header(scope, b"if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(send, 200, body, _STATIC_TYPES[name], headers, head_only=scope["method"] == "HEAD")


def _action_for(accepted: frozenset[str], optional: frozenset[str]) -> str:
    if accepted == optional:
        return "accept_all"
    return "reject_all" if not accepted else "custom"


def _is_local_path(path: str) -> bool:
    """Only same-site paths: `/x`, never `//host`, `/\\host`, a scheme or a control character."""
    if not path.startswith("/") or path.startswith(("//", "/\\")):
        return False
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


def _iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _load_static(name: str) -> tuple[bytes, bytes]:
    packaged = resources.files("cookie_gate") / "static" / "banner" / name
    source = Path(__file__).resolve().parent.parent / "static" / "banner" / name
    body = packaged.read_bytes() if packaged.is_file() else source.read_bytes()
    return body, b'"' + hashlib.sha256(body).hexdigest()[:16].encode("ascii") + b'"'
