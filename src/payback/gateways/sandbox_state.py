"""The sandbox gateway's own persisted state: its tables, its card rules and its webhook queue.

The sandbox plays a remote payment gateway, so it keeps everything in ITS OWN database (never
Payback's): the tables below hang off their own ``MetaData`` and are created with
``metadata.create_all`` on the sandbox's database (no Alembic, no Payback migration).

Invariants kept here (and relied on by ``payback.gateways.sandbox``):

- one refund per idempotency key: ``sandbox_refunds.idempotency_key`` is UNIQUE, so two
  processes racing with one key cannot both insert; the loser reads the winner's row;
- a payment is never refunded beyond its amount: the remaining amount is computed from the
  refund rows (every refund that is not failed or canceled counts) while the payment row is
  locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` writer lock);
- a refund moves at most once from each status: transitions are compare-and-set updates
  (``WHERE status = <the status we read>``), so two processes running ``advance`` never queue
  the same change twice;
- every status change queues exactly one event (with one or, for a simulated duplicate, two
  deliveries of the SAME event id); the event body is frozen when queued and signed when sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from ulid import ULID

from payback.db import NAMING, UtcDateTime
from payback.gateways.port import FailureReason, GatewayRefund, RefundStatus
from payback.gateways.stripe_mapping import FAILURE_REASON_MAP, map_status

#: The sandbox's own schema, deliberately apart from ``payback.db.metadata``.
metadata = MetaData(naming_convention=NAMING)

sandbox_payments = Table(
    "sandbox_payments", metadata,
    Column("id", String(40), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("card", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
)

sandbox_refunds = Table(
    "sandbox_refunds", metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_id", String(40), ForeignKey("sandbox_payments.id"), nullable=False,
           index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("failure_reason", String(40), nullable=True),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    #: "payment|amount|currency" of the first request with the key: a replay must match it.
    Column("request_fingerprint", String(300), nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("reason", String(40), nullable=True),
    #: 'api' (made through refund()) or 'dashboard' (made by a person at the gateway).
    Column("origin", String(10), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
    #: When advance() moves a pending / requires_action refund on; NULL once final.
    Column("due_at", UtcDateTime, nullable=True, index=True),
    CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
    CheckConstraint("status in ('pending', 'requires_action', 'succeeded', 'failed', "
                    "'canceled')", name="status_known"),
)

sandbox_events = Table(
    "sandbox_events", metadata,
    Column("id", String(40), primary_key=True),
    Column("refund_id", String(40), ForeignKey("sandbox_refunds.id"), nullable=False,
           index=True),
    Column("type", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    #: The exact bytes (UTF-8 JSON) sent for every delivery of this event.
    Column("body", Text, nullable=False),
)

sandbox_deliveries = Table(
    "sandbox_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), ForeignKey("sandbox_events.id"), nullable=False, index=True),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False, index=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    CheckConstraint("status in ('queued', 'delivered', 'abandoned')", name="status_known"),
)

sandbox_faults = Table(
    "sandbox_faults", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fault", String(40), nullable=False),
    Column("remaining", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("remaining >= 0", name="remaining_not_negative"),
)

OPEN_STATUSES = ("pending", "requires_action")
#: Refunds in these statuses no longer count against the payment's amount.
RELEASED_STATUSES = ("failed", "canceled")

#: card token → (final status, failure reason) reached in advance(). Any other token succeeds.
CARD_OUTCOMES: Mapping[str, tuple[str, str | None]] = {
    "tok_expired": ("failed", FailureReason.EXPIRED_OR_CANCELED_CARD.value),
    "tok_closed": ("failed", FailureReason.EXPIRED_OR_CANCELED_CARD.value),
    "tok_insufficient_balance": ("failed", FailureReason.INSUFFICIENT_FUNDS.value),
    "tok_lost": ("failed", FailureReason.LOST_OR_STOLEN_CARD.value),
    "tok_requires_action": ("canceled", FailureReason.EXPIRED.value),
}
SUCCESS = ("succeeded", None)

#: Webhook redelivery: 10 s, 20 s, 40 s … capped at an hour; given up after MAX_ATTEMPTS.
BACKOFF_BASE_SECONDS = 10
BACKOFF_CAP_SECONDS = 3600
MAX_ATTEMPTS = 16
#: A claimed delivery is invisible to other senders this long (a crashed sender's claim expires).
CLAIM_LEASE_SECONDS = 300

#: Serialises create_all across processes on PostgreSQL (any constant; "SBX" in ASCII).
_SCHEMA_LOCK = 0x534258
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CANONICAL_REASONS = frozenset(reason.value for reason in FailureReason)


def new_sandbox_id(prefix: str) -> str:
    """``pi_sbx_…``, ``re_sbx_…``, ``evt_sbx_…``: a prefix and a lower-case ULID."""
    return f"{prefix}_sbx_{str(ULID()).lower()}"


def whole_seconds(moment: datetime) -> datetime:
    """Gateways report times in unix seconds; storing them so keeps fetch and webhook equal."""
    if moment.tzinfo is None:
        raise ValueError("the sandbox needs timezone-aware times")
    return moment.astimezone(UTC).replace(microsecond=0)


def unix(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


def initial_status(card: str, *, async_completion: bool) -> str:
    """The status a new refund is answered with, by the card the payment was made with."""
    if card == "tok_requires_action":
        return "requires_action"
    if card in CARD_OUTCOMES or async_completion:
        return "pending"
    return "succeeded"


def final_outcome(card: str) -> tuple[str, str | None]:
    """(status, failure reason) an open refund ends in when advance() finds it due."""
    return CARD_OUTCOMES.get(card, SUCCESS)


def fingerprint(payment_reference: str, amount_minor: int, currency: str) -> str:
    return f"{payment_reference}|{amount_minor}|{currency}"


# ------------------------------------------------------------------------------ reading rows


def _refund_query():
    return select(sandbox_refunds, sandbox_payments.c.card).join(
        sandbox_payments, sandbox_payments.c.id == sandbox_refunds.c.payment_id)


def refund_row(conn: Connection, refund_id: str) -> dict | None:
    row = conn.execute(_refund_query().where(sandbox_refunds.c.id == refund_id)).first()
    return dict(row._mapping) if row else None


def refund_row_by_key(conn: Connection, idempotency_key: str) -> dict | None:
    query = _refund_query().where(sandbox_refunds.c.idempotency_key == idempotency_key)
    row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def refund_rows_created(conn: Connection, start: datetime, end: datetime) -> list[dict]:
    query = _refund_query().where(sandbox_refunds.c.created_at >= start,
                                  sandbox_refunds.c.created_at < end)
    order = (sandbox_refunds.c.created_at, sandbox_refunds.c.id)
    return [dict(r._mapping) for r in conn.execute(query.order_by(*order))]


def lock_payment(conn: Connection, payment_id: str) -> dict | None:
    """The payment row, locked for this transaction (PostgreSQL; SQLite holds the writer lock)."""
    query = select(sandbox_payments).where(sandbox_payments.c.id == payment_id)
    row = conn.execute(query.with_for_update()).first()
    return dict(row._mapping) if row else None


def remaining_minor(conn: Connection, payment: Mapping[str, Any]) -> int:
    """The payment's amount less every refund that still counts (all but failed / canceled)."""
    taken = conn.execute(
        select(func.coalesce(func.sum(sandbox_refunds.c.amount_minor), 0)).where(
            sandbox_refunds.c.payment_id == payment["id"],
            sandbox_refunds.c.status.not_in(RELEASED_STATUSES))).scalar_one()
    return payment["amount_minor"] - int(taken)


