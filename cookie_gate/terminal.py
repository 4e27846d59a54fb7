"""Text a visitor controls, made safe to print on an admin's terminal or page.

Cookie names, paths, referrers and browser names all come from requests. Printed raw,
`x\\x1b[2J\\x1b[31mfake` clears the admin's screen and forges what follows, a `\\r` or
`\\n` forges a line, and a bidi override (U+202E) reverses what the admin reads. So
every character `str.isprintable()` refuses (C0 and C1 controls, DEL, format characters
such as bidi controls and zero-width spaces, line and paragraph separators, surrogates,
unassigned code points, every space but the plain one) is written as the escape Python
would write (`\\x1b`, `\\u202e`), and a backslash as `\\\\`, so an escape in the output
always means the gateway wrote it. Everything else, Hangul included, prints as it is.

A CSV cell is opened by a spreadsheet as well: one that starts with `=`, `+`, `-`, `@`, a
tab, a carriage return or a line feed runs as a formula (CSV injection, OWASP), so
`formula_safe` puts a `'` before it, and before one that starts with `'` itself, so a
reader gets the exact value back by dropping one leading `'`. Every CSV the gateway
writes (the dashboard's exports, the consent log, the cookie declaration) goes through
these two helpers.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every character a terminal could act on written as a visible escape."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else "\\\\" if c == "\\" else ascii(c)[1:-1] for c in text)


def printable_json(text: str) -> str:
    """JSON text (as `json.dumps(..., ensure_ascii=False)` writes it) meaning the same, safe to print.

    json.dumps escapes C0 controls, quotes and backslashes inside strings, so what is left to
    escape can only stand inside a string, where `\\uXXXX` means the same character.
    """
    return "\n".join(line if line.isprintable() else "".join(map(_json_character, line)) for line in text.split("\n"))


def _json_character(character: str) -> str:
    if character.isprintable():
        return character
    code = ord(character)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP, JSON spells a character as its UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


#: What a spreadsheet runs as a formula at the start of a cell, and the `'` that marks one made safe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "'")


def formula_safe(text: str) -> str:
    """Already printable `text` as a spreadsheet shows it, never as a formula it would run."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def spreadsheet_cell(text: str) -> str:
    """`text` safe for a terminal (`printable`) and then for a spreadsheet (`formula_safe`)."""
    return formula_safe(printable(text))
