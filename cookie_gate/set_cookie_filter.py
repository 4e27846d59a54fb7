"""Which of the app's `Set-Cookie` headers a visitor's choice refuses.

An app writes the same few cookie names on response after response, and what follows
the name (values, dates) differs every time, so the category is remembered per name as
the app spelt it: one `find`, one slice and one dict lookup per header. Only the first
time the app sets a name does the classifier see the header (inventory, and the
judgment of an undeclared name), and a name is remembered here only once the
classifier has recorded it, so that names beyond the inventory's budget are still
judged on every header. A change
of category (`unknown_cookies = "suspect"`) forgets everything. Deleting a cookie is
always let through: an app removing a tracker the visitor refused is doing the right thing.
"""

from __future__ import annotations

from collections.abc import Sequence

from cookie_gate.classify import CookieClassifier
from cookie_gate.cookies import is_deletion, set_cookie_name

#: Spellings of names remembered; the app chooses them, but the bound keeps a misbehaving one finite.
MAX_REMEMBERED_NAMES = 8192


class SetCookieFilter:
    __slots__ = ("_classifier", "_filed")

    def __init__(self, classifier: CookieClassifier) -> None:
        self._classifier = classifier
        #: The bytes before the first "=" of a Set-Cookie (no ";" among them) -> the name's category.
        self._filed: dict[bytes, str] = {}
        classifier.on_change.append(self.forget)

    def refuses(self, set_cookie: bytes, allowed: frozenset[str], now: float) -> bool:
        """Whether `set_cookie` must be dropped for a visitor who allows `allowed` (one header: websockets)."""
        return bool(self.refused(((b"set-cookie", set_cookie),), [0], allowed, now))

    def refused(
        self, headers: Sequence[tuple[bytes, bytes]], positions: list[int], allowed: frozenset[str], now: float
    ) -> list[int]:
        """Which of the Set-Cookies at `positions` in `headers` must be dropped (what a response start asks)."""
        filed = self._filed
        dropped = []
        for index in positions:
            value = headers[index][1]
            at = value.find(b"=")
            category = filed.get(value[:at]) if at > 0 else None
            if category is None:
                if self._refuses_unfiled(value, allowed, now):
                    dropped.append(index)
                filed = self._filed  # a judgment may have changed categories: `forget` rebinds it
            elif category not in allowed and not is_deletion(value):
                dropped.append(index)
        return dropped

    def forget(self) -> None:
        """Drop every remembered category (a judgment changed one; called from any thread)."""
        self._filed = {}

    def _refuses_unfiled(self, set_cookie: bytes, allowed: frozenset[str], now: float) -> bool:
        if is_deletion(set_cookie):
            return False
        classifier = self._classifier
        name = set_cookie_name(set_cookie)
        verdicts = classifier.recorded_set
        if name not in verdicts:
            classifier.was_set(name, set_cookie, now)
        # Taken before the category is read: a `forget` meanwhile (another thread's judgment) leaves this
        # dict behind, so a category read before it can never outlive it.
        filed = self._filed
        category = classifier.category(name)
        spelt = set_cookie.partition(b"=")[0]
        if (
            name in verdicts  # the app's own verdict wins over any from requests, and is never forgotten
            and spelt
            and b";" not in spelt
            and len(spelt) < len(set_cookie)
        ):
            if len(filed) >= MAX_REMEMBERED_NAMES:
                self._filed = filed = {}
            filed[spelt] = category
        return category not in allowed
