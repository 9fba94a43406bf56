"""Ledger tables: accounts, journal entries and postings (double entry, append-only).

On PostgreSQL two triggers (see migrations) back the rules in code: a deferred constraint trigger
refuses any journal entry whose postings do not balance per currency at commit, and another
refuses UPDATE and DELETE of postings and entries.
"""

from sqlalchemy import (BigInteger, CheckConstraint, Column, ForeignKey, Integer,
                        String, Table, Text)

from payback.access.tables import DEFAULT_SELLER_ID
from payback.db import UtcDateTime, metadata

accounts = Table(
    "accounts", metadata,
    Column("code", String(10), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("type", String(10), nullable=False),
    CheckConstraint("type in ('asset', 'liability', 'income', 'expense', 'equity')",
                    name="type_known"),
)

journal_entries = Table(
    "journal_entries", metadata,
    Column("id", String(40), primary_key=True),
    Column("event_type", String(40), nullable=False, index=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False,
           server_default=DEFAULT_SELLER_ID, index=True),
    Column("object_id", String(40), nullable=False, index=True),
    Column("memo", Text, nullable=True),
    Column("posted_at", UtcDateTime, nullable=False, index=True),
)

postings = Table(
    "postings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", String(40), ForeignKey("journal_entries.id"), nullable=False, index=True),
    Column("account_code", String(10), ForeignKey("accounts.code"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("debit_minor", BigInteger, nullable=False),
    Column("credit_minor", BigInteger, nullable=False),
    CheckConstraint("debit_minor >= 0 AND credit_minor >= 0 AND debit_minor + credit_minor > 0 "
                    "AND (debit_minor = 0 OR credit_minor = 0)", name="one_sided_positive"),
)