# ------------------------------------------------------------------------- the wire objects


def refund_object(row: Mapping[str, Any]) -> dict[str, Any]:
    """A refund row → the Stripe-shaped refund object the sandbox's API and webhooks carry.

    ``idempotency_key`` is a sandbox extension (Stripe does not echo the key back)."""
    return {
        "id": row["id"],
        "object": "refund",
        "amount": row["amount_minor"],
        "currency": row["currency"].lower(),
        "status": row["status"],
        "payment_intent": row["payment_id"],
        "metadata": dict(row["metadata"] or {}),
        "failure_reason": row["failure_reason"],
        "reason": row["reason"],
        "created": unix(row["created_at"]),
        "idempotency_key": row["idempotency_key"],
    }


def map_failure_reason(value: str | None, status: RefundStatus) -> FailureReason | None:
    """Stripe's reason words first, then Payback's own (``expired``); anything else unknown."""
    if status not in (RefundStatus.FAILED, RefundStatus.CANCELED):
        return None
    if value is None:
        return FailureReason.UNKNOWN
    if value in FAILURE_REASON_MAP:
        return FAILURE_REASON_MAP[value]
    return FailureReason(value) if value in _CANONICAL_REASONS else FailureReason.UNKNOWN


def refund_from_object(obj: Mapping[str, Any]) -> GatewayRefund:
    """A sandbox refund object (from the API or a webhook) → the canonical :class:`GatewayRefund`."""
    status = map_status(obj.get("status"))
    return GatewayRefund(
        gateway_refund_id=obj["id"],
        status=status,
        amount_minor=obj["amount"],
        currency=str(obj["currency"]).upper(),
        idempotency_key=obj.get("idempotency_key"),
        failure_reason=map_failure_reason(obj.get("failure_reason"), status),
        payment_reference=obj.get("payment_intent"),
        created_at=datetime.fromtimestamp(int(obj["created"]), tz=UTC),
        metadata=dict(obj.get("metadata") or {}),
        raw=dict(obj),
    )


