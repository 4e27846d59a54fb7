"""The visitor's own page, `GET /_cookie_gate/me`: what is held about their choice, and forms to change it.

It shows the choice per category with what each covers (the banner's own texts and
cookie lists), when it was made and until when it holds, the history logged under
the consent id, and plain forms that post to `/consent` (so they work without
JavaScript and meet the same same-origin checks as the banner's form), coming back
here with `next`. Withdrawal is one button, as easy as giving consent (GDPR Art. 7(3)).

Rendered on the server under a strict CSP: no script at all, one inline style allowed
by its hash. Every text is escaped, the configuration's included; the page varies
with the visitor's cookie and is never stored by a cache.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from cookie_gate.asgi import style_csp
from cookie_gate.config import Category, Config, localized
from cookie_gate.consent import NECESSARY, Consent
from cookie_gate.page_texts import VISITOR, words
from cookie_gate.store import DecisionRecord

#: The history shows at most this many decisions, the newest first.
MAX_HISTORY_SHOWN = 200
#: `?done=` after a form post: which confirmation to show (a fixed sentence, so a forged one says nothing).
DONE = ("saved", "withdrawn")
#: Each locale's name for itself, for the language switch.
LANGUAGE_NAMES = {"en": "English", "ko": "한국어"}

_STYLE = (
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI','Apple SD Gothic Neo','Malgun Gothic',sans-serif;"
    "margin:0 auto;max-width:46rem;padding:1rem 1.25rem 3rem;color:#1b1c20;background:#fff}"
    "h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}"
    "a{color:#1d4ed8}nav{display:flex;gap:1rem;flex-wrap:wrap;font-size:.9rem}"
    ".status{padding:.25rem 1rem;border:1px solid #c6c8cf;border-radius:8px}.status p{margin:.5rem 0}"
    ".done{border-color:#15803d;background:#f0fdf4}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:start;padding:.35rem .5rem;"
    "border-bottom:1px solid #dcdde2;vertical-align:top}"
    "fieldset{border:1px solid #c6c8cf;border-radius:8px;margin:0 0 1rem;padding:.5rem 1rem 1rem}"
    "legend{font-weight:600;padding:0 .25rem}.category{border-bottom:1px solid #dcdde2;padding:.75rem 0}"
    ".category:last-child{border-bottom:0}.category label{font-weight:600}"
    ".category input{inline-size:1.1rem;block-size:1.1rem;margin-inline-end:.5rem;vertical-align:-.15rem}"
    ".about{margin:.25rem 0 0 1.6rem;color:#4b4d55;font-size:.95rem}.about p{margin:0}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .75rem;margin:.35rem 0 0}dd{margin:0}"
    ".actions{display:flex;flex-wrap:wrap;gap:.5rem}button{font:inherit;padding:.5rem 1rem;"
    "border-radius:8px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}"
    "button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}"
    ".radio{display:block;margin:.25rem 0}code{overflow-wrap:anywhere}.muted{color:#4b4d55;font-size:.9rem}"
    "@media (prefers-color-scheme:dark){body{background:#16181c;color:#eef0f4}a{color:#8fb0ff}"
    ".about,.muted{color:#b7bac4}th,td,.category{border-color:#3a3d45}.status,fieldset{border-color:#454953}"
    ".done{background:#0f2a19;border-color:#4ade80}button{background:#8fb0ff;border-color:#8fb0ff;color:#10131a}}"
)
CSP = style_csp(_STYLE, "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class HeldRecord:
    """What the gateway holds about one visitor: the choice in force and the log under its id."""

    consent: Consent
    history: Sequence[DecisionRecord]
    #: The id the history is logged under (a withdrawn cookie's, for an undecided visitor who sent one).
    consent_id: str | None
    #: `history` holds only the newest decisions: the log has older ones under the id.
    truncated: bool = False
    #: When the id was last withdrawn, from the log (the history may be too short to show it).
    withdrawn_at: int | None = None


class VisitorPage:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._zone = zoneinfo.ZoneInfo(config.timezone)

    def render(
        self, held: HeldRecord, locale: str, base: str, done: str | None = None, nonce: str | None = None
    ) -> bytes:
        """The page in `locale`; `base` is the mount path as the browser sees it (root path included).

        `nonce` is the site's CSP nonce, if a middleware outside the gateway left one: its
        policy then applies to this page too, and the style must pass both.
        """
        config = self._config
        w = words(VISITOR, locale)
        banner = config.texts[locale]

        def t(key: str) -> str:
            return escape(banner[key].replace("{days}", str(config.consent_lifetime_days)))

        consent = held.consent
        here = f"{base}/me?lang={locale}"
        status = [f"<p>{escape(w['undecided'])}</p>"]
        if consent.decided:
            status = [
                "<p>"
                + escape(w["decided"])
                .replace("{decided}", self._time(consent.decided_at))
                .replace("{expires}", self._time(consent.expires_at))
                + "</p>"
            ]
        withdrawals = [r.decided_at for r in held.history if r.action == "withdraw"]
        if held.withdrawn_at is not None:
            withdrawals.append(held.withdrawn_at)
        withdrawn_at = max(withdrawals, default=None)
        if not consent.decided and withdrawn_at is not None:
            status.append("<p>" + escape(w["withdrawn"]).replace("{withdrawn}", self._time(withdrawn_at)) + "</p>")
        if consent.gpc:
            refused = [
                localized(c.label, locale) or c.name for c in config.categories if c.name in _gpc_refuses(config)
            ]
            gpc = w["gpc"].replace("{categories}", ", ".join(refused)) if refused else w["gpc_none"]
            status.append(f"<p>{escape(gpc)}</p>")
        if held.consent_id:
            status.append(f"<p>{escape(w['consent_id'])}: <code>{escape(held.consent_id)}</code></p>")
        confirmation = ""
        if done in DONE:
            sentence = w["done_" + done]
            confirmation = f'<p class="status done" role="status">{escape(sentence)}</p>'
        current = "".join(
            f'<tr><th scope="row">{escape(localized(c.label, locale) or c.name)}</th>'
            f"<td>{escape(w['allowed'] if consent.allows(c.name) else w['refused'])}</td></tr>"
            for c in config.categories
        )
        categories = "".join(self._category(c, locale, t, consent) for c in config.categories)
        # The choice is logged in the page's locale, with the digest of the texts it showed.
        lang_field = f'<input type="hidden" name="lang" value="{escape(locale, quote=True)}">'
        form_open = (
            f'<form method="post" action="{escape(base, quote=True)}/consent">'
            f'<input type="hidden" name="next" value="{escape(here, quote=True)}&amp;done=saved">{lang_field}'
        )
        remember = (
            f"<fieldset><legend>{t('remember')}</legend>"
            f'<label class="radio"><input type="radio" name="remember" value="yes" checked> {t("remember_yes")}</label>'
            f'<label class="radio"><input type="radio" name="remember" value="no"> {t("remember_no")}</label>'
            "</fieldset>"
        )
        change = (
            f'<section aria-labelledby="change"><h2 id="change">{escape(w["change"])}</h2>{form_open}'
            # Enter in a checkbox submits the first button: make it "save what is shown".
            f"<fieldset><legend>{t('choose_title')}</legend>{categories}</fieldset>{remember}"
            '<div class="actions">'
            f'<button type="submit" name="action" value="save">{t("save")}</button>'
            f'<button type="submit" name="action" value="accept_all">{t("accept_all")}</button>'
            f'<button type="submit" name="action" value="reject_all">{t("reject_all")}</button>'
            "</div></form></section>"
        )
        withdraw = (
            f'<section aria-labelledby="withdraw"><h2 id="withdraw">{escape(w["withdraw_title"])}</h2>'
            f'<form method="post" action="{escape(base, quote=True)}/consent">'
            f'<input type="hidden" name="next" value="{escape(here, quote=True)}&amp;done=withdrawn">{lang_field}'
            f"<p>{escape(w['withdraw_text'])}</p>"
            f'<button type="submit" name="action" value="withdraw">{t("withdraw")}</button></form></section>'
        )
        languages = " ".join(
            f'<a href="?lang={escape(code, quote=True)}" hreflang="{escape(code, quote=True)}" '
            f'lang="{escape(code, quote=True)}"'
            + (' aria-current="page"' if code == locale else "")
            + f">{escape(LANGUAGE_NAMES.get(code, code))}</a>"
            for code in config.locales
        )
        links = [
            f'<a href="{escape(base, quote=True)}/declaration?lang={escape(locale, quote=True)}">'
            f"{escape(w['declaration'])}</a>",
            f'<a href="{escape(base, quote=True)}/consent">{escape(w["json"])}</a>',
        ]
        if config.privacy_policy_url:
            links.insert(0, f'<a href="{escape(config.privacy_policy_url, quote=True)}">{t("privacy")}</a>')
        html = (
            f'<!doctype html><html lang="{escape(locale, quote=True)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(w["page_title"])}</title>'
            f"<style{_nonce(nonce)}>{_STYLE}</style></head><body>"
            f'<nav aria-label="{escape(w["language"], quote=True)}">{languages}</nav>'
            f'<main><h1>{escape(w["page_title"])}</h1>{confirmation}<div class="status">{"".join(status)}</div>'
            f'<section aria-labelledby="current"><h2 id="current">{escape(w["current"])}</h2>'
            f'<table><thead><tr><th scope="col">{escape(w["category"])}</th><th scope="col">{escape(w["state"])}'
            f"</th></tr></thead><tbody>{current}</tbody></table></section>"
            f"{change}{withdraw}{self._history(held, locale, w)}"
            f'<p class="muted">{escape(w["times"]).replace("{timezone}", escape(config.timezone))}</p>'
            f'<nav aria-label="{escape(w["links"], quote=True)}">{"".join(links)}</nav></main></body></html>'
        )
        return html.encode("utf-8")

    def _category(self, category: Category, locale: str, t: Callable[[str], str], consent: Consent) -> str:
        name = escape(category.name, quote=True)
        ident = f"c-{name}"
        label = escape(localized(category.label, locale)) or name
        described = f'aria-describedby="{ident}-about"'
        if category.name == NECESSARY:
            control = f'<input type="checkbox" id="{ident}" checked disabled {described}>'
            label += f" ({t('always_on')})"
        else:
            checked = " checked" if consent.allows(category.name) else ""
            control = f'<input type="checkbox" id="{ident}" name="accept" value="{name}"{checked} {described}>'
        names = ", ".join(escape(c) for c in category.cookies)
        facts = f"<dt>{t('cookies')}</dt><dd>{names + ', ' if names else ''}{t('other_cookies')}</dd>"
        if localized(category.retention, locale):
            facts += f"<dt>{t('retention')}</dt><dd>{escape(localized(category.retention, locale))}</dd>"
        if localized(category.refusal, locale):
            facts += f"<dt>{t('refusal')}</dt><dd>{escape(localized(category.refusal, locale))}</dd>"
        return (
            f'<div class="category">{control}<label for="{ident}">{label}</label>'
            f'<div class="about" id="{ident}-about"><p>{escape(localized(category.description, locale))}</p>'
            f"<dl>{facts}</dl></div></div>"
        )

    def _history(self, held: HeldRecord, locale: str, w: Mapping[str, str]) -> str:
        history = held.history
        title = f'<section aria-labelledby="history"><h2 id="history">{escape(w["history"])}</h2>'
        if not history:
            return f"{title}<p>{escape(w['no_history'])}</p></section>"
        labels = {c.name: localized(c.label, locale) or c.name for c in self._config.categories}
        order = {name: index for index, name in enumerate(labels)}

        def rank(category: str) -> int:
            return order.get(category, len(order))

        shown = list(reversed(history))[:MAX_HISTORY_SHOWN]
        rows = "".join(
            f"<tr><td>{self._time(r.decided_at)}</td>"
            f"<td>{escape(w.get('action_' + r.action, r.action))}</td>"
            f"<td>{escape(', '.join(labels.get(c, c) for c in sorted(r.categories, key=rank)))}</td>"
            f"<td>{escape(r.policy_version)}</td><td>{escape(w['yes'] if r.gpc else w['no'])}</td></tr>"
            for r in shown
        )
        more = ""
        if held.truncated or len(history) > len(shown):
            more = f'<p class="muted">{escape(w["more"].format(shown=len(shown)))}</p>'
        head = "".join(
            f'<th scope="col">{escape(w[k])}</th>' for k in ("when", "action", "accepted", "policy_version", "gpc_col")
        )
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}</section>"

    def _time(self, moment: int | None) -> str:
        if moment is None:
            return ""
        when = datetime.fromtimestamp(moment, UTC)
        local = when.astimezone(self._zone)
        iso = when.isoformat().replace("+00:00", "Z")
        return f'<time datetime="{iso}">{local.strftime("%Y-%m-%d %H:%M")}</time>'


def _gpc_refuses(config: Config) -> frozenset[str]:
    """The categories an undecided visitor who sends GPC has refused: what `VisitResolver` applies.

    Opt-in refuses every optional category until a choice anyway; opt-out refuses marketing.
    """
    optional = frozenset(config.category_names) - {NECESSARY}
    return optional if config.mode == "opt-in" else optional & {"marketing"}


def _nonce(nonce: str | None) -> str:
    return f' nonce="{escape(nonce, quote=True)}"' if nonce else ""
