"""The demo's refund policy and approval queue, seeded after the demo year
(``payback.demo.seed_demo`` calls ``seed_approvals`` last).

Invariants:
- nothing here draws from the demo's random generator, so the year is the same with or without
  it; the queue is chosen from the seeded invoices in invoice-number order, so the same seed gives
  the same queue;
- the demo never replaces a policy the seller already has, and leaves a queue only while its own
  policy (``demo_data.DEMO_POLICY``) is active, so every queued refund really needs approval;
- the demo agent is the requester the four-eyes rule compares the approver with; ``payback
  demo`` creates it first (``demo.create_demo_staff``) and prints its random password once, so
  a newcomer can log in to the console as it; created here, its password is never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, select

from payback.access import service as access
from payback.access.tables import DEFAULT_SELLER_ID
from payback.actor import Actor
from payback.audit import service as audit
from payback.db import read, write
from payback.demo_data import APPROVAL_NOTES, APPROVAL_QUEUE, DEMO_AGENT, DEMO_POLICY
from payback.invoicing import service as invoicing
from payback.invoicing.tables import invoices as invoices_table
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest

if TYPE_CHECKING:
    from payback.demo import SteppingClock


def seed_approvals(engine: Engine, clock: SteppingClock) -> dict[str, int]:
    """Store the demo policy (unless the seller has one) and, while it is active, leave up to
    ``APPROVAL_QUEUE`` large refunds requested by the demo agent in ``pending_approval``."""
    counts = {"policies": 0, "staff_users": 0, "refunds_pending_approval": 0}
    with write(engine) as conn:
        if policies.active_policy(conn, DEFAULT_SELLER_ID) is None:
            policies.set_policy(conn, clock, seller_id=DEFAULT_SELLER_ID, data=DEMO_POLICY,
                                actor=Actor(id="demo", kind="system", role="admin"))
            _audit(conn, clock, "demo", "system", "policy.set", "policy", DEMO_POLICY["id"])
            counts["policies"] = 1
        active = policies.active_policy(conn, DEFAULT_SELLER_ID)
        if active is None or active.id != DEMO_POLICY["id"]:
            return counts
        agent, counts["staff_users"] = _demo_agent(conn, clock)
    for inv, amount in _queue_candidates(engine, APPROVAL_QUEUE):
        clock.tick(7)
        note = APPROVAL_NOTES[counts["refunds_pending_approval"] % len(APPROVAL_NOTES)]
        req = RefundRequest("amount", "original_payment", "requested_by_customer",
                            amount_minor=amount, note=note)
        with write(engine) as conn:
            refund = refunds.create_refund(conn, clock, inv["id"], req, actor=agent)
            _audit(conn, clock, agent.id, "staff", "refund.create", "refund", refund["id"],
                   role=agent.role)
        counts["refunds_pending_approval"] += refund["status"] == "pending_approval"
    return counts


def _audit(conn, clock, actor_id: str, kind: str, action: str, object_type: str,
           object_id: str, role: str | None = "admin") -> None:
    audit.record(conn, at=clock.now(), actor_id=actor_id, actor_kind=kind, actor_role=role,
                 seller_id=DEFAULT_SELLER_ID, action=action, object_type=object_type,
                 object_id=object_id, outcome="allowed", summary={}, origin="cli")


def _demo_agent(conn, clock: SteppingClock) -> tuple[Actor, int]:
    """The demo agent (created once, with a random password nobody is shown)."""
    row, created = access.find_login(conn, DEMO_AGENT["email"]), 0
    if row is None:
        access.create_user(conn, clock, seller_id=DEFAULT_SELLER_ID,
                           password=access.random_password(), **DEMO_AGENT)
        row, created = access.find_login(conn, DEMO_AGENT["email"]), 1
        _audit(conn, clock, "demo", "system", "user.create", "staff_user", row.id)
    return Actor(id=row.id, kind="staff", role=row.role, seller_id=row.seller_id), created


def _queue_candidates(engine: Engine, limit: int) -> list[tuple[dict, int]]:
    """Fully paid invoices, by number, with more left to refund than the approval threshold:
    the amount is what remains (whole units), capped at the agent's limit."""
    above = DEMO_POLICY["approvals"]["require_approval_above_minor"]
    cap = DEMO_POLICY["role_limits_minor"]["agent"]
    inv_c = invoices_table.c
    q = (select(inv_c.id).where(inv_c.seller_id == DEFAULT_SELLER_ID, inv_c.voided_at.is_(None),
                                inv_c.currency.in_(above))
         .order_by(inv_c.number))
    out = []
    with read(engine) as conn:
        for invoice_id in conn.execute(q).scalars():
            inv = invoicing.get_invoice(conn, invoice_id)
            cur, left = inv["currency"], inv["amount_refundable_minor"]
            amount = min(left - left % 100, cap[cur])
            if inv["amount_due_minor"] == 0 and amount > above[cur]:
                out.append((inv, amount))
            if len(out) == limit:
                break
    return out
