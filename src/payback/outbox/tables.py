"""The transactional outbox: events written in the same transaction as the change they report.
The worker (payback.outbox.worker) claims due ``pending`` events, runs their handler and marks
them ``done``; a failing handler is retried with backoff and ends ``dead`` after a bound.

``status``: pending → processing (claimed, leased to ``locked_by`` until ``locked_until``) →
done | pending again (retry at ``available_at``) | dead. An expired lease is claimable again."""

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

#: Every value ``outbox_events.status`` may hold (a CHECK constraint enforces it).
STATUSES = ("pending", "processing", "done", "dead")

outbox_events = Table(
    "outbox_events", metadata,
    Column("id", String(40), primary_key=True),
    Column("topic", String(60), nullable=False, index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("object_id", String(40), nullable=False, index=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("locked_by", String(80), nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("processed_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    CheckConstraint("status in ('pending', 'processing', 'done', 'dead')", name="status_known"),
    Index("ix_outbox_events_status_available_at", "status", "available_at"),
)
