"""Staff accounts and API keys: create, list, revoke, authenticate; and the first-run admin.

Invariants:
- a password is stored only as an Argon2id hash (argon2-cffi's ``PasswordHasher``, RFC 9106
  low-memory parameters) and must have at least 12 characters with letters and digits
  (PCI DSS 4.0 req. 8.3.6);
- an API key's secret is returned once, by ``create_key``, and stored only as a SHA-256 digest
  (see ``_digest`` for why a fast hash is right here); the key is found by its public prefix;
- every refusal to authenticate — unknown email, wrong password, inactive user, malformed token,
  unknown prefix, wrong secret, revoked key, expired key — raises the same ``Unauthenticated``
  with the same message, and unknown emails and prefixes still pay for a hash comparison, so
  neither the answer nor (roughly) its timing tells an attacker which case it was;
- everything is scoped to a seller: another seller's key id is ``NotFound`` like a missing one;
- nobody grants more than they hold (``grantor``): see ``domain.may_grant``.

Write functions take an open write transaction ``conn`` and a ``clock``, like every service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from payback.access import domain
from payback.access.domain import Principal
from payback.access.errors import EmailTaken, Forbidden, Unauthenticated
from payback.access.tables import DEFAULT_SELLER_ID, api_keys, sellers, staff_users
from payback.clock import Clock
from payback.errors import NotFound, ValidationFailed
from payback.ids import new_id

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 hashes any length; the cap only bounds the work a request can ask
FIRST_ADMIN_EMAIL = "admin@payback.local"
#: The last-used / last-login stamp is rewritten at most this often, so authenticating a busy
#: key does not turn every read request into a write.
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "pb"
PREFIX_LEN = 12
SECRET_BYTES = 32
_SECRET_LEN = len(base64.b32encode(bytes(SECRET_BYTES)).rstrip(b"="))  # 52 characters
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}_([a-z0-9]{{{PREFIX_LEN}}})_([a-z2-7]{{{_SECRET_LEN}}})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_UNRESTRICTED = ["*"]  # the stored scopes of a key that may use all its role's permissions
BAD_CREDENTIALS = "invalid credentials"
BAD_KEY = BAD_CREDENTIALS  # one message for every bad credential: no oracle

_hasher = PasswordHasher()  # argon2id; parameters from argon2.profiles.RFC_9106_LOW_MEMORY


@cache
def _dummy_password_hash() -> str:
    """A real hash to verify against when the email is unknown (same work as a real check)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _require_seller(conn: Connection, seller_id: str) -> None:
    if conn.execute(select(sellers.c.id).where(sellers.c.id == seller_id)).first() is None:
        raise NotFound(f"seller {seller_id} not found")


def _check_grant(grantor: Principal | None, role: str, scopes: frozenset[str] | None) -> None:
    if grantor is not None and not domain.may_grant(grantor, role, scopes):
        raise Forbidden(f"you cannot grant role {role} with these permissions: it would give "
                        "more than you have")


# ---------------------------------------------------------------------------- staff users


_USER_COLUMNS = [staff_users.c[n] for n in ("id", "seller_id", "email", "name", "role", "active",
                                            "created_at", "last_login_at")]


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password: must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(f"password: must have at most {MAX_PASSWORD} characters")
    if not (any(c.isalpha() for c in password) and any(c.isdigit() for c in password)):
        raise ValidationFailed("password: must contain both letters and digits")


def _normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValidationFailed("email: not an email address")
    return email


def create_user(conn: Connection, clock: Clock, *, seller_id: str, email: str, name: str,
                role: str, password: str, grantor: Principal | None = None) -> dict:
    """A staff account. Emails are unique across sellers (they are the login name)."""
    email = _normalise_email(email)
    if role not in domain.ROLES:
        raise ValidationFailed(f"role: unknown role {role!r}; expected one of "
                               f"{', '.join(domain.ROLES)}")
    if not name or not name.strip() or len(name) > 200:
        raise ValidationFailed("name: must have 1 to 200 characters")
    check_password(password)
    _check_grant(grantor, role, None)
    _require_seller(conn, seller_id)
    if conn.execute(select(staff_users.c.id).where(staff_users.c.email == email)).first():
        raise EmailTaken(f"a staff account with email {email} exists")
    row = {"id": new_id("staff_user"), "seller_id": seller_id, "email": email, "name": name.strip(),
           "role": role, "password_hash": _hasher.hash(password), "active": True,
           "created_at": clock.now(), "last_login_at": None}
    conn.execute(insert(staff_users), row)
    return {k: v for k, v in row.items() if k != "password_hash"}


