"""Gateway intents (one per refund tender paid back through a gateway), the inbound webhook
events already seen (deduplication by the gateway's event id), and reconciliation runs.

A gateway intent is committed together with its refund's move to ``processing`` and BEFORE the
gateway is called; its ``idempotency_key`` is unique, so one intent can never become two gateway
refunds. ``status`` follows the canonical gateway vocabulary (see ``payback.gateways.port``):

    requested ─► submitted ─► pending | requires_action ─► succeeded | failed | canceled

``submitted`` means the call was sent and its outcome is not known yet (a timeout leaves it so).
"""

from sqlalchemy import (JSON, BigInteger, CheckConstraint, Column, ForeignKey, Integer, String,
                        Table, Text, UniqueConstraint)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

INTENT_STATUSES = ("requested", "submitted", "pending", "requires_action", "succeeded", "failed",
                   "canceled")
INTENT_TERMINAL = frozenset({"succeeded", "failed", "canceled"})

gateway_intents = Table(
    "gateway_intents", metadata,
    Column("id", String(40), primary_key=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=False, index=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False, index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("gateway", String(20), nullable=False),
    Column("payment_reference", String(200), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("idempotency_key", String(80), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    #: 'payback' when Payback asked for it; 'gateway' when it was made at the gateway (its
    #: dashboard) and learnt from a webhook or a reconciliation.
    Column("origin", String(10), nullable=False, server_default="payback"),
    Column("gateway_refund_id", String(200), nullable=True, unique=True),
    Column("failure_reason", String(40), nullable=True),
    Column("calls", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("status in ('requested', 'submitted', 'pending', 'requires_action', "
                    "'succeeded', 'failed', 'canceled')", name="status_known"),
    CheckConstraint("origin in ('payback', 'gateway')", name="origin_known"),
)

gateway_webhook_events = Table(
    "gateway_webhook_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway", String(20), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("type", String(80), nullable=False),
    Column("gateway_refund_id", String(200), nullable=True, index=True),
    Column("status", String(20), nullable=True),
    #: What the event did: applied, stale (older than what Payback knows; changed nothing),
    #: recorded (a refund made at the gateway became a Payback refund), unmatched.
    Column("outcome", String(20), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("gateway", "event_id", name="uq_gateway_webhook_events_gateway_event"),
)

reconciliation_runs = Table(
    "reconciliation_runs", metadata,
    Column("id", String(40), primary_key=True),
    Column("gateway", String(20), nullable=False),
    Column("period_from", UtcDateTime, nullable=False),
    Column("period_to", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("compared", Integer, nullable=False, server_default="0"),
    Column("differences", JSON, nullable=False),
    Column("repaired", Integer, nullable=False, server_default="0"),
)
