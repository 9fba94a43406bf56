"""Refunds paid out through a payment gateway, exactly once.

The whole path (docs/gateways.md):

1. **Intent, with the refund.** When a refund that pays a card back through a gateway is
   approved, the same transaction moves it to ``processing``, posts its approval entry and writes
   one *gateway intent* per gateway tender (``open_intents``) with a unique idempotency key — the
   refund id — and an outbox event ``gateway.refund.submit``. Nothing has been sent yet.
2. **The call, after commit, in the worker** (``submit``, a non-transactional handler). It marks
   the intent ``submitted`` and commits, then calls the gateway with the intent's key, outside
   any transaction, then records the answer in a transaction of its own. A crash anywhere in
   between runs the job again: an intent already ``submitted`` is first looked up at the
   gateway by its key (``find_refund_by_key``) and only sent again, with the SAME key, when the
   gateway has none. Either way the gateway makes one refund.
3. **Unknown outcomes stay unknown.** A timeout leaves the intent ``submitted`` and the refund
   ``processing``; the job is retried with backoff. A 5xx is retried the same way.
4. **Only the gateway says succeeded.** An answer, a webhook, a poll or a reconciliation all go
   through ``apply_result``: it never moves a terminal intent (so stale or duplicate news
   changes nothing), and when every intent of a refund is terminal it finishes the refund:
   all succeeded → the refund ``succeeded`` (refund.paid entry, wallet credits, credit note);
   one failed or canceled → the refund ``failed``: its approval entry is reversed, its
   reservation released, and the refund.failed event offers the fallback the policy allows
   (store credit, manual payout; ``fallback_refund`` makes it).
5. **Pending answers are polled** (``gateway.refund.poll``) with growing delays, in case a
   webhook is lost; reconciliation (``payback.gateways.reconcile``) is the last safety net.

Crash points (``payback.faults``) mark the steps the fault tests kill the worker at.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from payback import faults
from payback.audit import service as audit
from payback.actor import Actor
from payback.clock import Clock
from payback.db import is_sqlite, write
from payback.errors import Conflict, DomainError, NotFound
from payback.gateways import registry
from payback.gateways.port import (FailureReason, GatewayDeclined, GatewayRefund, GatewayTimeout,
                                   GatewayUnavailable)
from payback.gateways.stripe_mapping import UnsupportedEvent
from payback.gateways.tables import INTENT_TERMINAL, gateway_intents, gateway_webhook_events
from payback.ids import new_id
from payback.outbox.service import emit, outbox_row
from payback.outbox.worker import describe_error
from payback.policies.service import active_policy
from payback.refunds import settlement
from payback.refunds.service import (Trail, get_refund, load_for_update, load_tenders,
                                     save_status, settle_now)
from payback.refunds.tables import refunds

SUBMIT_TOPIC = "gateway.refund.submit"
POLL_TOPIC = "gateway.refund.poll"
#: Delays between polls of an intent the gateway still reports pending; after the last one the
#: scheduled reconciliation takes over.
POLL_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
               timedelta(hours=2), timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))
METADATA_REFUND_ID = "payback_refund_id"
METADATA_INTENT_ID = "payback_intent_id"

_I = gateway_intents.c


class FallbackNotOffered(DomainError):
    code, status, title = "fallback_not_offered", 422, "This fallback is not offered"


class WebhookNotReady(DomainError):
    """The webhook names a Payback refund this database cannot see yet (its transaction has not
    committed): the gateway is asked to send it again later, and nothing is recorded."""

    code, status, title = "webhook_not_ready", 409, "Webhook arrived early; send it again"


def gateway_actor(name: str) -> Actor:
    return Actor(id=f"gateway:{name}", kind="gateway", role=None, origin=name)


# ------------------------------------------------------------------ 1. intents, with the refund


def open_intents(conn: Connection, refund: dict, tenders: list[dict], inv: dict,
                 trail: Trail) -> list[str]:
    """Write one intent per gateway tender and its submit job, in the refund's transaction."""
    rows = []
    for n, tender in enumerate(tenders, start=1):
        key = refund["id"] if len(tenders) == 1 else f"{refund['id']}-{n}"
        rows.append({"id": new_id("gateway_intent"), "refund_id": refund["id"],
                     "payment_id": tender["payment_id"], "seller_id": inv["seller_id"],
                     "gateway": tender["gateway"], "payment_reference": tender["reference"] or "",
                     "amount_minor": tender["amount_minor"], "currency": refund["currency"],
                     "idempotency_key": key, "status": "requested", "origin": "payback",
                     "calls": 0, "created_at": trail.now, "updated_at": trail.now})
    if rows:
        conn.execute(insert(gateway_intents), rows)
    for row in rows:
        trail.outbox.append(outbox_row(SUBMIT_TOPIC, row["id"],
                                       {"intent_id": row["id"], "refund_id": refund["id"],
                                        "gateway": row["gateway"]},
                                       trail.now, inv["seller_id"]))
    return [r["id"] for r in rows]


