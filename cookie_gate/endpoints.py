"""The gateway's own HTTP endpoints under the mount path (default `/_cookie_gate`).

`/consent` takes decisions (POST, JSON or a plain form), shows the visitor the
record held about them (GET) and withdraws (DELETE, or a form post with
`action=withdraw` since forms cannot send DELETE). Writes are same-origin only, with
a body size cap, and every malformed input gets a 4xx with a reason in JSON.

Each logged decision says how it came (`store.METHODS`: the banner's script marks its
JSON with `"via": "banner"`, a form post is a form, other JSON the site's own code), in
which locale (the visitor's Accept-Language, as the banner was chosen by) and the digest
of the banner in that locale, which its cookie carries too (`cookie_gate.shown`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread

from cookie_gate.admin import Dashboard, WriterHealthSource
from cookie_gate.asgi import RawHeaders, Receive, Scope, Send, header, respond, respond_error, respond_json
from cookie_gate.banner import preferred_locale
from cookie_gate.classify import CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent, ConsentCodec, Decision, new_consent_id
from cookie_gate.cookies import DomainVariants, cookie_segments, cookie_value, expiries, expiring_set_cookies
from cookie_gate.declaration_endpoint import DeclarationEndpoint
from cookie_gate.hosts import request_host
from cookie_gate.placement import request_nonce
from cookie_gate.shown import SHORT_LENGTH, ShownDigests, shown_digests
from cookie_gate.store import DecisionRecord, StoreError
from cookie_gate.store.sql import SQLStore
from cookie_gate.visit import Visit, VisitResolver
from cookie_gate.visitor_page import CSP as VISITOR_CSP, MAX_HISTORY_SHOWN as MAX_HISTORY, HeldRecord, VisitorPage

logger = logging.getLogger("cookie_gate.consent")
ACTIONS = ("accept_all", "reject_all", "save", "withdraw")
#: Consent cookies one request can withdraw or show: a browser holds one, or a few tossed beside it.
MAX_CONSENT_COOKIES = 4
_STATIC_TYPES = {"banner.js": b"text/javascript; charset=utf-8", "banner.css": b"text/css; charset=utf-8"}


class _Choice(NamedTuple):
    accepted: frozenset[str]
    action: str
    next_path: str
    remember: bool
    method: str
    #: The locale of the page the form was on (`/me?lang=ko`), which `_shown_to` prefers.
    locale: str | None = None


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
        shown: ShownDigests | None = None,
    ) -> None:
        self._config = config
        self._shown = shown_digests(config) if shown is None else shown
        self._clock = clock
        self._codec = codec
        self._classifier = classifier
        self._visits = visits
        self._variants = variants
        self._optional = frozenset(config.optional_categories)
        self._allowed_origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins)
        self.store = store
        # The resolver's own: what a withdrawal here teaches must change what a request's cookie means.
        self._withdrawals = visits.withdrawals
        name = config.cookie_name.lower()
        #: Browsers take a `__Host-` or `__Secure-` cookie only with Secure, so only over https.
        self._needs_https = name.startswith(("__host-", "__secure-"))
        self._host_only = name.startswith("__host-")
        self._warned_http = False
        self._dashboard = Dashboard.for_config(config, store, clock, writer_health) if config.admin_token else None
        self._static = {name: _load_static(name) for name in _STATIC_TYPES}
        self._page = VisitorPage(config)
        self._declaration = DeclarationEndpoint(config, store, clock)

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
        if subpath == "/me":
            await self._visitor_page(scope, send)
            return
        if subpath == "/declaration":
            await self._declaration(scope, send)
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
        held = await self._held(scope)
        await respond_json(send, 200, self._record(held.consent, held.history, held.consent_id, held.truncated))

    async def _held(self, scope: Scope) -> HeldRecord:
        """The record, checked against the log: a withdrawn cookie sent again shows as undecided.

        The log knows of withdrawals the cookie cannot (a replayed copy, or a withdrawal
        on another instance); what it says is remembered, so pages agree from then on.
        An undecided visitor whose cookie was withdrawn sees the history ending in it.
        """
        visit = self._visit(scope)
        for _ in range(MAX_CONSENT_COOKIES):
            decision = visit.decision
            if decision is None or not visit.consent.decided:
                break
            withdrawals = await anyio.to_thread.run_sync(self.store.withdrawals, [decision.consent_id])
            withdrawn_at = withdrawals.get(decision.consent_id)
            if withdrawn_at is None or withdrawn_at < decision.decided_at:
                history, truncated = await anyio.to_thread.run_sync(self._history, decision.consent_id)
                return HeldRecord(visit.consent, history, visit.consent.consent_id, truncated, withdrawn_at)
            self._withdrawals.add(decision.consent_id, withdrawn_at)
            visit = self._visit(scope)
        withdrawn = [i for i, at in self._sent_decisions(scope) if self._withdrawals.withdrawn(i, at)]
        if not withdrawn:
            return HeldRecord(visit.consent, [], visit.consent.consent_id)
        history, truncated = await anyio.to_thread.run_sync(self._history, withdrawn[0])
        withdrawals = await anyio.to_thread.run_sync(self.store.withdrawals, withdrawn[:1])
        return HeldRecord(visit.consent, history, withdrawn[0], truncated, withdrawals.get(withdrawn[0]))

    def _history(self, consent_id: str) -> tuple[list[DecisionRecord], bool]:
        """The newest `MAX_HISTORY` decisions under `consent_id`, oldest first, and whether there were more.

        A visitor can log as many decisions as they like under their own id, so neither
        an answer nor the store's lock grows with them.
        """
        history = self.store.decisions(consent_id, limit=MAX_HISTORY + 1)
        return (history[1:], True) if len(history) > MAX_HISTORY else (history, False)

    def _sent_decisions(self, scope: Scope) -> list[tuple[str, int]]:
        """(consent id, decided at) of the validly signed consent cookies a request carries."""
        found: list[tuple[str, int]] = []
        for name, value in scope["headers"]:
            if name.lower() != b"cookie":
                continue
            for cookie, segment in cookie_segments(value):
                decision = self._codec.decode(cookie_value(segment)) if cookie == self._config.cookie_name else None
                if decision is not None and len(found) < MAX_CONSENT_COOKIES:
                    found.append((decision.consent_id, decision.decided_at))
        return found

    def _record(
        self,
        consent: Consent,
        history: Iterable[DecisionRecord],
        consent_id: str | None = None,
        truncated: bool = False,
    ) -> dict[str, Any]:
        return {
            "decided": consent.decided,
            "mode": self._config.mode,
            "gpc": consent.gpc,
            "categories": {name: consent.allows(name) for name in self._config.category_names},
            "policy_version": consent.policy_version,
            "decided_at": _iso(consent.decided_at),
            "expires_at": _iso(consent.expires_at),
            "consent_id": consent_id or consent.consent_id,
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
            #: The history holds only the newest `MAX_HISTORY` decisions (the log keeps every one).
            "history_truncated": truncated,
        }

    async def _visitor_page(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond_error(
                send, 405, "the page is read-only; its forms post to consent", [(b"allow", b"GET, HEAD")]
            )
            return
        try:
            held = await self._held(scope)
        except StoreError:
            await respond_error(send, 503, "the consent log is unavailable; try again later")
            return
        query = _query(scope)
        locale = query.get("lang", "")
        if locale not in self._config.locales:
            locale = preferred_locale(
                header(scope, b"accept-language"), self._config.locales, self._config.default_locale
            )
        base = (scope.get("root_path") or "") + self._config.mount_path
        nonce = request_nonce(scope.get("state"), self._config.csp_nonce_key)
        page = self._page.render(held, locale, base, query.get("done"), nonce)
        headers = [
            (b"cache-control", b"no-store"),
            (b"vary", b"Cookie, Accept-Language"),
            (b"content-security-policy", VISITOR_CSP),
            (b"x-robots-tag", b"noindex"),
            # Not no-referrer: Chrome then sends "Origin: null" with the forms, which the checks refuse.
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
        ]
        await respond(send, 200, page, b"text/html; charset=utf-8", headers, head_only=scope["method"] == "HEAD")

    # -- deciding --------------------------------------------------------------------------

    async def _decide(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = (header(scope, b"content-type") or b"").partition(b";")[0].strip().lower()
        self._check_same_origin(scope, form=content_type == b"application/x-www-form-urlencoded")
        if content_type == b"application/json":
            is_form = False
            choice = self._parse_json(await self._body(scope, receive))
        elif content_type == b"application/x-www-form-urlencoded":
            is_form = True
            choice = self._parse_form(await self._body(scope, receive))
        else:
            raise BadRequest(415, "send application/json or application/x-www-form-urlencoded")
        accepted, action, next_path, remember, method = choice[:5]
        if action == "withdraw":
            await self._withdraw(scope, send, as_form_next=next_path if is_form else None, locale=choice.locale)
            return
        visit = self._visit(scope)
        now = int(self._clock())
        locale, shown = self._shown_to(scope, choice.locale)
        consent_id = _kept_consent_id(visit)
        decision = Decision(accepted | {NECESSARY}, self._config.policy_version, now, consent_id, shown[:SHORT_LENGTH])
        record = DecisionRecord(
            consent_id,
            now,
            action,
            tuple(sorted(decision.accepted)),
            decision.policy_version,
            visit.consent.gpc,
            method=method,
            locale=locale,
            shown=shown,
        )
        await anyio.to_thread.run_sync(self.store.log_decision, record)
        secure = scope.get("scheme") == "https"
        # "Ask me every visit": a session cookie, so the choice ends with the browser session.
        max_age = None if remember else -1
        headers = self._consent_headers(scope, self._codec.encode(decision), secure, max_age)
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
            history, truncated = await anyio.to_thread.run_sync(self._history, consent_id)
            answer = self._record(consent, history, truncated=truncated)
            await respond_json(send, 200, {**answer, "remember": remember}, headers)

    async def _withdraw(self, scope: Scope, send: Send, as_form_next: str | None, locale: str | None = None) -> None:
        """Log a withdrawal under every consent id the browser sent and clear every consent cookie.

        Each id is remembered as withdrawn, so a copy of the old cookie sent again is undecided.
        """
        visit = self._visit(scope)
        now = int(self._clock())
        withdrawn = list(dict.fromkeys(consent_id for consent_id, _ in visit.signed))[:MAX_CONSENT_COOKIES]
        if withdrawn:
            shown_in, shown = self._shown_to(scope, locale)
            records = [
                DecisionRecord(
                    i,
                    now,
                    "withdraw",
                    (NECESSARY,),
                    self._config.policy_version,
                    visit.consent.gpc,
                    method="withdrawal",
                    locale=shown_in,
                    shown=shown,
                )
                for i in withdrawn
            ]
            await anyio.to_thread.run_sync(self._log_all, records)
            for consent_id in withdrawn:
                self._withdrawals.add(consent_id, now)
        secure = scope.get("scheme") == "https"
        headers = self._consent_headers(scope, "", secure, max_age=0)
        headers += self._expire(scope, [name for name, category in visit.sent if category != NECESSARY], secure)
        if as_form_next is not None:
            await respond(send, 303, headers=[(b"location", as_form_next.encode("utf-8")), *headers])
        else:
            await respond_json(send, 200, self._record(self._visits.undecided(visit.consent.gpc), []), headers)

    def _shown_to(self, scope: Scope, page_locale: str | None = None) -> tuple[str, str]:
        """The locale the choice was made in and the digest of the texts shown in it.

        `page_locale` is the visitor page's own (its forms carry it, `/me?lang=ko`); without
        it the banner's, chosen as the banner chooses it, by `Accept-Language`.
        """
        config = self._config
        locale = page_locale if page_locale in config.locales else None
        if locale is None:
            locale = preferred_locale(header(scope, b"accept-language"), config.locales, config.default_locale)
        return locale, self._shown.digest(locale)

    def _log_all(self, records: Iterable[DecisionRecord]) -> None:
        for record in records:
            self.store.log_decision(record)

    def _consent_headers(self, scope: Scope, value: str, secure: bool, max_age: int | None) -> RawHeaders:
        """The consent cookie, after deleting it under every other Domain it could be held with.

        A copy tossed from a sibling subdomain (`Domain=example.com`), or left by an earlier
        `cookie_domain`, would otherwise stand beside the new one and, since conflicting
        consent cookies allow only what all allow, keep the visitor's new choice from
        counting. The deletions come first: a browser that keys host-only and Domain
        cookies alike (RFC 6265 5.3) then still keeps the new cookie.
        """
        headers: RawHeaders = []
        if not self._host_only:
            own = (self._config.cookie_domain or "").lstrip(".")
            others = tuple(d for d in self._domains(scope) if d != own)
            headers += [(b"set-cookie", v) for v in expiring_set_cookies(self._config.cookie_name, others, secure)]
        headers.append((b"set-cookie", self._consent_cookie(value, secure, max_age)))
        return headers

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
        if secure or self._needs_https:
            parts.append("Secure")
        if self._needs_https and not secure and not self._warned_http:
            self._warned_http = True
            # Sent with Secure all the same: behind a TLS proxy whose headers the server does not
            # trust, the browser is on https and takes the cookie; on plain http it refuses it.
            logger.warning(
                "cookie_gate: cookie_name %r is sent with Secure, but a decision came over http: fine behind an"
                " https proxy (let the server trust its headers to silence this), otherwise browsers refuse the"
                " cookie outside localhost and visitors stay undecided",
                self._config.cookie_name,
            )
        return "; ".join(parts).encode("latin-1")

    def _expire(self, scope: Scope, names: Iterable[str], secure: bool) -> RawHeaders:
        """Expire `names`, as many as one response may carry (the page path's limits)."""
        unique = [n for n in dict.fromkeys(names) if n and n != self._config.cookie_name]
        if not unique:
            return []
        return [(b"set-cookie", value) for value in expiries(unique, self._domains(scope), secure)]

    def _domains(self, scope: Scope) -> tuple[str, ...]:
        return self._variants.domains(request_host(header(scope, b"host") or b""))

    # -- input -----------------------------------------------------------------------------

    def _check_same_origin(self, scope: Scope, form: bool = False) -> None:
        """Refuse writes a third-party page could trigger (CSRF): decisions are the visitor's.

        Origin decides when present, then Sec-Fetch-Site; a browser too old for both
        still sends a Referer, whose origin must then be the site's own. A page can
        suppress the Referer (`<meta name="referrer" content="no-referrer">`), so a form
        post, the one write another site can send without a CORS preflight, must carry
        one of the three. JSON and DELETE need a preflight cross-site, so a request of
        theirs with none of them comes from a client no page drives, and is let through.
        """
        origin = header(scope, b"origin")
        host = (header(scope, b"host") or b"").decode("latin-1").strip().lower()
        own = f"{scope.get('scheme', 'http')}://{host}"
        if origin is not None:
            text = origin.decode("latin-1").strip().lower()
            if text == own or text in self._allowed_origins:
                return
            raise BadRequest(403, f"cross-origin request from {text[:200]!r} refused; nothing was changed")
        site = header(scope, b"sec-fetch-site")
        if site is not None:
            if site.strip().lower() != b"same-origin":
                raise BadRequest(403, "cross-site request refused (Sec-Fetch-Site); nothing was changed")
            return
        referer = header(scope, b"referer")
        if referer is not None:
            source = _origin_of(referer)
            if source != own and source not in self._allowed_origins:
                raise BadRequest(403, "cross-site request refused (Referer); nothing was changed")
        elif form:
            raise BadRequest(
                403,
                "form post without Origin, Sec-Fetch-Site or Referer refused: another site could send it;"
                " nothing was changed",
            )

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self._config.max_body_bytes
        declared = header(scope, b"content-length")
        if declared is not None:
            digits = declared.strip(b" \t")
            if not digits.isdigit():  # bytes: ASCII digits only
                raise BadRequest(400, "Content-Length must be a whole number of bytes")
            # Checked by length first: int() refuses thousands of digits, and any such number is too large.
            digits = digits.lstrip(b"0") or b"0"
            if len(digits) > len(str(limit)) or int(digits) > limit:
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
        except RecursionError:
            raise BadRequest(400, "body is not a consent choice: its JSON nests too deeply") from None
        if not isinstance(data, dict):
            raise BadRequest(400, 'body must be a JSON object like {"accept": ["analytics"]}')
        unknown = set(data) - {"accept", "remember", "via"}
        if unknown:
            # ascii(): a field name may hold anything JSON can escape, lone surrogates included.
            raise BadRequest(400, f"unknown field(s): {', '.join(sorted(map(ascii, unknown)))}")
        if "accept" not in data:
            raise BadRequest(400, 'missing "accept": a list of categories, [] to reject all, or "all"')
        remember = data.get("remember", True)
        if not isinstance(remember, bool):
            raise BadRequest(400, '"remember" must be true (keep the choice) or false (ask every visit)')
        via = data.get("via")
        if via is not None and via != "banner":
            raise BadRequest(400, '"via" can only be "banner" (the banner\'s script); leave it out otherwise')
        method = "banner" if via == "banner" else "api"
        accept = data["accept"]
        if accept == "all":
            return _Choice(self._optional, "accept_all", "/", remember, method)
        if not isinstance(accept, list):
            raise BadRequest(400, '"accept" must be a list of categories or "all"')
        accepted = self._categories(accept, '"accept"')
        return _Choice(accepted, _action_for(accepted, self._optional), "/", remember, method)

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
        lang_values = values.get("lang", [])
        locale = lang_values[-1] if lang_values else None
        if locale is not None and locale not in self._config.locales:
            raise BadRequest(400, f"form field lang must be one of {', '.join(self._config.locales)}")
        action = actions[0]
        if action == "accept_all":
            return _Choice(self._optional, action, next_path, remember, "form", locale)
        if action in ("reject_all", "withdraw"):
            return _Choice(frozenset(), action, next_path, remember, "form", locale)
        accepted = self._categories(values.get("accept", []), "accept")
        return _Choice(accepted, _action_for(accepted, self._optional), next_path, remember, "form", locale)

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


def _kept_consent_id(visit: Visit) -> str:
    """The id a new decision is logged under: the visitor's own, or a new one when that is in doubt.

    A cookie tossed from a sibling subdomain beside the visitor's own could otherwise fix
    the id, and whoever tossed it would read the victim's decisions with their copy; so the
    id is kept only when exactly one valid consent cookie, and nothing conflicting, was
    sent. A visitor with no cookie of their own who receives a tossed one cannot be told
    from its owner: only a `__Host-` cookie name (see the README) keeps sibling hosts from
    setting it at all.
    """
    if visit.decision is not None and not visit.conflicting and len(visit.signed) == 1:
        return visit.decision.consent_id
    return new_consent_id()


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


def _origin_of(url: bytes) -> str | None:
    """The lower-cased `scheme://host[:port]` of an absolute URL, None when it has none."""
    try:
        parts = urlsplit(url.decode("latin-1").strip())
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _query(scope: Scope) -> dict[str, str]:
    """The query's fields, the last of each name; a malformed query is an empty one."""
    query: bytes = scope.get("query_string", b"")
    try:
        return dict(parse_qsl(query.decode("latin-1"), max_num_fields=16))
    except ValueError:
        return {}


def _iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _load_static(name: str) -> tuple[bytes, bytes]:
    packaged = resources.files("cookie_gate") / "static" / "banner" / name
    source = Path(__file__).resolve().parent.parent / "static" / "banner" / name
    body = packaged.read_bytes() if packaged.is_file() else source.read_bytes()
    return body, b'"' + hashlib.sha256(body).hexdigest()[:16].encode("ascii") + b'"'
