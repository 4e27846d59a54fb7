"""Server-rendered banner markup, in the visitor's language.

Undecided visitors get the banner: a plain `<form method="post">` whose buttons work
without JavaScript, "Accept all" and "Reject all" as equal buttons beside "Choose",
which opens the second layer (a `<details>` element, so no script is needed either).
Decided visitors get a small "Cookie settings" control that reopens the same form
with their current choice, plus one-click withdrawal.

Rendering happens once per (locale, URL prefix, choice); per request only the
escaped `next` path and the CSP nonce are spliced in. Non-ASCII text is written as
character references, so the bytes are ASCII and fit any ASCII-compatible charset.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from html import escape

from cookie_gate.config import Category, Config, localized
from cookie_gate.consent import NECESSARY, Consent

_NEXT, _NONCE = "\x00N\x00", "\x00C\x00"
_SLOTS = re.compile("\x00([NC])\x00")

#: Primary language subtags written right to left: the banner gets `dir="rtl"` for them.
RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ku", "ps", "sd", "ug", "ur", "yi"})

#: Google Consent Mode v2 signals each category grants.
CONSENT_MODE_SIGNALS: Mapping[str, tuple[str, ...]] = {
    "analytics": ("analytics_storage",),
    "marketing": ("ad_storage", "ad_user_data", "ad_personalization"),
    "preferences": ("functionality_storage", "personalization_storage"),
}


#: Accept-Language values are cached up to this length: 512 of them hold well under a MB.
MAX_CACHED_LANGUAGE = 256


def preferred_locale(accept_language: bytes | None, locales: tuple[str, ...], default: str) -> str:
    """The best of the site's locales for an `Accept-Language` header (q-values honoured)."""
    if not accept_language:
        return default
    if len(accept_language) > MAX_CACHED_LANGUAGE:
        return _preferred_locale.__wrapped__(accept_language, locales, default)
    return _preferred_locale(accept_language, locales, default)


@functools.lru_cache(maxsize=512)
def _preferred_locale(accept_language: bytes, locales: tuple[str, ...], default: str) -> str:
    best, best_q = default, 0.0
    for position, item in enumerate(accept_language.decode("latin-1").split(",")):
        tag, _, params = item.partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # earlier entries win ties
        for candidate in (tag, tag.partition("-")[0]):
            if candidate in locales and q > best_q:
                best, best_q = candidate, q
                break
    return best