def list_users(conn: Connection, *, seller_id: str, after: str | None = None,
               limit: int = 100) -> list[dict]:
    q = (select(*_USER_COLUMNS).where(staff_users.c.seller_id == seller_id)
         .order_by(staff_users.c.id).limit(limit))
    if after:
        q = q.where(staff_users.c.id > after)
    return [dict(r._mapping) for r in conn.execute(q)]


def find_login(conn: Connection, email: str):
    """The staff row for this login email, or None (then ``check_login`` still does the work)."""
    return conn.execute(select(staff_users).where(
        staff_users.c.email == (email or "").strip().lower())).first()


def verify_password(conn: Connection, clock: Clock, email: str,
                    password: str) -> tuple[Principal, bool]:
    """Check staff credentials without writing: (principal, whether last_login_at is stale)."""
    return check_login(find_login(conn, email), password, clock)


def check_login(row, password: str, clock: Clock) -> tuple[Principal, bool]:
    """Verify a password against ``find_login``'s row, outside any transaction (Argon2 takes
    about a tenth of a second; no database connection need wait for it)."""
    stored = row.password_hash if row is not None else _dummy_password_hash()
    try:
        ok = _hasher.verify(stored, (password or "")[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or not row.active:
        raise Unauthenticated(BAD_CREDENTIALS)
    principal = Principal(id=row.id, kind="staff", seller_id=row.seller_id, role=row.role,
                          name=row.name)
    return principal, _stale(row.last_login_at, clock)


def authenticate_password(conn: Connection, clock: Clock, email: str, password: str) -> Principal:
    """Staff email and password → principal; records the login time. Needs a write ``conn``."""
    principal, _ = verify_password(conn, clock, email, password)
    touch(conn, clock, principal)
    return principal


# ------------------------------------------------------------------------------ API keys


_KEY_COLUMNS = [api_keys.c[n] for n in ("id", "seller_id", "name", "prefix", "role", "scopes",
                                        "created_by", "created_at", "last_used_at", "expires_at",
                                        "revoked_at")]


def _digest(secret: str) -> str:
    """SHA-256 of the secret. A slow hash (Argon2) exists to make guessing LOW-entropy secrets
    (passwords) expensive; a key secret is 256 random bits from ``secrets``, which no amount of
    hashing speed makes guessable, and a fast digest keeps per-request authentication cheap.
    The algorithm is named in the stored value so it can be changed later."""
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def _key_out(row) -> dict:
    out = dict(row._mapping)
    out["scopes"] = None if out["scopes"] == _UNRESTRICTED else sorted(out["scopes"])
    return out


def create_key(conn: Connection, clock: Clock, *, seller_id: str, name: str, role: str,
               scopes: frozenset[str] | set[str] | list[str] | None = None,
               expires_at: datetime | None = None, created_by: str | None = None,
               grantor: Principal | None = None) -> tuple[dict, str]:
    """A new API key and its token ``pb_<prefix>_<secret>``, which is never available again."""
    scope_set = frozenset(scopes) if scopes is not None else None
    problems = domain.check_scopes(role, scope_set)
    if problems:
        raise ValidationFailed("; ".join(problems))
    if not name or not name.strip() or len(name) > 200:
        raise ValidationFailed("name: must have 1 to 200 characters")
    now = clock.now()
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise ValidationFailed("expires_at: must be a time in the future, with a time zone")
    _check_grant(grantor, role, scope_set)
    _require_seller(conn, seller_id)
    prefix = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                     for _ in range(PREFIX_LEN))
    secret = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode().lower()
    row = {"id": new_id("api_key"), "seller_id": seller_id, "name": name.strip(), "prefix": prefix,
           "secret_hash": _digest(secret), "role": role,
           "scopes": sorted(scope_set) if scope_set is not None else _UNRESTRICTED,
           "created_by": created_by, "created_at": now, "last_used_at": None,
           "expires_at": expires_at, "revoked_at": None}
    conn.execute(insert(api_keys), row)
    key = {k: v for k, v in row.items() if k != "secret_hash"}
    key["scopes"] = sorted(scope_set) if scope_set is not None else None
    return key, f"{TOKEN_PREFIX}_{prefix}_{secret}"


def get_key(conn: Connection, *, seller_id: str, key_id: str) -> dict:
    row = conn.execute(select(*_KEY_COLUMNS).where(api_keys.c.id == key_id,
                                                   api_keys.c.seller_id == seller_id)).first()
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    return _key_out(row)


def list_keys(conn: Connection, *, seller_id: str, after: str | None = None,
              limit: int = 100) -> list[dict]:
    q = (select(*_KEY_COLUMNS).where(api_keys.c.seller_id == seller_id)
         .order_by(api_keys.c.id).limit(limit))
    if after:
        q = q.where(api_keys.c.id > after)
    return [_key_out(r) for r in conn.execute(q)]


def revoke_key(conn: Connection, clock: Clock, *, seller_id: str, key_id: str) -> dict:
    """Revoke at once (the next request with it is refused). Revoking twice keeps the first
    time. Another seller's key is NotFound, exactly like a missing one."""
    get_key(conn, seller_id=seller_id, key_id=key_id)
    conn.execute(update(api_keys).where(api_keys.c.id == key_id,
                                        api_keys.c.seller_id == seller_id,
                                        api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=clock.now()))
    return get_key(conn, seller_id=seller_id, key_id=key_id)


def verify_key(conn: Connection, clock: Clock, token: str) -> tuple[Principal, bool]:
    """Check a token without writing: (principal, whether last_used_at is stale)."""
    match = _TOKEN.match(token or "")
    row = None
    if match:
        row = conn.execute(select(api_keys).where(api_keys.c.prefix == match.group(1))).first()
    stored = row.secret_hash if row is not None else _digest("no such key")
    presented = _digest(match.group(2) if match else "")
    now = clock.now()
    if (not hmac.compare_digest(stored, presented) or row is None or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)):
        raise Unauthenticated(BAD_KEY)
    scopes = None if row.scopes == _UNRESTRICTED else frozenset(row.scopes)
    principal = Principal(id=row.id, kind="api_key", seller_id=row.seller_id, role=row.role,
                          name=row.name, scopes=scopes)
    return principal, _stale(row.last_used_at, clock)


