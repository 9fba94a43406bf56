"""Merchant policies stored through the API: versioned, one active per seller."""

from sqlalchemy import (JSON, Boolean, Column, ForeignKey, Integer, String, Table,
                        UniqueConstraint)

from payback.db import UtcDateTime, metadata

merchant_policies = Table(
    "merchant_policies", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False, index=True),
    Column("policy_id", String(60), nullable=False),
    Column("version", String(20), nullable=False),
    Column("body", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(60), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("seller_id", "policy_id", "version", name="uq_policy_version"),
)
