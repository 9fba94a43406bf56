"""The seam between a refund and the refund policy: what the policy decides for one request.

``decide`` returns a ``Decision``: allow, deny or needs approval; the restocking fee kept; the
store-credit bonus; whether four eyes apply; the refund's due date; and explanations, each
naming its rule. The decision and the policy version are stored with the refund.

Until a policy is configured for the seller, the built-in default applies: every refund is
allowed, approval is never required, no fee, no bonus, and the refund is due within 14 days
(the strictest common statutory deadline, EU/UK).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from payback.actor import Actor
from payback.refunds import domain

DEFAULT_DUE_DAYS = 14


@dataclass(frozen=True)
class Decision:
    outcome: str  # allow | deny | needs_approval
    due_at: datetime
    fee_minor: int = 0
    bonus_minor: int = 0
    four_eyes: bool = False
    policy_id: str = "default"
    policy_version: str = "builtin"
    allowed_methods: tuple[str, ...] = ("original_payment", "store_credit")
    explanations: tuple[dict, ...] = field(default=())
    deadlines: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["due_at"] = self.due_at.isoformat()
        data["allowed_methods"] = list(self.allowed_methods)
        data["explanations"] = list(self.explanations)
        return data


def decide(conn: Connection, *, inv: dict, calc: domain.RefundCalculation,
           req: domain.RefundRequest, actor: Actor, now: datetime) -> Decision:
    due = now + timedelta(days=DEFAULT_DUE_DAYS)
    text = ("No refund policy is configured for this seller, so the built-in default applies: "
            f"the refund is allowed and is due within {DEFAULT_DUE_DAYS} days, "
            f"by {due:%d %B %Y}.")
    return Decision(outcome="allow", due_at=due,
                    explanations=({"rule": "default", "text": text,
                                   "values": {"due_days": DEFAULT_DUE_DAYS}},),
                    deadlines={"refund_due_at": due.isoformat()})
