"""Invoice, invoice line and number-series tables.

Amount columns are BIGINT minor units with CHECKs that keep them non-negative. The
``refunded_*`` counters on a line are a database-enforced guard (a line can never be refunded
beyond itself, even if application code were wrong); the authoritative history is the refund
lines, which these counters always equal (they are updated in the same transaction).
"""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, Integer, Numeric,
                        String, Table, Text, UniqueConstraint)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

number_series = Table(
    "number_series", metadata,
    Column("series", String(40), primary_key=True),
    Column("last_number", BigInteger, nullable=False),
    CheckConstraint("last_number >= 0", name="last_number_non_negative"),
)

invoices = Table(
    "invoices", metadata,
    Column("id", String(40), primary_key=True),
    Column("number", String(40), nullable=False),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("tax_mode", String(10), nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("memo", Text, nullable=True),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("voided_at", UtcDateTime, nullable=True),
    Column("document_sha256", String(64), nullable=True),
    # What the statutory clock needs: the kind of contract and when the goods arrived
    # (the last delivery; None until delivered).
    Column("contract_type", String(20), nullable=False, server_default="goods"),
    Column("delivered_at", UtcDateTime, nullable=True),
    UniqueConstraint("seller_id", "number", name="uq_invoices_seller_number"),
    CheckConstraint("contract_type in ('goods', 'subscription', 'services', 'digital_content')",
                    name="contract_type_known"),
    CheckConstraint("tax_mode in ('exclusive', 'inclusive')", name="tax_mode_known"),
    CheckConstraint("discount_minor >= 0 AND subtotal_minor >= 0 AND net_minor >= 0 "
                    "AND tax_minor >= 0 AND total_minor >= 0", name="amounts_non_negative"),
    CheckConstraint("total_minor = net_minor + tax_minor", name="total_is_net_plus_tax"),
)

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("id", String(40), primary_key=True),
    Column("invoice_id", String(40), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("description", String(500), nullable=False),
    Column("sku", String(100), nullable=True),
    Column("category", String(100), nullable=True),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("line_discount_minor", BigInteger, nullable=False),
    Column("invoice_discount_minor", BigInteger, nullable=False),
    Column("tax_rate", Numeric(9, 6), nullable=False),
    Column("net_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("gross_minor", BigInteger, nullable=False),
    Column("refunded_quantity", BigInteger, nullable=False, server_default="0"),
    Column("refunded_gross_minor", BigInteger, nullable=False, server_default="0"),
    Column("refunded_tax_minor", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("kind in ('item', 'shipping')", name="kind_known"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("unit_price_minor >= 0 AND line_discount_minor >= 0 "
                    "AND invoice_discount_minor >= 0 AND net_minor >= 0 AND tax_minor >= 0",
                    name="amounts_non_negative"),
    CheckConstraint("tax_rate >= 0", name="tax_rate_non_negative"),
    CheckConstraint("gross_minor = net_minor + tax_minor", name="gross_is_net_plus_tax"),
    CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity",
                    name="refunded_quantity_within_line"),
    CheckConstraint("refunded_gross_minor >= 0 AND refunded_gross_minor <= gross_minor",
                    name="refunded_gross_within_line"),
    CheckConstraint("refunded_tax_minor >= 0 AND refunded_tax_minor <= tax_minor",
                    name="refunded_tax_within_line"),
)
