"""Customer notifications: every message Payback sends a customer about a refund (request
received, approved, rejected, paid, failed), rendered in the customer's language, queued in the
same transaction as the change it reports and sent over SMTP by the worker. Each row appears on
the refund's timeline."""

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String, Table, Text

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

notifications = Table(
    "notifications", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=True, index=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False, index=True),
    #: refund_received, refund_approved, refund_rejected, refund_paid, refund_failed
    Column("kind", String(40), nullable=False),
    #: The outbox event that caused it: one notification per (event, kind).
    Column("event_id", String(40), nullable=False, unique=True),
    Column("locale", String(20), nullable=False),
    Column("to_address", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("status", String(12), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("message_id", String(300), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    CheckConstraint("status in ('queued', 'sent', 'failed')", name="status_known"),
)
