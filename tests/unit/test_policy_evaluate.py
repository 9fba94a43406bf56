"""Policy evaluation: representative decisions with their exact amounts, deadlines and explanation
texts (issue 3, reliability test 15 on original-method enforcement).

Covers: allow inside the window, deny outside, excluded categories, digital content, fault claims
outside the change-of-mind window (UK 30 days, EU 2 years, AU no fixed limit), billing
corrections, restocking fees to the minor unit with half-up rounding, the California tax rule,
the 110 % store-credit bonus, approval thresholds and reasons, four eyes, role limits, the
per-customer limit, the partial-refund cap, method consent (EU/UK) and AU's same-form rule,
deadlines (refund due, withhold gate, return by) and who pays return shipping.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from payback.policies import (
    AskLine,
    CustomerHistory,
    PurchaseFacts,
    RefundAsk,
    evaluate,
    load_policy,
    load_preset,
)


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=timezone.utc)


def eod(y: int, m: int, d: int, h: int) -> datetime:
    return datetime(y, m, d, h, 59, 59, 999999, tzinfo=timezone.utc)


ORDERED = utc(2026, 2, 27, 10)
BERLIN_SHOP = {"extends": "EU-CRD", "id": "shop-de", "version": "2026-02-01",
               "timezone": "Europe/Berlin"}


def eu(**extra) -> object:
    return load_policy({**BERLIN_SHOP, **extra})


def goods(*deliveries: datetime, info: datetime | None = ORDERED) -> PurchaseFacts:
    return PurchaseFacts("goods", ORDERED, tuple(deliveries), withdrawal_info_given_at=info)


def ask(at: datetime, *, reason: str = "requested_by_customer", method: str = "original_payment",
        consent: bool = False, currency: str = "EUR", amount: int = 11900, tax: int = 1900,
        total: int = 11900, lines: tuple[AskLine, ...] = (), full: bool = True,
        role: str | None = None, **kw) -> RefundAsk:
    return RefundAsk(at, reason, method, consent, currency, amount, tax, total, lines, full, role,
                     **kw)


def texts(decision) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in decision.explanations:
        out.setdefault(e.rule, []).append(e.text)
    return out


DELIVERED = utc(2026, 3, 3, 9)   # a Tuesday


# --- window ----------------------------------------------------------------------------------------

def test_allow_inside_the_eu_window() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 10, 12)), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.claim == "change_of_mind"
    assert (d.refund_amount_minor, d.restocking_fee_minor, d.store_credit_bonus_minor) == \
        (11900, 0, 0)
    assert d.allowed_methods == ("original_payment",)
    assert texts(d)["window"] == ["Returned within the 14-day withdrawal period: delivered "
                                  "3 March 2026, period ends 17 March 2026 23:59 Europe/Berlin."]
    assert d.window_ends_at == eod(2026, 3, 17, 22)
    assert d.refund_due_at == eod(2026, 3, 24, 22) and d.return_by == eod(2026, 3, 24, 22)
    assert texts(d)["deadline"] == [
        "Refund due by 24 March 2026 23:59 Europe/Berlin (14 days from 10 March 2026). The "
        "refund may be held until the goods are back or proof of dispatch is given, whichever "
        "is earlier."]
    assert texts(d)["return"] == ["Send the goods back by 24 March 2026 23:59 Europe/Berlin "
                                  "(14 days from the request)."]
    assert (d.policy_id, d.policy_version) == ("shop-de", "2026-02-01")
    assert d.return_shipping_paid_by == "customer"


def test_deny_outside_the_eu_window() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 18, 8)), CustomerHistory(), ORDERED)
    assert d.outcome == "deny"
    assert (d.refund_amount_minor, d.restocking_fee_minor, d.allowed_methods) == (0, 0, ())
    assert d.refund_due_at is None and d.return_by is None
    assert texts(d)["window"] == ["Outside the 14-day withdrawal period: delivered 3 March 2026, "
                                  "period ended 17 March 2026 23:59 Europe/Berlin; requested "
                                  "18 March 2026."]


def test_last_parcel_starts_the_period() -> None:
    d = evaluate(eu(), goods(utc(2026, 3, 1, 9), utc(2026, 3, 5, 9)),
                 ask(utc(2026, 3, 19, 20)), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.window_ends_at == eod(2026, 3, 19, 22)


def test_missing_information_extends_by_twelve_months() -> None:
    d = evaluate(eu(), goods(DELIVERED, info=None), ask(utc(2026, 11, 2, 9)), CustomerHistory(),
                 ORDERED)
    assert d.outcome == "allow" and d.window_ends_at == eod(2027, 3, 17, 22)
    assert texts(d)["window"] == [
        "Returned within the 14-day withdrawal period extended by 12 months because withdrawal "
        "information was never given: delivered 3 March 2026, period ends 17 March 2027 23:59 "
        "Europe/Berlin."]
    assert d.return_shipping_paid_by == "merchant"   # not informed of the return cost


def test_not_yet_delivered_may_cancel() -> None:
    d = evaluate(eu(), goods(), ask(utc(2026, 3, 1, 9)), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.window_ends_at is None and d.return_by is None
    assert texts(d)["window"] == ["The withdrawal period has not started yet (nothing "
                                  "delivered); the customer may cancel before delivery."]


def test_merchant_window_from_purchase_never_beats_the_statutory_one() -> None:
    # 20 days from purchase ends 19 March, but goods delivered 12 March: statutory end 26 March.
    policy = eu(window={"days": 20, "anchor": "purchase"})
    d = evaluate(policy, goods(utc(2026, 3, 12, 9)), ask(utc(2026, 3, 25, 9)), CustomerHistory(),
                 ORDERED)
    assert d.outcome == "allow" and d.window_ends_at == eod(2026, 3, 26, 22)


def test_undelivered_goods_beat_a_merchant_window_counted_from_purchase() -> None:
    policy = eu(window={"days": 20, "anchor": "purchase"})
    d = evaluate(policy, goods(), ask(utc(2026, 4, 20, 9)), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.window_ends_at is None


def test_more_generous_merchant_window() -> None:
    d = evaluate(eu(window={"days": 30}), goods(DELIVERED), ask(utc(2026, 4, 1, 9)),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.window_ends_at == eod(2026, 4, 2, 21)
    assert "Returned within the 30-day withdrawal period" in texts(d)["window"][0]


# --- exclusions --------------------------------------------------------------------------------------

def test_excluded_category_is_denied_with_its_exception() -> None:
    lines = (AskLine("perishable", "item", 5000, 350), AskLine(None, "shipping", 490, 93))
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 5, 9), amount=5490, tax=443,
                                             lines=lines), CustomerHistory(), ORDERED)
    assert d.outcome == "deny" and d.refund_amount_minor == 0
    assert texts(d)["exclusion"] == ["Category perishable is excluded from change-of-mind "
                                     "refunds (exception perishable)."]


def test_excluded_category_still_refunded_when_faulty() -> None:
    lines = (AskLine("perishable", "item", 5000, 350),)
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 5, 9), reason="product_defective",
                                             amount=5000, tax=350, lines=lines),
                 CustomerHistory(), ORDERED)
    assert d.claim == "fault" and d.outcome == "allow" and d.refund_amount_minor == 5000
    assert d.return_shipping_paid_by == "merchant"


@pytest.mark.parametrize("consents, outcome", [(True, "deny"), (False, "allow")])
def test_digital_content_with_and_without_the_consents(consents: bool, outcome: str) -> None:
    facts = PurchaseFacts("digital_content", utc(2026, 3, 2, 9), (),
                          service_started_at=utc(2026, 3, 2, 9, 5),
                          withdrawal_info_given_at=utc(2026, 3, 2, 9), digital_consents=consents)
    d = evaluate(eu(), facts, ask(utc(2026, 3, 4, 9), amount=999, tax=160), CustomerHistory(),
                 ORDERED)
    assert d.outcome == outcome
    if consents:
        assert texts(d)["exclusion"] == [
            "No withdrawal: supply of the digital content began on 2 March 2026 with the "
            "customer's express consent and acknowledgement that the right is lost (exception "
            "digital_content_started)."]
    else:
        assert d.window_ends_at == eod(2026, 3, 16, 22) and d.return_by is None


# --- fault claims ------------------------------------------------------------------------------------

def test_uk_fault_after_cancellation_period_within_thirty_days() -> None:
    policy = load_preset("UK-CCR")
    d = evaluate(policy, goods(utc(2026, 1, 10, 12)), ask(utc(2026, 2, 5, 12), currency="GBP",
                                                          reason="product_defective"),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.window_ends_at == eod(2026, 2, 9, 23)
    assert texts(d)["fault"] == ["Fault claim within the 30-day right to reject: delivered "
                                 "10 January 2026, ends 9 February 2026 23:59 Europe/London; a "
                                 "full refund is due with no fee."]
    assert d.refund_due_at == eod(2026, 2, 19, 23)   # UK CCR anchor does not apply to faults


def test_uk_change_of_mind_after_fourteen_days_is_denied() -> None:
    d = evaluate(load_preset("UK-CCR"), goods(utc(2026, 1, 10, 12)),
                 ask(utc(2026, 2, 5, 12), currency="GBP"), CustomerHistory(), ORDERED)
    assert d.outcome == "deny" and "cancellation period" in texts(d)["window"][0]


def test_eu_fault_within_two_years_needs_a_person() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2027, 1, 20, 9), reason="not_as_described"),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "needs_approval" and d.window_ends_at == eod(2028, 3, 3, 22)
    assert texts(d)["fault"] == [
        "Fault claim within the 24-month legal guarantee (until 3 March 2028 23:59 "
        "Europe/Berlin): a refund is due if repair or replacement is impossible or failed, or "
        "the defect is not minor; a person must confirm."]


def test_au_fault_has_no_fixed_limit_and_change_of_mind_has_no_right() -> None:
    au = load_preset("AU-ACL")
    fault = evaluate(au, goods(DELIVERED), ask(utc(2028, 6, 1, 1), currency="AUD",
                                               reason="product_defective"),
                     CustomerHistory(), ORDERED)
    assert fault.outcome == "allow" and fault.allowed_methods == ("original_payment",)
    mind = evaluate(au, goods(DELIVERED), ask(utc(2026, 3, 4, 1), currency="AUD"),
                    CustomerHistory(), ORDERED)
    assert mind.outcome == "deny"
    assert texts(mind)["change_of_mind"] == [
        "No change-of-mind refunds under Australia (Australian Consumer Law): the law gives no "
        "right to a refund for a change of mind, only for faults."]


def test_au_credit_note_cannot_replace_a_fault_refund_even_with_consent() -> None:
    d = evaluate(load_preset("AU-ACL"), goods(DELIVERED),
                 ask(utc(2026, 3, 20, 1), currency="AUD", reason="product_defective",
                     method="store_credit", consent=True), CustomerHistory(), ORDERED)
    assert d.outcome == "deny" and d.allowed_methods == ()
    assert texts(d)["method"] == ["A fault refund goes back in the same form as the payment; "
                                  "store credit or a credit note cannot replace it, even with "
                                  "the customer's agreement."]


def test_billing_correction_ignores_the_window() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 9, 1, 9), reason="duplicate"),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.claim == "billing_correction" and d.return_by is None
    assert texts(d)["billing_correction"] == [
        "A duplicate correction is not a return: the money is owed back whatever the return "
        "period, with no fee."]


# --- restocking fees ---------------------------------------------------------------------------------

def us(**extra):
    return load_policy({"extends": "US-FED", "id": "shop-us", "version": "2026-02-01", **extra})


def test_restocking_fee_percent_plus_fixed() -> None:
    policy = us(restocking_fee={"percent": 15, "fixed_minor": {"USD": 200}})
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 15), currency="USD",
                                               amount=10825, tax=825, total=10825),
                 CustomerHistory(), ORDERED)
    assert (d.restocking_fee_minor, d.refund_amount_minor) == (1824, 9001)  # 1623.75→1624 +200
    assert texts(d)["restocking_fee"] == ["Restocking fee 18.24 USD: 15 % of the 108.25 USD "
                                          "price = 16.24 USD plus a fixed 2.00 USD."]


def test_restocking_fee_rounds_half_up_on_item_lines_only() -> None:
    policy = us(restocking_fee={"percent": "12.5"})
    lines = (AskLine("shoes", "item", 999, 0), AskLine(None, "shipping", 500, 0))
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 15), currency="USD", amount=1499,
                                               tax=0, total=1499, lines=lines),
                 CustomerHistory(), ORDERED)
    assert (d.restocking_fee_minor, d.refund_amount_minor) == (125, 1374)   # 124.875 → 125


def test_no_restocking_fee_on_a_fault_claim() -> None:
    policy = us(restocking_fee={"percent": 15})
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 15), currency="USD",
                                               reason="product_defective", amount=10000, tax=0,
                                               total=10000), CustomerHistory(), ORDERED)
    assert (d.restocking_fee_minor, d.refund_amount_minor) == (0, 10000)
    assert texts(d)["restocking_fee"] == ["No restocking fee on a fault."]


def test_california_fee_leaves_the_tax_refunded_in_full() -> None:
    policy = load_policy({"extends": "US-CA", "id": "shop-ca", "version": "2026-02-01",
                          "restocking_fee": {"percent": 15}})
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 20), currency="USD",
                                               amount=10825, tax=825, total=10825),
                 CustomerHistory(), ORDERED)
    assert (d.restocking_fee_minor, d.refund_amount_minor) == (1500, 9325)
    assert texts(d)["restocking_fee"] == [
        "Restocking fee 15.00 USD: 15 % of the 100.00 USD price before tax = 15.00 USD. The full "
        "8.25 USD sales tax is still refunded; the fee does not reduce the tax refunded."]
    fee_note = next(e for e in d.explanations if e.rule == "restocking_fee")
    assert fee_note.values["tax_refunded_minor"] == 825 and fee_note.values["percent"] == "15"


# --- methods and store credit ---------------------------------------------------------------------

def test_store_credit_without_consent_is_refused_under_eu() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 10, 9), method="store_credit"),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "deny"
    assert texts(d)["method"] == ["The refund goes back to the original payment method; store "
                                  "credit needs the customer's express consent."]


def test_store_credit_bonus_110_percent_with_consent() -> None:
    policy = eu(store_credit={"bonus_percent": 10})
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 9), method="store_credit",
                                               consent=True), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.allowed_methods == ("original_payment", "store_credit")
    assert (d.refund_amount_minor, d.store_credit_bonus_minor) == (11900, 1190)
    assert texts(d)["store_credit_bonus"] == [
        "If the customer takes store credit instead, they receive 130.90 EUR: a 10 % bonus of "
        "11.90 EUR (this needs their express consent)."]
    assert texts(d)["method"] == ["Store credit instead of the original payment method, with "
                                  "the customer's express consent."]


def test_store_credit_only_after_the_merchant_period() -> None:
    policy = us(window={"days": 60}, store_credit={"only_after_days": 30, "bonus_percent": 5},
                method_rule="any")
    facts = goods(DELIVERED)
    late = evaluate(policy, facts, ask(utc(2026, 4, 10, 15), currency="USD", amount=3333, tax=0,
                                       total=3333), CustomerHistory(), ORDERED)
    assert late.outcome == "deny" and late.allowed_methods == ()
    assert "only store credit is offered" in texts(late)["store_credit_only"][0]
    ok = evaluate(policy, facts, ask(utc(2026, 4, 10, 15), currency="USD", amount=3333, tax=0,
                                     total=3333, method="store_credit"), CustomerHistory(), ORDERED)
    assert ok.outcome == "allow" and ok.allowed_methods == ("store_credit",)
    assert ok.store_credit_bonus_minor == 167   # 166.65 → 167


# --- approvals, four eyes, role limits -----------------------------------------------------------

APPROVALS = {"auto_approve_up_to_minor": {"EUR": 10000},
             "require_approval_above_minor": {"EUR": 50000},
             "require_approval_reasons": ["goodwill"],
             "four_eyes_above_minor": {"EUR": 100000}}


@pytest.mark.parametrize("amount, outcome, rule_text", [
    (10000, "allow", "Auto-approved: 100.00 EUR is within the limit of 100.00 EUR."),
    (10001, "needs_approval", "100.01 EUR is above the auto-approve limit of 100.00 EUR: needs "
                              "approval."),
    (50001, "needs_approval", "500.01 EUR is above the approval threshold of 500.00 EUR: needs "
                              "approval."),
])
def test_approval_thresholds(amount: int, outcome: str, rule_text: str) -> None:
    d = evaluate(eu(approvals=APPROVALS), goods(DELIVERED),
                 ask(utc(2026, 3, 10, 9), amount=amount, tax=0, total=amount),
                 CustomerHistory(), ORDERED)
    assert d.outcome == outcome and texts(d)["approval"] == [rule_text]
    assert d.four_eyes_required is False


def test_reason_requires_approval_and_four_eyes_above_threshold() -> None:
    d = evaluate(eu(approvals=APPROVALS), goods(DELIVERED),
                 ask(utc(2026, 3, 10, 9), reason="goodwill", amount=150000, tax=0, total=150000),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "needs_approval" and d.four_eyes_required
    assert texts(d)["approval"][0] == "Refunds for reason goodwill always need approval."
    assert texts(d)["four_eyes"] == ["1500.00 EUR is above 1000.00 EUR: the approver must be "
                                     "someone other than the requester."]


def test_role_limit() -> None:
    policy = eu(role_limits_minor={"agent": {"EUR": 20000}})
    under = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 9), role="agent"),
                     CustomerHistory(), ORDERED)
    assert under.outcome == "allow"
    over = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 9), role="agent",
                                                  amount=20001, tax=0, total=20001),
                    CustomerHistory(), ORDERED)
    assert over.outcome == "needs_approval"
    assert texts(over)["role_limit"] == ["200.01 EUR is above the agent limit of 200.00 EUR: "
                                         "needs approval."]
    other_currency = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 9), role="agent",
                                                            currency="USD"),
                              CustomerHistory(), ORDERED)
    assert other_currency.outcome == "needs_approval"


# --- per-customer limit and partial cap ----------------------------------------------------------

def test_per_customer_limit_denies_a_goodwill_return_in_the_us() -> None:
    policy = us(per_customer_limit={"max_refunds": 3, "period_days": 90, "on_exceed": "deny"})
    at = utc(2026, 3, 10, 15)
    d = evaluate(policy, goods(DELIVERED), ask(at, currency="USD"), CustomerHistory(3), ORDERED)
    assert d.outcome == "deny"
    assert texts(d)["per_customer_limit"] == ["The customer already had 3 refunds in the last "
                                              "90 days (limit 3): refused."]
    assert evaluate(policy, goods(DELIVERED), ask(at, currency="USD"), CustomerHistory(2),
                    ORDERED).outcome == "allow"


def test_per_customer_limit_never_denies_a_statutory_claim() -> None:
    policy = eu(per_customer_limit={"max_refunds": 3, "period_days": 90, "on_exceed": "deny"})
    d = evaluate(policy, goods(DELIVERED), ask(utc(2026, 3, 10, 9)), CustomerHistory(5), ORDERED)
    assert d.outcome == "needs_approval"
    assert texts(d)["per_customer_limit"] == [
        "The customer already had 5 refunds in the last 90 days (limit 3): needs approval; a "
        "statutory claim cannot be refused for this."]


def test_partial_refund_cap() -> None:
    policy = us(partial_refund_cap_percent=50)
    at = utc(2026, 3, 10, 15)
    d = evaluate(policy, goods(DELIVERED), ask(at, currency="USD", amount=3000, tax=0,
                                               total=10000, full=False,
                                               already_refunded_minor=2500),
                 CustomerHistory(), ORDERED)
    assert d.outcome == "needs_approval"
    assert texts(d)["partial_cap"] == ["Partial refunds would reach 55.00 USD, above the cap of "
                                       "50 % of the invoice (50.00 USD): needs approval."]
    ok = evaluate(policy, goods(DELIVERED), ask(at, currency="USD", amount=2500, tax=0,
                                                total=10000, full=False,
                                                already_refunded_minor=2500),
                  CustomerHistory(), ORDERED)
    assert ok.outcome == "allow"


# --- deadlines -------------------------------------------------------------------------------------

def test_withhold_gate_is_the_earlier_of_goods_back_and_dispatch_proof() -> None:
    d = evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 10, 9),
                                             goods_received_at=utc(2026, 3, 16, 9),
                                             dispatch_evidence_at=utc(2026, 3, 12, 9)),
                 CustomerHistory(), ORDERED)
    assert d.withhold_until == utc(2026, 3, 12, 9) and d.refund_due_at == eod(2026, 3, 24, 22)


def test_uk_refund_clock_starts_when_the_goods_come_back() -> None:
    policy = load_preset("UK-CCR")
    base = ask(utc(2026, 3, 10, 9), currency="GBP")
    pending = evaluate(policy, goods(DELIVERED), base, CustomerHistory(), ORDERED)
    assert pending.outcome == "allow" and pending.refund_due_at is None
    assert texts(pending)["deadline"] == [
        "Refund due within 14 days of the goods coming back or proof of their dispatch, "
        "whichever is earlier (not yet known)."]
    back = evaluate(policy, goods(DELIVERED), replace(base, dispatch_evidence_at=utc(2026, 3, 13,
                                                                                    9)),
                    CustomerHistory(), ORDERED)
    assert back.refund_due_at == eod(2026, 3, 27, 23)


def test_mitor_refund_due_in_seven_working_days() -> None:
    d = evaluate(us(), goods(DELIVERED), ask(utc(2026, 3, 6, 19), currency="USD"),
                 CustomerHistory(), ORDERED)
    assert d.refund_due_at == eod(2026, 3, 18, 3)
    assert texts(d)["deadline"] == ["Refund due by 17 March 2026 23:59 America/New_York "
                                    "(7 working days from 6 March 2026)."]


def test_cra_refund_due_from_agreement() -> None:
    d = evaluate(load_preset("UK-CRA"), goods(utc(2026, 1, 10, 12)),
                 ask(utc(2026, 1, 20, 12), currency="GBP", reason="product_defective",
                     agreed_at=utc(2026, 1, 22, 12)), CustomerHistory(), ORDERED)
    assert d.outcome == "allow" and d.refund_due_at == eod(2026, 2, 5, 23)


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="tax_minor cannot exceed"):
        evaluate(eu(), goods(DELIVERED), ask(utc(2026, 3, 10, 9), amount=100, tax=200),
                 CustomerHistory(), ORDERED)
