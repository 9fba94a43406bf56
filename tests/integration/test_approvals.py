"""Refund lifecycle and approvals through the service layer, on SQLite and PostgreSQL.

A refund the policy sends to approval waits in ``pending_approval`` with its amount reserved;
four eyes and role limits are enforced in the service layer; rejecting or cancelling gives the
reserved amount back; every status change leaves a refund event; terminal states never move.
The policy's decision is replaced by a fixed one here so that these tests are about the
lifecycle, not about policy rules (those have their own tests).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from payback import db
from payback.actor import Actor
from payback.approvals import service as approvals
from payback.customers.service import create_customer
from payback.errors import AmountExceedsRefundable, InvalidTransition
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.payments.service import record_payment
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.policy import Decision, RoleLimitExceeded

AGENT = Actor(id="usr_agent", kind="staff", role="agent")
APPROVER = Actor(id="usr_approver", kind="staff", role="approver")


@pytest.fixture
def needs_approval(monkeypatch, clock):
    """Every refund needs approval with four eyes; approvers may approve up to 500.00 EUR."""
    def decide(conn, *, inv, calc, req, actor, now):
        return Decision(outcome="needs_approval", due_at=now + timedelta(days=14),
                        four_eyes=True, explanations=({"rule": "test", "text": "needs approval",
                                                       "values": {}},))
    monkeypatch.setattr(refunds, "decide", decide)
    # role limits travel in the stored decision
    original = Decision.to_json

    def to_json(self):
        data = original(self)
        data["role_limits_minor"] = {"approver": {"EUR": 50000}, "agent": {"EUR": 10000}}
        return data
    monkeypatch.setattr(Decision, "to_json", to_json)


@pytest.fixture
def paid_invoice(engine, clock):
    """An EUR invoice of 1,000.00 (tax-exclusive: net 800.00 + 25 % tax 200.00), paid in full
    by card."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Desk", 1, 80000, Decimal("0.25"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=100000,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    return inv


def _refund(engine, clock, inv, amount, actor=AGENT):
    with db.write(engine) as conn:
        return refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=amount), actor=actor)


def _statuses(refund):
    return [(e["from_status"], e["to_status"], e["actor_id"]) for e in refund["events"]]


def test_refund_waits_for_approval_with_its_amount_reserved(engine, clock, paid_invoice,
                                                            needs_approval):
    r = _refund(engine, clock, paid_invoice, 30000)
    assert r["status"] == "pending_approval"
    with db.read(engine) as conn:
        inv = get_invoice(conn, paid_invoice["id"])
        got = refunds.get_refund(conn, r["id"])
        # nothing booked yet: the refund is not owed until approved
        assert account_balance(conn, ledger.SALES_RETURNS, "EUR") == 0
    assert inv["amount_refundable_minor"] == 70000          # 1000.00 − 300.00 reserved
    assert inv["amount_pending_refund_minor"] == 30000
    assert _statuses(got) == [(None, "requested", "usr_agent"),
                              ("requested", "pending_approval", "usr_agent")]
    # the reservation holds: another 800.00 would exceed what remains
    with pytest.raises(AmountExceedsRefundable):
        _refund(engine, clock, paid_invoice, 80000)


def test_requester_cannot_approve_own_refund_above_four_eyes(engine, clock, paid_invoice,
                                                             needs_approval):
    r = _refund(engine, clock, paid_invoice, 30000, actor=APPROVER)
    with db.write(engine) as conn, pytest.raises(approvals.FourEyesRequired):
        approvals.approve_refund(conn, clock, r["id"], actor=APPROVER)
    with db.read(engine) as conn:
        assert refunds.get_refund(conn, r["id"])["status"] == "pending_approval"


def test_a_different_approver_approves_and_the_money_moves(engine, clock, paid_invoice,
                                                           needs_approval):
    r = _refund(engine, clock, paid_invoice, 30000)
    clock.advance(hours=2)
    with db.write(engine) as conn:
        done = approvals.approve_refund(conn, clock, r["id"], actor=APPROVER, comment="ok")
    assert done["status"] == "succeeded"
    assert done["approved_by"] == "usr_approver"
    assert _statuses(done) == [
        (None, "requested", "usr_agent"), ("requested", "pending_approval", "usr_agent"),
        ("pending_approval", "approved", "usr_approver"), ("approved", "processing", "system"),
        ("processing", "succeeded", "system")]
    assert done["events"][2]["comment"] == "ok"
    with db.read(engine) as conn:
        # 300.00 back: net 240.00 and tax 60.00 reversed; card clearing 1000.00 − 300.00
        assert account_balance(conn, ledger.SALES_RETURNS, "EUR") == -24000
        assert account_balance(conn, ledger.TAX_PAYABLE, "EUR") == 20000 - 6000
        assert account_balance(conn, ledger.GATEWAY_CLEARING, "EUR") == 70000
        assert account_balance(conn, ledger.REFUNDS_PAYABLE, "EUR") == 0
        assert all(t["balanced"] for t in trial_balance(conn)["totals"])


