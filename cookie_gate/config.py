"""Settings: built once at start-up from keyword arguments, environment and a TOML file.

Precedence, highest first: keyword arguments, environment variables
(`COOKIE_GATE_SECRET_KEY`, `COOKIE_GATE_STORE`, `COOKIE_GATE_ADMIN_TOKEN`), the TOML
file, defaults. Every mistake raises `ConfigError` naming the key, at start-up, so a
typo never turns into a gateway that silently lets trackers through.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from cookie_gate.consent import NECESSARY
from cookie_gate.hosts import host_pattern_problem
from cookie_gate.texts import BUILT_IN, KEYS

Mode = Literal["opt-in", "opt-out"]
UnknownCookies = Literal["allow", "suspect", "block"]
SettingsButton = Literal["bottom-left", "bottom-right", "off"]
LOCALES = ("ko", "en")
MIN_PREFIX_LENGTH = 3
MIN_SECRET_LENGTH = 16
DEFAULT_STORE = "sqlite:///cookie_gate.sqlite3"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_POLICY_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


class ConfigError(ValueError):
    """A configuration mistake; `key` is the dotted path of the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"cookie_gate config: {key}: {problem}")
        self.key = key
        self.problem = problem


def localized(field: Mapping[str, str], locale: str) -> str:
    """A category text in `locale`, else in English, else empty: the one fallback every page and the digest share."""
    return field.get(locale) or field.get("en") or ""


@dataclass(frozen=True)
class Category:
    """A consent purpose, its texts per locale and the cookie-name patterns it owns.

    A pattern is an exact cookie name or a prefix ending in `*` (`_ga_*`).
    """

    name: str
    label: Mapping[str, str]
    description: Mapping[str, str]
    cookies: tuple[str, ...] = ()
    retention: Mapping[str, str] = field(default_factory=dict)
    #: What refusing changes for the visitor (PIPA Art. 15(2) asks for the consequences).
    refusal: Mapping[str, str] = field(default_factory=dict)

    @property
    def exact_names(self) -> tuple[str, ...]:
        return tuple(p for p in self.cookies if not p.endswith("*"))

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(p[:-1] for p in self.cookies if p.endswith("*"))


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        NECESSARY,
        label={"en": "Strictly necessary", "ko": "필수"},
        description={
            "en": "Needed for the site to work: security, sign-in, load balancing and remembering this choice.",
            "ko": "사이트가 작동하는 데 꼭 필요한 쿠키입니다. 보안, 로그인, 부하 분산과 이 선택을 기억하는 데 "
            "쓰입니다.",
        },
        refusal={
            "en": "These cannot be refused: the site would not work without them.",
            "ko": "이 쿠키 없이는 사이트가 작동하지 않으므로 거부할 수 없습니다.",
        },
    ),
    Category(
        "preferences",
        label={"en": "Preferences", "ko": "기능"},
        description={
            "en": "Remember your settings, such as language or region.",
            "ko": "언어나 지역 같은 설정을 기억합니다.",
        },
        refusal={
            "en": "You choose these settings again on each visit.",
            "ko": "방문할 때마다 설정을 다시 선택해야 합니다.",
        },
    ),
    Category(
        "analytics",
        label={"en": "Analytics", "ko": "분석"},
        description={
            "en": "Count how often people visit, at what times and which pages they use, as statistics only.",
            "ko": "방문 빈도, 방문 시간과 이용 페이지를 통계로만 집계합니다.",
        },
        retention={"en": "13 months at most", "ko": "최대 13개월"},
        refusal={
            "en": "Nothing changes for you; your visits are counted without any identifier.",
            "ko": "이용에는 차이가 없으며, 방문은 식별자 없이 집계됩니다.",
        },
    ),
    Category(
        "marketing",
        label={"en": "Marketing", "ko": "마케팅"},
        description={
            "en": "Let advertising partners show relevant ads and measure campaigns.",
            "ko": "광고 파트너가 관심사에 맞는 광고를 보여주고 효과를 측정합니다.",
        },
        refusal={
            "en": "You still see ads, but they are not based on your visits.",
            "ko": "광고는 계속 표시되지만 방문 기록에 따른 맞춤 광고는 표시되지 않습니다.",
        },
    ),
)


