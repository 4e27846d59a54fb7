"""HTML tag recognition the way a browser's tokenizer does it, one chunk at a time.

`TagScanner` follows the WHATWG tokenizer's rules for what the page rewriter needs to
know: where each tag starts and ends (attribute values quoted with `"` or `'` may hold
`>`; `/` separates attributes; an `=` that starts an attribute name is a name), comments
(`<!-- -->`, `<!-->`, `--!>`), bogus comments and doctypes, and the elements whose content
is text rather than markup: `<script>` (with its `<!--` escapes), `<style>`, `<iframe>`,
`<textarea>`, `<title>`, `<xmp>`, `<noembed>`, `<noframes>`, `<noscript>` (as a browser
that runs scripts sees it) and `<plaintext>`. Inside `<svg>` and `<math>` none of these
holds text; `<![CDATA[` does. It reports the `<script>` and `<iframe>` start tags it
sees and the place for the head snippet, and carries its state from chunk to chunk, so
every byte is looked at a bounded number of times however the page is cut.

What it does not model is the rest of tree construction: foreign content ends at the
matching `</svg>`/`</math>` or at a start tag that breaks out of it (`<div>`, `<p>`, ...),
not at HTML integration points, `<font color>` or an HTML end tag that closes the
`<svg>` from outside; `<select>` (whose old parsing rules ignore `<style>` inside it)
and `<frameset>` are treated like any other element. Pages that rely on those corners
to hide a `<script>` are outside what it recognises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: One attribute-level item of a tag, complete and followed by a byte that settles it: a
#: whitespace run, a `/` that is not the self-closing one, or an attribute with its value.
_ITEM = (
    rb"(?>[\t\n\f\r ]++|/(?=[^>])|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    rb"""(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+(?=[\t\n\f\r >])|(?=>))"""
    rb"|(?=[\t\n\f\r ]*+[^\t\n\f\r =])))"
)
_ITEMS = re.compile(rb"(?:" + _ITEM + rb")*+")
_TAG_REST = rb"[^\t\n\f\r />]*+(?:" + _ITEM + rb")*+/?>"
_COMMENT = rb"<!--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)"
_TEXTUAL = (
    b"script",
    b"style",
    b"iframe",
    b"textarea",
    b"title",
    b"xmp",
    b"noembed",
    b"noframes",
    b"noscript",
    b"plaintext",
)
_BREAKOUT = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    b"listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)
_INTERESTING = frozenset((b"script", b"iframe"))
_FOREIGN = frozenset((b"svg", b"math"))


def _run(start_names: bytes, end_names: bytes | None, cdata: bool) -> re.Pattern[bytes]:
    """Text, comments and every tag not named here, consumed in one match."""
    end = rb"</(?!(?i:" + end_names + rb")[\t\n\f\r />])" if end_names else rb"</"
    bogus = rb"<!(?!--|\[CDATA\[)[^>]*+>" if cdata else rb"<!(?!--)[^>]*+>"
    start = rb"<(?!(?i:" + start_names + rb")[\t\n\f\r />])[A-Za-z]"
    end += rb"[A-Za-z]"
    alternatives = (
        rb"[^<]++",
        # Without a quote before the first '>', that '>' ends the tag: the common case, quickly.
        end + rb"""[^>"']*+>""",
        start + rb"""[^>"']*+>""",
        start + _TAG_REST,
        end + _TAG_REST,
        rb"<(?=[^A-Za-z!/?])",
        _COMMENT,
        bogus,
        rb"<\?[^>]*+>",
        rb"</>",
        rb"</[^A-Za-z>][^>]*+>",
    )
    return re.compile(rb"(?:" + rb"|".join(alternatives) + rb")*+")


