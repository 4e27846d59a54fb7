"""The words of the visitor's page and of the cookie declaration, Korean and English.

The banner's own words (category headings, "Cookies", "Kept for", "If you refuse",
the buttons) come from `Config.texts`, so an admin's overrides show on these pages
too; the words here are the pages' own. A locale without an entry here falls back to
English key by key, as the banner's texts do.
"""

from __future__ import annotations

from collections.abc import Mapping

VISITOR: Mapping[str, Mapping[str, str]] = {
    "en": {
        "page_title": "Your cookie choice",
        "undecided": "You have not made a choice yet. Until you do, only the cookies allowed below are used.",
        "decided": "You made this choice on {decided}. It holds until {expires}, then you are asked again.",
        "withdrawn": "You withdrew your consent on {withdrawn}.",
        "gpc": "Your browser sends Global Privacy Control: {categories} stay refused unless you accept them here.",
        "gpc_none": "Your browser sends Global Privacy Control; no category here is refused for it alone.",
        "consent_id": "Consent id (quote it if you ask the site about your record)",
        "current": "Current choice",
        "category": "Purpose",
        "state": "Now",
        "allowed": "Allowed",
        "refused": "Refused",
        "change": "Change your choice",
        "withdraw_title": "Withdraw your consent",
        "withdraw_text": "Withdrawing refuses every optional category, deletes their cookies and forgets this choice.",
        "history": "History under this consent id",
        "no_history": "Nothing is logged under this consent id.",
        "when": "When",
        "action": "Action",
        "accepted": "Accepted",
        "policy_version": "Policy version",
        "action_accept_all": "Accepted all",
        "action_reject_all": "Rejected all",
        "action_custom": "Chose",
        "action_withdraw": "Withdrew",
        "yes": "yes",
        "no": "no",
        "language": "Language",
        "json": "This record as JSON",
        "declaration": "Cookie declaration",
        "times": "Times are in {timezone}.",
        "done_saved": "Your choice is saved.",
        "done_withdrawn": "Your consent is withdrawn: cookies of the optional purposes were deleted.",
        "links": "More",
        "more": "Only the latest {shown} decisions are shown; the log keeps the older ones too.",
        "gpc_col": "Global Privacy Control",
    },
    "ko": {
        "page_title": "나의 쿠키 선택",
        "undecided": "아직 선택하지 않으셨습니다. 선택하시기 전까지는 아래에서 허용된 쿠키만 사용합니다.",
        "decided": "{decided}에 선택하셨습니다. 이 선택은 {expires}까지 유지되며, 그 뒤에 다시 여쭙니다.",
        "withdrawn": "{withdrawn}에 동의를 철회하셨습니다.",
        "gpc": "브라우저가 글로벌 개인정보 보호 제어(GPC) 신호를 보내므로, 여기서 허용하지 않는 한 "
        "{categories} 항목은 거부됩니다.",
        "gpc_none": "브라우저가 글로벌 개인정보 보호 제어(GPC) 신호를 보내지만, 그 신호만으로 거부되는 항목은 "
        "없습니다.",
        "consent_id": "동의 식별번호 (기록에 관해 문의하실 때 알려 주세요)",
        "current": "현재 선택",
        "category": "목적",
        "state": "현재",
        "allowed": "허용",
        "refused": "거부",
        "change": "선택 바꾸기",
        "withdraw_title": "동의 철회",
        "withdraw_text": "철회하면 선택 항목을 모두 거부하고, 해당 쿠키를 삭제하며, 이 선택을 지웁니다.",
        "history": "이 동의 식별번호의 기록",
        "no_history": "이 동의 식별번호로 기록된 내용이 없습니다.",
        "when": "일시",
        "action": "내용",
        "accepted": "허용한 목적",
        "policy_version": "방침 버전",
        "action_accept_all": "모두 허용",
        "action_reject_all": "모두 거부",
        "action_custom": "직접 선택",
        "action_withdraw": "철회",
        "yes": "예",
        "no": "아니요",
        "language": "언어",
        "json": "이 기록을 JSON으로 보기",
        "declaration": "쿠키 안내",
        "times": "시각은 {timezone} 기준입니다.",
        "done_saved": "선택을 저장했습니다.",
        "done_withdrawn": "동의를 철회했습니다. 선택 항목의 쿠키는 삭제되었습니다.",
        "links": "더 보기",
        "more": "최근 {shown}건만 보여 드립니다. 그 이전의 기록도 보관되어 있습니다.",
        "gpc_col": "글로벌 개인정보 보호 제어(GPC)",
    },
}