@dataclass(frozen=True)
class Config:
    """Validated settings. Build it with `load_config`; fields are final."""

    secret_keys: tuple[str, ...]
    categories: tuple[Category, ...] = DEFAULT_CATEGORIES
    mode: Mode = "opt-in"
    policy_version: str = "1"
    consent_lifetime_days: int = 180
    cookie_name: str = "cookie_gate"
    cookie_domain: str | None = None
    mount_path: str = "/_cookie_gate"
    unknown_cookies: UnknownCookies = "allow"
    allowed_origins: tuple[str, ...] = ()
    #: Hosts whose refused cookies are also expired under parent `Domain`s (`example.com`,
    #: `.example.com` with its subdomains, `*`); empty: every valid host name.
    allowed_hosts: tuple[str, ...] = ()
    store: str = DEFAULT_STORE
    admin_token: str | None = None
    privacy_policy_url: str | None = None
    inject_banner: bool = True
    max_body_bytes: int = 16 * 1024
    statistics: bool = True
    timezone: str = "UTC"
    detail_retention_days: int = 90
    aggregate_retention_months: int = 25
    #: Days each row of the consent log is kept: the proof of a consent outlives the consent itself,
    #: for disputes (the privacy policy this project serves keeps dispute records three years).
    consent_log_retention_days: int = 1095
    #: Ask again when what the banner shows (its texts, the categories and their cookies) changed.
    reprompt_on_change: bool = True
    daily_visitor_hash: bool = False
    stats_flush_seconds: float = 2.0
    stats_queue_size: int = 50_000
    #: Seconds a shutdown (lifespan or interpreter exit) may spend writing statistics, even when the
    #: store hangs; PostgreSQL's connect and statement timeouts are derived from it.
    shutdown_timeout: float = 5.0
    default_locale: str = "en"
    #: Banner texts by locale: the built-in ones merged with the admin's `[texts.<locale>]` tables.
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: BUILT_IN)
    settings_button: SettingsButton = "bottom-left"
    google_consent_mode: bool = False
    #: Rewrite `<script>`/`<iframe data-cookie-category>` of unaccepted categories so they cannot run.
    #: It costs a scan of every page (about 4 µs per 20 KB); a site that tags nothing can switch it off.
    prior_blocking: bool = True
    #: Where a CSP middleware leaves the request's nonce: `scope["state"][key]` (Starlette's request.state).
    csp_nonce_key: str = "csp_nonce"

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self.texts)

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    @property
    def optional_categories(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories if c.name != NECESSARY)

    @property
    def consent_lifetime_seconds(self) -> int:
        return self.consent_lifetime_days * 86400


class Options(TypedDict, total=False):
    """Every setting that can be passed as a keyword argument (see `Config` for meanings).

    mypy needs `**options: Unpack[Options]` spelled out, so this cannot be derived from `Config`;
    tests/test_config.py fails when the two disagree. `secret_key` is the middleware's own argument.
    """

    store: str
    admin_token: str
    mode: Mode
    policy_version: str
    consent_lifetime_days: int
    categories: Mapping[str, Any] | Sequence[Category]
    cookie_name: str
    cookie_domain: str
    mount_path: str
    unknown_cookies: UnknownCookies
    allowed_origins: Sequence[str]
    allowed_hosts: Sequence[str]
    privacy_policy_url: str
    inject_banner: bool
    max_body_bytes: int
    statistics: bool
    timezone: str
    detail_retention_days: int
    aggregate_retention_months: int
    consent_log_retention_days: int
    reprompt_on_change: bool
    daily_visitor_hash: bool
    stats_flush_seconds: float
    stats_queue_size: int
    shutdown_timeout: float
    default_locale: str
    texts: Mapping[str, Mapping[str, str]]
    settings_button: SettingsButton
    google_consent_mode: bool
    prior_blocking: bool
    csp_nonce_key: str


def _setting_name(field_name: str) -> str:
    """The name a setting goes by in a file, the environment and keywords: its field's, but for the signing keys.

    `secret_key` takes one key, several comma-separated, or a list (newest first); the field holds the tuple.
    """
    return "secret_key" if field_name == "secret_keys" else field_name


