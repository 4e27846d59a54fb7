"""The banner's words, Korean and English built in.

Admins override any of these and add locales with a `[texts.<locale>]` table; the
keys here are the complete list, so a misspelt key in the config is an error.
`{days}` stands for the consent lifetime in days.
"""

from __future__ import annotations

from collections.abc import Mapping

BUILT_IN: Mapping[str, Mapping[str, str]] = {
    "en": {
        "region": "Cookie consent",
        "title": "Cookies on this site",
        "text": "We use cookies that this site needs to work. With your permission we would also like to use "
        "others, for the purposes listed under Choose. You can change or withdraw your choice at any time.",
        "accept_all": "Accept all",
        "reject_all": "Reject all",
        "choose": "Choose",
        "choose_title": "Choose by purpose",
        "save": "Save my choice",
        "always_on": "Always on",
        "cookies": "Cookies",
        "retention": "Kept for",
        "refusal": "If you refuse",
        "other_cookies": "other cookies of this kind",
        "remember": "How long should we keep this choice?",
        "remember_yes": "Remember it for {days} days",
        "remember_no": "Ask me on every visit",
        "privacy": "Privacy policy",
        "settings": "Cookie settings",
        "settings_title": "Your cookie choice",
        "withdraw": "Withdraw consent",
        "record": "What this site holds about your choice",
    },
    "ko": {
        "region": "쿠키 동의",
        "title": "이 사이트의 쿠키 사용",
        "text": "사이트 운영에 꼭 필요한 쿠키는 항상 사용합니다. 동의하시면 '직접 선택'에 안내된 목적의 쿠키도 "
        "사용합니다. 선택은 언제든지 바꾸거나 철회할 수 있습니다.",
        "accept_all": "모두 허용",
        "reject_all": "모두 거부",
        "choose": "직접 선택",
        "choose_title": "목적별 선택",
        "save": "선택 저장",
        "always_on": "항상 사용",
        "cookies": "쿠키",
        "retention": "보관 기간",
        "refusal": "거부하면",
        "other_cookies": "같은 목적의 다른 쿠키",
        "remember": "이 선택을 얼마나 기억할까요?",
        "remember_yes": "{days}일 동안 기억하기",
        "remember_no": "방문할 때마다 묻기",
        "privacy": "개인정보 처리방침",
        "settings": "쿠키 설정",
        "settings_title": "나의 쿠키 선택",
        "withdraw": "동의 철회",
        "record": "이 사이트가 보관한 나의 선택 기록",
    },
}

KEYS = frozenset(BUILT_IN["en"])
