"""Hypothesis properties of policy evaluation over random policies, purchases and asks.

For every preset-derived merchant policy (random fees, bonus, cap, limits, windows) and random
purchase facts and refund asks: 0 ≤ fee ≤ amount, refund = amount − fee ≤ amount, the bonus is
non-negative, the outcome is one of the three values, a denial pays nothing, deadlines are never
before the request, and evaluating twice gives an identical Decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from payback.policies import (
    AskLine,
    CustomerHistory,
    PurchaseFacts,
    RefundAsk,
    evaluate,
    load_policy,
)
from payback.refunds.domain import REASONS

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
PRESET_CURRENCY = {"EU-CRD": "EUR", "UK-CCR": "GBP", "UK-CRA": "GBP", "US-FED": "USD",
                   "US-CA": "USD", "US-NY": "USD", "AU-ACL": "AUD"}
ZONES = ("UTC", "Europe/Berlin", "Europe/London", "America/Los_Angeles", "Australia/Sydney",
         "Asia/Kolkata")

instants = st.integers(min_value=0, max_value=3 * 365 * 24 * 60).map(
    lambda m: BASE + timedelta(minutes=m))


@st.composite
def policies(draw):
    preset = draw(st.sampled_from(sorted(PRESET_CURRENCY)))
    cur = PRESET_CURRENCY[preset]
    data = {"extends": preset, "id": "m", "version": "2026-01-01",
            "timezone": draw(st.sampled_from(ZONES)), "posted": True,
            "window": {"days": draw(st.integers(14, 120))},
            "store_credit": {"bonus_percent": str(draw(st.decimals(0, 100, places=2)))},
            "approvals": {"auto_approve_up_to_minor": {cur: draw(st.integers(0, 10**6))},
                          "four_eyes_above_minor": {cur: draw(st.integers(0, 10**7))}},
            "role_limits_minor": {"agent": {cur: draw(st.integers(0, 10**6))}}}
    if preset.startswith("US") or preset == "AU-ACL":
        data["restocking_fee"] = {"percent": str(draw(st.decimals(0, 100, places=3))),
                                  "fixed_minor": {cur: draw(st.integers(0, 5000))},
                                  "disclosed": True, "tax_base": "net" if preset == "US-CA" else
                                  draw(st.sampled_from(["gross", "net"]))}
    if draw(st.booleans()):
        data["partial_refund_cap_percent"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        data["per_customer_limit"] = {"max_refunds": draw(st.integers(0, 5)), "period_days": 90,
                                      "on_exceed": draw(st.sampled_from(["deny",
                                                                         "needs_approval"]))}
    return load_policy(data), cur  # every drawn value is above the floors: must load


@st.composite
def scenarios(draw):
    policy, cur = draw(policies())
    purchased = draw(instants)
    ctype = draw(st.sampled_from(["goods", "subscription_goods", "services", "digital_content"]))
    deliveries = tuple(purchased + timedelta(hours=h) for h in
                       draw(st.lists(st.integers(1, 24 * 60), max_size=3)))
    info = draw(st.sampled_from([None, purchased, purchased + timedelta(days=40)]))
    facts = PurchaseFacts(ctype, purchased, deliveries,
                          service_started_at=draw(st.sampled_from([None, purchased])),
                          withdrawal_info_given_at=info, digital_consents=draw(st.booleans()))
    gross = draw(st.lists(st.integers(0, 10**6), min_size=0, max_size=4))
    lines = tuple(AskLine(draw(st.sampled_from([None, "shoes", "perishable"])),
                          draw(st.sampled_from(["item", "shipping"])), g, g // 6) for g in gross)
    amount = sum(gross) if lines else draw(st.integers(0, 10**7))
    tax = sum(x.tax_minor for x in lines) if lines else draw(st.integers(0, amount))
    ask = RefundAsk(requested_at=purchased + timedelta(minutes=draw(st.integers(0, 800 * 1440))),
                    reason=draw(st.sampled_from(REASONS)),
                    method=draw(st.sampled_from(["original_payment", "store_credit"])),
                    consent_to_other_method=draw(st.booleans()), currency=cur,
                    amount_minor=amount, tax_minor=tax,
                    invoice_total_minor=amount + draw(st.integers(0, 10**6)), lines=lines,
                    is_full=draw(st.booleans()),
                    requested_by_role=draw(st.sampled_from([None, "agent", "admin"])),
                    already_refunded_minor=draw(st.integers(0, 10**6)))
    return policy, facts, ask, CustomerHistory(draw(st.integers(0, 10)))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_decision_invariants(case) -> None:
    policy, facts, ask, history = case
    d = evaluate(policy, facts, ask, history, ask.requested_at)
    assert d.outcome in ("allow", "deny", "needs_approval")
    assert 0 <= d.restocking_fee_minor <= ask.amount_minor
    assert 0 <= d.refund_amount_minor <= ask.amount_minor
    assert d.store_credit_bonus_minor >= 0
    if d.outcome == "deny":
        assert (d.refund_amount_minor, d.restocking_fee_minor, d.allowed_methods) == (0, 0, ())
    else:
        assert d.refund_amount_minor == ask.amount_minor - d.restocking_fee_minor
        assert ask.method in d.allowed_methods
    for deadline in (d.refund_due_at, d.return_by):
        assert deadline is None or deadline >= ask.requested_at
    if ask.reason in ("product_defective", "not_as_described"):
        # no fee on a fault, and only the payment method can refuse one (never the window)
        assert d.restocking_fee_minor == 0
        assert d.outcome != "deny" or (d.rules()[-1] == "method" and "window" not in d.rules())
    assert all(isinstance(e.rule, str) and e.text for e in d.explanations)
    assert d.policy_id == "m" and d.policy_version == "2026-01-01"


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_evaluation_is_deterministic(case) -> None:
    policy, facts, ask, history = case
    assert evaluate(policy, facts, ask, history, BASE) == \
        evaluate(policy, facts, ask, history, BASE)


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_ca_fee_never_touches_the_tax(case) -> None:
    policy, facts, ask, history = case
    d = evaluate(policy, facts, ask, history, BASE)
    if policy.restocking_fee.tax_base == "net" and d.outcome != "deny":
        assert d.refund_amount_minor >= ask.tax_minor
