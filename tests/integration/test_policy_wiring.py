"""The seller's policy drives real refunds, on SQLite and PostgreSQL.

A merchant policy (EU preset, more generous) is stored through the policies service; the preview
then shows its decision with explanations and deadlines; a refund above the approval threshold
waits for a different approver; an agent above their role limit is refused; store credit with
consent earns the bonus, booked to its own expense account; an excluded category is denied and
nothing is written; a policy that undercuts the statutory floor is refused and nothing stored.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from payback import db
from payback.actor import Actor
from payback.approvals import service as approvals
from payback.customers.service import create_customer
from payback.errors import DomainError
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance
from payback.payments.service import record_payment
from payback.policies import FloorUndercut
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.policy import RoleLimitExceeded
from payback.refunds.tables import refunds as refunds_table
from payback.store_credit.service import get_wallet

AGENT = Actor("usr_agent", "staff", "agent")
APPROVER = Actor("usr_approver", "staff", "approver")
POLICY = {
    "extends": "EU-CRD", "id": "acme-eu", "version": "2026-01-01", "timezone": "Europe/Berlin",
    "window": {"days": 30}, "return_shipping_payer": "merchant",
    "store_credit": {"bonus_percent": 10},
    "categories": {"custom_prints": {"excluded": True, "exclusion": "personalised"}},
    "approvals": {"auto_approve_up_to_minor": {"EUR": 20000},
                  "require_approval_above_minor": {"EUR": 50000},
                  "four_eyes_above_minor": {"EUR": 50000}},
    "role_limits_minor": {"agent": {"EUR": 120000}},
}


@pytest.fixture
def shop(engine, clock):
    """A paid EUR invoice (tax-inclusive 19 %): a jacket 1,190.00 and a custom print 119.00."""
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", data=POLICY,
                            actor=Actor("usr_admin", "staff", "admin"))
        cus = create_customer(conn, clock, name="Jonas", country="DE", locale="de_DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="inclusive", lines=[
                                 LineInput("Jacket", 1, 119000, Decimal("0.19"),
                                           category="apparel"),
                                 LineInput("Custom print", 1, 11900, Decimal("0.19"),
                                           category="custom_prints")])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=130900,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    return inv


def _line(inv, description):
    return next(ln["id"] for ln in inv["lines"] if ln["description"] == description)


def test_preview_shows_the_policy_decision_with_explanations_and_deadlines(engine, clock, shop):
    req = RefundRequest(kind="lines", method="original_payment", reason="requested_by_customer",
                        lines=(LineRequest(_line(shop, "Jacket"), 1),))
    with db.read(engine) as conn:
        preview = refunds.preview_refund(conn, shop["id"], req, actor=AGENT, now=clock.now())
    decision = preview["decision"]
    assert preview["amount_minor"] == 119000 and preview["tax_minor"] == 19000
    assert decision["outcome"] == "needs_approval"          # 1,190.00 > 500.00 threshold
    assert decision["four_eyes"] is True
    assert decision["policy_id"] == "acme-eu" and decision["policy_version"] == "2026-01-01"
    assert decision["due_at"] is not None and decision["deadlines"]["refund_due_at"]
    assert decision["explanations"] and all(e["rule"] and e["text"]
                                            for e in decision["explanations"])


def test_large_refund_waits_for_a_different_approver(engine, clock, shop):
    req = RefundRequest(kind="lines", method="original_payment", reason="requested_by_customer",
                        lines=(LineRequest(_line(shop, "Jacket"), 1),))
    with db.write(engine) as conn:
        r = refunds.create_refund(conn, clock, shop["id"], req, actor=AGENT)
    assert r["status"] == "pending_approval" and r["policy_id"] == "acme-eu"
    with db.write(engine) as conn, pytest.raises(DomainError) as own:
        approvals.approve_refund(conn, clock, r["id"], actor=AGENT)
    assert own.value.code == "four_eyes_required"
    with db.write(engine) as conn:
        done = approvals.approve_refund(conn, clock, r["id"], actor=APPROVER)
    assert done["status"] == "succeeded" and done["approved_by"] == "usr_approver"


def test_agent_above_role_limit_is_refused_and_nothing_written(engine, clock, shop):
    req = RefundRequest(kind="full", method="original_payment", reason="product_defective")
    with db.write(engine) as conn, pytest.raises(RoleLimitExceeded) as err:
        refunds.create_refund(conn, clock, shop["id"], req, actor=AGENT)  # 1,309.00 > 1,200.00
    assert err.value.code == "role_limit_exceeded" and err.value.status == 403
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(refunds_table)).scalar_one() == 0
    # an approver has no limit in this policy: the same refund goes through (to approval)
    with db.write(engine) as conn:
        assert refunds.create_refund(conn, clock, shop["id"], req,
                                     actor=APPROVER)["status"] == "pending_approval"


def test_excluded_category_is_denied_and_nothing_written(engine, clock, shop):
    req = RefundRequest(kind="lines", method="original_payment", reason="requested_by_customer",
                        lines=(LineRequest(_line(shop, "Custom print"), 1),))
    with db.write(engine) as conn, pytest.raises(DomainError) as denied:
        refunds.create_refund(conn, clock, shop["id"], req, actor=AGENT)
    assert denied.value.code == "refund_denied_by_policy"
    assert "personalised" in denied.value.detail.lower() or \
        "personalized" in denied.value.detail.lower()
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(refunds_table)).scalar_one() == 0


def test_store_credit_with_consent_earns_the_bonus(engine, clock, shop):
    with db.write(engine) as conn:   # a second purchase with no excluded lines
        inv = create_invoice(conn, clock, customer_id=shop["customer_id"], currency="EUR",
                             tax_mode="inclusive",
                             lines=[LineInput("Scarf", 1, 11900, Decimal("0.19"),
                                              category="apparel")])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=11900,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    req = RefundRequest(kind="amount", method="store_credit", reason="requested_by_customer",
                        amount_minor=10000, consent_to_other_method=True)
    with db.write(engine) as conn:
        r = refunds.create_refund(conn, clock, inv["id"], req, actor=AGENT)
    assert r["status"] == "succeeded"
    assert r["amount_minor"] == 10000 and r["bonus_minor"] == 1000   # 10 % of 100.00
    with db.read(engine) as conn:
        assert get_wallet(conn, shop["customer_id"], "EUR")["balance_minor"] == 11000
        assert account_balance(conn, ledger.STORE_CREDIT_INCENTIVES, "EUR") == 1000
        assert account_balance(conn, ledger.STORE_CREDIT, "EUR") == 11000


def test_policy_below_the_statutory_floor_is_refused(engine, clock):
    bad = {**POLICY, "version": "2026-02-01", "window": {"days": 10}}
    with db.write(engine) as conn, pytest.raises(FloorUndercut) as err:
        policies.set_policy(conn, clock, seller_id="sel_default", data=bad,
                            actor=Actor("usr_admin", "staff", "admin"))
    assert "window.days" in err.value.detail and "14" in err.value.detail
    with db.read(engine) as conn:
        assert policies.list_versions(conn, "sel_default") == []


def test_delivery_date_starts_the_statutory_window(engine, clock):
    """With the delivery recorded, the EU-based policy's 30-day window runs from delivery and
    the preview names its end; a change-of-mind request after it is denied."""
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", data=POLICY,
                            actor=Actor("usr_admin", "staff", "admin"))
        cus = create_customer(conn, clock, name="Lea", country="DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="inclusive", delivered_at=clock.now(),
                             lines=[LineInput("Lamp", 1, 11900, Decimal("0.19"),
                                              category="home")])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=11900,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    req = RefundRequest(kind="full", method="original_payment", reason="requested_by_customer")
    with db.read(engine) as conn:
        inside = refunds.preview_refund(conn, inv["id"], req, actor=AGENT, now=clock.now())
    ends = inside["decision"]["deadlines"]["window_ends_at"]
    # delivered 15 January 2026 (Berlin): day 30 is Saturday 14 February, so the period ends on
    # Monday 16 February (Regulation 1182/71 Art 3(4)), end of day Berlin = 22:59:59 UTC
    assert ends.startswith("2026-02-16T22:59:59") and inside["decision"]["outcome"] == "allow"
    clock.advance(days=33)
    with db.read(engine) as conn:
        late = refunds.preview_refund(conn, inv["id"], req, actor=AGENT, now=clock.now())
    assert late["decision"]["outcome"] == "deny"
    assert any(e["rule"].startswith("window") for e in late["decision"]["explanations"])
