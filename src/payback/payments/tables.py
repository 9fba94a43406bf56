"""Payments recorded against invoices.

``refunded_minor`` is a database-enforced guard: ``CHECK (refunded_minor <= amount_minor)`` makes
an over-refund impossible even if the application check were skipped. It always equals the sum
of this payment's refund tenders in active refunds (same transaction).
Card data: only the gateway token, brand, last four and expiry are ever stored.
"""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, Integer,
                        String, Table)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

payments = Table(
    "payments", metadata,
    Column("id", String(40), primary_key=True),
    Column("invoice_id", String(40), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("method", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("card_token", String(200), nullable=True),
    Column("card_brand", String(20), nullable=True),
    Column("card_last4", String(4), nullable=True),
    Column("card_exp_month", Integer, nullable=True),
    Column("card_exp_year", Integer, nullable=True),
    Column("reference", String(200), nullable=True),
    #: The gateway that captured this payment ('sandbox', 'stripe'); its ``reference`` is the
    #: gateway's payment id. A card payment with a gateway is refunded THROUGH that gateway (by
    #: the worker, after commit); without one (a terminal not connected to Payback) the refund
    #: is recorded as paid out of band.
    Column("gateway", String(20), nullable=True),
    Column("wallet_id", String(40), ForeignKey("store_credit_wallets.id"), nullable=True),
    Column("captured_at", UtcDateTime, nullable=False),
    CheckConstraint("method in ('card', 'bank_transfer', 'store_credit', 'cash', 'other')",
                    name="method_known"),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor",
                    name="refunded_within_amount"),
    CheckConstraint("method <> 'store_credit' OR wallet_id IS NOT NULL",
                    name="store_credit_has_wallet"),
)