_HTML_RUN = _run(b"|".join((*_TEXTUAL, b"svg", b"math")), None, cdata=False)
_FOREIGN_RUN = _run(
    b"|".join((b"script", b"iframe", b"svg", b"math", *sorted(_BREAKOUT))), b"svg|math|p|br", cdata=True
)
#: What may come before `<head>` without deciding where the head snippet goes, and `<head>`.
_PROLOG = re.compile(
    rb"(?:[\t\n\f\r ]++|<!(?!--)[^>]*+>|" + _COMMENT + rb"|<\?[^>]*+>|<(?i:html)(?=[\t\n\f\r />])" + _TAG_REST + rb")*+"
)
_HEAD_TAG = re.compile(rb"<(?i:head)(?=[\t\n\f\r />])" + _TAG_REST)
_NAME_END = re.compile(rb"[\t\n\f\r />]")
_ATTRIBUTE_NAME_END = re.compile(rb"[\t\n\f\r />=]")
_UNQUOTED_END = re.compile(rb"[\t\n\f\r >]")
_SPACES = re.compile(rb"[\t\n\f\r ]*+")
#: One attribute of a complete tag (a value's closing quote is optional for a tag cut short);
#: matches follow each other without gaps, so `finditer` walks the attributes in order.
_ATTRIBUTE_ITEM = re.compile(
    rb"[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"""(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"([^"]*+)"?|'([^']*+)'?|([^\t\n\f\r >"'][^\t\n\f\r >]*+|)))?"""
)
_NON_SPACE = re.compile(rb"[^\t\n\f\r ]")
_SCRIPT = re.compile(rb"<!--|</(?i:script)[\t\n\f\r />]")
_SCRIPT_ESCAPED = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]|<(?i:script)[\t\n\f\r />]")
_SCRIPT_DOUBLE = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]")
_COMMENT_END = re.compile(rb"--!?>")
_BOM = b"\xef\xbb\xbf"

# What the scanner is in the middle of.
_DATA, _TAG, _COMMENT_BODY, _BOGUS, _RAWTEXT, _SCRIPT_DATA, _ESCAPED, _DOUBLE, _PLAINTEXT, _CDATA = range(10)
# Where it is inside a tag (the tokenizer's after-quoted-value state acts as before-attribute-name).
_NAME, _BEFORE, _ATTRIBUTE, _AFTER, _BEFORE_VALUE, _DOUBLE_QUOTED, _SINGLE_QUOTED, _UNQUOTED_VALUE, _SLASH = range(9)
_LOOKBEHIND = {_COMMENT_BODY: 3, _RAWTEXT: 10, _SCRIPT_DATA: 8, _ESCAPED: 8, _DOUBLE: 8, _CDATA: 2}
_NAME_KEPT = 16
_FOREIGN_DEPTH = 64
_RAWTEXT_ENDS: dict[bytes, re.Pattern[bytes]] = {
    name: re.compile(rb"</(?i:" + name + rb")[\t\n\f\r />]") for name in _TEXTUAL
}