def get_intent(conn: Connection, intent_id: str, *, lock: bool = False) -> dict:
    q = select(gateway_intents).where(_I.id == intent_id)
    if lock and not is_sqlite(conn):
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"gateway intent {intent_id} not found")
    return dict(row._mapping)


def intents_of(conn: Connection, refund_id: str) -> list[dict]:
    q = select(gateway_intents).where(_I.refund_id == refund_id).order_by(_I.created_at, _I.id)
    return [dict(r._mapping) for r in conn.execute(q)]


# -------------------------------------------------------------------- 2. the call, in the worker


def submit(engine: Engine, event: dict, clock: Clock) -> None:
    """The ``gateway.refund.submit`` job (non-transactional; safe to run any number of times)."""
    intent_id = event["payload"]["intent_id"]
    with write(engine) as conn:
        intent = get_intent(conn, intent_id, lock=True)
        if intent["status"] not in ("requested", "submitted"):
            return  # the gateway has already answered (or a webhook told us)
        resend = intent["status"] == "submitted"
        conn.execute(update(gateway_intents).where(_I.id == intent_id).values(
            status="submitted", calls=_I.calls + 1, updated_at=clock.now()))
    faults.crash_point("after_intent_commit")
    gateway = registry.get(intent["gateway"])
    try:
        result = _ask_or_send(gateway, intent, resend)
    except GatewayDeclined as exc:
        # A synchronous refusal is final: the gateway made no refund.
        with write(engine) as conn:
            apply_decline(conn, intent_id, exc, clock.now())
        return
    except (GatewayTimeout, GatewayUnavailable) as exc:
        _note_error(engine, intent_id, exc, clock.now())
        raise  # retried with backoff; the outcome is unknown until then
    faults.crash_point("after_gateway_answer")
    with write(engine) as conn:
        outcome = apply_result(conn, intent_id, result, clock.now(), source="answer")
        if outcome == "applied" and not result.is_terminal:
            schedule_poll(conn, intent_id, 0, clock.now(), intent["seller_id"])
        faults.crash_point("before_status_commit")


def _ask_or_send(gateway, intent: dict, resend: bool) -> GatewayRefund:
    """Send the refund; but when an earlier run may have sent it already, ask first."""
    if resend:
        found = gateway.find_refund_by_key(intent["idempotency_key"])
        if found is not None:
            return found
    result = gateway.refund(intent["payment_reference"], intent["amount_minor"],
                            intent["currency"], intent["idempotency_key"],
                            {METADATA_REFUND_ID: intent["refund_id"],
                             METADATA_INTENT_ID: intent["id"]})
    faults.crash_point("after_send")
    return result


def _note_error(engine: Engine, intent_id: str, exc: Exception, now: datetime) -> None:
    with write(engine) as conn:
        conn.execute(update(gateway_intents).where(_I.id == intent_id).values(
            last_error=describe_error(exc), updated_at=now))


def schedule_poll(conn: Connection, intent_id: str, attempt: int, now: datetime,
                  seller_id: str) -> None:
    if attempt >= len(POLL_DELAYS):
        return
    emit(conn, POLL_TOPIC, intent_id, {"intent_id": intent_id, "attempt": attempt}, now,
         seller_id, available_at=now + POLL_DELAYS[attempt])


