"""A Hypothesis state machine over the refund lifecycle, through the real service layer.

Random interleavings of create (auto-approved or sent to approval), approve (by the requester or
by someone else), reject and cancel, on one paid invoice. After every step: terminal refunds never
changed, every stored status sequence follows the transition table, the refundable amount equals
captured minus the active refunds, the guard counters equal the sums of active refund lines, and
the books balance. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from payback import db
from payback.actor import Actor
from payback.approvals import service as approvals
from payback.customers.service import create_customer
from payback.errors import DomainError
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger.service import trial_balance
from payback.payments.service import record_payment
from payback.refunds import lifecycle
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.policy import Decision
from payback.refunds.tables import refund_lines

PEOPLE = [Actor("usr_a", "staff", "admin"), Actor("usr_b", "staff", "admin"),
          Actor("usr_c", "staff", "agent")]
CAPTURED = 100000


def make_machine(engine, clock):
    class RefundLifecycle(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.approval = False
            with db.write(engine) as conn:
                cus = create_customer(conn, clock, name="Machine")
                self.inv = create_invoice(
                    conn, clock, customer_id=cus["id"], currency="EUR", tax_mode="inclusive",
                    lines=[LineInput("A", 3, 20000, Decimal("0.2")),
                           LineInput("B", 1, 40000, Decimal("0.07"))])
                record_payment(conn, clock, self.inv["id"], method="card",
                               amount_minor=CAPTURED, currency="EUR",
                               card={"token": "t", "brand": "visa", "last4": "1111"})
            self.known: dict[str, str] = {}

        def decide(self, conn, *, inv, calc, req, actor, now):
            outcome = "needs_approval" if self.approval else "allow"
            return Decision(outcome=outcome, due_at=now + timedelta(days=14), four_eyes=True)

        @rule(amount=st.integers(1, 60000), person=st.sampled_from(PEOPLE),
              approval=st.booleans())
        def create(self, amount, person, approval):
            self.approval = approval
            try:
                with db.write(engine) as conn:
                    r = refunds.create_refund(conn, clock, self.inv["id"], RefundRequest(
                        kind="amount", method="original_payment", reason="other",
                        amount_minor=amount), actor=person)
                self.known[r["id"]] = r["status"]
            except DomainError as err:
                assert err.code == "amount_exceeds_refundable"

        @precondition(lambda self: self.known)
        @rule(data=st.data(), person=st.sampled_from(PEOPLE),
              action=st.sampled_from(["approve", "reject", "cancel"]))
        def act(self, data, person, action):
            refund_id = data.draw(st.sampled_from(sorted(self.known)))
            before = self.known[refund_id]
            call = {"approve": lambda c: approvals.approve_refund(c, clock, refund_id,
                                                                  actor=person),
                    "reject": lambda c: approvals.reject_refund(c, clock, refund_id,
                                                                actor=person, comment="no"),
                    "cancel": lambda c: approvals.cancel_refund(c, clock, refund_id,
                                                                actor=person)}[action]
            try:
                with db.write(engine) as conn:
                    self.known[refund_id] = call(conn)["status"]
            except DomainError as err:
                assert err.code in ("invalid_transition", "four_eyes_required")
                if before in lifecycle.TERMINAL:
                    assert err.code == "invalid_transition"

        @invariant()
        def consistent(self):
            with db.read(engine) as conn:
                stored = {r["id"]: r for r in refunds.list_refunds(
                    conn, after=None, limit=1000, invoice_id=self.inv["id"])}
                inv = get_invoice(conn, self.inv["id"])
                reserved = conn.execute(select(func.coalesce(func.sum(
                    refund_lines.c.gross_minor), 0)).where(refund_lines.c.refund_id.in_(
                        [i for i, r in stored.items() if r["status"] in lifecycle.ACTIVE])
                )).scalar_one()
                for refund_id in stored:
                    events = refunds.get_refund(conn, refund_id)["events"]
                    for e in events[1:]:
                        assert e["to_status"] in lifecycle.TRANSITIONS[e["from_status"]]
                assert all(t["balanced"] for t in trial_balance(conn)["totals"])
            for refund_id, status in self.known.items():
                assert stored[refund_id]["status"] == status
            active = sum(r["amount_minor"] for r in stored.values()
                         if r["status"] in lifecycle.ACTIVE)
            assert inv["amount_refundable_minor"] == CAPTURED - active
            assert sum(ln["refunded_gross_minor"] for ln in inv["lines"]) == int(reserved)

    return RefundLifecycle


def test_refund_lifecycle_state_machine(engine, clock, monkeypatch):
    machine = make_machine(engine, clock)
    holder = {}
    monkeypatch.setattr(refunds, "decide",
                        lambda conn, **kw: holder["m"].decide(conn, **kw))
    original_init = machine.__init__

    def init(self):
        original_init(self)
        holder["m"] = self
    machine.__init__ = init
    machine.TestCase.settings = settings(
        max_examples=15, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    machine.TestCase().runTest()


def test_transition_table_never_leaves_a_terminal_state():
    for state in lifecycle.TERMINAL:
        for target in lifecycle.STATES:
            with pytest.raises(DomainError):
                lifecycle.check(state, target)
    assert lifecycle.path("requested", "succeeded") == ["approved", "processing", "succeeded"]
