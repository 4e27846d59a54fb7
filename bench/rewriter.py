"""The page rewriter on pathological pages, per MB, next to an ordinary page cut the same way.

Run from the repository root::

    python -m bench.rewriter [--size 1048576] [--small 65536] [--repeats 3] [--rewriter FILE]

Every case feeds one page through `PageRewriter` (Consent Mode head snippet, banner,
prior blocking for a visitor who accepted nothing but `necessary`) and checks what comes
out. Cases, each beside the ordinary page cut into the same chunks:

* ordinary: the benchmark's 20 KB article page repeated to size, a few tagged
  scripts at the top, in one chunk and in 16 KiB chunks; in one chunk it is only
  tokenised as far as its last tagged script, so the baseline for one-chunk cases is the
  same page with one more tagged script at the very end;
* `<script ` openers: over and over, closed by one tagged script at the end (one
  giant tag), or after a tagged script and never closed;
* many heads: `<head ` over and over, never closed;
* no `</body>`: the ordinary page without its closing tags;
* one-byte chunks (at `--small` bytes, since a million calls measure the calls): the
  ordinary page, and one tagged start tag longer than `MAX_HELD_TAG`.

`×` is the case's time per MB over the ordinary page's with the same chunking.
`--rewriter FILE` loads `PageRewriter` from another copy of `inject.py` (an older
revision, say) to measure before and after with the same pages.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.apps import PAGE

HEAD = b"<script>window.dataLayer=window.dataLayer||[];</script>"
BANNER = b'<div id="cookie-gate">banner</div>'
ALLOWED = frozenset({"necessary"})
TAGGED = b'<script data-cookie-category="analytics" src="/analytics.js"></script>'


class Rewriter(Protocol):
    def feed(self, chunk: bytes, more_body: bool) -> bytes: ...


Factory = Callable[[bytes, bytes, "frozenset[str] | None"], Rewriter]


@dataclass(frozen=True)
class Case:
    name: str
    page: bytes
    chunk: int  # bytes per chunk; 0 for the whole page at once
    baseline: str  # the ordinary case with the same chunking


def ordinary(size: int, closed: bool = True, tail: bytes = b"") -> bytes:
    page = PAGE.encode()
    head, _, rest = page.partition(b"<body")
    body, _, _ = rest.partition(b"</body>")
    article = b"<body" + body
    parts = [head.replace(b"</head>", TAGGED * 3 + b"</head>")]
    room = size - 16 - len(tail)
    while sum(map(len, parts)) < room:
        parts.append(article[: room - sum(map(len, parts))])
    return b"".join(parts) + tail + (b"</body></html>" if closed else b"")


def repeated(opener: bytes, size: int, tail: bytes = b"") -> bytes:
    return opener * ((size - len(tail)) // len(opener)) + tail


def cases(size: int, small: int) -> list[Case]:
    long_tag = b'<script data-cookie-category="analytics" data-x="' + b"x" * small + b'"></script>'
    whole = "ordinary + tagged script at the end"
    return [
        Case(whole, ordinary(size, tail=TAGGED), 0, whole),
        Case("ordinary, one chunk", ordinary(size), 0, whole),
        Case("ordinary, 16 KiB chunks", ordinary(size), 16384, "ordinary, 16 KiB chunks"),
        Case("<script openers closed at the end", repeated(b"<script ", size, TAGGED), 0, whole),
        Case("unclosed <script openers, one chunk", TAGGED + repeated(b"<script ", size), 0, whole),
        Case(
            "unclosed <script openers, 16 KiB", TAGGED + repeated(b"<script ", size), 16384, "ordinary, 16 KiB chunks"
        ),
        Case("many <head openers, one chunk", repeated(b"<head ", size), 0, whole),
        Case("no </body>, one chunk", ordinary(size, closed=False, tail=TAGGED), 0, whole),
        Case("no </body>, 16 KiB chunks", ordinary(size, closed=False), 16384, "ordinary, 16 KiB chunks"),
        Case("ordinary, 1-byte chunks", ordinary(small), 1, "ordinary, 1-byte chunks"),
        Case("one long tagged tag, 1-byte chunks", long_tag, 1, "ordinary, 1-byte chunks"),
    ]


def run(factory: Factory, case: Case) -> bytes:
    rewriter = factory(HEAD, BANNER, ALLOWED)
    page, size = case.page, case.chunk
    if size == 0:
        return rewriter.feed(page, False)
    out = [rewriter.feed(page[i : i + size], True) for i in range(0, len(page), size)]
    out.append(rewriter.feed(b"", False))
    return b"".join(out)


def check(case: Case, out: bytes) -> None:
    if BANNER not in out or HEAD not in out:
        raise SystemExit(f"{case.name}: the snippets are missing")
    if b"data-cookie-category" in case.page and b'<script type="text/plain"' not in out:
        raise SystemExit(f"{case.name}: the tagged script was not neutralised")


def load(path: str | None) -> Factory:
    if path is None:
        from cookie_gate.inject import PageRewriter

        return PageRewriter
    spec = importlib.util.spec_from_file_location("rewriter_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PageRewriter  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes per page (default 1 MiB)")
    parser.add_argument("--small", type=int, default=1 << 16, help="bytes per page fed one byte at a time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rewriter", help="an inject.py to load PageRewriter from (default: this checkout's)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args(argv)
    factory = load(args.rewriter)
    per_mb: dict[str, float] = {}
    print(f"PageRewriter from {args.rewriter or 'cookie_gate.inject'}; median of {args.repeats} runs")
    print(f"{'case':40s} {'bytes':>9s} {'ms':>10s} {'ms/MB':>10s} {'×':>7s}")
    for case in cases(args.size, args.small):
        if args.only and args.only not in case.name and case.name != case.baseline:
            continue
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            out = run(factory, case)
            timings.append(time.perf_counter() - started)
        check(case, out)
        elapsed = statistics.median(timings)
        per_mb[case.name] = elapsed * 1e3 / (len(case.page) / (1 << 20))
        ratio = per_mb[case.name] / per_mb[case.baseline] if case.baseline in per_mb else float("nan")
        print(f"{case.name:40s} {len(case.page):9d} {elapsed * 1e3:10.2f} {per_mb[case.name]:10.2f} {ratio:7.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