def test_role_limit_caps_what_an_approver_may_approve(engine, clock, paid_invoice,
                                                      needs_approval):
    r = _refund(engine, clock, paid_invoice, 60000)  # 600.00 > approver limit 500.00
    with db.write(engine) as conn, pytest.raises(RoleLimitExceeded):
        approvals.approve_refund(conn, clock, r["id"], actor=APPROVER)
    admin = Actor(id="usr_admin", kind="staff", role="admin")
    with db.write(engine) as conn:
        assert approvals.approve_refund(conn, clock, r["id"], actor=admin)["status"] == \
            "succeeded"


def test_reject_gives_the_reservation_back(engine, clock, paid_invoice, needs_approval):
    r = _refund(engine, clock, paid_invoice, 30000)
    with db.write(engine) as conn:
        rejected = approvals.reject_refund(conn, clock, r["id"], actor=APPROVER,
                                           comment="item not returned")
    assert rejected["status"] == "rejected"
    assert rejected["events"][-1]["comment"] == "item not returned"
    with db.read(engine) as conn:
        inv = get_invoice(conn, paid_invoice["id"])
    assert inv["amount_refundable_minor"] == 100000
    assert inv["lines"][0]["refunded_gross_minor"] == 0
    # the whole amount can now be refunded (and approved)
    full = _refund(engine, clock, paid_invoice, 100000)
    with db.write(engine) as conn:
        assert approvals.approve_refund(
            conn, clock, full["id"], actor=Actor("usr_admin", "staff", "admin"))["status"] \
            == "succeeded"
        assert get_invoice(conn, paid_invoice["id"])["status"] == "refunded"


def test_terminal_states_never_move(engine, clock, paid_invoice, needs_approval):
    r = _refund(engine, clock, paid_invoice, 30000)
    with db.write(engine) as conn:
        approvals.reject_refund(conn, clock, r["id"], actor=APPROVER, comment="no")
    for action in (lambda c: approvals.approve_refund(c, clock, r["id"], actor=APPROVER),
                   lambda c: approvals.reject_refund(c, clock, r["id"], actor=APPROVER,
                                                     comment="again"),
                   lambda c: approvals.cancel_refund(c, clock, r["id"], actor=AGENT)):
        with db.write(engine) as conn, pytest.raises(InvalidTransition):
            action(conn)
    with db.read(engine) as conn:
        got = refunds.get_refund(conn, r["id"])
    assert got["status"] == "rejected" and len(got["events"]) == 3


def test_cancel_before_approval_and_not_after_success(engine, clock, paid_invoice,
                                                      needs_approval):
    r = _refund(engine, clock, paid_invoice, 10000)
    with db.write(engine) as conn:
        assert approvals.cancel_refund(conn, clock, r["id"], actor=AGENT)["status"] == "canceled"
        assert get_invoice(conn, paid_invoice["id"])["amount_refundable_minor"] == 100000
    r2 = _refund(engine, clock, paid_invoice, 10000)
    with db.write(engine) as conn:
        approvals.approve_refund(conn, clock, r2["id"], actor=APPROVER)
    with db.write(engine) as conn, pytest.raises(InvalidTransition):
        approvals.cancel_refund(conn, clock, r2["id"], actor=AGENT)


def test_other_sellers_refund_looks_missing(engine, clock, paid_invoice, needs_approval):
    from sqlalchemy import insert

    from payback.access.tables import sellers
    from payback.errors import NotFound
    r = _refund(engine, clock, paid_invoice, 10000)
    with db.write(engine) as conn:
        conn.execute(insert(sellers), {"id": "sel_other", "name": "Other",
                                       "created_at": clock.now()})
    with db.write(engine) as conn, pytest.raises(NotFound) as missing:
        approvals.approve_refund(conn, clock, "re_doesnotexist", actor=APPROVER,
                                 seller_id="sel_other")
    with db.write(engine) as conn, pytest.raises(NotFound) as not_yours:
        approvals.approve_refund(conn, clock, r["id"], actor=APPROVER, seller_id="sel_other")
    assert type(missing.value) is type(not_yours.value)
    assert missing.value.code == not_yours.value.code == "not_found"


def test_overdue_lists_unfinished_refunds_past_due(engine, clock, paid_invoice, needs_approval):
    r = _refund(engine, clock, paid_invoice, 10000)
    with db.read(engine) as conn:
        assert refunds.list_overdue(conn, clock.now()) == []
        soon = refunds.list_overdue(conn, clock.now(), due_within_days=14)
    assert [x["id"] for x in soon] == [r["id"]] and soon[0]["overdue"] is False
    clock.advance(days=15)
    with db.read(engine) as conn:
        late = refunds.list_overdue(conn, clock.now())
    assert [x["id"] for x in late] == [r["id"]] and late[0]["overdue"] is True
