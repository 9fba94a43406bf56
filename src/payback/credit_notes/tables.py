"""Credit notes: legal documents that reverse (part of) an invoice, with their own gapless
number series per seller, a reference to the original invoice, lines per invoice line and tax
rate, and the split of the total into refunded / credited / settled outside.

Immutable once issued: voiding issues a new, reversing credit note (``kind = 'void'``,
``voids_id``) rather than changing the original. On PostgreSQL a trigger refuses UPDATE and
DELETE. ``document_sha256`` is the hash of the rendered document stored at issue.
"""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, Integer, Numeric,
                        String, Table, Text, UniqueConstraint)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

credit_notes = Table(
    "credit_notes", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("number", String(40), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("invoice_id", String(40), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=True, unique=True),
    Column("voids_id", String(40), ForeignKey("credit_notes.id"), nullable=True, unique=True),
    Column("reason", String(40), nullable=False),
    Column("memo", Text, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("credited_minor", BigInteger, nullable=False),
    Column("outside_minor", BigInteger, nullable=False),
    Column("locale", String(20), nullable=False, server_default="en_US"),
    Column("issued_at", UtcDateTime, nullable=False, index=True),
    Column("document_sha256", String(64), nullable=True),
    UniqueConstraint("seller_id", "number", name="uq_credit_notes_seller_number"),
    CheckConstraint("kind in ('refund', 'adjustment', 'void')", name="kind_known"),
    CheckConstraint("total_minor = net_minor + tax_minor", name="total_is_net_plus_tax"),
    CheckConstraint("refunded_minor >= 0 AND credited_minor >= 0 AND outside_minor >= 0",
                    name="split_non_negative"),
    CheckConstraint("refunded_minor + credited_minor + outside_minor = total_minor "
                    "OR kind = 'void'", name="split_sums_to_total"),
)

credit_note_lines = Table(
    "credit_note_lines", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("credit_note_id", String(40), ForeignKey("credit_notes.id"), nullable=False,
           index=True),
    Column("invoice_line_id", String(40), ForeignKey("invoice_lines.id"), nullable=False),
    Column("description", String(500), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("tax_rate", Numeric(9, 6), nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    CheckConstraint("gross_minor = net_minor + tax_minor", name="gross_is_net_plus_tax"),
)
