"""Outbound webhooks: the endpoints merchants register, one delivery per (endpoint, event), and
every attempt of each delivery (the delivery log).

A delivery is ``pending`` until an attempt gets a 2xx answer (``delivered``), or until it has
been retried for the retry window (3 days) without one (``failed``). The endpoint's ``secret``
signs every delivery (HMAC-SHA256 over ``timestamp.body``); it is shown once at registration.
"""

from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, ForeignKey, Integer, String,
                        Table, Text, UniqueConstraint)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

DELIVERY_STATUSES = ("pending", "delivered", "failed")

webhook_endpoints = Table(
    "webhook_endpoints", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("url", String(2000), nullable=False),
    Column("description", String(200), nullable=True),
    Column("secret", String(100), nullable=False),
    #: After a rotation the previous secret also signs deliveries until ``previous_secret_until``.
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_until", UtcDateTime, nullable=True),
    #: Event types (exact, or a prefix ending in ``.*``; ``*`` for all).
    Column("event_types", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", String(40), primary_key=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False,
           index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    #: The outbox event delivered (its id is the ``id`` receivers deduplicate on).
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    CheckConstraint("status in ('pending', 'delivered', 'failed')", name="status_known"),
    UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
)

webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), ForeignKey("webhook_deliveries.id"), nullable=False,
           index=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("signature", String(300), nullable=False),
    Column("response_excerpt", Text, nullable=True),
    Column("error", Text, nullable=True),
)
