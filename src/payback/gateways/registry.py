"""Which gateway adapters this process talks to, by name.

``configure(settings)`` builds them from settings once per process (the CLI's ``serve``,
``worker``, ``reconcile`` and the demo call it): the built-in ``sandbox`` always, ``stripe`` when
``PAYBACK_STRIPE_API_KEY`` is set. Tests ``install`` their own instances. Service code asks
``get(name)``; an unknown name is a clear error, never a silent skip.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from sqlalchemy import make_url

from payback.errors import DomainError
from payback.gateways.port import Gateway
from payback.settings import Settings

_GATEWAYS: dict[str, Gateway] = {}
_lock = threading.Lock()


class GatewayNotConfigured(DomainError):
    code, status, title = "gateway_not_configured", 404, "No such payment gateway here"


def install(gateway: Gateway) -> Gateway:
    with _lock:
        _GATEWAYS[gateway.name] = gateway
    return gateway


def uninstall(name: str) -> None:
    with _lock:
        _GATEWAYS.pop(name, None)


_lazy_settings: Settings | None = None


def configure_lazily(settings: Settings) -> None:
    """Remember ``settings``; the gateways they describe are built on first use (``get``), so
    an API process that only receives webhooks needs no start-up step and builds nothing it
    never uses."""
    global _lazy_settings
    _lazy_settings = settings


def get(name: str) -> Gateway:
    gateway = _GATEWAYS.get(name)
    if gateway is None and _lazy_settings is not None:
        with _lock:
            built = name in _GATEWAYS or name in _builders(_lazy_settings)
        if built and name not in _GATEWAYS:
            configure(_lazy_settings)
        gateway = _GATEWAYS.get(name)
    if gateway is None:
        raise GatewayNotConfigured(
            f"payment gateway {name!r} is not configured in this process "
            f"(configured: {', '.join(sorted(_GATEWAYS)) or 'none'})")
    return gateway


def names() -> list[str]:
    return sorted(_GATEWAYS)


def sandbox_database_url(settings: Settings) -> str:
    """The sandbox's own database: the setting, else beside Payback's (see Settings)."""
    if settings.sandbox_database_url:
        return settings.sandbox_database_url
    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite"):
        path = url.database or ""
        if not path or path == ":memory:":
            return "sqlite:///sandbox.db"
        stem = path[:-3] if path.endswith(".db") else path
        return url.set(database=f"{stem}-sandbox.db").render_as_string(hide_password=False)
    # PostgreSQL: the same database (the sandbox's tables are all named sandbox_*).
    return settings.database_url


def _builders(settings: Settings) -> set[str]:
    return {"sandbox"} | ({"stripe"} if settings.stripe_api_key else set())


def sandbox_webhook_secret(settings: Settings) -> str:
    """The sandbox's signing secret: the setting, else derived from this installation's secret
    key — never a value published anywhere, so nobody outside can forge sandbox webhooks."""
    if settings.sandbox_webhook_secret:
        return settings.sandbox_webhook_secret
    from payback.secrets import secret_key

    digest = hmac.new(secret_key(settings).encode(), b"payback.sandbox.webhooks",
                      hashlib.sha256).hexdigest()
    return f"whsec_{digest[:40]}"


def configure(settings: Settings) -> list[str]:
    """Build and install the gateways the settings describe (those not installed already);
    return their names."""
    from payback.gateways.sandbox import SandboxBehaviour, SandboxGateway

    if "sandbox" not in _GATEWAYS:
        install(SandboxGateway(sandbox_database_url(settings),
                               webhook_secret=sandbox_webhook_secret(settings),
                               behaviour=SandboxBehaviour.parse(settings.sandbox_behaviour)))
    if settings.stripe_api_key and "stripe" not in _GATEWAYS:
        from payback.gateways.stripe_adapter import StripeGateway

        secrets = [s.strip() for s in settings.stripe_webhook_secrets.split(",") if s.strip()]
        install(StripeGateway(settings.stripe_api_key, webhook_secrets=secrets,
                              api_base=settings.stripe_api_base))
    return names()
