"""Refunds, their lines (which invoice lines, how much net and tax) and tenders (which payment
gives the money back, how much)."""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, Integer,
                        String, Table, Text)

from payback.db import UtcDateTime, metadata

refunds = Table(
    "refunds", metadata,
    Column("id", String(40), primary_key=True),
    Column("invoice_id", String(40), ForeignKey("invoices.id"), nullable=False, index=True),
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
    Column("created_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime, nullable=True),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("net_minor >= 0 AND tax_minor >= 0", name="parts_non_negative"),
    CheckConstraint("amount_minor = net_minor + tax_minor", name="amount_is_net_plus_tax"),
    CheckConstraint("kind in ('full', 'amount', 'lines')", name="kind_known"),
    CheckConstraint("method in ('original_payment', 'store_credit')", name="method_known"),
    CheckConstraint("status in ('requested', 'pending_approval', 'approved', 'processing', "
                    "'succeeded', 'failed', 'rejected', 'canceled')", name="status_known"),
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
    CheckConstraint("destination in ('original_payment', 'store_credit')",
                    name="destination_known"),
)
