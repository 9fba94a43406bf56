"""Presentation helpers for the console's templates: bar-chart geometry for inline SVG, the
active refund policy as readable sections, and labels. Pure functions of data already computed
by the services; integer arithmetic only (no floats in Payback's source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payback.money import format_money

CHART_WIDTH = 600
CHART_HEIGHT = 160
LABEL_SPACE = 18

STATUS_LABELS = {
    "requested": "Requested", "pending_approval": "Pending approval", "approved": "Approved",
    "processing": "Processing", "succeeded": "Paid", "failed": "Failed",
    "rejected": "Rejected", "canceled": "Canceled",
}
OUTCOME_LABELS = {"allow": "Allowed", "needs_approval": "Needs approval", "deny": "Denied"}
METHOD_LABELS = {"original_payment": "Original payment", "store_credit": "Store credit"}
DEADLINE_LABELS = {"window_ends_at": "Return window ends", "refund_due_at": "Refund due by",
                   "return_by": "Goods to be returned by",
                   "withhold_until": "May be withheld until"}


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    label: str
    value: int
    text: str  # what a screen reader and the tooltip say


def bar_chart(points: list[tuple[str, int]], *, width: int = CHART_WIDTH,
              height: int = CHART_HEIGHT) -> dict[str, Any]:
    """Bars for ``(label, value)`` pairs, scaled so the largest reaches the top."""
    top = max((v for _, v in points), default=0)
    slot = width // max(len(points), 1)
    gap = max(slot // 6, 1)
    plot = height - LABEL_SPACE
    bars = []
    for i, (label, value) in enumerate(points):
        h = value * plot // top if top else 0
        bars.append(Bar(x=i * slot + gap // 2, y=plot - h, width=max(slot - gap, 1),
                        height=h, label=label, value=value, text=f"{label}: {value}"))
    return {"width": width, "height": height, "bars": bars, "max": top,
            "total": sum(v for _, v in points), "rows": False}


ROW_HEIGHT = 26
LABEL_WIDTH = 200
VALUE_WIDTH = 50


def row_chart(points: list[tuple[str, int]], *, width: int = CHART_WIDTH) -> dict[str, Any]:
    """Horizontal bars, one row per ``(label, value)``, with the label written on the left
    and the value on the right (for categories whose names need room)."""
    top = max((v for _, v in points), default=0)
    room = width - LABEL_WIDTH - VALUE_WIDTH
    bars = [Bar(x=LABEL_WIDTH, y=i * ROW_HEIGHT + 4, width=value * room // top if top else 0,
                height=ROW_HEIGHT - 8, label=label, value=value, text=f"{label}: {value}")
            for i, (label, value) in enumerate(points)]
    return {"width": width, "height": max(len(points), 1) * ROW_HEIGHT, "bars": bars,
            "max": top, "total": sum(v for _, v in points), "rows": True}


def daily_chart(daily: list[dict]) -> dict[str, Any]:
    chart = bar_chart([(d["day"].isoformat(), d["count"]) for d in daily])
    chart["first"] = daily[0]["day"].isoformat() if daily else ""
    chart["last"] = daily[-1]["day"].isoformat() if daily else ""
    return chart


def reason_chart(by_reason: list[dict]) -> dict[str, Any]:
    return row_chart([(r["reason"].replace("_", " "), r["count"]) for r in by_reason])


# ------------------------------------------------------------------------------- the policy


def _amounts(by_currency: dict[str, int]) -> str:
    if not by_currency:
        return "none"
    return ", ".join(format_money(v, cur) for cur, v in sorted(by_currency.items()))


def policy_sections(policy) -> list[tuple[str, list[tuple[str, str]]]]:
    """The active policy (``payback.policies.Policy``) as titled lists of (label, text)."""
    w, d, fee, sc, ap = (policy.window, policy.refund_deadline, policy.restocking_fee,
                         policy.store_credit, policy.approvals)
    limit = policy.per_customer_limit
    return [
        ("Policy", [("Name", policy.name), ("Id and version", f"{policy.id} {policy.version}"),
                    ("Jurisdiction", policy.jurisdiction),
                    ("Extends", policy.extends or "nothing (a preset)"),
                    ("Time zone", policy.timezone),
                    ("Legal basis", "; ".join(policy.legal_basis) or "none given")]),
        ("Returns", [
            ("Change of mind", "accepted" if policy.change_of_mind else "not accepted"),
            ("Window", f"{w.days} days from {w.anchor.replace('_', ' ')} ({w.name})"),
            ("Refund deadline", (f"{d.days} {'working ' if d.working_days else ''}days from "
                                 f"{d.anchor.replace('_', ' ')}")),
            ("Return shipping paid by", policy.return_shipping_payer.replace("_", " ")),
            ("Excluded categories", ", ".join(f"{name} ({c.exclusion})"
                                              for name, c in policy.categories.items()
                                              if c.excluded) or "none")]),
        ("Money", [
            ("Restocking fee", f"{fee.percent} % of {fee.tax_base}"
                               + (f" + {_amounts(fee.fixed_minor)}" if fee.fixed_minor else "")),
            ("Refund method", policy.method_rule.replace("_", " ")),
            ("Store credit bonus", f"{sc.bonus_percent} %"),
            ("Store credit expires", f"after {sc.expiry_days} days" if sc.expiry_days
             else "never"),
            ("Refunds per customer", f"at most {limit.max_refunds} in {limit.period_days} days, "
                                     f"then {limit.on_exceed.replace('_', ' ')}"
             if limit else "no limit")]),
        ("Approvals", [
            ("Approved automatically up to", _amounts(ap.auto_approve_up_to_minor)),
            ("Approval needed above", _amounts(ap.require_approval_above_minor)),
            ("Approval needed for reasons", ", ".join(r.replace("_", " ") for r in
                                                      ap.require_approval_reasons) or "none"),
            ("Four eyes above", _amounts(ap.four_eyes_above_minor)),
            *[(f"{role.capitalize()} may act up to", _amounts(limits))
              for role, limits in sorted(policy.role_limits_minor.items())]]),
    ]


def bonus_percent(policy) -> str | None:
    """The store-credit bonus of the active policy ("10"), or None when there is none."""
    if policy is None or not policy.store_credit.bonus_percent:
        return None
    return f"{policy.store_credit.bonus_percent.normalize():f}"
