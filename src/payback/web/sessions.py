"""Staff console login sessions and CSRF tokens, kept on the server.

Invariants:
- the browser holds only a random session token (256 bits); ``web_sessions`` stores its SHA-256,
  so a copy of the table cannot be replayed as a cookie;
- a session is valid while it is not revoked, younger than ``session_hours`` and used within the
  last ``session_idle_minutes``, and while its staff user is active: deactivating a user or
  logging out ends every request at once (no signed, self-contained cookie to outlive it);
- every session has its own CSRF token; a console form carries it in a hidden field and a POST
  is refused unless the field equals the session's token (compared in constant time);
- the login form is protected against login CSRF by a pre-session token set in a cookie and
  repeated in a field (double submit): a foreign page can post neither, so it cannot log a
  victim into the attacker's account;
- ``last_seen_at`` is rewritten at most once a minute, so reading pages is not a write per
  request.

Functions that change rows take an open write transaction ``conn``, like every service.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from payback.access.domain import Principal
from payback.access.tables import staff_users
from payback.settings import Settings
from payback.web.tables import web_sessions

SESSION_COOKIE = "payback_session"
LOGIN_COOKIE = "payback_login"
COOKIE_PATH = "/console"
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Session:
    """A valid session: who is logged in, and the CSRF token their forms must carry."""

    token_hash: str
    user: Principal
    email: str
    csrf_token: str
    expires_at: datetime
    stale: bool  # last_seen_at is old enough to be rewritten


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def create_session(conn: Connection, settings: Settings, user_id: str,
                   now: datetime) -> tuple[str, dict]:
    """A new session for ``user_id``: returns (the cookie's token, the stored row). The user's
    sessions that have expired are deleted on the way (the table does not grow forever)."""
    conn.execute(web_sessions.delete().where(web_sessions.c.user_id == user_id,
                                             web_sessions.c.expires_at < now))
    token = new_token()
    row = {"token_hash": token_hash(token), "user_id": user_id, "csrf_token": new_token(),
           "created_at": now, "last_seen_at": now,
           "expires_at": now + timedelta(hours=settings.session_hours), "revoked_at": None}
    conn.execute(web_sessions.insert(), row)
    return token, row


def load_session(conn: Connection, settings: Settings, token: str | None,
                 now: datetime) -> Session | None:
    """The session this cookie names, or None when absent, unknown, revoked, expired, idle too
    long, or its user is deactivated."""
    if not token or len(token) > 200:
        return None
    s, u = web_sessions.c, staff_users.c
    row = conn.execute(
        select(s.token_hash, s.csrf_token, s.last_seen_at, s.expires_at, s.revoked_at,
               u.id, u.seller_id, u.role, u.name, u.email, u.active)
        .join(staff_users, staff_users.c.id == s.user_id)
        .where(s.token_hash == token_hash(token))).first()
    if row is None or row.revoked_at is not None or not row.active:
        return None
    idle = timedelta(minutes=settings.session_idle_minutes)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        return None
    user = Principal(id=row.id, kind="staff", seller_id=row.seller_id, role=row.role,
                     name=row.name)
    return Session(token_hash=row.token_hash, user=user, email=row.email,
                   csrf_token=row.csrf_token, expires_at=row.expires_at,
                   stale=now - row.last_seen_at >= TOUCH_EVERY)


def touch(conn: Connection, session: Session, now: datetime) -> None:
    """Record activity (the idle timer starts again)."""
    conn.execute(update(web_sessions).where(web_sessions.c.token_hash == session.token_hash)
                 .values(last_seen_at=now))


def revoke(conn: Connection, token_hash_value: str, now: datetime) -> None:
    """End a session (logout). Revoking twice keeps the first time."""
    conn.execute(update(web_sessions).where(web_sessions.c.token_hash == token_hash_value,
                                            web_sessions.c.revoked_at.is_(None))
                 .values(revoked_at=now))


def revoke_all_for_user(conn: Connection, user_id: str, now: datetime) -> int:
    """End every open session of a user (e.g. when the account is deactivated)."""
    result = conn.execute(update(web_sessions).where(web_sessions.c.user_id == user_id,
                                                     web_sessions.c.revoked_at.is_(None))
                          .values(revoked_at=now))
    return result.rowcount or 0


def cookie_options(settings: Settings) -> dict:
    """HttpOnly, SameSite=Lax, scoped to the console; Secure when served over HTTPS."""
    return {"httponly": True, "samesite": "lax", "path": COOKIE_PATH,
            "secure": settings.public_url.lower().startswith("https://")}
