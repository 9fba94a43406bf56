"""Approving, rejecting and cancelling refunds: the maker-checker rules live here.

Four eyes: when the refund's policy decision says so (its amount is above the seller's
threshold), the approver must be someone other than the requester. A role's refund limit caps
what its members may approve. Both are enforced here, in the service layer, so the API, the web
console and the CLI cannot bypass them.
"""

from __future__ import annotations

from payback.actor import Actor
from payback.clock import Clock
from payback.errors import DomainError, InvalidTransition
from payback.refunds import lifecycle, settlement
from payback.refunds.policy import check_role_limit
from payback.refunds.service import (
    Trail,
    approve_and_settle_moves,
    get_refund,
    load_for_update,
    load_tenders,
    money_moves,
    save_status,
    transition,
)


class FourEyesRequired(DomainError):
    code, status, title = "four_eyes_required", 403, "A second person must approve this refund"


def approve_refund(conn, clock: Clock, refund_id: str, *, actor: Actor, comment: str | None = None,
                   seller_id: str | None = None) -> dict:
    refund, inv = load_for_update(conn, refund_id, seller_id)
    lifecycle.check(refund["status"], "approved")
    _check_four_eyes(refund, actor)
    check_role_limit((refund.get("decision") or {}).get("role_limits_minor") or {},
                     actor.role, refund["currency"], refund["amount_minor"])
    trail = Trail(refund, inv, clock.now())
    tenders = load_tenders(conn, refund_id)
    approve_and_settle_moves(trail, actor, tenders, comment=comment)
    save_status(conn, refund)
    entries = money_moves(conn, refund, tenders, inv, trail)
    trail.flush(conn, entries)
    return get_refund(conn, refund_id)


def reject_refund(conn, clock: Clock, refund_id: str, *, actor: Actor, comment: str,
                  seller_id: str | None = None) -> dict:
    """Refuse a refund waiting for approval; its reserved amount becomes refundable again."""
    refund, inv = load_for_update(conn, refund_id, seller_id)
    lifecycle.check(refund["status"], "rejected")
    settlement.release(conn, refund_id)
    transition(conn, refund, "rejected", actor, clock.now(), inv=inv, comment=comment)
    return get_refund(conn, refund_id)


def cancel_refund(conn, clock: Clock, refund_id: str, *, actor: Actor,
                  comment: str | None = None, seller_id: str | None = None) -> dict:
    """Withdraw a refund before any money moved (requested, pending approval or approved)."""
    refund, inv = load_for_update(conn, refund_id, seller_id)
    if refund["status"] not in lifecycle.RELEASABLE:
        raise InvalidTransition(
            f"a {refund['status']} refund cannot be canceled: money has moved or it is final",
            current=refund["status"], requested="canceled")
    now = clock.now()
    if refund["status"] == "approved":
        settlement.reverse_approval(conn, refund, inv, now)
    settlement.release(conn, refund_id)
    transition(conn, refund, "canceled", actor, now, inv=inv, comment=comment)
    return get_refund(conn, refund_id)


def _check_four_eyes(refund: dict, actor: Actor) -> None:
    decision = refund.get("decision") or {}
    if decision.get("four_eyes") and actor.id == refund["requested_by"]:
        raise FourEyesRequired(
            "this refund is above the four-eyes threshold: someone other than its requester "
            f"({refund['requested_by']}) must approve it")

