"""The audit trail: append-only, hash-chained records of who did what to which object.

``seq`` orders the chain; each record stores the hash of the one before (``prev_hash``) and its
own ``hash`` over its canonical content, so editing or deleting any row breaks the chain from
there on. On PostgreSQL a trigger refuses UPDATE and DELETE on this table.
"""

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Integer, String, Table

from payback.db import UtcDateTime, metadata

audit_records = Table(
    "audit_records", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"),
           primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("seller_id", String(40), nullable=True, index=True),
    Column("actor_id", String(60), nullable=False, index=True),
    Column("actor_kind", String(12), nullable=False),
    Column("actor_role", String(12), nullable=True),
    Column("action", String(60), nullable=False),
    Column("object_type", String(30), nullable=True),
    Column("object_id", String(40), nullable=True, index=True),
    Column("outcome", String(10), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("origin", String(64), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    CheckConstraint("outcome in ('allowed', 'refused', 'error')", name="outcome_known"),
    CheckConstraint("actor_kind in ('staff', 'api_key', 'system', 'gateway', 'customer', 'cli')",
                    name="actor_kind_known"),
)