class BannerRenderer:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._parts = functools.lru_cache(maxsize=256)(self._render)

    def snippet(self, locale: str, url_prefix: str, next_path: str, consent: Consent, nonce: str | None) -> bytes:
        """The markup for one page: the banner, or the settings control of a decided visitor."""
        parts = self._parts(locale, url_prefix, consent.decided, consent.categories)
        values = {"N": _ascii(escape(next_path, quote=True)), "C": _nonce_attribute(nonce)}
        return b"".join(values[p.decode()] if i % 2 else p for i, p in enumerate(parts))

    def consent_mode(self, consent: Consent, nonce: str | None) -> bytes:
        """Google Consent Mode's `default` with the visitor's real state, for right after `<head>`."""
        return self._consent_mode(consent.categories).replace(b"\x00C\x00", _nonce_attribute(nonce))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one renderer per middleware; keyed by the allowed set
    def _consent_mode(self, allowed: frozenset[str]) -> bytes:
        state = {"security_storage": "granted"}
        for category, signals in CONSENT_MODE_SIGNALS.items():
            for signal in signals:
                state[signal] = "granted" if category in allowed else "denied"
        script = (
            f"<script{_NONCE}>window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments);}}"
            f'gtag("consent","default",{json.dumps(state, sort_keys=True, separators=(",", ":"))});</script>'
        )
        return script.encode("ascii")

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, locale: str, url_prefix: str, decided: bool, allowed: frozenset[str]) -> list[bytes]:
        config = self._config
        texts = config.texts[locale]
        base = escape(url_prefix + config.mount_path, quote=True)

        def t(key: str) -> str:
            return escape(texts[key].replace("{days}", str(config.consent_lifetime_days)))

        assets = (
            f'<link rel="stylesheet" href="{base}/banner.css"{_NONCE}>'
            f'<script defer src="{base}/banner.js"{_NONCE}></script>'
        )
        categories = "".join(
            self._category(c, locale, t, checked=decided and c.name in allowed) for c in config.categories
        )
        remember = (
            f'<fieldset class="cookie-gate__remember"><legend>{t("remember")}</legend>'
            f'<label><input type="radio" name="remember" value="yes" checked> {t("remember_yes")}</label>'
            f'<label><input type="radio" name="remember" value="no"> {t("remember_no")}</label></fieldset>'
        )
        save = f'<button type="submit" class="cookie-gate__button" name="action" value="save">{t("save")}</button>'
        # banner.js shows withdrawal in the banner once a choice was made without a reload.
        withdraw = f'name="action" value="withdraw">{t("withdraw")}</button>'
        withdraw_hidden = f'<button type="submit" class="cookie-gate__button" hidden {withdraw}'
        withdraw = f'<button type="submit" class="cookie-gate__button" {withdraw}'
        privacy = ""
        if config.privacy_policy_url:
            privacy = f' <a href="{escape(config.privacy_policy_url, quote=True)}">{t("privacy")}</a>'
        # Implicit submission (Enter on a switch or radio) clicks the form's first submit button: make
        # that one "save what is shown" rather than "Accept all".
        form_open = (
            f'<form class="cookie-gate__form" method="post" action="{base}/consent">'
            f'<input type="hidden" name="next" value="{_NEXT}">'
            '<button type="submit" name="action" value="save" hidden tabindex="-1" aria-hidden="true"></button>'
        )
        language = escape(locale, quote=True)
        direction = "rtl" if locale.partition("-")[0].lower() in RTL_LANGUAGES else "ltr"
        state = " ".join(sorted(allowed))
        # What banner.js needs and only the server knows: where the endpoints are, what is allowed
        # now, and how and where to offer "Cookie settings" after a choice made without a reload.
        dialog = (
            f'role="dialog" aria-modal="false" tabindex="-1" lang="{language}" dir="{direction}" '
            f'data-mount="{base}" data-allowed="{state}" data-settings-label="{t("settings")}" '
            f'data-settings-placement="{config.settings_button}"'
        )
        if not decided:
            html = (
                f'{assets}<div id="cookie-gate" class="cookie-gate" {dialog} aria-labelledby="cookie-gate-title" '
                f'aria-describedby="cookie-gate-text" data-cookie-gate="banner">{form_open}'
                f'<h2 id="cookie-gate-title" class="cookie-gate__title">{t("title")}</h2>'
                f'<p id="cookie-gate-text" class="cookie-gate__text">{t("text")}{privacy}</p>'
                '<div class="cookie-gate__actions">'
                f'<button type="submit" class="cookie-gate__button" name="action" value="accept_all">'
                f"{t('accept_all')}</button>"
                f'<button type="submit" class="cookie-gate__button" name="action" value="reject_all">'
                f"{t('reject_all')}</button>"
                f'<details class="cookie-gate__choose"><summary class="cookie-gate__button">{t("choose")}</summary>'
                f'<div class="cookie-gate__layer"><h3 class="cookie-gate__subtitle">{t("choose_title")}</h3>'
                f'<ul class="cookie-gate__categories">{categories}</ul>{remember}'
                f'<div class="cookie-gate__actions">{save}{withdraw_hidden}</div></div></details>'
                "</div></form></div>"
            )
        else:
            placement = config.settings_button
            html = (
                f'{assets}<details id="cookie-gate-settings" data-cookie-gate="settings" lang="{language}" '
                f'dir="{direction}" class="cookie-gate-settings cookie-gate-settings--{placement}">'
                f'<summary class="cookie-gate-settings__button">{t("settings")}</summary>'
                f'<div id="cookie-gate-panel" class="cookie-gate cookie-gate--panel" {dialog} '
                f'aria-labelledby="cookie-gate-title">{form_open}'
                f'<h2 id="cookie-gate-title" class="cookie-gate__title">{t("settings_title")}</h2>'
                f'<ul class="cookie-gate__categories">{categories}</ul>{remember}'
                f'<div class="cookie-gate__actions">{save}{withdraw}</div>'
                f'<p class="cookie-gate__text"><a href="{base}/me">{t("record")}</a>{privacy}</p>'
                "</form></div></details>"
            )
        return [part.encode("ascii", "xmlcharrefreplace") for part in _SLOTS.split(html)]

    def _category(self, category: Category, locale: str, t: Callable[[str], str], checked: bool) -> str:
        def text(field: Mapping[str, str]) -> str:
            return escape(localized(field, locale))

        name = escape(category.name, quote=True)
        ident = f"cookie-gate-c-{name}"
        label = text(category.label) or name
        described = f'aria-describedby="{ident}-about"'
        if category.name == NECESSARY:
            control = (
                f'<input class="cookie-gate__switch" type="checkbox" role="switch" id="{ident}" checked disabled '
                f"{described}>"
            )
            label += f' <span class="cookie-gate__note">({t("always_on")})</span>'
        else:
            state = " checked" if checked else ""
            control = (
                f'<input class="cookie-gate__switch" type="checkbox" role="switch" id="{ident}" name="accept" '
                f'value="{name}"{state} {described}>'
            )
        names = ", ".join(escape(c) for c in category.cookies)
        cookies = f"{names}, {t('other_cookies')}" if names else t("other_cookies")
        facts = f"<dt>{t('cookies')}</dt><dd>{cookies}</dd>"
        if text(category.retention):
            facts += f"<dt>{t('retention')}</dt><dd>{text(category.retention)}</dd>"
        if text(category.refusal):
            facts += f"<dt>{t('refusal')}</dt><dd>{text(category.refusal)}</dd>"
        return (
            f'<li class="cookie-gate__category">{control}<label for="{ident}">{label}</label>'
            f'<div id="{ident}-about" class="cookie-gate__about"><p class="cookie-gate__purpose">'
            f'{text(category.description)}</p><dl class="cookie-gate__facts">{facts}</dl></div></li>'
        )


def _nonce_attribute(nonce: str | None) -> bytes:
    if not nonce:
        return b""
    return b' nonce="' + escape(nonce, quote=True).encode("ascii", "xmlcharrefreplace") + b'"'


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "xmlcharrefreplace")
