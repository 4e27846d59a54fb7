"""Server-rendered banner markup, in the visitor's language.

The banner is a plain `<form method="post">`, so it works without JavaScript; the
second layer is a `<details>` element that opens without script. Each locale's
markup is rendered once; per request only the escaped `next` path is spliced in.
Non-ASCII text is written as character references so the bytes are ASCII and fit
any ASCII-compatible page charset.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from html import escape

from cookie_gate.config import LOCALES, Config
from cookie_gate.consent import NECESSARY

DEFAULT_LOCALE = "en"

TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "region": "Cookie consent",
        "title": "Cookies on this site",
        "text": "We use necessary cookies to make this site work. With your permission we would also like to set "
        "others, described under Choose. You can change your mind at any time.",
        "accept_all": "Accept all",
        "reject_all": "Reject all",
        "choose": "Choose",
        "save": "Save my choice",
        "always_on": "always on",
        "privacy": "Privacy policy",
    },
    "ko": {
        "region": "쿠키 동의",
        "title": "이 사이트의 쿠키",
        "text": "사이트 작동에 필요한 쿠키는 항상 사용합니다. 동의하시면 '선택하기'에 설명된 다른 쿠키도 "
        "사용합니다. 언제든지 선택을 바꿀 수 있습니다.",
        "accept_all": "모두 허용",
        "reject_all": "모두 거부",
        "choose": "선택하기",
        "save": "선택 저장",
        "always_on": "항상 사용",
        "privacy": "개인정보 처리방침",
    },
}


def preferred_locale(accept_language: bytes | None) -> str:
    """The best built-in locale for an `Accept-Language` header (q-values honoured)."""
    if not accept_language:
        return DEFAULT_LOCALE
    return _preferred_locale(accept_language)


@functools.lru_cache(maxsize=512)
def _preferred_locale(accept_language: bytes) -> str:
    best, best_q = DEFAULT_LOCALE, 0.0
    for position, item in enumerate(accept_language.decode("latin-1").split(",")):
        tag, _, params = item.partition(";")
        language = tag.strip().lower().partition("-")[0]
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # earlier entries win ties
        if language in LOCALES and q > best_q:
            best, best_q = language, q
    return best


class BannerRenderer:
    """Renders the first and second layer once per (locale, URL prefix)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._parts = functools.lru_cache(maxsize=64)(self._render_parts)
        self.snippet = functools.lru_cache(maxsize=1024)(self._snippet)

    def _snippet(self, locale: str, url_prefix: str, next_path: str) -> bytes:
        head, tail = self._parts(locale, url_prefix)
        return b"".join((head, _ascii(escape(next_path, quote=True)), tail))

    def _render_parts(self, locale: str, url_prefix: str) -> tuple[bytes, bytes]:
        texts = TEXTS[locale]
        base = escape(url_prefix + self._config.mount_path, quote=True)
        rows = []
        for category in self._config.categories:
            label = escape(category.label.get(locale, category.name))
            description = escape(category.description.get(locale, ""))
            if category.name == NECESSARY:
                control = f'<input type="checkbox" checked disabled> {label} ({escape(texts["always_on"])})'
            else:
                control = f'<input type="checkbox" name="accept" value="{category.name}"> {label}'
            rows.append(
                f'<li class="cookie-gate__category"><label>{control}</label>'
                f'<p class="cookie-gate__purpose">{description}</p></li>'
            )
        privacy = ""
        if self._config.privacy_policy_url:
            href = escape(self._config.privacy_policy_url, quote=True)
            privacy = f' <a class="cookie-gate__privacy" href="{href}">{escape(texts["privacy"])}</a>'
        head = (
            f'<div id="cookie-gate" class="cookie-gate" role="region" lang="{locale}" '
            f'aria-label="{escape(texts["region"])}">'
            f'<link rel="stylesheet" href="{base}/banner.css"><script defer src="{base}/banner.js"></script>'
            f'<form class="cookie-gate__form" method="post" action="{base}/consent">'
            f'<p class="cookie-gate__title">{escape(texts["title"])}</p>'
            f'<p class="cookie-gate__text">{escape(texts["text"])}{privacy}</p>'
            '<input type="hidden" name="next" value="'
        )
        tail = (
            '"><div class="cookie-gate__buttons">'
            f'<button type="submit" name="action" value="accept_all">{escape(texts["accept_all"])}</button>'
            f'<button type="submit" name="action" value="reject_all">{escape(texts["reject_all"])}</button>'
            "</div>"
            f'<details class="cookie-gate__choose"><summary>{escape(texts["choose"])}</summary>'
            f'<ul class="cookie-gate__categories">{"".join(rows)}</ul>'
            f'<button type="submit" name="action" value="save">{escape(texts["save"])}</button>'
            "</details></form></div>"
        )
        return _ascii(head), _ascii(tail)


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "xmlcharrefreplace")