def poll(engine: Engine, event: dict, clock: Clock) -> None:
    """The ``gateway.refund.poll`` job: ask the gateway about an intent still pending."""
    intent_id, attempt = event["payload"]["intent_id"], event["payload"].get("attempt", 0)
    with write(engine) as conn:
        intent = get_intent(conn, intent_id)
    if intent["status"] in INTENT_TERMINAL or not intent["gateway_refund_id"]:
        return
    result = registry.get(intent["gateway"]).fetch_refund(intent["gateway_refund_id"])
    with write(engine) as conn:
        apply_result(conn, intent_id, result, clock.now(), source="poll")
        if not result.is_terminal:
            schedule_poll(conn, intent_id, attempt + 1, clock.now(), intent["seller_id"])


def install(registry_, subscribers) -> None:
    """Register the gateway jobs with a worker registry (``payback.jobs``)."""
    registry_.register(SUBMIT_TOPIC, submit, transactional=False)
    registry_.register(POLL_TOPIC, poll, transactional=False)


# ---------------------------------------------------------------- 4. applying what the gateway says


def apply_result(conn: Connection, intent_id: str, result: GatewayRefund, now: datetime, *,
                 source: str) -> str:
    """Record the gateway's view of one intent; finish the refund when all its intents are
    final. Returns ``applied``, ``stale`` (the intent is already final: nothing changes) or
    ``mismatch`` (amount or currency differ: left for reconciliation, nothing changes)."""
    locked = _lock_intent(conn, intent_id)
    if locked is None:
        return "stale"
    intent, refund, inv = locked
    if (result.amount_minor, result.currency) != (intent["amount_minor"], intent["currency"]):
        _set(conn, intent_id, now, last_error=(
            f"{source}: the gateway reports {result.amount_minor} {result.currency}, Payback "
            f"asked for {intent['amount_minor']} {intent['currency']}"))
        return "mismatch"
    _set(conn, intent_id, now, status=result.status.value,
         gateway_refund_id=result.gateway_refund_id,
         failure_reason=result.failure_reason.value if result.failure_reason else None,
         completed_at=now if result.is_terminal else None)
    if result.is_terminal:
        _finish_if_final(conn, refund, inv, intent["gateway"], now)
    _audit(conn, intent, source, result.status.value, now)
    return "applied"


def apply_decline(conn: Connection, intent_id: str, exc: GatewayDeclined, now: datetime) -> str:
    """The gateway refused the request itself (no gateway refund exists): the intent fails."""
    locked = _lock_intent(conn, intent_id)
    if locked is None:
        return "stale"
    intent, refund, inv = locked
    _set(conn, intent_id, now, status="failed", failure_reason=exc.reason.value,
         completed_at=now, last_error=describe_error(exc))
    _finish_if_final(conn, refund, inv, intent["gateway"], now)
    _audit(conn, intent, "answer", "failed", now)
    return "applied"


def _audit(conn: Connection, intent: dict, source: str, status: str, now: datetime) -> None:
    """The gateway's word on a refund, in the audit trail (attributed to the gateway)."""
    actor = gateway_actor(intent["gateway"])
    audit.record(conn, at=now, actor_id=actor.id, actor_kind=actor.kind,
                 seller_id=intent["seller_id"], action="refund.gateway_status",
                 object_type="refund", object_id=intent["refund_id"],
                 summary={"intent_id": intent["id"], "status": status, "source": source},
                 origin=actor.origin)


def _lock_intent(conn: Connection, intent_id: str) -> tuple[dict, dict, dict] | None:
    """(intent, refund, invoice) with the invoice locked first (the fixed lock order), or None
    when the intent is already final."""
    intent = get_intent(conn, intent_id)
    refund, inv = load_for_update(conn, intent["refund_id"], None)
    intent = get_intent(conn, intent_id, lock=True)
    return None if intent["status"] in INTENT_TERMINAL else (intent, refund, inv)


def _set(conn: Connection, intent_id: str, now: datetime, **values) -> None:
    if values.get("gateway_refund_id") is None:
        values.pop("gateway_refund_id", None)
    conn.execute(update(gateway_intents).where(_I.id == intent_id)
                 .values(updated_at=now, **values))