def authenticate_key(conn: Connection, clock: Clock, token: str) -> Principal:
    """Token → principal; records the use time. Needs a write ``conn``."""
    principal, _ = verify_key(conn, clock, token)
    touch(conn, clock, principal)
    return principal


def refusal_reason(conn: Connection, clock: Clock, token: str) -> str:
    """Why a token was refused, for the audit trail only (never shown to the caller):
    malformed, unknown, wrong_secret, revoked or expired."""
    match = _TOKEN.match(token or "")
    if not match:
        return "malformed"
    row = conn.execute(select(api_keys).where(api_keys.c.prefix == match.group(1))).first()
    if row is None:
        return "unknown"
    if not hmac.compare_digest(row.secret_hash, _digest(match.group(2))):
        return "wrong_secret"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at is not None and row.expires_at <= clock.now() else "ok"


# ------------------------------------------------------------------------------- shared


def _stale(stamp: datetime | None, clock: Clock) -> bool:
    return stamp is None or clock.now() - stamp >= TOUCH_EVERY


def touch(conn: Connection, clock: Clock, principal: Principal) -> None:
    """Record that the principal was just used (API key) or logged in (staff)."""
    table, column = ((api_keys, "last_used_at") if principal.kind == "api_key"
                     else (staff_users, "last_login_at"))
    conn.execute(update(table).where(table.c.id == principal.id)
                 .values({column: clock.now()}))


# ----------------------------------------------------------------------- first-run admin


def random_password() -> str:
    """24 characters of letters and digits, at least one of each (so it passes our own rule)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(24))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


def ensure_first_admin(conn: Connection, clock: Clock, *,
                       seller_id: str = DEFAULT_SELLER_ID) -> tuple[str, str] | None:
    """On a database with no staff user at all, create ``admin@payback.local`` (role admin) with
    a random password and return (email, password) — the only time the password exists in clear.
    Otherwise do nothing and return None. Safe when two processes race: the unique email lets
    one win, and the other gets None."""
    if conn.execute(select(func.count()).select_from(staff_users)).scalar_one():
        return None
    password = random_password()
    try:
        with conn.begin_nested():
            create_user(conn, clock, seller_id=seller_id, email=FIRST_ADMIN_EMAIL,
                        name="Administrator", role="admin", password=password)
    except (IntegrityError, EmailTaken):
        return None
    return FIRST_ADMIN_EMAIL, password
