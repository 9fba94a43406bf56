"""Sellers (the scope every object belongs to), staff accounts and API keys.

A principal (staff user or API key) belongs to exactly one seller and only ever sees that
seller's objects. Passwords are stored as Argon2 hashes; API key secrets are shown once and stored
only as a hash, next to a public prefix that identifies the key in logs and lists.
"""

from sqlalchemy import JSON, Boolean, CheckConstraint, Column, ForeignKey, String, Table, Text

from payback.db import UtcDateTime, metadata

#: Every installation has this seller; single-merchant deployments never see another.
DEFAULT_SELLER_ID = "sel_default"
ROLES = ("viewer", "agent", "approver", "admin", "auditor")
_ROLE_CHECK = "role in ('viewer', 'agent', 'approver', 'admin', 'auditor')"

sellers = Table(
    "sellers", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("country", String(2), nullable=True),
    Column("vat_number", String(40), nullable=True),
    Column("address", Text, nullable=True),
    Column("email", String(320), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

staff_users = Table(
    "staff_users", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(12), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime, nullable=True),
    CheckConstraint(_ROLE_CHECK, name="role_known"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("seller_id", String(40), ForeignKey("sellers.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(40), nullable=False, unique=True),
    Column("secret_hash", String(200), nullable=False),
    Column("role", String(12), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_by", String(40), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint(_ROLE_CHECK, name="role_known"),
)