def _finish_if_final(conn: Connection, refund: dict, inv: dict, gateway: str,
                     now: datetime) -> None:
    if refund["status"] != "processing":
        return
    intents = intents_of(conn, refund["id"])
    if any(i["status"] not in INTENT_TERMINAL for i in intents):
        return
    failed = [i for i in intents if i["status"] != "succeeded"]
    actor = gateway_actor(gateway)
    trail = Trail(refund, inv, now)
    tenders = load_tenders(conn, refund["id"])
    if not failed:
        trail.move("succeeded", actor, f"confirmed by {gateway}", settled_at=now)
        save_status(conn, refund)
        trail.flush(conn, settle_now(conn, refund, tenders, inv, trail))
        return
    if len(failed) < len(intents):
        # Part of the money went back, part did not: a person must decide (reconciliation lists
        # it as a partial failure); the refund stays processing and nothing is reversed.
        return
    reason = failed[0]["failure_reason"] or FailureReason.UNKNOWN.value
    settlement.reverse_approval(conn, refund, inv, now)
    settlement.release(conn, refund["id"])
    asked = any(i["origin"] == "payback" for i in intents)
    trail.move("failed", actor, f"{gateway} refund {failed[0]['status']}: {reason}",
               failure_reason=reason,
               fallback=fallback_options(conn, refund, inv) if asked else [])
    save_status(conn, refund)
    trail.flush(conn, [])


def fallback_options(conn: Connection, refund: dict, inv: dict) -> list[str]:
    """What the customer can be offered when the gateway could not pay: store credit when the
    seller's policy allows store credit for this refund's reason (where the law requires it,
    only with the customer's consent), and a manual payout (bank transfer) always."""
    from payback.policies.evaluate import FAULT_REASONS

    policy = active_policy(conn, inv["seller_id"])
    rule = None if policy is None else (
        policy.effective_fault_method_rule if refund["reason"] in FAULT_REASONS
        else policy.method_rule)
    return (["store_credit"] if rule != "original_only" else []) + ["manual_payout"]


# ------------------------------------------------------------------------------- 6. webhooks in


def receive_webhook(engine: Engine, clock: Clock, gateway_name: str,
                    headers: Mapping[str, str], raw_body: bytes) -> dict:
    """Authenticate, deduplicate and apply one inbound gateway webhook.

    Authentication happens before anything is written (``WebhookRejected`` → 400, nothing
    changes). The event id is recorded in the same transaction as its effect, so a duplicate is
    recognised and a failed effect leaves no trace (the gateway sends it again)."""
    gateway = registry.get(gateway_name)
    try:
        event = gateway.parse_webhook(headers, raw_body)
    except UnsupportedEvent as exc:
        # Authentic, but not about a refund (Stripe sends every type an endpoint enables):
        # acknowledged so the gateway stops resending it, and ignored.
        return {"event_id": None, "outcome": "ignored", "detail": str(exc)}
    now = clock.now()
    try:
        with write(engine) as conn:
            if _seen(conn, gateway_name, event.event_id):
                return {"event_id": event.event_id, "outcome": "duplicate"}
            outcome, refund_id = _apply_event(conn, gateway_name, event.refund, now)
            conn.execute(insert(gateway_webhook_events).values(
                gateway=gateway_name, event_id=event.event_id, type=event.type,
                gateway_refund_id=event.refund.gateway_refund_id,
                status=event.refund.status.value, outcome=outcome, received_at=now,
                payload={"refund_id": refund_id, "type": event.type}))
    except IntegrityError:
        # Two deliveries raced. The same event: the other one committed it. Two events about a
        # gateway refund Payback did not know (a dashboard refund's "created" and "updated"):
        # the other one recorded it, and this one applies when the gateway sends it again.
        with write(engine) as conn:
            if _seen(conn, gateway_name, event.event_id):
                return {"event_id": event.event_id, "outcome": "duplicate"}
            recorded_meanwhile = find_intent(conn, gateway_name, event.refund) is not None
        if recorded_meanwhile:
            raise WebhookNotReady(f"refund {event.refund.gateway_refund_id} was being recorded "
                                  "by another delivery; send the event again") from None
        raise
    return {"event_id": event.event_id, "outcome": outcome, "refund_id": refund_id}


