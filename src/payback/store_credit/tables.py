"""Store-credit wallets (one per customer and currency) and their append-only history.

``CHECK (balance_minor >= 0)`` is the database's last word against overspending: even two
concurrent spends that both passed the application check cannot drive a balance negative.
"""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, String, Table, Text,
                        UniqueConstraint)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

wallets = Table(
    "store_credit_wallets", metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("currency", String(3), nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("customer_id", "currency", name="uq_wallet_customer_currency"),
    CheckConstraint("balance_minor >= 0", name="balance_non_negative"),
)

wallet_transactions = Table(
    "store_credit_transactions", metadata,
    Column("id", String(40), primary_key=True),
    Column("wallet_id", String(40), ForeignKey("store_credit_wallets.id"), nullable=False,
           index=True),
    Column("kind", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=True),
    Column("lot_id", String(40), ForeignKey("store_credit_lots.id"), nullable=True),
    Column("memo", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("amount_minor <> 0", name="amount_non_zero"),
    CheckConstraint("balance_after_minor >= 0", name="balance_after_non_negative"),
    CheckConstraint("kind in ('refund', 'spend', 'refund_reversal', 'goodwill', 'promotional', "
                    "'bonus', 'expiry', 'revocation', 'spend_reversal')", name="kind_known"),
)

#: A grant of store credit with its own kind and expiry; spending draws from lots (earliest
#: expiry first), so expiry and revocation know exactly what is left of each grant.
lots = Table(
    "store_credit_lots", metadata,
    Column("id", String(40), primary_key=True),
    Column("wallet_id", String(40), ForeignKey("store_credit_wallets.id"), nullable=False,
           index=True),
    Column("kind", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("remaining_minor", BigInteger, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True, index=True),
    Column("refund_id", String(40), ForeignKey("refunds.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime, nullable=True),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("remaining_minor >= 0 AND remaining_minor <= amount_minor",
                    name="remaining_within_amount"),
    CheckConstraint("kind in ('refund', 'goodwill', 'promotional', 'bonus')", name="kind_known"),
)
