"""Refunds, their lines (which invoice lines, how much net and tax) and tenders (which payment
gives the money back, how much)."""

from sqlalchemy import (JSON, BigInteger, CheckConstraint, Column, ForeignKey, Integer,
                        String, Table, Text)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

refunds = Table(
    "refunds", metadata,
    Column("id", String(40), primary_key=True),
    Column("invoice_id", String(40), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("method", String(20), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("note", Text, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    # A restocking fee the policy lets the merchant keep, and a bonus granted on top when the
    # customer takes store credit. amount = net + tax - fee is what the customer gets back.
    Column("fee_minor", BigInteger, nullable=False, server_default="0"),
    Column("bonus_minor", BigInteger, nullable=False, server_default="0"),
    Column("requested_by", String(60), nullable=True),
    Column("approved_by", String(60), nullable=True),
    Column("policy_id", String(60), nullable=True),
    Column("policy_version", String(20), nullable=True),
    Column("decision", JSON, nullable=True),
    Column("due_at", UtcDateTime, nullable=True, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    #: A refund made after this one failed at the gateway, to pay the customer another way.
    Column("fallback_of", String(40), ForeignKey("refunds.id"), nullable=True, index=True,
           unique=True),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("net_minor >= 0 AND tax_minor >= 0 AND fee_minor >= 0 AND bonus_minor >= 0",
                    name="parts_non_negative"),
    CheckConstraint("amount_minor + fee_minor = net_minor + tax_minor",
                    name="amount_is_net_plus_tax_less_fee"),
    CheckConstraint("kind in ('full', 'amount', 'lines')", name="kind_known"),
    CheckConstraint("method in ('original_payment', 'store_credit')", name="method_known"),
    CheckConstraint("status in ('requested', 'pending_approval', 'approved', 'processing', "
                    "'succeeded', 'failed', 'rejected', 'canceled')", name="status_known"),
)

refund_events = Table(
    "refund_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=False, index=True),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("actor_id", String(60), nullable=False),
    Column("actor_role", String(12), nullable=True),
    Column("comment", Text, nullable=True),
    Column("at", UtcDateTime, nullable=False),
)

refund_lines = Table(
    "refund_lines", metadata,
    Column("id", String(40), primary_key=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=False, index=True),
    Column("invoice_line_id", String(40), ForeignKey("invoice_lines.id"), nullable=False,
           index=True),
    Column("quantity", BigInteger, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    CheckConstraint("quantity >= 0 AND gross_minor >= 0 AND net_minor >= 0 AND tax_minor >= 0 "
                    "AND discount_minor >= 0", name="non_negative"),
    CheckConstraint("gross_minor = net_minor + tax_minor", name="gross_is_net_plus_tax"),
)

refund_tenders = Table(
    "refund_tenders", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=False, index=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False, index=True),
    Column("destination", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("destination in ('original_payment', 'store_credit', 'manual_payout')",
                    name="destination_known"),
)
