"""Which gateway adapters this process talks to, by name.

``configure(settings)`` builds them from settings once per process (the CLI's ``serve``,
``worker``, ``reconcile`` and the demo call it): the built-in ``sandbox`` always, ``stripe`` when
``PAYBACK_STRIPE_API_KEY`` is set. Tests ``install`` their own instances. Service code asks
``get(name)``; an unknown name is a clear error, never a silent skip.
"""

from __future__ import annotations

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


def get(name: str) -> Gateway:
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


def configure(settings: Settings) -> list[str]:
    """Build and install the gateways the settings describe; return their names."""
    from payback.gateways.sandbox import SandboxBehaviour, SandboxGateway

    install(SandboxGateway(sandbox_database_url(settings),
                           webhook_secret=settings.sandbox_webhook_secret,
                           behaviour=SandboxBehaviour.parse(settings.sandbox_behaviour)))
    if settings.stripe_api_key:
        from payback.gateways.stripe_adapter import StripeGateway

        secrets = [s.strip() for s in settings.stripe_webhook_secrets.split(",") if s.strip()]
        install(StripeGateway(settings.stripe_api_key, webhook_secrets=secrets,
                              api_base=settings.stripe_api_base))
    return names()
