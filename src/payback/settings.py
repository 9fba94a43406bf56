"""Settings, read from ``PAYBACK_*`` environment variables (or passed in explicitly by tests).

Nothing is read at import time: ``Settings()`` is built by the CLI and ``create_app``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYBACK_", extra="ignore")

    #: SQLAlchemy URL. SQLite file by default; ``postgresql+psycopg://user@host/db`` in production.
    database_url: str = "sqlite:///payback.db"
    #: Rounding of tax per invoice line: ``half_up`` (most EU/UK practice) or ``half_even``.
    tax_rounding: Literal["half_up", "half_even"] = "half_up"
    #: Host and port for ``payback serve``.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Default page size and its cap for list endpoints.
    page_size: int = 50
    max_page_size: int = 200
    #: How long a stored idempotent response is kept (hours), as Stripe does.
    idempotency_retention_hours: int = 24
    #: Seller name printed on documents and used as the invoice number prefix.
    invoice_prefix: str = "INV"
    #: Refund creations admitted per principal (API key or staff user) in a sliding window:
    #: ``<count>/<unit>`` or ``<count>/<n> <unit>s`` (second, minute, hour, day). Counted per
    #: API process (see payback.access.ratelimit).
    refund_rate_limit: str = "30/minute"
    #: Failed runs of an outbox event's handler before it is dead-lettered (``payback outbox
    #: list --status dead``; ``payback outbox retry`` revives it).
    outbox_max_attempts: int = Field(default=12, ge=1)

    # --- links, sessions and the web console ------------------------------------------------
    #: Signs customer portal links. Unset: a random key is created once and kept in
    #: ``secret_key_file`` (fine for one machine; set it explicitly when running several).
    secret_key: str | None = None
    secret_key_file: str = ".payback-secret"
    #: The address customers and webhooks reach this server at (links in e-mails).
    public_url: str = "http://127.0.0.1:8000"
    #: How long a customer portal link stays valid.
    portal_link_days: int = Field(default=30, ge=1)
    #: Staff console session lifetime (idle sessions end sooner: ``session_idle_minutes``).
    session_hours: int = Field(default=12, ge=1)
    session_idle_minutes: int = Field(default=60, ge=1)
    #: Console login attempts admitted per e-mail address and per client address in a sliding
    #: window (same format as ``refund_rate_limit``; counted per server process).
    login_rate_limit: str = "10/15 minutes"

    # --- customer e-mail (SMTP) -----------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    #: ``none`` (plain, e.g. a local relay), ``starttls`` or ``ssl`` (implicit TLS).
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: int = Field(default=10, ge=1)
    mail_from: str = "Payback <refunds@payback.invalid>"

    # --- payment gateways -----------------------------------------------------------------
    #: The built-in sandbox gateway keeps its own state in this database (a separate one: it
    #: plays a remote system). Unset: ``<name>-sandbox.db`` beside a SQLite database; on
    #: PostgreSQL the same database (the sandbox's tables are named ``sandbox_*``).
    sandbox_database_url: str | None = None
    #: Signs the sandbox's webhooks (``Sandbox-Signature``); Payback verifies with it. Unset:
    #: derived from the secret key, so it is never a published value.
    sandbox_webhook_secret: str | None = None
    #: The sandbox's behaviour, e.g. ``latency_ms=50,timeout_percent=5,error_percent=5``.
    sandbox_behaviour: str = ""
    #: Stripe: secret API key, webhook signing secrets (comma-separated during rotation) and
    #: the API base (tests point it at a local server).
    stripe_api_key: str | None = None
    stripe_webhook_secrets: str = ""
    stripe_api_base: str | None = None
    #: ``payback worker`` reconciles every gateway over the last ``reconcile_lookback_hours``
    #: this often (0 turns the scheduled reconciliation off).
    reconcile_interval_hours: int = Field(default=6, ge=0)
    reconcile_lookback_hours: int = Field(default=48, ge=1)

    @field_validator("refund_rate_limit", "login_rate_limit")
    @classmethod
    def _rate_is_valid(cls, value: str) -> str:
        from payback.access.ratelimit import parse_rate

        parse_rate(value)  # raises ValueError with a message naming the setting's value
        return value