def _seen(conn: Connection, gateway: str, event_id: str) -> bool:
    q = select(gateway_webhook_events.c.id).where(gateway_webhook_events.c.gateway == gateway,
                                                  gateway_webhook_events.c.event_id == event_id)
    return conn.execute(q).first() is not None


def find_intent(conn: Connection, gateway: str, result: GatewayRefund) -> dict | None:
    """The intent a gateway refund belongs to: by Payback's intent id in its metadata, by the
    gateway's refund id, or by the idempotency key it was made with."""
    intent_id = (result.metadata or {}).get(METADATA_INTENT_ID)
    conditions = []
    if intent_id:
        conditions.append(_I.id == intent_id)
    conditions.append(_I.gateway_refund_id == result.gateway_refund_id)
    if result.idempotency_key:
        conditions.append(_I.idempotency_key == result.idempotency_key)
    for condition in conditions:
        row = conn.execute(select(gateway_intents).where(condition, _I.gateway == gateway)).first()
        if row is not None:
            return dict(row._mapping)
    return None


def _apply_event(conn: Connection, gateway: str, result: GatewayRefund,
                 now: datetime) -> tuple[str, str | None]:
    intent = find_intent(conn, gateway, result)
    if intent is not None:
        return apply_result(conn, intent["id"], result, now, source="webhook"), intent["refund_id"]
    if (result.metadata or {}).get(METADATA_INTENT_ID) or result.idempotency_key:
        raise WebhookNotReady(f"refund {result.gateway_refund_id} names a Payback refund that "
                              "is not visible yet; send the event again later")
    refund = record_gateway_refund(conn, gateway, result, now)
    return ("recorded" if refund else "unmatched"), (refund["id"] if refund else None)


def record_gateway_refund(conn: Connection, gateway: str, result: GatewayRefund,
                          now: datetime) -> dict | None:
    """A refund made at the gateway (its dashboard) becomes a Payback refund, attributed to the
    gateway: found by the payment it refunds. None when no Payback payment matches."""
    from payback.gateways.external import record_external_refund

    return record_external_refund(conn, gateway, result, now)


# ------------------------------------------------------------------------------------- fallback


def fallback_refund(conn: Connection, clock: Clock, refund_id: str, *, method: str,
                    actor: Actor, seller_id: str | None = None) -> dict:
    """After a gateway refund failed: refund the same amount another way — ``store_credit`` or
    ``manual_payout`` (the money is sent by bank transfer outside Payback and recorded here)."""
    from payback.gateways.external import make_fallback_refund

    _refund, inv = load_for_update(conn, refund_id, seller_id)  # serialises two fallbacks
    failed = get_refund(conn, refund_id)
    if failed["status"] != "failed":
        raise Conflict(f"refund {refund_id} is {failed['status']}; only a failed refund has a "
                       "fallback")
    existing = _fallback_of(conn, refund_id)
    if existing:
        raise Conflict(f"refund {refund_id} already has its fallback: {existing}",
                       fallback_refund_id=existing)
    offered = fallback_state(conn, failed, inv)["fallback_options"]
    if method not in offered:
        raise FallbackNotOffered(
            f"{method} is not offered for refund {refund_id}; offered: "
            f"{', '.join(offered) or 'nothing (it did not fail at the gateway)'}",
            offered=offered)
    return make_fallback_refund(conn, clock, failed, method=method, actor=actor)


def _fallback_of(conn: Connection, refund_id: str) -> str | None:
    return conn.execute(select(refunds.c.id).where(refunds.c.fallback_of == refund_id)).scalar()


def fallback_state(conn: Connection, refund: dict, inv: dict) -> dict:
    """For a refund page: the fallbacks still on offer after a gateway failure, and the
    fallback refund once made."""
    made = _fallback_of(conn, refund["id"])
    intents = intents_of(conn, refund["id"])
    # A refund someone attempted in the gateway's dashboard was never asked of Payback: no offer.
    failed_at_gateway = refund["status"] == "failed" and any(
        i["origin"] == "payback" for i in intents)
    return {"fallback_refund_id": made,
            "fallback_options": fallback_options(conn, refund, inv)
            if failed_at_gateway and not made else []}
