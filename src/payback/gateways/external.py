"""Refunds Payback did not start: refunds made in a gateway's dashboard, and the fallback refund
that pays a customer another way after the gateway failed.

A dashboard refund has already happened: the money has left (or is leaving). Payback records it
as it is — no policy decision is asked, the refund is attributed to the gateway
(``gateway:<name>``), never to a person — with its ledger entries, its gateway intent (origin
``gateway``) and, once the gateway reports it succeeded, its credit note. A refund Payback cannot
place (no Payback payment with that gateway reference, or more than remains refundable) is not
recorded; reconciliation lists it for a person.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from payback.actor import Actor
from payback.clock import Clock
from payback.errors import DomainError, ValidationFailed
from payback.gateways.port import GatewayRefund
from payback.gateways.tables import gateway_intents
from payback.ids import new_id
from payback.payments.tables import payments
from payback.refunds import domain
from payback.refunds.policy import Decision
from payback.refunds.service import get_refund, record_decided_refund
from payback.refunds.tables import refunds

log = logging.getLogger("payback.gateways")
FALLBACK_METHODS = ("store_credit", "manual_payout")


def record_external_refund(conn: Connection, gateway: str, result: GatewayRefund,
                           now: datetime) -> dict | None:
    """Record a refund made at the gateway; None when no Payback payment matches it."""
    from payback.gateways.flow import apply_result, gateway_actor

    payment = _payment_for(conn, gateway, result.payment_reference)
    if payment is None or payment["currency"] != result.currency:
        return None
    actor = gateway_actor(gateway)
    decision = Decision(outcome="allow", due_at=None, policy_id="gateway",
                        policy_version=gateway, explanations=({
                            "rule": "gateway.dashboard",
                            "text": f"Refund {result.gateway_refund_id} was made at {gateway} "
                                    "and is recorded as it happened."},))
    req = domain.RefundRequest(kind="amount", method="original_payment", reason="other",
                               amount_minor=result.amount_minor,
                               note=f"made at {gateway}: {result.gateway_refund_id}")
    try:
        refund = record_decided_refund(conn, now, payment["invoice_id"], req, actor=actor,
                                       decision=decision, payment_id=payment["id"],
                                       settle=False)
    except DomainError as exc:
        log.warning("gateway refund %s could not be recorded: %s", result.gateway_refund_id, exc)
        return None
    intent_id = new_id("gateway_intent")
    conn.execute(insert(gateway_intents).values(
        id=intent_id, refund_id=refund["id"], payment_id=payment["id"],
        seller_id=payment["seller_id"], gateway=gateway,
        payment_reference=result.payment_reference, amount_minor=result.amount_minor,
        currency=result.currency, idempotency_key=f"{gateway}:{result.gateway_refund_id}",
        status="submitted", origin="gateway", gateway_refund_id=result.gateway_refund_id,
        calls=0, created_at=now, updated_at=now))
    apply_result(conn, intent_id, result, now, source="gateway")
    return refund


def _payment_for(conn: Connection, gateway: str, reference: str | None) -> dict | None:
    if not reference:
        return None
    row = conn.execute(select(payments).where(payments.c.gateway == gateway,
                                              payments.c.reference == reference)).first()
    return dict(row._mapping) if row else None


def make_fallback_refund(conn: Connection, clock: Clock, failed: dict, *, method: str,
                         actor: Actor) -> dict:
    """Refund what a failed gateway refund should have paid, by store credit or by a manual
    payout, with the failed refund's lines (its reservation was released when it failed)."""
    if method not in FALLBACK_METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(FALLBACK_METHODS)}")
    offered = (failed.get("decision") or {})
    req = _same_request(failed, "store_credit" if method == "store_credit" else
                        "original_payment")
    decision = Decision(outcome="allow", due_at=failed["due_at"],
                        policy_id=failed["policy_id"] or "default",
                        policy_version=failed["policy_version"] or "builtin",
                        explanations=({"rule": "gateway.fallback",
                                       "text": f"Fallback for refund {failed['id']}, which the "
                                               f"gateway could not pay: {method}."},),
                        fee_minor=failed["fee_minor"], deadlines=offered.get("deadlines") or {})
    refund = record_decided_refund(
        conn, clock.now(), failed["invoice_id"], req, actor=actor, decision=decision,
        destination="manual_payout" if method == "manual_payout" else None, settle=True)
    conn.execute(update(refunds).where(refunds.c.id == refund["id"])
                 .values(fallback_of=failed["id"]))
    return get_refund(conn, refund["id"])


def _same_request(failed: dict, method: str) -> domain.RefundRequest:
    """The failed refund's request again, for another method (lines when it had lines)."""
    note = f"fallback for {failed['id']}"
    if failed["kind"] == "lines":
        lines = tuple(domain.LineRequest(line_id=ln["invoice_line_id"], quantity=ln["quantity"])
                      for ln in failed["lines"] if ln["quantity"])
        if lines:
            return domain.RefundRequest(kind="lines", method=method, reason=failed["reason"],
                                        lines=lines, note=note, consent_to_other_method=True)
    return domain.RefundRequest(kind="amount", method=method, reason=failed["reason"],
                                amount_minor=failed["amount_minor"] + failed["fee_minor"],
                                note=note, consent_to_other_method=True)
