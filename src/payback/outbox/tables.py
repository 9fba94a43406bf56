"""The transactional outbox: events written in the same transaction as the change they report.
A worker (later) delivers them; until then they are the durable record of what happened."""

from sqlalchemy import ForeignKey, JSON, Column, Integer, String, Table

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

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
)
