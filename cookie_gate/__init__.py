"""cookie_gate: a pure-ASGI gateway that enforces each visitor's cookie choice on the server."""

from cookie_gate.config import Category, Config, ConfigError, load_config
from cookie_gate.consent import Consent
from cookie_gate.middleware import CookieGateMiddleware

__version__ = "0.1.0"

__all__ = ["Category", "Config", "ConfigError", "Consent", "CookieGateMiddleware", "__version__", "load_config"]