#: Setting name -> `Config` field. `Config` is the one list of settings: a new field can be set in the file,
#: by keyword (once added to `Options`) and from an environment variable listed below.
_FIELDS: dict[str, str] = {_setting_name(f.name): f.name for f in fields(Config)}
_SETTINGS = set(_FIELDS)
#: Each field's type, resolved: `_validate` checks every `int` (positive), `bool` and `Literal` field by
#: it, so a new field of those types is validated without being listed again.
_TYPES: dict[str, Any] = get_type_hints(Config)
#: Settings an environment variable may give (the deployment's secrets and the store's URL).
_ENVIRONMENT = {
    "secret_key": "COOKIE_GATE_SECRET_KEY",
    "store": "COOKIE_GATE_STORE",
    "admin_token": "COOKIE_GATE_ADMIN_TOKEN",
}


def load_config(
    config: str | os.PathLike[str] | Config | Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Merge file, environment and keyword settings, then validate them all.

    `config` may be a TOML path, a mapping of the same shape, or a `Config`. Keyword
    arguments whose value is `None` count as "not given".
    """
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(config, Config):
        base = config
        if "secret_key" in given:
            given["secret_keys"] = _secret_keys(given.pop("secret_key"))
        _reject_unknown(given, _SETTINGS | {"secret_keys"})
        try:
            return _validate(replace(base, **given))
        except TypeError as error:
            raise ConfigError("config", str(error)) from None
    settings: dict[str, Any] = {}
    if config is not None:
        settings.update(_read_file(config) if not isinstance(config, Mapping) else dict(config))
        _reject_unknown(settings, _SETTINGS)
    for key, variable in _ENVIRONMENT.items():
        if environ.get(variable):
            settings[key] = environ[variable]
    _reject_unknown(given, _SETTINGS)
    settings.update(given)
    return _from_settings(settings)


def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("config", f"file {str(file)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("config", f"{str(file)!r} is not valid TOML: {error}") from None
    table = data.get("cookie_gate", data)
    if not isinstance(table, dict):
        raise ConfigError("cookie_gate", "must be a table")
    return table


def _reject_unknown(settings: Mapping[str, Any], known: set[str]) -> None:
    for key in settings:
        if key not in known:
            raise ConfigError(key, f"unknown setting (known: {', '.join(sorted(known))})")


def _from_settings(settings: Mapping[str, Any]) -> Config:
    if "secret_key" not in settings:
        raise ConfigError(
            "secret_key",
            "missing: pass secret_key=... or set COOKIE_GATE_SECRET_KEY (comma-separated to rotate, newest first)",
        )
    values: dict[str, Any] = {}
    for name, field_name in _FIELDS.items():
        if name in settings:
            parse = _PARSERS.get(name)
            values[field_name] = settings[name] if parse is None else parse(settings[name])
    return _validate(Config(**values))


def _merged_texts(value: Any) -> dict[str, dict[str, str]]:
    """Built-in texts with the admin's on top; a new locale falls back to English key by key."""
    if not isinstance(value, Mapping):
        raise ConfigError("texts", "must be a table of locale = { key = text }")
    merged = {locale: dict(texts) for locale, texts in BUILT_IN.items()}
    for locale, overrides in value.items():
        key = f"texts.{locale}"
        if not isinstance(locale, str) or not re.match(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", locale):
            raise ConfigError(key, "a locale is a language tag such as 'ja' or 'pt-BR'")
        if not isinstance(overrides, Mapping):
            raise ConfigError(key, "must be a table of key = text")
        for name, text in overrides.items():
            if name not in KEYS:
                raise ConfigError(f"{key}.{name}", f"unknown text (known: {', '.join(sorted(KEYS))})")
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{key}.{name}", "must be a non-empty string")
        merged[locale.lower()] = {**merged.get(locale.lower(), BUILT_IN["en"]), **overrides}
    return merged


def _secret_keys(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        keys = [k.strip() for k in value.split(",")] if "," in value else [value]
    elif isinstance(value, Sequence):
        keys = list(value)
    else:
        raise ConfigError("secret_key", "must be a string or a list of strings")
    if not keys:
        raise ConfigError("secret_key", "is empty")
    for index, key in enumerate(keys):
        if not isinstance(key, str):
            raise ConfigError(f"secret_key[{index}]", "must be a string")
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(f"secret_key[{index}]", f"is shorter than {MIN_SECRET_LENGTH} characters")
    return tuple(keys)


def _string_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "must be a list of strings")
    return list(value)


def _texts(key: str, value: Any, default: Mapping[str, str]) -> dict[str, str]:
    if value is None:
        return dict(default)
    if isinstance(value, str):
        return {locale: value for locale in LOCALES}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(key, "must be a string or a table of locale = text")
    return {**default, **value}


_CATEGORY_KEYS = {"label", "description", "cookies", "retention", "refusal"}


def _categories(value: Any) -> tuple[Category, ...]:
    """Admins configure categories as a table keyed by name; defaults fill the rest."""
    if isinstance(value, Sequence) and all(isinstance(c, Category) for c in value):
        given = {c.name: c for c in value}
    elif isinstance(value, Mapping):
        given = {}
        defaults = {c.name: c for c in DEFAULT_CATEGORIES}
        for name, spec in value.items():
            key = f"categories.{name}"
            if isinstance(spec, Category):
                given[name] = spec
                continue
            if not isinstance(spec, Mapping):
                raise ConfigError(key, "must be a table with label, description, cookies, retention")
            for sub in spec:
                if sub not in _CATEGORY_KEYS:
                    raise ConfigError(f"{key}.{sub}", f"unknown setting (known: {', '.join(sorted(_CATEGORY_KEYS))})")
            default = defaults.get(name)
            if default is None and "label" not in spec:
                raise ConfigError(f"{key}.label", "a custom category needs a label")
            given[name] = Category(
                name=str(name),
                label=_texts(f"{key}.label", spec.get("label"), default.label if default else {}),
                description=_texts(
                    f"{key}.description", spec.get("description"), default.description if default else {}
                ),
                cookies=tuple(_string_list(f"{key}.cookies", spec.get("cookies", []))),
                retention=_texts(f"{key}.retention", spec.get("retention"), default.retention if default else {}),
                refusal=_texts(f"{key}.refusal", spec.get("refusal"), default.refusal if default else {}),
            )
    else:
        raise ConfigError("categories", "must be a table of category name = settings")
    merged = [given.pop(c.name, c) for c in DEFAULT_CATEGORIES]
    return tuple(merged + list(given.values()))


#: How a setting as given (TOML, environment or keyword) becomes its field's value; the others are taken
#: as given, and `_validate` checks every field.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "secret_key": _secret_keys,
    "categories": _categories,
    "allowed_origins": lambda value: tuple(_string_list("allowed_origins", value)),
    "allowed_hosts": lambda value: tuple(_string_list("allowed_hosts", value)),
    "texts": _merged_texts,
}


def _validate(config: Config) -> Config:
    for name, kind in _TYPES.items():
        value = getattr(config, name)
        if get_origin(kind) is Literal:
            _choice(name, value, get_args(kind))
        elif kind is bool and not isinstance(value, bool):
            raise ConfigError(name, "must be true or false")
        elif kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(name, "must be a positive whole number")
    if not isinstance(config.policy_version, str) or not _POLICY_VERSION.match(config.policy_version):
        raise ConfigError("policy_version", "must be 1-32 characters of letters, digits, '.', '_' or '-'")
    if config.consent_lifetime_days > 400:
        raise ConfigError("consent_lifetime_days", "browsers cap cookie lifetime at 400 days")
    if config.consent_log_retention_days < config.consent_lifetime_days:
        # A withdrawal purged while the withdrawn cookie still holds would let a copy of it count again.
        raise ConfigError(
            "consent_log_retention_days",
            f"must be at least consent_lifetime_days ({config.consent_lifetime_days}): the log proves"
            " withdrawals for as long as a cookie can be sent",
        )
    if not isinstance(config.cookie_name, str) or not _TOKEN.match(config.cookie_name):
        raise ConfigError("cookie_name", "must be a non-empty cookie-name token")
    if config.cookie_domain is not None and (
        not isinstance(config.cookie_domain, str) or not re.match(r"^\.?[a-z0-9.-]+$", config.cookie_domain)
    ):
        raise ConfigError("cookie_domain", "must be a lower-case host name such as 'example.com'")
    if config.cookie_domain is not None and config.cookie_name.lower().startswith("__host-"):
        raise ConfigError(
            "cookie_domain",
            f"cannot be used with cookie_name {config.cookie_name!r}: browsers refuse a __Host- cookie with a Domain",
        )
    for index, pattern in enumerate(config.allowed_hosts):
        problem = host_pattern_problem(pattern) if isinstance(pattern, str) else "must be a string"
        if problem is not None:
            raise ConfigError(f"allowed_hosts[{index}]", f"{pattern!r} {problem}")
    _validate_mount_path(config.mount_path)
    for index, origin in enumerate(config.allowed_origins):
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(f"allowed_origins[{index}]", f"{origin!r} is not an origin like 'https://example.com'")
    scheme = urlsplit(config.store).scheme if isinstance(config.store, str) else ""
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError("store", "must be a URL starting with sqlite:/// or postgresql://")
    if config.admin_token is not None and (not isinstance(config.admin_token, str) or len(config.admin_token) < 16):
        raise ConfigError("admin_token", "must be a string of at least 16 characters")
    for key in _URL_KEYS:
        url = getattr(config, key)
        if url is not None and (not isinstance(url, str) or not _is_link(url)):
            raise ConfigError(key, f"{url!r} is not an http(s) URL nor a local path such as '/privacy'")
    flush = config.stats_flush_seconds
    if isinstance(flush, bool) or not isinstance(flush, int | float) or not 0.05 <= flush <= 300:
        raise ConfigError("stats_flush_seconds", "must be a number of seconds between 0.05 and 300")
    grace = config.shutdown_timeout
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0.5 <= grace <= 120:
        raise ConfigError("shutdown_timeout", "must be a number of seconds between 0.5 and 120")
    try:
        zoneinfo.ZoneInfo(config.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError("timezone", f"{config.timezone!r} is not an IANA time zone such as 'Asia/Seoul'") from None
    if not isinstance(config.csp_nonce_key, str) or not config.csp_nonce_key:
        raise ConfigError("csp_nonce_key", "must be a non-empty string")
    if config.default_locale not in config.texts:
        raise ConfigError("default_locale", f"must be one of the banner's locales: {', '.join(config.texts)}")
    _validate_categories(config.categories)
    return config


#: Settings the banner turns into links.
_URL_KEYS = ("privacy_policy_url",)


def _is_link(url: str) -> bool:
    """An absolute http(s) URL with a host, or a local path: never `javascript:`, `//host` or `/\\host`.

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so
    any control character, space or backslash is refused rather than reasoned about.
    """
    if not url or any(ord(c) <= 0x20 or c in "\x7f\\" for c in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and url.lower().startswith(parts.scheme + "://")


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}")


def _validate_mount_path(path: object) -> None:
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or "://" in path:
        raise ConfigError("mount_path", "must be a local path starting with a single '/', like '/_cookie_gate'")
    if path == "/" or path.endswith("/") or not re.match(r"^(/[A-Za-z0-9._~-]+)+$", path):
        raise ConfigError("mount_path", "must be a path of plain segments without a trailing '/'")


def _validate_categories(categories: tuple[Category, ...]) -> None:
    owners: dict[str, str] = {}
    for category in categories:
        key = f"categories.{category.name}"
        if not _CATEGORY_NAME.match(category.name):
            raise ConfigError(key, "a category name is 1-32 lower-case letters, digits, '_' or '-'")
        for locale in LOCALES:
            if not category.label.get(locale):
                raise ConfigError(f"{key}.label.{locale}", "is missing")
        for index, pattern in enumerate(category.cookies):
            where = f"{key}.cookies[{index}]"
            stem = pattern[:-1] if pattern.endswith("*") else pattern
            if not stem or not _TOKEN.match(stem) or "*" in stem:
                raise ConfigError(where, f"{pattern!r} is not a cookie name or a prefix ending in '*'")
            if pattern.endswith("*") and len(stem) < MIN_PREFIX_LENGTH:
                raise ConfigError(
                    where, f"prefix {pattern!r} is too short to be safe: use at least {MIN_PREFIX_LENGTH} characters"
                )
            if pattern in owners and owners[pattern] != category.name:
                raise ConfigError(where, f"{pattern!r} is already listed under categories.{owners[pattern]}")
            owners[pattern] = category.name
