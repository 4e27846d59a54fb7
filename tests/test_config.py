"""Configuration: every mistake is reported at start-up, with the key that is wrong."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from cookie_gate import Category, ConfigError, CookieGateMiddleware, load_config
from cookie_gate.asgi import Receive, Scope, Send
from cookie_gate.config import _ENVIRONMENT, Config, Options
from tests.conftest import SECRET

NO_ENV: dict[str, str] = {}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called")


def test_zero_config_needs_only_a_secret() -> None:
    config = load_config(secret_key=SECRET, environ=NO_ENV)
    assert config.mode == "opt-in"
    assert config.category_names == ("necessary", "preferences", "analytics", "marketing")
    assert config.consent_lifetime_days == 180
    assert config.store == "sqlite:///cookie_gate.sqlite3"
    assert config.mount_path == "/_cookie_gate"
    assert config.unknown_cookies == "allow"
    assert all(c.label["ko"] and c.label["en"] for c in config.categories)


def test_unknown_cookies_takes_the_suspect_mode() -> None:
    assert load_config(secret_key=SECRET, environ=NO_ENV, unknown_cookies="suspect").unknown_cookies == "suspect"


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({"secret_key": "short"}, "secret_key[0]", "shorter than 16"),
        ({"secret_key": [SECRET, 42]}, "secret_key[1]", "must be a string"),
        ({"secret_key": []}, "secret_key", "empty"),
        ({"mode": "opt-maybe"}, "mode", "must be one of 'opt-in', 'opt-out'"),
        ({"unknown_cookies": "sometimes"}, "unknown_cookies", "must be one of 'allow', 'suspect', 'block'"),
        ({"policy_version": "v 2"}, "policy_version", "letters, digits"),
        ({"consent_lifetime_days": 0}, "consent_lifetime_days", "positive"),
        ({"consent_lifetime_days": 500}, "consent_lifetime_days", "400 days"),
        ({"consent_lifetime_days": True}, "consent_lifetime_days", "positive"),
        ({"cookie_name": "bad name"}, "cookie_name", "token"),
        ({"cookie_domain": "Example.COM"}, "cookie_domain", "lower-case"),
        ({"mount_path": "https://cdn.example/_cg"}, "mount_path", "local path"),
        ({"mount_path": "//evil.example"}, "mount_path", "local path"),
        ({"mount_path": "_cookie_gate"}, "mount_path", "local path"),
        ({"mount_path": "/"}, "mount_path", "plain segments"),
        ({"mount_path": "/cg/"}, "mount_path", "trailing"),
        ({"allowed_origins": ["shop.example"]}, "allowed_origins[0]", "not an origin"),
        ({"allowed_origins": ["https://shop.example/path"]}, "allowed_origins[0]", "not an origin"),
        ({"store": "mysql://db"}, "store", "sqlite:///"),
        ({"admin_token": "123"}, "admin_token", "16 characters"),
        ({"colour": "blue"}, "colour", "unknown setting"),
        ({"categories": {"analytics": {"cookies": ["a*"]}}}, "categories.analytics.cookies[0]", "too short to be safe"),
        ({"categories": {"analytics": {"cookies": ["*"]}}}, "categories.analytics.cookies[0]", "not a cookie name"),
        ({"categories": {"analytics": {"cookies": ["a b"]}}}, "categories.analytics.cookies[0]", "not a cookie name"),
        (
            {"categories": {"analytics": {"cookies": ["_ga"]}, "marketing": {"cookies": ["_ga"]}}},
            "categories.marketing.cookies[0]",
            "already listed under categories.analytics",
        ),
        ({"categories": {"analytics": {"cookie": ["_x"]}}}, "categories.analytics.cookie", "unknown setting"),
        ({"categories": {"chat": {"cookies": ["chat_*"]}}}, "categories.chat.label", "needs a label"),
        ({"categories": {"Chat!": {"label": "Chat"}}}, "categories.Chat!", "lower-case"),
        ({"categories": {"chat": {"label": {"en": "Chat"}}}}, "categories.chat.label.ko", "missing"),
        ({"categories": {"chat": "yes"}}, "categories.chat", "must be a table"),
        ({"categories": ["analytics"]}, "categories", "must be a table"),
        ({"privacy_policy_url": "javascript:alert(1)"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": " JavaScript:alert(1)"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "java\tscript:alert(1)"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "data:text/html,<script>alert(1)</script>"}, "privacy_policy_url", "not an http"),
        ({"privacy_policy_url": "vbscript:msgbox"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "//evil.example/privacy"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "/\\evil.example"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "\\\\evil.example"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "https:evil.example"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "https://"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "http://[::1"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "privacy.html"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": "/privacy\n"}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": ""}, "privacy_policy_url", "not an http(s) URL"),
        ({"privacy_policy_url": 42}, "privacy_policy_url", "not an http(s) URL"),
        ({"allowed_hosts": ["https://shop.example"]}, "allowed_hosts[0]", "must be a host name"),
        ({"allowed_hosts": ["shop.example", "*.shop.example"]}, "allowed_hosts[1]", "'.example.com'"),
        ({"allowed_hosts": "shop example"}, "allowed_hosts[0]", "must be a host name"),
        ({"allowed_hosts": [3]}, "allowed_hosts", "list of strings"),
        (
            {"cookie_name": "__Host-cookie_gate", "cookie_domain": "example.com"},
            "cookie_domain",
            "__Host- cookie",
        ),
        ({"cookie_name": "__HOST-cg", "cookie_domain": "example.com"}, "cookie_domain", "__Host- cookie"),
    ],
)
def test_mistakes_name_the_key(options: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ=NO_ENV, **{"secret_key": SECRET, **options})
    assert raised.value.key == key
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"cookie_gate config: {key}: ")


def test_a_missing_secret_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ=NO_ENV)
    assert raised.value.key == "secret_key"
    assert "COOKIE_GATE_SECRET_KEY" in raised.value.problem


def test_the_middleware_validates_at_construction() -> None:
    with pytest.raises(ConfigError, match="mode"):
        CookieGateMiddleware(app, secret_key=SECRET, mode="strict")  # type: ignore[arg-type]


def test_a_toml_file_configures_everything(tmp_path: Path) -> None:
    path = tmp_path / "cookie-gate.toml"
    path.write_text(
        """