@dataclass(frozen=True, slots=True)
class FoundTag:
    """A complete `<script>` or `<iframe>` start tag, by stream offsets (end exclusive)."""

    name: bytes
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a tag: its lowercased name and where name and value sit in the tag."""

    name: bytes
    name_start: int
    name_end: int
    value_start: int
    value_end: int


def attributes(tag: bytes | bytearray, names: frozenset[bytes]) -> list[Attribute]:
    """The tag's attributes with one of these (lowercase) names, duplicates included, in order.

    `tag` is `<name ...>`, possibly cut short. The browser keeps the first of two
    attributes with the same name; callers that read a value take the first too. A
    name without a value has an empty value span at its end.
    """
    lengths = {len(name) for name in names}
    match = _NAME_END.search(tag, 1)
    found: list[Attribute] = []
    for item in _ATTRIBUTE_ITEM.finditer(tag, match.start() if match is not None else len(tag)):
        name_start, name_end = item.span(1)
        if name_end - name_start not in lengths:
            continue
        name = bytes(item[1]).lower()
        if name in names:
            value = item.lastindex or 1
            value_start, value_end = item.span(value) if value != 1 else (name_end, name_end)
            found.append(Attribute(name, name_start, name_end, value_start, value_end))
    return found


class TagScanner:
    """A tokenizer that remembers where it is between chunks.

    Feed it the page chunk by chunk with `scan`; after each call, `found` lists the
    `<script>`/`<iframe>` start tags completed in it, `head_at` is where the head
    snippet goes once that is known, and `hold_from` says from which stream offset the
    bytes must not be sent yet (a tag that may still be rewritten, or a `<` whose tag
    name has not arrived), or -1.
    """

    __slots__ = (
        "_at",
        "_carry",
        "_end_tag",
        "_foreign",
        "_deep",
        "_mode",
        "_name",
        "_name_done",
        "_rawtext",
        "_released",
        "_roots",
        "_tag_at",
        "_tag_state",
        "found",
        "head_at",
        "head_pending",
        "hold_from",
    )

    def __init__(self, head_pending: bool) -> None:
        self._mode = _DATA
        self._carry = b""  # the last bytes of the previous chunk, looked at again with the next
        self._at = 0  # stream offset of the end of what has been fed
        self._tag_at = 0
        self._tag_state = _NAME
        self._end_tag = False
        self._name = b""
        self._name_done = False
        self._released = False
        self._rawtext: re.Pattern[bytes] = _SCRIPT
        self._roots: list[bytes] = []  # the open <svg>/<math> elements, innermost last
        self._deep = 0  # open ones beyond what `_roots` keeps
        self._foreign = False
        #: Whether the head snippet's place is still to be found.
        self.head_pending = head_pending
        self.head_at = -1
        self.hold_from = -1
        self.found: list[FoundTag] = []

    def release(self) -> None:
        """Stop holding the current tag: it is sent as it is, and not reported when it ends."""
        self._released = True
        self.hold_from = -1

    def scan(self, chunk: bytes, final: bool, limit: int) -> bool:
        """Tokenise `chunk`; False when it stopped early, past `limit` and with nothing pending.

        A scan that stopped early has lost its place: the caller uses it no further.
        """
        self.found = []
        self.hold_from = -1
        carry = self._carry
        base = self._at - len(carry)
        self._at += len(chunk)
        buf = carry + chunk if carry else chunk
        self._carry = b""
        pos, end = 0, len(buf)
        while pos < end:
            mode = self._mode
            if mode == _DATA:
                if base + pos > limit and not self.head_pending:
                    return False
                pos = self._data(buf, pos, end, base, final)
                if pos < 0:  # waiting for the rest of a construct that starts at -pos - 1
                    start = -pos - 1
                    self._carry = buf[start:]
                    self.hold_from = base + start
                    return True
            elif mode == _TAG:
                pos = self._tag(buf, pos, end, base)
            elif mode == _COMMENT_BODY:
                match = _COMMENT_END.search(buf, pos)
                if match is None:
                    pos = self._wait(buf, pos, end)
                else:
                    pos, self._mode = match.end(), _DATA
            elif mode == _BOGUS:
                close = buf.find(b">", pos)
                if close < 0:
                    pos = end
                else:
                    pos, self._mode = close + 1, _DATA
            elif mode == _RAWTEXT:
                match = self._rawtext.search(buf, pos)
                if match is None:
                    pos = self._wait(buf, pos, end)
                else:
                    pos, self._mode = match.start(), _DATA
            elif mode == _SCRIPT_DATA:
                match = _SCRIPT.search(buf, pos)
                if match is None:
                    pos = self._wait(buf, pos, end)
                elif buf[match.start() + 1] == 33:  # <!--
                    pos, self._mode = match.start() + 2, _ESCAPED
                else:
                    pos, self._mode = match.start(), _DATA
            elif mode == _ESCAPED:
                match = _SCRIPT_ESCAPED.search(buf, pos)
                if match is None:
                    pos = self._wait(buf, pos, end)
                elif buf[match.start()] == 45:  # -->
                    pos, self._mode = match.end(), _SCRIPT_DATA
                elif buf[match.start() + 1] == 47:  # </script
                    pos, self._mode = match.start(), _DATA
                else:  # <script: its delimiter is text again
                    pos, self._mode = match.end() - 1, _DOUBLE
            elif mode == _DOUBLE:
                match = _SCRIPT_DOUBLE.search(buf, pos)
                if match is None:
                    pos = self._wait(buf, pos, end)
                elif buf[match.start()] == 45:
                    pos, self._mode = match.end(), _SCRIPT_DATA
                else:
                    pos, self._mode = match.end() - 1, _ESCAPED
            elif mode == _CDATA:
                close = buf.find(b"]]>", pos)
                if close < 0:
                    pos = self._wait(buf, pos, end)
                else:
                    pos, self._mode = close + 3, _DATA
            else:  # plaintext: nothing after it is markup
                pos = end
        if self.hold_from < 0 and self._mode == _TAG and not self._released:
            if self._name_done:
                if not self._end_tag and self._name in _INTERESTING:
                    self.hold_from = self._tag_at
            elif self.head_pending or (
                not self._end_tag and (b"script".startswith(self._name) or b"iframe".startswith(self._name))
            ):
                # The name decides what happens before the tag: wait for it (a few bytes at most).
                self.hold_from = self._tag_at
        return True

    def _wait(self, buf: bytes, pos: int, end: int) -> int:
        """Keep the last few bytes, which may begin the marker that ends this state."""
        keep = min(_LOOKBEHIND[self._mode], end - pos)
        self._carry = buf[end - keep :] if keep else b""
        return end

    def _decide_head(self, at: int) -> None:
        self.head_pending = False
        self.head_at = at

    def _data(self, buf: bytes, pos: int, end: int, base: int, final: bool) -> int:
        """One step in the data state; a negative result -(i + 1) means wait from i."""
        if self.head_pending:
            less = buf.find(b"<", pos)
            text_end = end if less < 0 else less
            while pos < text_end and base + pos < len(_BOM) and buf[pos] == _BOM[base + pos]:
                pos += 1  # a byte order mark stays first
            if pos == text_end:
                pos = _PROLOG.match(buf, pos).end()  # type: ignore[union-attr]
                head = _HEAD_TAG.match(buf, pos)
                if head is not None:
                    self._decide_head(base + head.end())
                    return head.end()
                less = buf.find(b"<", pos)
                text_end = end if less < 0 else less
            if pos < text_end:
                text = _NON_SPACE.search(buf, pos, text_end)
                if text is not None:
                    self._decide_head(base + text.start())
            if less < 0:
                return end
            pos = less
        else:
            pos = (_FOREIGN_RUN if self._foreign else _HTML_RUN).match(buf, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                return end
            if buf[pos] != 60:  # a run ends at '<' or at the end
                return pos
        if pos + 1 >= end:
            return end if final else -pos - 1
        following = buf[pos + 1]
        if following in _LETTERS:
            self._open_tag(base + pos, end_tag=False)
            return pos + 1
        if following == 47:  # /
            if pos + 2 >= end:
                return end if final else -pos - 1
            after = buf[pos + 2]
            if after in _LETTERS:
                if self.head_pending:
                    self._decide_head(base + pos)
                self._open_tag(base + pos, end_tag=True)
                return pos + 2
            if after == 62:  # </>
                return pos + 3
            self._mode = _BOGUS
            return pos + 2
        if following == 33:  # !
            if buf.startswith(b"<!--", pos):
                if pos + 6 > end and not final:
                    return -pos - 1
                if buf.startswith(b">", pos + 4):
                    return pos + 5
                if buf.startswith(b"->", pos + 4):
                    return pos + 6
                self._mode = _COMMENT_BODY
                return pos + 4
            if self._foreign:
                if buf.startswith(b"<![CDATA[", pos):
                    self._mode = _CDATA
                    return pos + 9
                if not final and end - pos < 9 and b"<![CDATA[".startswith(buf[pos:end]):
                    return -pos - 1
            if not final and end - pos < 4 and b"<!--".startswith(buf[pos:end]):
                return -pos - 1
            self._mode = _BOGUS
            return pos + 2
        if following == 63:  # ?
            self._mode = _BOGUS
            return pos + 2
        if self.head_pending:
            self._decide_head(base + pos)
        return pos + 1

    def _open_tag(self, at: int, end_tag: bool) -> None:
        self._mode = _TAG
        self._tag_at = at
        self._tag_state = _NAME
        self._end_tag = end_tag
        self._name = b""
        self._name_done = False
        self._released = False

    def _tag(self, buf: bytes, pos: int, end: int, base: int) -> int:
        state = self._tag_state
        while pos < end:
            if state == _BEFORE:
                pos = _ITEMS.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= end:
                    break
                byte = buf[pos]
                pos += 1
                if byte == 62:
                    return self._tag_done(pos, base, self_closing=False)
                state = _SLASH if byte == 47 else _ATTRIBUTE
            elif state == _NAME:
                match = _NAME_END.search(buf, pos)
                stop = end if match is None else match.start()
                if len(self._name) < _NAME_KEPT:
                    self._name += buf[pos : min(stop, pos + _NAME_KEPT)].lower()
                pos = stop
                if match is None:
                    if self.head_pending and not (b"head".startswith(self._name) or b"html".startswith(self._name)):
                        self._decide_head(self._tag_at)
                    break
                self._name_done = True
                if self.head_pending and self._name not in (b"head", b"html"):
                    self._decide_head(self._tag_at)
                byte = buf[pos]
                pos += 1
                if byte == 62:
                    return self._tag_done(pos, base, self_closing=False)
                state = _SLASH if byte == 47 else _BEFORE
            elif state == _ATTRIBUTE:
                match = _ATTRIBUTE_NAME_END.search(buf, pos)
                if match is None:
                    pos = end
                    break
                byte = buf[match.start()]
                pos = match.end()
                if byte == 62:
                    return self._tag_done(pos, base, self_closing=False)
                state = _SLASH if byte == 47 else _BEFORE_VALUE if byte == 61 else _AFTER
            elif state in (_AFTER, _BEFORE_VALUE):
                pos = _SPACES.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= end:
                    break
                byte = buf[pos]
                pos += 1
                if byte == 62:
                    return self._tag_done(pos, base, self_closing=False)
                if state == _AFTER:
                    if byte == 61:
                        state = _BEFORE_VALUE
                    elif byte == 47:
                        state = _SLASH
                    else:  # another attribute: the same as from before-attribute-name
                        pos -= 1
                        state = _BEFORE
                else:
                    state = _DOUBLE_QUOTED if byte == 34 else _SINGLE_QUOTED if byte == 39 else _UNQUOTED_VALUE
            elif state in (_DOUBLE_QUOTED, _SINGLE_QUOTED):
                close = buf.find(b'"' if state == _DOUBLE_QUOTED else b"'", pos)
                if close < 0:
                    pos = end
                    break
                pos, state = close + 1, _BEFORE
            elif state == _UNQUOTED_VALUE:
                match = _UNQUOTED_END.search(buf, pos)
                if match is None:
                    pos = end
                    break
                pos = match.end()
                if buf[match.start()] == 62:
                    return self._tag_done(pos, base, self_closing=False)
                state = _BEFORE
            else:  # after a '/': '>' closes a self-closing tag, anything else starts over
                if buf[pos] == 62:
                    return self._tag_done(pos + 1, base, self_closing=True)
                state = _BEFORE
        self._tag_state = state
        return pos

    def _tag_done(self, pos: int, base: int, self_closing: bool) -> int:
        self._mode = _DATA
        name = self._name if self._name_done else b""
        if self._end_tag:
            if self._foreign:
                roots = self._roots
                if name in (b"p", b"br"):
                    roots.clear()
                    self._deep = 0
                elif name in _FOREIGN:
                    if self._deep:
                        self._deep -= 1
                    elif name in roots:
                        # The browser closes the nearest element of that name and all inside it.
                        del roots[len(roots) - 1 - roots[::-1].index(name) :]
                self._foreign = bool(roots) or self._deep > 0
            return pos
        if self.head_pending and name == b"head":
            self._decide_head(base + pos)
        if name in _INTERESTING and not self._released:
            self.found.append(FoundTag(name, self._tag_at, base + pos))
        if self._foreign:
            if name in _FOREIGN and not self_closing:
                if len(self._roots) < _FOREIGN_DEPTH:
                    self._roots.append(name)
                else:
                    self._deep += 1
            elif name in _BREAKOUT:
                self._roots.clear()
                self._deep = 0
                self._foreign = False
        elif name in _FOREIGN:
            if not self_closing:
                self._roots.append(name)
                self._foreign = True
        elif name == b"script":
            self._mode = _SCRIPT_DATA
        elif name == b"plaintext":
            self._mode = _PLAINTEXT
        elif name in _RAWTEXT_ENDS:
            self._mode = _RAWTEXT
            self._rawtext = _RAWTEXT_ENDS[name]
        return pos


_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
