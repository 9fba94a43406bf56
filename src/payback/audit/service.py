"""The audit trail's shell: append a record inside the caller's transaction, verify the chain,
query records.

Invariants:
- ``record`` writes in the caller's transaction, so a business write and its audit record commit
  or roll back together; a refused attempt is recorded in a transaction of its own;
- the chain never forks: before reading the last hash, PostgreSQL writers take one
  transaction-scoped advisory lock (``AUDIT_CHAIN_LOCK``), held until commit or rollback, so two
  transactions can never chain to the same predecessor; SQLite admits one writer at a time
  already (``BEGIN IMMEDIATE``, see ``payback.db``). This needs READ COMMITTED (PostgreSQL's
  default, which ``payback.db`` uses): under REPEATABLE READ the last hash would be read from a
  snapshot taken before the lock;
- a summary is redacted (``domain.redact``) before it is hashed and stored: no password, secret,
  token or full card number ever reaches the table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from payback.audit import domain
from payback.audit.domain import VerifyResult
from payback.audit.tables import audit_records
from payback.db import is_sqlite

#: Key of the PostgreSQL advisory lock that serialises appends to the chain ("payback" + 0x01).
AUDIT_CHAIN_LOCK = 0x7061796261636B01

_LAST_HASH = select(audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
_INSERT = insert(audit_records).returning(audit_records.c.seq)
_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=AUDIT_CHAIN_LOCK)
#: Client-supplied text (a request id header, a forwarded address, an id from a URL) is clipped
#: to its column rather than allowed to make the caller's whole transaction fail.
_CLIPPED = {"object_id": 40, "origin": 64, "request_id": 64}
_LIMITED = {"actor_id": 60, "actor_role": 12, "action": 60, "object_type": 30, "seller_id": 40}


def record(conn: Connection, *, at: datetime, actor_id: str, actor_kind: str,
           actor_role: str | None = None, seller_id: str | None = None, action: str,
           object_type: str | None = None, object_id: str | None = None,
           outcome: str = "allowed", summary: Mapping[str, Any], origin: str,
           request_id: str | None = None) -> dict:
    """Append one record to the chain inside ``conn``'s open transaction; return it (with
    ``seq``, ``prev_hash`` and ``hash``).

    Call it as the LAST statement of the transaction: on PostgreSQL it takes the chain's advisory
    lock, which every other writer of an audit record then waits for until this transaction
    ends, so the lock is held only briefly (and never while waiting for row locks).
    """
    fields = _checked(at=at, seller_id=seller_id, actor_id=actor_id, actor_kind=actor_kind,
                      actor_role=actor_role, action=action, object_type=object_type,
                      object_id=object_id, outcome=outcome, origin=origin,
                      request_id=request_id)
    fields["summary"] = domain.redact(summary)
    if not is_sqlite(conn):
        conn.execute(_LOCK)
    prev = conn.execute(_LAST_HASH).scalar() or domain.GENESIS
    rec = domain.seal(fields, prev)
    rec["seq"] = conn.execute(_INSERT, rec).scalar_one()
    return rec


def _checked(**fields: Any) -> dict:
    if fields["outcome"] not in domain.OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(domain.OUTCOMES)}")
    if fields["actor_kind"] not in domain.ACTOR_KINDS:
        raise ValueError(f"actor_kind must be one of {', '.join(domain.ACTOR_KINDS)}")
    for name in ("actor_id", "action", "origin"):
        if not fields[name]:
            raise ValueError(f"an audit record needs {name}")
    for name, size in _LIMITED.items():
        if fields[name] is not None and len(fields[name]) > size:
            raise ValueError(f"{name} is longer than {size} characters")
    for name, size in _CLIPPED.items():
        if fields[name] is not None:
            fields[name] = fields[name][:size]
    domain.iso_utc(fields["at"])  # refuses a naive datetime before anything is written
    return fields


# ---------------------------------------------------------------------------- verification


def verify(conn: Connection, batch: int = 1000) -> VerifyResult:
    """Verify the whole chain, streaming it in ``seq`` order ``batch`` records at a time."""
    return domain.verify_chain(_stream(conn, batch))


def _stream(conn: Connection, batch: int) -> Iterator[dict]:
    after = None
    while True:
        q = select(audit_records).order_by(audit_records.c.seq).limit(batch)
        if after is not None:
            q = q.where(audit_records.c.seq > after)
        rows = [dict(r._mapping) for r in conn.execute(q)]
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


# ---------------------------------------------------------------------------------- queries


def query(conn: Connection, *, seller_id: str | None = None, object_id: str | None = None,
          actor_id: str | None = None, action: str | None = None, outcome: str | None = None,
          date_from: datetime | None = None, date_to: datetime | None = None,
          after_seq: int | None = None, limit: int = 50) -> list[dict]:
    """Records in ``seq`` (time) order matching every filter given; ``date_from`` inclusive,
    ``date_to`` exclusive; ``after_seq`` is the cursor (records with a greater ``seq``)."""
    c = audit_records.c
    q = select(audit_records).order_by(c.seq).limit(limit)
    for column, value in ((c.seller_id, seller_id), (c.object_id, object_id),
                          (c.actor_id, actor_id), (c.action, action), (c.outcome, outcome)):
        if value is not None:
            q = q.where(column == value)
    if date_from is not None:
        q = q.where(c.at >= date_from)
    if date_to is not None:
        q = q.where(c.at < date_to)
    if after_seq is not None:
        q = q.where(c.seq > after_seq)
    return [dict(r._mapping) for r in conn.execute(q)]
