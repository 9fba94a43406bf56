"""Idempotency keys for every POST, in the manner of Stripe and the IETF draft.

- Same key, same request (method, path, body): the first response is replayed byte for byte.
- Same key, another request: 422 ``idempotency_key_reused``; nothing runs.
- Same key while the first request is still running: 409 ``idempotency_in_flight``.

The key is claimed in a short transaction of its own (so a concurrent duplicate sees it at once),
and the stored response is written **in the same transaction as the business change**, so a crash
can never leave a change without its stored response, or the other way round. A domain error is
stored too (the request was executed and refused). An unexpected error releases the key so the
client can retry. A claim older than ``LEASE`` belongs to a request that died before committing
(its transaction rolled back), so it may be taken over safely.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from payback import db
from payback.api.tables import idempotency_keys
from payback.errors import IdempotencyInFlight, IdempotencyKeyReused, ValidationFailed

LEASE = timedelta(minutes=5)
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters")
    return key


def claim(engine: Engine, scope: str, key: str, fp: str, now: datetime,
          retention: timedelta = timedelta(hours=24)) -> tuple[int, bytes] | None:
    """Claim the key. Returns a stored (status, body) to replay, or None when we now own it."""
    try:
        with db.write(engine) as conn:
            conn.execute(insert(idempotency_keys), {
                "scope": scope, "key": key, "fingerprint": fp, "state": "in_flight",
                "status_code": None, "body": None, "created_at": now})
        return None
    except IntegrityError:
        pass
    with db.write(engine) as conn:
        row = conn.execute(select(idempotency_keys).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            .with_for_update()).first()
        if row is None:  # released between our insert and this read; try again once
            return claim(engine, scope, key, fp, now, retention)
        if _aware(row.created_at) <= now - retention:
            # Past the retention window a key is forgotten (as Stripe prunes after 24 hours):
            # this request starts afresh and takes the key over.
            conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
                .values(fingerprint=fp, state="in_flight", status_code=None, body=None,
                        created_at=now))
            return None
        if row.fingerprint != fp:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key")
        if row.state == "done":
            return row.status_code, row.body
        if _aware(row.created_at) > now - LEASE:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")
        conn.execute(update(idempotency_keys).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            .values(created_at=now))
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def complete(conn: Connection, scope: str, key: str, status: int, body: bytes) -> None:
    conn.execute(update(idempotency_keys).where(
        idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        .values(state="done", status_code=status, body=body))


def release(engine: Engine, scope: str, key: str) -> None:
    with db.write(engine) as conn:
        conn.execute(delete(idempotency_keys).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key == key,
            idempotency_keys.c.state == "in_flight"))


def run_once(engine: Engine, *, scope: str, key: str | None, fp: str, now: datetime,
             work: Callable[[Connection], tuple[int, bytes]],
             on_domain_error: Callable[[Exception], tuple[int, bytes]],
             retention: timedelta = timedelta(hours=24)) -> tuple[int, bytes]:
    """Run ``work`` in one write transaction, at most once per key."""
    from payback.errors import DomainError

    if key is None:
        try:
            with db.write(engine) as conn:
                return work(conn)
        except DomainError as err:
            return on_domain_error(err)
    check_key(key)
    stored = claim(engine, scope, key, fp, now, retention)
    if stored is not None:
        return stored
    try:
        with db.write(engine) as conn:
            status, body = work(conn)
            complete(conn, scope, key, status, body)
            return status, body
    except DomainError as err:
        status, body = on_domain_error(err)
        with db.write(engine) as conn:
            complete(conn, scope, key, status, body)
        return status, body
    except BaseException:
        release(engine, scope, key)
        raise
