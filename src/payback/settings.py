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

    @field_validator("refund_rate_limit")
    @classmethod
    def _rate_is_valid(cls, value: str) -> str:
        from payback.access.ratelimit import parse_rate

        parse_rate(value)  # raises ValueError with a message naming the setting's value
        return value