mode = "opt-out"
policy_version = "2026-12"
consent_lifetime_days = 90
unknown_cookies = "block"
allowed_origins = ["https://m.shop.example"]
privacy_policy_url = "/privacy"

[categories.analytics]
cookies = ["_ga", "_ga_*", "shop_stats"]
label = { en = "Statistics" }

[categories.chat]
label = { en = "Live chat", ko = "실시간 상담" }
description = { en = "Keeps the chat window open across pages.", ko = "페이지를 옮겨도 상담 창을 유지합니다." }
cookies = ["chat_*"]
retention = { en = "30 days", ko = "30일" }
""",
        encoding="utf-8",
    )
    config = load_config(path, secret_key=SECRET, environ=NO_ENV)
    assert config.mode == "opt-out" and config.policy_version == "2026-12"
    assert config.consent_lifetime_days == 90 and config.unknown_cookies == "block"
    assert config.allowed_origins == ("https://m.shop.example",)
    analytics = next(c for c in config.categories if c.name == "analytics")
    assert analytics.label == {"en": "Statistics", "ko": "분석"}  # built-in Korean kept
    assert analytics.exact_names == ("_ga", "shop_stats") and analytics.prefixes == ("_ga_",)
    assert config.category_names[-1] == "chat"


def test_a_cookie_gate_table_in_a_shared_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[cookie_gate]\nmode = "opt-out"\n', encoding="utf-8")
    assert load_config(path, secret_key=SECRET, environ=NO_ENV).mode == "opt-out"


def test_a_broken_or_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", secret_key=SECRET, environ=NO_ENV)
    broken = tmp_path / "broken.toml"
    broken.write_text("mode = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, secret_key=SECRET, environ=NO_ENV)


def test_keyword_arguments_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cookie-gate.toml"
    path.write_text('store = "sqlite:///from-file.sqlite3"\nsecret_key = "file-secret-0123456789"\n', encoding="utf-8")
    env = {
        "COOKIE_GATE_STORE": "sqlite:///from-env.sqlite3",
        "COOKIE_GATE_SECRET_KEY": "env-a-0123456789abc,env-b-0123456789abc",
    }
    from_env = load_config(path, environ=env)
    assert from_env.store == "sqlite:///from-env.sqlite3"
    assert from_env.secret_keys == ("env-a-0123456789abc", "env-b-0123456789abc")
    explicit = load_config(path, environ=env, store="sqlite:///from-kwarg.sqlite3", secret_key=SECRET)
    assert explicit.store == "sqlite:///from-kwarg.sqlite3" and explicit.secret_keys == (SECRET,)
    assert load_config(path, environ={}).store == "sqlite:///from-file.sqlite3"


def test_the_admin_token_comes_from_the_environment() -> None:
    config = load_config(secret_key=SECRET, environ={"COOKIE_GATE_ADMIN_TOKEN": "t" * 20})
    assert config.admin_token == "t" * 20


def test_a_config_object_can_be_reused_with_overrides() -> None:
    base = load_config(secret_key=SECRET, environ=NO_ENV)
    derived = load_config(base, mode="opt-out")
    assert derived.mode == "opt-out" and derived.secret_keys == base.secret_keys
    with pytest.raises(ConfigError, match="mode"):
        load_config(base, mode="sometimes")
    with pytest.raises(ConfigError, match="colour"):
        load_config(base, colour="blue")


def test_category_objects_can_be_passed_directly() -> None:
    chat = Category("chat", label={"en": "Chat", "ko": "상담"}, description={}, cookies=("chat_*",))
    config = load_config(secret_key=SECRET, categories=[chat], environ=NO_ENV)
    assert config.category_names == ("necessary", "preferences", "analytics", "marketing", "chat")


def test_a_postgresql_store_without_its_driver_is_reported_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "psycopg":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(ConfigError, match=r"store: .*cookie-gate\[postgresql\]"):
        CookieGateMiddleware(app, secret_key=SECRET, store="postgresql://127.0.0.1/test")


@pytest.mark.parametrize(
    "url",
    [
        "/privacy",
        "/privacy?lang=ko#cookies",
        "https://example.com/privacy",
        "HTTP://example.com",
        "http://127.0.0.1:8000/p",
    ],
)
def test_http_urls_and_local_paths_are_accepted_as_links(url: str) -> None:
    assert load_config(secret_key=SECRET, environ=NO_ENV, privacy_policy_url=url).privacy_policy_url == url


def test_allowed_hosts_take_django_style_patterns() -> None:
    patterns = ["shop.example", ".example.co.kr", "localhost", "127.0.0.1", "[::1]", "*"]
    assert load_config(secret_key=SECRET, environ=NO_ENV, allowed_hosts=patterns).allowed_hosts == tuple(patterns)
    assert load_config(secret_key=SECRET, environ=NO_ENV).allowed_hosts == ()


def test_a_host_prefixed_cookie_name_is_accepted_without_a_domain() -> None:
    config = load_config(secret_key=SECRET, environ=NO_ENV, cookie_name="__Host-cookie_gate")
    assert config.cookie_name == "__Host-cookie_gate" and config.cookie_domain is None


#: The settings as files, keywords and the environment name them: `Config`'s fields, `secret_keys` as `secret_key`.
SETTINGS = {"secret_key" if f.name == "secret_keys" else f.name for f in fields(Config)}

#: A value other than the default for every setting, as a TOML value.
EVERY_SETTING = {
    "secret_key": '["new-0123456789abcdef", "old-0123456789abcdef"]',
    "categories": '{ chat = { label = "Chat", cookies = ["chat_*"] } }',
    "mode": '"opt-out"',
    "policy_version": '"2026-12"',
    "consent_lifetime_days": "90",
    "cookie_name": '"gate"',
    "cookie_domain": '"example.com"',
    "mount_path": '"/cg"',
    "unknown_cookies": '"block"',
    "allowed_origins": '["https://m.example.com"]',
    "allowed_hosts": '["example.com"]',
    "store": '"sqlite:///other.sqlite3"',
    "admin_token": '"an-admin-token-0123456789"',
    "privacy_policy_url": '"/privacy"',
    "inject_banner": "false",
    "max_body_bytes": "1024",
    "statistics": "false",
    "timezone": '"Asia/Seoul"',
    "detail_retention_days": "30",
    "aggregate_retention_months": "13",
    "consent_log_retention_days": "400",
    "reprompt_on_change": "false",
    "daily_visitor_hash": "true",
    "stats_flush_seconds": "1.5",
    "stats_queue_size": "1000",
    "shutdown_timeout": "2.5",
    "default_locale": '"ja"',
    "texts": '{ ja = { title = "このサイトのクッキー" } }',
    "settings_button": '"off"',
    "google_consent_mode": "true",
    "prior_blocking": "false",
    "csp_nonce_key": '"nonce"',
}


def test_keywords_and_the_environment_offer_the_settings_config_has() -> None:
    # Options cannot be derived from Config (mypy reads it); secret_key is the middleware's own argument.
    assert set(Options.__optional_keys__) == SETTINGS - {"secret_key"}
    assert Options.__required_keys__ == frozenset()
    assert _ENVIRONMENT == {
        "secret_key": "COOKIE_GATE_SECRET_KEY",
        "store": "COOKIE_GATE_STORE",
        "admin_token": "COOKIE_GATE_ADMIN_TOKEN",
    }
    assert set(_ENVIRONMENT) <= SETTINGS


def test_a_file_and_keywords_can_set_every_setting(tmp_path: Path) -> None:
    assert set(EVERY_SETTING) == SETTINGS, "give every new setting a non-default value here"
    text = "".join(f"{key} = {value}\n" for key, value in EVERY_SETTING.items())
    path = tmp_path / "everything.toml"
    path.write_text(text, encoding="utf-8")
    from_file = load_config(path, environ=NO_ENV)
    defaults = load_config(secret_key=SECRET, environ=NO_ENV)
    unchanged = [f.name for f in fields(Config) if getattr(from_file, f.name) == getattr(defaults, f.name)]
    assert unchanged == []
    assert from_file.secret_keys == ("new-0123456789abcdef", "old-0123456789abcdef")
    assert load_config(environ=NO_ENV, **tomllib.loads(text)) == from_file


def test_every_environment_variable_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "everything.toml"
    path.write_text("".join(f"{key} = {value}\n" for key, value in EVERY_SETTING.items()), encoding="utf-8")
    environ = {
        "COOKIE_GATE_SECRET_KEY": "env-0123456789abcdef",
        "COOKIE_GATE_STORE": "sqlite:///env.sqlite3",
        "COOKIE_GATE_ADMIN_TOKEN": "env-admin-token-0123456789",
    }
    config = load_config(path, environ=environ)
    assert (config.secret_keys, config.store, config.admin_token) == (
        ("env-0123456789abcdef",),
        "sqlite:///env.sqlite3",
        "env-admin-token-0123456789",
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        *(
            (key, "yes", "must be true or false")
            for key in (
                "inject_banner",
                "statistics",
                "daily_visitor_hash",
                "reprompt_on_change",
                "google_consent_mode",
                "prior_blocking",
            )
        ),
        *(
            (key, bad, "must be a positive whole number")
            for key in (
                "consent_lifetime_days",
                "max_body_bytes",
                "detail_retention_days",
                "aggregate_retention_months",
                "consent_log_retention_days",
                "stats_queue_size",
            )
            for bad in (0, -1, 2.5, "30", False)
        ),
        ("mode", "opt", "must be one of 'opt-in', 'opt-out', not 'opt'"),
        ("unknown_cookies", "deny", "must be one of 'allow', 'suspect', 'block', not 'deny'"),
        ("settings_button", "top", "must be one of 'bottom-left', 'bottom-right', 'off', not 'top'"),
    ],
)
def test_every_switch_number_and_choice_is_checked(key: str, value: object, problem: str) -> None:
    for config in (None, load_config(secret_key=SECRET, environ=NO_ENV)):
        with pytest.raises(ConfigError) as raised:
            load_config(config, environ=NO_ENV, **{"secret_key": SECRET, key: value})
        assert (raised.value.key, raised.value.problem) == (key, problem)
