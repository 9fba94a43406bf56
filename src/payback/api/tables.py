"""Stored idempotent responses: one row per (scope, key)."""

from sqlalchemy import (Column, Integer, LargeBinary, PrimaryKeyConstraint, String,
                        Table)

from payback.db import UtcDateTime, metadata

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("scope", String(100), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
)