DECLARATION: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Cookies on this site",
        "col_name": "Cookie",
        "col_category": "Category",
        "col_purpose": "Purpose",
        "col_lifetime": "Lifetime",
        "col_party": "Party",
        "col_attributes": "Attributes",
        "col_first_seen": "First seen",
        "col_last_seen": "Last seen",
        "cookies": "Cookies",
        "first_party": "first party",
        "not_seen": "not seen yet",
        "not_declared": "not declared",
        "days": "{days} days",
        "days_or_session": "{days} days, or until the browser closes for a visitor asked on every visit",
        "secure_on_https": "Secure on https",
        "months_from_first": "{months} months from the first visit",
        "purpose_consent": "Remembers your cookie choice: the purposes you accepted, when, the policy version "
        "and a random consent id.",
        "purpose_counter": "Counts your own visits (how many, first and last day) for statistics; it holds no "
        "identifier.",
        "undeclared": "Not declared (blocked)",
        "truncated": "The list of cookies seen was cut short: {reason}.",
        "pipa_title": "Installation, operation and refusal of devices that collect personal information "
        "automatically (cookies)",
        "pipa_what": "This site stores cookies, small text files, in your browser and reads them back on later "
        "visits. The cookies are listed above, with their purposes and lifetimes.",
        "pipa_why": "Why each kind of cookie is used",
        "pipa_refuse": "How to refuse",
        "pipa_banner": "In the cookie banner: choose Reject all, or Choose and switch off any purpose. You can "
        "change or withdraw your choice at any time on {page} or with the Cookie settings button.",
        "pipa_browser": "In your browser: its settings (usually under Privacy or Cookies) can block cookies or "
        "delete those already stored, for this site or for all sites.",
        "pipa_necessary": "Strictly necessary cookies cannot be refused in the banner; blocking them in the browser "
        "may stop parts of the site from working.",
        "pipa_choice": "Your choice is kept for {days} days.",
    },
    "ko": {
        "title": "이 사이트의 쿠키",
        "col_name": "쿠키",
        "col_category": "분류",
        "col_purpose": "목적",
        "col_lifetime": "보관 기간",
        "col_party": "제공 주체",
        "col_attributes": "속성",
        "col_first_seen": "처음 확인",
        "col_last_seen": "마지막 확인",
        "cookies": "쿠키",
        "first_party": "자사(퍼스트 파티)",
        "not_seen": "아직 확인되지 않음",
        "not_declared": "정하지 않음",
        "days": "{days}일",
        "days_or_session": "{days}일 (방문할 때마다 묻기를 고르면 브라우저를 닫을 때까지)",
        "secure_on_https": "https에서는 Secure",
        "months_from_first": "첫 방문부터 {months}개월",
        "purpose_consent": "쿠키 선택을 기억합니다. 허용한 목적, 선택 시각, 방침 버전과 무작위 동의 식별번호를 "
        "담습니다.",
        "purpose_counter": "통계를 위해 본인의 방문 횟수와 첫 방문일, 마지막 방문일을 셉니다. 식별자는 담지 않습니다.",
        "undeclared": "선언되지 않음(차단)",
        "truncated": "확인된 쿠키 목록이 잘렸습니다: {reason}.",
        "pipa_title": "개인정보 자동 수집 장치의 설치·운영 및 거부에 관한 사항",
        "pipa_what": "이 사이트는 이용자의 브라우저에 작은 텍스트 파일인 쿠키를 저장하고 다음 방문 때 읽습니다. "
        "사용하는 쿠키와 그 목적, 보관 기간은 위 표와 같습니다.",
        "pipa_why": "쿠키의 사용 목적",
        "pipa_refuse": "쿠키 저장을 거부하는 방법",
        "pipa_banner": "쿠키 배너에서 '모두 거부'를 누르거나, '직접 선택'에서 원하지 않는 목적을 끌 수 있습니다. "
        "선택은 {page} 또는 '쿠키 설정' 버튼에서 언제든지 바꾸거나 철회할 수 있습니다.",
        "pipa_browser": "웹 브라우저의 설정(보통 '개인정보' 또는 '쿠키' 메뉴)에서 이 사이트나 모든 사이트의 쿠키 "
        "저장을 차단하거나 이미 저장된 쿠키를 삭제할 수 있습니다.",
        "pipa_necessary": "필수 쿠키는 배너에서 거부할 수 없으며, 브라우저에서 차단하면 사이트의 일부 기능이 "
        "작동하지 않을 수 있습니다.",
        "pipa_choice": "선택은 {days}일 동안 보관됩니다.",
    },
}


def words(table: Mapping[str, Mapping[str, str]], locale: str) -> Mapping[str, str]:
    """The words of `locale`, English filling any key it lacks."""
    return {**table["en"], **table.get(locale, {})}
