"""The seam between a refund and the refund policy: what the policy decides for one request.

``decide`` gathers the facts the pure policy engine needs (the invoice's lines and categories,
what was already refunded, the customer's recent refunds, the requester's role), calls
``payback.policies.evaluate`` with the seller's active policy, and returns a ``Decision``: allow,
deny or needs approval; the restocking fee kept; the store-credit bonus; whether four eyes
apply; the refund's due date; and explanations, each naming its rule. The decision and the
policy version are stored with the refund.

A requester above their role's refund limit (from the policy) is refused outright.
Until a policy is configured for the seller, the built-in default applies: every refund is
allowed, no fee, no bonus, due within 14 days (the strictest common statutory deadline, EU/UK).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from payback import policies as engine
from payback.actor import Actor
from payback.errors import DomainError
from payback.invoicing.service import load_lines
from payback.payments.tables import payments
from payback.policies.service import active_policy
from payback.refunds import domain
from payback.refunds.tables import refunds

DEFAULT_DUE_DAYS = 14
COUNTED = ("requested", "pending_approval", "approved", "processing", "succeeded")


class RoleLimitExceeded(DomainError):
    code, status, title = "role_limit_exceeded", 403, "Above your role's refund limit"


@dataclass(frozen=True)
class Decision:
    outcome: str  # allow | deny | needs_approval
    due_at: datetime | None
    fee_minor: int = 0
    bonus_minor: int = 0
    four_eyes: bool = False
    policy_id: str = "default"
    policy_version: str = "builtin"
    allowed_methods: tuple[str, ...] = ("original_payment", "store_credit")
    explanations: tuple[dict, ...] = field(default=())
    deadlines: dict = field(default_factory=dict)
    role_limits_minor: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["due_at"] = self.due_at.isoformat() if self.due_at else None
        data["allowed_methods"] = list(self.allowed_methods)
        data["explanations"] = list(self.explanations)
        return data


def decide(conn: Connection, *, inv: dict, calc: domain.RefundCalculation,
           req: domain.RefundRequest, actor: Actor, now: datetime) -> Decision:
    policy = active_policy(conn, inv["seller_id"])
    if policy is None:
        return _default(now)
    limits = {role: dict(v) for role, v in policy.role_limits_minor.items()}
    check_role_limit(limits, actor.role, calc.currency, calc.gross_minor)
    result = engine.evaluate(policy, _facts(inv), _ask(conn, inv, calc, req, actor, now),
                             _history(conn, inv, policy, now), now)
    return _from_engine(result, limits)


def _default(now: datetime) -> Decision:
    due = now + timedelta(days=DEFAULT_DUE_DAYS)
    text = ("No refund policy is configured for this seller, so the built-in default applies: "
            f"the refund is allowed and is due within {DEFAULT_DUE_DAYS} days, "
            f"by {due.day} {due:%B %Y}.")
    return Decision(outcome="allow", due_at=due,
                    explanations=({"rule": "default", "text": text,
                                   "values": {"due_days": DEFAULT_DUE_DAYS}},),
                    deadlines={"refund_due_at": due.isoformat()})


def check_role_limit(limits: dict, role: str | None, currency: str, amount_minor: int) -> None:
    """The one role-limit rule, applied when a refund is requested and when it is approved:
    a member of a role may not act on a refund above the role's limit for its currency."""
    limit = (limits.get(role or "") or {}).get(currency)
    if limit is not None and amount_minor > int(limit):
        raise RoleLimitExceeded(
            f"the {role} role may act on refunds up to {limit} {currency} (minor units); "
            f"this one is {amount_minor}", limit_minor=int(limit))


def _facts(inv: dict) -> engine.PurchaseFacts:
    # Without a delivery date the statutory window has not started (the most protective
    # reading): goods not yet delivered can always be returned.
    # The withdrawal information is taken to be on the invoice (given at issue); a merchant who
    # does not give it faces the +12-month extension, which Payback cannot know about.
    delivered = inv.get("delivered_at")
    return engine.PurchaseFacts(contract_type=inv.get("contract_type") or "goods",
                                purchased_at=inv["issued_at"],
                                deliveries=(delivered,) if delivered else (),
                                withdrawal_info_given_at=inv["issued_at"])


def _ask(conn: Connection, inv: dict, calc: domain.RefundCalculation,
         req: domain.RefundRequest, actor: Actor, now: datetime) -> engine.RefundAsk:
    rows = load_lines(conn, inv["id"])
    categories = {ln["id"]: ln["category"] or ln["kind"] for ln in rows}
    kinds = {ln["id"]: ln["kind"] for ln in rows}
    captured = conn.execute(select(func.coalesce(func.sum(payments.c.amount_minor), 0))
                            .where(payments.c.invoice_id == inv["id"])).scalar_one()
    return engine.RefundAsk(
        requested_at=now, reason=req.reason, method=req.method,
        consent_to_other_method=req.consent_to_other_method, currency=calc.currency,
        amount_minor=calc.gross_minor, tax_minor=calc.tax_minor,
        invoice_total_minor=inv["total_minor"],
        lines=tuple(engine.AskLine(categories[rl.line_id], kinds[rl.line_id], rl.gross_minor,
                                   rl.tax_minor) for rl in calc.lines),
        is_full=calc.refundable_after_minor == 0, requested_by_role=actor.role,
        already_refunded_minor=int(captured) - calc.refundable_before_minor)


def _history(conn: Connection, inv: dict, policy, now: datetime) -> engine.CustomerHistory:
    limit = policy.per_customer_limit
    if limit is None:
        return engine.CustomerHistory()
    since = now - timedelta(days=limit.period_days)
    count = conn.execute(select(func.count()).select_from(refunds).where(
        refunds.c.customer_id == inv["customer_id"], refunds.c.created_at >= since,
        refunds.c.status.in_(COUNTED))).scalar_one()
    return engine.CustomerHistory(refunds_in_period=int(count))


def _from_engine(result, limits: dict) -> Decision:
    deadlines = {name: value.isoformat() for name, value in (
        ("window_ends_at", result.window_ends_at), ("refund_due_at", result.refund_due_at),
        ("return_by", result.return_by), ("withhold_until", result.withhold_until)) if value}
    return Decision(
        outcome=result.outcome, due_at=result.refund_due_at,
        fee_minor=result.restocking_fee_minor, bonus_minor=result.store_credit_bonus_minor,
        four_eyes=result.four_eyes_required, policy_id=result.policy_id,
        policy_version=str(result.policy_version), allowed_methods=result.allowed_methods,
        explanations=tuple({"rule": e.rule, "text": e.text, "values": dict(e.values)}
                           for e in result.explanations),
        deadlines={**deadlines, "claim": result.claim}, role_limits_minor=limits)
