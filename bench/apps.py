"""The one Starlette app every benchmark measures, and the four stacks around it.

The in-process loop and the uvicorn runs must time *the same* app, or a ratio
would compare two programs instead of one program with and without a layer. So
the routes, the 20 KB page, the cookies the app sets and the visitors' request
headers all live here, and `create_app` (a uvicorn factory) picks the stack from
an environment variable, because a server subprocess cannot take Python arguments.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cookie_gate import CookieGateMiddleware

Stack = Literal["bare", "floor", "gate", "session"]
STACKS: Final[tuple[Stack, ...]] = ("bare", "floor", "gate", "session")
ROUTES: Final[tuple[str, ...]] = ("/json", "/page", "/cookies")
#: Route -> how much slower than bare the gate may be (the product goals).
GOALS: Final[dict[str, float]] = {"/json": 1.10, "/page": 1.25, "/cookies": 1.10}

SECRET_KEY: Final = "bench-secret-key-0123456789"
HOST: Final = "www.example.com"
STACK_ENV: Final = "COOKIE_GATE_BENCH_STACK"
STORE_ENV: Final = "COOKIE_GATE_BENCH_STORE"
#: A byte string only the banner markup contains; its presence proves injection ran.
BANNER_MARKER: Final = b'id="cookie-gate"'

#: What a current desktop Chrome sends on a navigation, minus the cookie header.
BROWSER_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("host", HOST),
    ("connection", "keep-alive"),
    (
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
    ),
    ("accept-language", "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("upgrade-insecure-requests", "1"),
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
)
#: A returning visitor's analytics cookie, set before the gate was deployed.
GA_COOKIE: Final = "_ga=GA1.2.1234567890.1700000000"

#: The cookies `/cookies` sets; the gate files them under these categories (printed at start-up).
APP_COOKIES: Final[tuple[tuple[str, str, int | None], ...]] = (
    ("session", "eyJ1c2VyX2lkIjogNDJ9.ZxYzAb.Qk3n2Lw0cXhR1sV7mT9pD4fG", None),
    ("csrftoken", "Vq7Xk2mN9pR4sT6wY8zB1cD3fG5hJ0lK", 31449600),
    ("_ga", "GA1.2.1234567890.1700000000", 63072000),
    ("_fbp", "fb.1.1700000000000.1234567890", 7776000),
    ("lang", "ko", 31536000),
)


def _page() -> str:
    """A realistic ~20 KB article page: head full of meta/link/script tags, nav, prose, a table, footer.

    It ends in `</body></html>` with one `</body>`, like templates do, so the gate's
    fast path (a plain `rfind`) is what gets measured, not a pathological search.
    """
    head = [
        "<!DOCTYPE html>",
        '<html lang="ko">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>봄 시즌 신상품 안내 | Example Shop</title>",
        '<meta name="description" content="Example Shop의 봄 시즌 신상품과 배송, 교환 안내입니다.">',
        '<meta property="og:title" content="봄 시즌 신상품 안내">',
        '<meta property="og:type" content="article">',
        '<meta property="og:url" content="https://www.example.com/articles/spring-collection">',
        '<meta property="og:image" content="https://cdn.example.com/img/spring-hero-1200x630.jpg">',
        '<link rel="canonical" href="https://www.example.com/articles/spring-collection">',
        '<link rel="preconnect" href="https://cdn.example.com" crossorigin>',
        '<link rel="preload" href="/static/fonts/pretendard-400.woff2" as="font" type="font/woff2" crossorigin>',
        '<link rel="stylesheet" href="/static/css/site.3f9a1c2e.css">',
        '<link rel="icon" href="/favicon.ico" sizes="any">',
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"Article",'
        '"headline":"봄 시즌 신상품 안내","datePublished":"2025-03-02","author":{"@type":"Organization",'
        '"name":"Example Shop"}}</script>',
        "</head>",
        '<body class="page page--article">',
        '<a class="skip-link" href="#main">본문 바로가기</a>',
        '<header class="site-header"><a class="logo" href="/"><img src="/static/img/logo.svg" alt="Example Shop" '
        'width="120" height="32"></a>',
        '<nav class="site-nav" aria-label="주 메뉴"><ul>',
    ]
    for slug, label in (
        ("new", "신상품"),
        ("women", "여성"),
        ("men", "남성"),
        ("kids", "아동"),
        ("home", "홈·리빙"),
        ("beauty", "뷰티"),
        ("sale", "세일"),
        ("brands", "브랜드"),
        ("events", "이벤트"),
        ("help", "고객센터"),
    ):
        head.append(f'<li><a href="/category/{slug}" data-track="nav-{slug}">{label}</a></li>')
    head += [
        "</ul></nav>",
        '<form class="search" action="/search" role="search"><input type="search" name="q" '
        'placeholder="상품 검색" aria-label="상품 검색"><button type="submit">검색</button></form>',
        "</header>",
        '<main id="main" class="article"><article>',
        "<h1>봄 시즌 신상품 안내</h1>",
        '<p class="byline">Example Shop 편집팀 · <time datetime="2025-03-02">2025년 3월 2일</time></p>',
    ]
    prose = (
        "<p>Spring arrives early this year, and so does our new collection: light jackets in washed cotton, "
        "linen shirts cut a little wider than last season, and knitwear in colours we picked from the first "
        "market flowers. Every piece is made in small batches, so sizes sell out; we restock on Mondays.</p>"
        "<p>올해는 봄이 일찍 찾아왔습니다. 가벼운 코튼 재킷과 여유 있는 핏의 린넨 셔츠, 봄꽃에서 고른 색의 니트를 "
        "만나 보세요. 모든 상품은 소량 생산되어 사이즈가 빨리 품절될 수 있으며, 매주 월요일에 재입고됩니다.</p>"
    )
    row = (
        '<tr><td><a href="/product/{n}">Washed cotton jacket #{n}</a></td><td>₩{price:,}</td>'
        '<td><span class="badge">재고 있음</span></td></tr>'
    )
    tail = [
        "</article>",
        '<aside class="related"><h2>함께 보면 좋은 글</h2><ul>'
        '<li><a href="/articles/linen-care">린넨 관리법</a></li>'
        '<li><a href="/articles/size-guide">사이즈 가이드</a></li>'
        '<li><a href="/articles/shipping">배송 안내</a></li></ul></aside>',
        "</main>",
        '<footer class="site-footer"><p>© 2025 Example Shop Co., Ltd. · 사업자등록번호 123-45-67890 · '
        '<a href="/privacy">개인정보 처리방침</a> · <a href="/terms">이용약관</a></p></footer>',
        '<script src="/static/js/vendor.8b1e2f.js" defer></script>',
        '<script src="/static/js/site.1d4c7a.js" defer></script>',
        "</body></html>",
    ]
    body = list(head)
    size = len("\n".join(head + tail).encode())
    n = 0
    while size < 20 * 1024:
        n += 1
        chunk = (
            prose
            if n % 4
            else "<table class='products'>"
            + "".join(row.format(n=n * 10 + i, price=39000 + 1000 * i) for i in range(6))
            + "</table>"
        )
        body.append(chunk)
        size += len(chunk.encode()) + 1
    page = "\n".join(body + tail)
    if not 20 * 1024 <= len(page.encode()) <= 22 * 1024 or page.count("</body") != 1:
        raise RuntimeError("the benchmark page is no longer a ~20 KB document with one </body>")
    return page


PAGE: Final = _page()


async def json_route(request: Request) -> Response:
    return JSONResponse({"ok": True, "user": 42, "items": [1, 2, 3], "next": None})


async def page_route(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def cookies_route(request: Request) -> Response:
    """Five cookies of mixed purpose, set the way apps do: through Starlette's `set_cookie`."""
    response = JSONResponse({"ok": True})
    for name, value, max_age in APP_COOKIES:
        response.set_cookie(name, value, max_age=max_age, httponly=name in ("session", "csrftoken"), samesite="lax")
    return response