def event_type_for(status: str, *, created: bool) -> str:
    if created:
        return "refund.created"
    return "refund.failed" if status == "failed" else "refund.updated"


# --------------------------------------------------------------------------- writing rows


def insert_refund(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(sandbox_refunds.insert().values(**values))


def move_refund(conn: Connection, row: Mapping[str, Any], status: str,
                failure_reason: str | None, now: datetime) -> bool:
    """Compare-and-set ``row``'s status; False when another process moved it first."""
    result = conn.execute(
        update(sandbox_refunds)
        .where(sandbox_refunds.c.id == row["id"], sandbox_refunds.c.status == row["status"])
        .values(status=status, failure_reason=failure_reason, updated_at=now, due_at=None))
    return result.rowcount == 1


def due_open_refunds(conn: Connection, now: datetime) -> list[dict]:
    query = _refund_query().where(sandbox_refunds.c.status.in_(OPEN_STATUSES),
                                  sandbox_refunds.c.due_at <= now)
    order = (sandbox_refunds.c.created_at, sandbox_refunds.c.id)
    return [dict(r._mapping) for r in conn.execute(query.order_by(*order))]


def queue_event(conn: Connection, refund_id: str, *, created: bool, now: datetime,
                copies: int) -> str:
    """Freeze the refund's current state into one event and queue ``copies`` deliveries of it."""
    row = refund_row(conn, refund_id)
    event_id = new_sandbox_id("evt")
    event_type = event_type_for(row["status"], created=created)
    body = {"id": event_id, "object": "event", "type": event_type, "created": unix(now),
            "data": {"object": refund_object(row)}}
    conn.execute(sandbox_events.insert().values(
        id=event_id, refund_id=refund_id, type=event_type, created_at=now,
        body=json.dumps(body, sort_keys=True, separators=(",", ":"))))
    for _ in range(copies):
        conn.execute(sandbox_deliveries.insert().values(
            event_id=event_id, status="queued", attempts=0, next_attempt_at=now))
    return event_id


def claim_deliveries(conn: Connection, now: datetime, limit: int) -> list[dict]:
    """Take up to ``limit`` due deliveries (oldest first) and hide them behind a lease, so that a
    second sender (another process) does not send them at the same time."""
    query = (
        select(sandbox_deliveries.c.id, sandbox_deliveries.c.attempts, sandbox_events.c.body,
               sandbox_events.c.id.label("event_id"))
        .join(sandbox_events, sandbox_events.c.id == sandbox_deliveries.c.event_id)
        .where(sandbox_deliveries.c.status == "queued",
               sandbox_deliveries.c.next_attempt_at <= now)
        .order_by(sandbox_deliveries.c.next_attempt_at, sandbox_deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=sandbox_deliveries))
    batch = [dict(r._mapping) for r in conn.execute(query)]
    if batch:
        conn.execute(
            update(sandbox_deliveries)
            .where(sandbox_deliveries.c.id.in_([d["id"] for d in batch]))
            .values(attempts=sandbox_deliveries.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_SECONDS)))
    return batch


def backoff_seconds(attempts: int) -> int:
    """Delay before the next try after ``attempts`` failed ones (exponential, capped)."""
    return min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)


def record_attempt(conn: Connection, delivery_id: int, attempts: int, status_code: int | None,
                   error: str | None, now: datetime) -> None:
    """A 2xx answer delivers it; anything else keeps it queued with backoff (or gives up)."""
    values: dict[str, Any] = {"last_status": status_code, "last_error": error}
    if status_code is not None and 200 <= status_code < 300:
        values.update(status="delivered", delivered_at=now)
    elif attempts >= MAX_ATTEMPTS:
        values.update(status="abandoned")
    else:
        values.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)))
    conn.execute(update(sandbox_deliveries).where(sandbox_deliveries.c.id == delivery_id)
                 .values(**values))


def take_fault(conn: Connection) -> str | None:
    """Consume one injected fault (oldest first), or None when none is left.

    Compare-and-set, retried: on PostgreSQL a concurrent caller may take the last unit of the
    row we picked, and then we look again (each statement sees the latest commits)."""
    query = (select(sandbox_faults.c.id, sandbox_faults.c.fault)
             .where(sandbox_faults.c.remaining > 0).order_by(sandbox_faults.c.id).limit(1))
    while True:
        row = conn.execute(query).first()
        if row is None:
            return None
        result = conn.execute(
            update(sandbox_faults)
            .where(sandbox_faults.c.id == row.id, sandbox_faults.c.remaining > 0)
            .values(remaining=sandbox_faults.c.remaining - 1))
        if result.rowcount == 1:
            return row.fault


# ------------------------------------------------------------------------ the database


def create_schema(engine: Engine) -> None:
    """Create the sandbox's tables once, also when several processes start together."""
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE already serialises this
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        metadata.create_all(conn)
