"""Staff console sessions, kept on the server so that logout and deactivation end them at once.
The browser holds only a random session token; the table stores its SHA-256, the CSRF token
bound to the session, and when it expires."""

from sqlalchemy import Column, ForeignKey, String, Table

from payback.db import UtcDateTime, metadata

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("staff_users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)