async def login_route(request: Request) -> Response:
    """Setup only: gives the visitors a genuine signed Starlette session cookie (needs SessionMiddleware)."""
    request.session["user_id"] = 42
    return JSONResponse({"ok": True})


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/json", json_route),
            Route("/page", page_route),
            Route("/cookies", cookies_route),
            Route("/login", login_route),
        ]
    )


class Floor:
    """Reference stack: the cheapest pure-ASGI layer that can see the response.

    One extra `__call__` frame and a `send` closure that only forwards each message.
    Any middleware that filters `Set-Cookie` must at least do this, so what the gate
    costs above `floor` is what its own work costs; the floor itself is the price of
    being a response-seeing layer at all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            await send(message)

        await self.app(scope, receive, send_wrapper)


def build_stack(stack: Stack, app: ASGIApp, store: str) -> ASGIApp:
    """Wrap `app` the way a user would; `store` is the gate's consent-log URL."""
    if stack == "bare":
        return app
    if stack == "floor":
        return Floor(app)
    if stack == "gate":
        return CookieGateMiddleware(app, secret_key=SECRET_KEY, store=store)
    return SessionMiddleware(app, secret_key=SECRET_KEY)


def build_stacks(store_dir: str) -> dict[Stack, ASGIApp]:
    """All four stacks around one shared app instance."""
    app = build_app()
    return {stack: build_stack(stack, app, f"sqlite:///{store_dir}/bench.sqlite3") for stack in STACKS}


def create_app() -> ASGIApp:
    """uvicorn `--factory` entry point: the stack named by $COOKIE_GATE_BENCH_STACK."""
    name = os.environ.get(STACK_ENV, "bare")
    chosen = next((stack for stack in STACKS if stack == name), None)
    if chosen is None:
        raise SystemExit(f"{STACK_ENV} must be one of {', '.join(STACKS)}, not {name!r}")
    store = os.environ.get(STORE_ENV) or f"sqlite:///{tempfile.mkdtemp(prefix='cookie-gate-bench-')}/bench.sqlite3"
    return build_stack(chosen, build_app(), store)


def cookie_categories(gate: ASGIApp) -> dict[str, str]:
    """How the gate files each cookie the benchmark uses (for the report, so nobody has to guess)."""
    if not isinstance(gate, CookieGateMiddleware):
        return {}
    category: Callable[[str], str] = gate.classifier.category
    return {name: category(name) for name, _, _ in APP_COOKIES}


def revision() -> str:
    """The commit measured (`-dirty` when the work tree differs), since results only mean something per commit."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"
