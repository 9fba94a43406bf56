"""Policy evaluation: a pure function from (policy, purchase, ask, history, now) to a Decision.

``evaluate`` reads no clock, database or file: the same inputs always give the same Decision.
Each rule is a small function that may add an explanation, lower the outcome (allow → needs
approval → deny) or set an amount or deadline. Explanations name their rule and their numbers in
plain language and carry the numbers again in ``values`` for machines.

Kinds of claim (from ``RefundAsk.reason``):
- ``fault``: product_defective, not_as_described. Statutory remedies apply even outside the
  change-of-mind window; no restocking fee, exclusions or change-of-mind refusal apply, the
  merchant pays return shipping, and a fault claim is never denied outright: if no immediate
  refund right covers it, it needs approval (a person decides repair, replacement or refund);
- ``billing_correction``: duplicate, fraudulent, billing_error. Not a return: money taken in
  error is owed back whatever the window, so no window, exclusion or fee applies;
- ``change_of_mind``: every other reason (requested_by_customer, goodwill, other).

Invariants kept here:
- 0 ≤ restocking_fee_minor ≤ amount_minor and refund_amount_minor = amount_minor − fee;
  a denied ask has all amounts 0 and no allowed method;
- deadlines (refund_due_at, return_by) are never before ``requested_at``;
- a per-customer limit never denies a statutory claim (fault, billing correction, or a
  change-of-mind inside the statutory window): it asks for approval instead;
- rounding is ``half_up`` through ``payback.money.mul_div``; no float is ever made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from payback.money import Money, mul_div
from payback.policies import statutory as clock
from payback.policies.model import Policy

FAULT_REASONS = ("product_defective", "not_as_described")
BILLING_REASONS = ("duplicate", "fraudulent", "billing_error")
OUTCOMES = ("allow", "needs_approval", "deny")
ROUNDING = "half_up"
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


@dataclass(frozen=True, slots=True)
class PurchaseFacts:
    contract_type: str                      # goods | subscription_goods | services | digital_content
    purchased_at: datetime                  # conclusion of the contract
    deliveries: tuple[datetime, ...] = ()   # physical possession, one per shipment
    service_started_at: datetime | None = None   # services begun / digital supply begun
    withdrawal_info_given_at: datetime | None = None  # None: never given
    digital_consents: bool = False          # express consent + acknowledgement + confirmation


@dataclass(frozen=True, slots=True)
class AskLine:
    category: str | None
    kind: str                               # item | shipping
    gross_minor: int
    tax_minor: int


@dataclass(frozen=True, slots=True)
class RefundAsk:
    requested_at: datetime                  # when the notice was sent / received
    reason: str
    method: str                             # original_payment | store_credit
    consent_to_other_method: bool
    currency: str
    amount_minor: int                       # gross, before any fee
    tax_minor: int
    invoice_total_minor: int
    lines: tuple[AskLine, ...] = ()
    is_full: bool = False
    requested_by_role: str | None = None
    already_refunded_minor: int = 0         # on this invoice, before this ask
    goods_received_at: datetime | None = None
    dispatch_evidence_at: datetime | None = None
    agreed_at: datetime | None = None       # trader agreed a refund is due (CRA s 20(15))


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    refunds_in_period: int = 0              # refunds in the policy's per_customer_limit period


@dataclass(frozen=True, slots=True)
class Explanation:
    rule: str
    text: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Literal["allow", "deny", "needs_approval"]
    restocking_fee_minor: int
    refund_amount_minor: int
    store_credit_bonus_minor: int
    allowed_methods: tuple[str, ...]
    window_ends_at: datetime | None
    refund_due_at: datetime | None
    return_by: datetime | None
    withhold_until: datetime | None
    explanations: tuple[Explanation, ...]
    policy_id: str
    policy_version: str
    claim: str = "change_of_mind"
    currency: str = ""
    four_eyes_required: bool = False
    return_shipping_paid_by: str | None = None

    def rules(self) -> tuple[str, ...]:
        return tuple(e.rule for e in self.explanations)


# --- formatting helpers (deterministic, locale-free) ----------------------------------------------

def _day(at: datetime, tz: str) -> str:
    d = clock.local_date(at, tz)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _deadline(at: datetime, tz: str) -> str:
    return f"{_day(at, tz)} 23:59 {tz}"


def _money(minor: int, currency: str) -> str:
    return str(Money(minor, currency))


def _pct(p: Decimal) -> str:
    return f"{p.normalize():f} %"


def _percent_of(amount: int, percent: Decimal) -> int:
    num, den = percent.as_integer_ratio()
    return mul_div(amount, num, den * 100, rounding=ROUNDING)


# --- the working state ------------------------------------------------------------------------------

class _Run:
    """Mutable scratchpad of one evaluation; only ``evaluate`` sees it."""

    def __init__(self, policy: Policy, facts: PurchaseFacts, ask: RefundAsk) -> None:
        self.p, self.f, self.a, self.tz = policy, facts, ask, policy.timezone
        self.outcome = "allow"
        self.notes: list[Explanation] = []
        self.fee = 0
        self.window_ends_at: datetime | None = None
        self.in_statutory_window = False
        self.methods: tuple[str, ...] = ("original_payment", "store_credit")
        self.claim = _claim(ask.reason)

    def explain(self, rule: str, text: str, /, **values: Any) -> None:
        self.notes.append(Explanation(rule, text, {k: _plain(v) for k, v in values.items()}))

    def lower(self, outcome: str) -> None:
        if OUTCOMES.index(outcome) > OUTCOMES.index(self.outcome):
            self.outcome = outcome

    @property
    def protected(self) -> bool:
        return self.claim != "change_of_mind" or self.in_statutory_window


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _claim(reason: str) -> str:
    if reason in FAULT_REASONS:
        return "fault"
    if reason in BILLING_REASONS:
        return "billing_correction"
    return "change_of_mind"


# --- the entry point ----------------------------------------------------------------------------------

def evaluate(policy: Policy, facts: PurchaseFacts, ask: RefundAsk,
             history: CustomerHistory = CustomerHistory(), now: datetime | None = None) -> Decision:
    """Decide a refund ask under ``policy``. Pure and deterministic.

    ``now`` is accepted for the caller's record and future rules; every date rule is counted from
    ``ask.requested_at`` (sending the notice in time is enough, CRD Art 11(2)).
    """
    _check_inputs(facts, ask)
    run = _Run(policy, facts, ask)
    if run.claim == "fault":
        _fault_window(run)
    elif run.claim == "billing_correction":
        run.explain("billing_correction", f"A {ask.reason.replace('_', ' ')} correction is not a "
                    "return: the money is owed back whatever the return period, with no fee.",
                    reason=ask.reason)
    else:
        _change_of_mind(run)
    if run.outcome == "deny":
        return _decision(run, history, denied=True)
    _restocking_fee(run)
    _partial_cap(run)
    _customer_limit(run, history)
    _methods(run)
    if run.outcome == "deny":
        return _decision(run, history, denied=True)
    _approvals(run)
    return _decision(run, history, denied=False)


def _check_inputs(facts: PurchaseFacts, ask: RefundAsk) -> None:
    if facts.contract_type not in clock.CONTRACT_TYPES:
        raise ValueError(f"unknown contract type {facts.contract_type!r}")
    for name in ("amount_minor", "tax_minor", "invoice_total_minor", "already_refunded_minor"):
        value = getattr(ask, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int")
    if ask.tax_minor > ask.amount_minor:
        raise ValueError("tax_minor cannot exceed amount_minor")


# --- change of mind -------------------------------------------------------------------------------------

def _change_of_mind(run: _Run) -> None:
    p = run.p
    if not p.change_of_mind:
        run.explain("change_of_mind", f"No change-of-mind refunds under {p.name}: the law gives "
                    "no right to a refund for a change of mind, only for faults.", policy=p.id)
        run.lower("deny")
        return
    if _digital_waived(run) or _excluded(run):
        run.lower("deny")
        return
    _window(run)


def _digital_waived(run: _Run) -> bool:
    f, a = run.f, run.a
    started = f.service_started_at
    if not (run.p.window.anchor == "statutory" and f.contract_type == "digital_content"
            and f.digital_consents and started is not None and started <= a.requested_at):
        return False
    run.explain("exclusion", "No withdrawal: supply of the digital content began on "
                f"{_day(started, run.tz)} with the customer's express consent and acknowledgement "
                "that the right is lost (exception digital_content_started).",
                exclusion="digital_content_started", supply_started_at=started)
    return True


def _excluded(run: _Run) -> bool:
    hits = sorted({line.category for line in run.a.lines if line.category
                   and (cat := run.p.categories.get(line.category)) and cat.excluded})
    for name in hits:
        exclusion = run.p.categories[name].exclusion
        run.explain("exclusion", f"Category {name} is excluded from change-of-mind refunds "
                    f"(exception {exclusion}).", category=name, exclusion=exclusion)
    return bool(hits)


def _window_start(run: _Run) -> datetime | None:
    p, f = run.p, run.f
    anchor = p.window.anchor
    if anchor == "statutory":
        return clock.withdrawal_start(f.contract_type, concluded_at=f.purchased_at,
                                      deliveries=f.deliveries)
    if anchor == "delivery":
        return max(f.deliveries) if f.deliveries else None
    if anchor == "service_start":
        return f.service_started_at
    return f.purchased_at


def _policy_window_end(run: _Run, start: datetime) -> datetime:
    p, f = run.p, run.f
    days = min([_line_days(run, line) for line in run.a.lines] or [p.window.days])
    if p.window.anchor == "statutory":
        return clock.withdrawal_deadline(
            f.contract_type, concluded_at=f.purchased_at, deliveries=f.deliveries, tz=run.tz,
            days=days, info_given_at=f.withdrawal_info_given_at,
            missing_info_extension_months=p.window.missing_info_extension_months,
            weekend_rollover=p.window.weekend_rollover)
    return clock.period_end(start, days, run.tz, weekend_rollover=p.window.weekend_rollover)


def _line_days(run: _Run, line: AskLine) -> int:
    cat = run.p.categories.get(line.category or "")
    return cat.window_days if cat is not None and cat.window_days is not None else \
        run.p.window.days


def _statutory_window_end(run: _Run) -> datetime | None:
    """The floor's own window (statutory start rules), whatever the merchant's counting says."""
    floor, f = run.p.statutory_floor, run.f
    if floor is None or floor.min_window_days is None:
        return None
    months = floor.min_missing_info_extension_months
    return clock.withdrawal_deadline(
        f.contract_type, concluded_at=f.purchased_at, deliveries=f.deliveries, tz=run.tz,
        days=floor.min_window_days.value, info_given_at=f.withdrawal_info_given_at,
        missing_info_extension_months=months.value if months else 0,
        weekend_rollover=bool(floor.weekend_rollover and floor.weekend_rollover.value))


def _window(run: _Run) -> None:
    p, a, tz = run.p, run.a, run.tz
    start = _window_start(run)
    floored = p.statutory_floor is not None and p.statutory_floor.min_window_days is not None
    statutory_end = _statutory_window_end(run)
    # Under a floor the statutory start decides: goods not yet delivered may always be returned,
    # even if the merchant counts its own window from the purchase (CRD Art 9(3)).
    if start is None or (floored and statutory_end is None):
        run.in_statutory_window = floored
        run.explain("window", f"The {p.window.name} has not started yet (nothing delivered); "
                    "the customer may cancel before delivery.", anchor=p.window.anchor)
        return
    end = _policy_window_end(run, start)
    if statutory_end is not None:
        run.in_statutory_window = a.requested_at <= statutory_end
        end = max(end, statutory_end)
    run.window_ends_at = end
    days = min([_line_days(run, line) for line in a.lines] or [p.window.days])
    if statutory_end is not None and p.statutory_floor.min_window_days is not None:
        days = max(days, p.statutory_floor.min_window_days.value)
    event = _start_word(run)
    values = {"start": start, "ends_at": end, "days": days, "timezone": tz}
    note = _extension_note(run, start, end, days)
    if a.requested_at <= end:
        run.explain("window", f"Returned within the {days}-day {p.window.name}{note}: {event} "
                    f"{_day(start, tz)}, period ends {_deadline(end, tz)}.", **values)
    else:
        run.explain("window", f"Outside the {days}-day {p.window.name}{note}: {event} "
                    f"{_day(start, tz)}, period ended {_deadline(end, tz)}; requested "
                    f"{_day(a.requested_at, tz)}.", **values)
        run.lower("deny")


def _extension_note(run: _Run, start: datetime, end: datetime, days: int) -> str:
    """Why the period ends later than ``days`` after its start, in a few words (or "")."""
    tz, f = run.tz, run.f
    if clock.local_date(end, tz) == clock.local_date(start, tz) + timedelta(days=days):
        return ""
    info = f.withdrawal_info_given_at
    if run.p.window.missing_info_extension_months and info is None:
        return (f" extended by {run.p.window.missing_info_extension_months} months because "
                "withdrawal information was never given")
    if run.p.window.missing_info_extension_months and info > f.purchased_at and \
            clock.local_date(end, tz) >= clock.local_date(info, tz) + timedelta(days=days):
        return f" counted from the late withdrawal information of {_day(info, tz)}"
    if clock.local_date(end, tz).weekday() == 0:
        return " (the last day fell on a weekend, so it ends on the Monday)"
    return ""


def _start_word(run: _Run) -> str:
    anchor, ctype = run.p.window.anchor, run.f.contract_type
    if anchor == "statutory":
        anchor = "delivery" if ctype in clock.GOODS_TYPES else "purchase"
    return {"delivery": "delivered", "service_start": "service started",
            "purchase": "contract concluded"}[anchor]


# --- faults -----------------------------------------------------------------------------------------------

def _fault_window(run: _Run) -> None:
    p, f, a, tz = run.p, run.f, run.a, run.tz
    faults = p.faults
    start = max(f.deliveries) if f.deliveries else f.purchased_at
    if faults.no_fixed_limit:
        run.explain("fault", "Fault claim: for a major failure the customer chooses a refund, "
                    "and the guarantee has no fixed expiry (a reasonable time); a minor failure "
                    "may be repaired or replaced instead.", no_fixed_limit=True)
        return
    if faults.reject_days is not None:
        end = clock.period_end(start, faults.reject_days, tz)
        if a.requested_at <= end:
            run.window_ends_at = end
            run.explain("fault", f"Fault claim within the {faults.reject_days}-day right to "
                        f"reject: delivered {_day(start, tz)}, ends {_deadline(end, tz)}; a full "
                        "refund is due with no fee.", days=faults.reject_days, ends_at=end)
            return
    if p.change_of_mind:
        wstart = _window_start(run)
        if wstart is not None and a.requested_at <= _policy_window_end(run, wstart):
            end = _policy_window_end(run, wstart)
            run.window_ends_at = end
            run.explain("fault", f"Fault claim within the {p.window.name}, which ends "
                        f"{_deadline(end, tz)}; refunded without a fee.", ends_at=end)
            return
    if faults.liability_months is not None:
        end = clock.months_end(start, faults.liability_months, tz)
        if a.requested_at <= end:
            run.window_ends_at = end
            run.explain("fault", f"Fault claim within the {faults.liability_months}-month legal "
                        f"guarantee (until {_deadline(end, tz)}): a refund is due if repair or "
                        "replacement is impossible or failed, or the defect is not minor; a "
                        "person must confirm.", months=faults.liability_months, ends_at=end)
            run.lower("needs_approval")
            return
    run.explain("fault", "Fault claim outside the statutory periods of this policy: a person "
                "must decide.", policy=p.id)
    run.lower("needs_approval")


# --- amounts -----------------------------------------------------------------------------------------------

def _fee_base(run: _Run) -> tuple[int, int]:
    """(base the percentage applies to, the tax inside the refunded items)."""
    a, net = run.a, run.p.restocking_fee.tax_base == "net"
    items = [line for line in a.lines if line.kind != "shipping"]
    if a.lines:
        gross, tax = sum(x.gross_minor for x in items), sum(x.tax_minor for x in items)
    else:
        gross, tax = a.amount_minor, a.tax_minor
    gross, tax = min(gross, a.amount_minor), min(tax, a.tax_minor)
    return (gross - tax if net else gross), tax


def _restocking_fee(run: _Run) -> None:
    fee_rule, a = run.p.restocking_fee, run.a
    if not fee_rule.charged:
        return
    if run.claim != "change_of_mind":
        run.explain("restocking_fee", f"No restocking fee on a {run.claim.replace('_', ' ')}.",
                    fee_minor=0)
        return
    base, tax = _fee_base(run)
    pct = _percent_of(base, fee_rule.percent)
    fixed = fee_rule.fixed_minor.get(a.currency, 0)
    run.fee = min(base, pct + fixed)
    cur = a.currency
    parts = []
    if fee_rule.percent:
        what = "price before tax" if fee_rule.tax_base == "net" else "price"
        parts.append(f"{_pct(fee_rule.percent)} of the {_money(base, cur)} {what} = "
                     f"{_money(pct, cur)}")
    if fixed:
        parts.append(f"a fixed {_money(fixed, cur)}")
    text = f"Restocking fee {_money(run.fee, cur)}: " + " plus ".join(parts) + "."
    if run.fee < pct + fixed:
        text += f" Capped at the {_money(base, cur)} it applies to."
    if fee_rule.tax_base == "net" and tax:
        text += (f" The full {_money(tax, cur)} sales tax is still refunded; the fee does not "
                 "reduce the tax refunded.")
    run.explain("restocking_fee", text, fee_minor=run.fee, percent=fee_rule.percent,
                fixed_minor=fixed, base_minor=base, tax_refunded_minor=tax if
                fee_rule.tax_base == "net" else None)


def _partial_cap(run: _Run) -> None:
    cap_pct, a = run.p.partial_refund_cap_percent, run.a
    if cap_pct is None or a.is_full or run.claim != "change_of_mind":
        return
    cap = _percent_of(a.invoice_total_minor, cap_pct)
    total = a.already_refunded_minor + a.amount_minor
    if total > cap:
        run.explain("partial_cap", f"Partial refunds would reach {_money(total, a.currency)}, "
                    f"above the cap of {_pct(cap_pct)} of the invoice "
                    f"({_money(cap, a.currency)}): needs approval.", cap_minor=cap,
                    total_minor=total)
        run.lower("needs_approval")


def _customer_limit(run: _Run, history: CustomerHistory) -> None:
    limit = run.p.per_customer_limit
    if limit is None or history.refunds_in_period < limit.max_refunds:
        return
    text = (f"The customer already had {history.refunds_in_period} refunds in the last "
            f"{limit.period_days} days (limit {limit.max_refunds})")
    if limit.on_exceed == "deny" and not run.protected:
        run.explain("per_customer_limit", text + ": refused.", count=history.refunds_in_period,
                    max_refunds=limit.max_refunds, period_days=limit.period_days)
        run.lower("deny")
        return
    why = "; a statutory claim cannot be refused for this" if limit.on_exceed == "deny" else ""
    run.explain("per_customer_limit", text + f": needs approval{why}.",
                count=history.refunds_in_period, max_refunds=limit.max_refunds,
                period_days=limit.period_days)
    run.lower("needs_approval")


# --- methods -------------------------------------------------------------------------------------------------

def _methods(run: _Run) -> None:
    p, a = run.p, run.a
    rule = p.effective_fault_method_rule if run.claim == "fault" else p.method_rule
    if run.claim == "fault" and rule == "original_only" and a.method == "store_credit":
        text = ("A fault refund goes back in the same form as the payment; store credit or a "
                "credit note cannot replace it, even with the customer's agreement.")
    else:
        text = ""
    methods = _allowed_for(rule, a.consent_to_other_method)
    only_after = p.store_credit.only_after_days
    if (run.claim == "change_of_mind" and only_after is not None and not run.in_statutory_window
            and _days_since_start(run) > only_after):
        methods = ("store_credit",)
        run.explain("store_credit_only", f"More than {only_after} days since the start of the "
                    f"{p.window.name}: only store credit is offered.", only_after_days=only_after)
    run.methods = methods
    if a.method not in methods:
        run.explain("method", text or _method_refusal(rule, a.method), rule=rule,
                    method=a.method, allowed=list(methods))
        run.lower("deny")
    elif rule == "original_unless_consent" and a.method == "store_credit":
        run.explain("method", "Store credit instead of the original payment method, with the "
                    "customer's express consent.", rule=rule, method=a.method)


def _allowed_for(rule: str, consent: bool) -> tuple[str, ...]:
    if rule == "original_only":
        return ("original_payment",)
    if rule == "store_credit_only":
        return ("store_credit",)
    if rule == "original_unless_consent" and not consent:
        return ("original_payment",)
    return ("original_payment", "store_credit")


def _method_refusal(rule: str, method: str) -> str:
    if rule == "original_unless_consent":
        return ("The refund goes back to the original payment method; store credit needs the "
                "customer's express consent.")
    if rule == "store_credit_only":
        return "This policy refunds as store credit only."
    return f"Method {method} is not allowed under the method rule {rule}."


def _days_since_start(run: _Run) -> int:
    start = _window_start(run) or run.f.purchased_at
    return (clock.local_date(run.a.requested_at, run.tz) - clock.local_date(start, run.tz)).days


def _bonus(run: _Run, refund: int) -> int:
    pct = run.p.store_credit.bonus_percent
    rule = run.p.effective_fault_method_rule if run.claim == "fault" else run.p.method_rule
    if not pct or refund == 0 or not ("store_credit" in run.methods
                                       or rule == "original_unless_consent"):
        return 0
    bonus = _percent_of(refund, pct)
    cur = run.a.currency
    consent = " (this needs their express consent)" if rule == "original_unless_consent" else ""
    run.explain("store_credit_bonus", f"If the customer takes store credit instead, they receive "
                f"{_money(refund + bonus, cur)}: a {_pct(pct)} bonus of {_money(bonus, cur)}"
                f"{consent}.", bonus_minor=bonus, store_credit_minor=refund + bonus,
                percent=pct)
    return bonus


# --- approvals -------------------------------------------------------------------------------------------------

def _approvals(run: _Run) -> None:
    ap, a, cur = run.p.approvals, run.a, run.a.currency
    amount = a.amount_minor - run.fee
    auto = ap.auto_approve_up_to_minor.get(cur)
    above = ap.require_approval_above_minor.get(cur)
    if a.reason in ap.require_approval_reasons:
        run.explain("approval", f"Refunds for reason {a.reason} always need approval.",
                    reason=a.reason)
        run.lower("needs_approval")
    if above is not None and amount > above:
        run.explain("approval", f"{_money(amount, cur)} is above the approval threshold of "
                    f"{_money(above, cur)}: needs approval.", amount_minor=amount,
                    threshold_minor=above)
        run.lower("needs_approval")
    elif auto is not None and amount > auto:
        run.explain("approval", f"{_money(amount, cur)} is above the auto-approve limit of "
                    f"{_money(auto, cur)}: needs approval.", amount_minor=amount,
                    auto_approve_up_to_minor=auto)
        run.lower("needs_approval")
    elif auto is not None and run.outcome == "allow":
        run.explain("approval", f"Auto-approved: {_money(amount, cur)} is within the limit of "
                    f"{_money(auto, cur)}.", amount_minor=amount, auto_approve_up_to_minor=auto)
    _role_limit(run, amount)


def _role_limit(run: _Run, amount: int) -> None:
    role, cur = run.a.requested_by_role, run.a.currency
    limits = run.p.role_limits_minor.get(role) if role else None
    if limits is None:
        return
    limit = limits.get(cur)
    if limit is None:
        run.explain("role_limit", f"No {role} limit is set for {cur}: needs approval.",
                    role=role, currency=cur)
        run.lower("needs_approval")
    elif amount > limit:
        run.explain("role_limit", f"{_money(amount, cur)} is above the {role} limit of "
                    f"{_money(limit, cur)}: needs approval.", role=role, limit_minor=limit,
                    amount_minor=amount)
        run.lower("needs_approval")


def _four_eyes(run: _Run, amount: int) -> bool:
    threshold = run.p.approvals.four_eyes_above_minor.get(run.a.currency)
    if threshold is None or amount <= threshold:
        return False
    run.explain("four_eyes", f"{_money(amount, run.a.currency)} is above "
                f"{_money(threshold, run.a.currency)}: the approver must be someone other than "
                "the requester.", threshold_minor=threshold, amount_minor=amount)
    return True


# --- deadlines and the result ------------------------------------------------------------------------------

def _refund_due(run: _Run) -> tuple[datetime | None, datetime | None]:
    """(refund_due_at, withhold_until)."""
    d, a, f, tz = run.p.refund_deadline, run.a, run.f, run.tz
    goods = f.contract_type in clock.GOODS_TYPES
    gate = clock.withhold_until(a.goods_received_at, a.dispatch_evidence_at) if goods else None
    anchor: datetime | None = a.requested_at
    if d.anchor == "goods_returned" and goods and run.claim == "change_of_mind":
        anchor = gate
    elif d.anchor == "agreement":
        anchor = max(a.agreed_at, a.requested_at) if a.agreed_at else a.requested_at
    unit = "working days" if d.working_days else "days"
    if anchor is None:
        run.explain("deadline", f"Refund due within {d.days} {unit} of the goods coming back or "
                    "proof of their dispatch, whichever is earlier (not yet known).",
                    days=d.days, working_days=d.working_days)
        return None, None
    due = clock.refund_deadline(anchor, tz, days=d.days, working_days=d.working_days)
    withhold = gate if (d.withhold_until_goods_back and goods and
                        run.claim == "change_of_mind") else None
    text = f"Refund due by {_deadline(due, tz)} ({d.days} {unit} from {_day(anchor, tz)})."
    if d.withhold_until_goods_back and goods and run.claim == "change_of_mind":
        text += (" The refund may be held until the goods are back or proof of dispatch is "
                 "given, whichever is earlier" +
                 (f" ({_day(withhold, tz)})." if withhold else "."))
    run.explain("deadline", text, refund_due_at=due, days=d.days, working_days=d.working_days,
                withhold_until=withhold)
    return due, withhold


def _return_by(run: _Run) -> datetime | None:
    days = run.p.return_deadline_days
    if days is None or run.f.contract_type not in clock.GOODS_TYPES or not run.f.deliveries \
            or run.claim == "billing_correction":
        return None
    end = clock.period_end(run.a.requested_at, days, run.tz)
    run.explain("return", f"Send the goods back by {_deadline(end, run.tz)} ({days} days from "
                f"the request).", return_by=end, days=days)
    return end


def _shipping_payer(run: _Run) -> str | None:
    if run.f.contract_type not in clock.GOODS_TYPES or run.claim == "billing_correction":
        return None
    if run.claim == "fault":
        return "merchant"
    payer = run.p.return_shipping_payer
    if payer == "customer_if_informed":
        info = run.f.withdrawal_info_given_at
        return "customer" if info is not None and info <= run.f.purchased_at else "merchant"
    return payer


def _decision(run: _Run, history: CustomerHistory, *, denied: bool) -> Decision:
    a, p = run.a, run.p
    if denied:
        return Decision("deny", 0, 0, 0, (), run.window_ends_at, None, None, None,
                        tuple(run.notes), p.id, p.version, run.claim, a.currency, False,
                        None)
    refund = a.amount_minor - run.fee
    bonus = _bonus(run, refund)
    four_eyes = _four_eyes(run, refund)
    due, withhold = _refund_due(run)
    return_by = _return_by(run)
    return Decision(run.outcome, run.fee, refund, bonus, run.methods, run.window_ends_at, due,
                    return_by, withhold, tuple(run.notes), p.id, p.version, run.claim,
                    a.currency, four_eyes, _shipping_payer(run))
