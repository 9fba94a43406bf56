"""The exactly-once path through the worker and the sandbox gateway, on both databases."""

from __future__ import annotations


import pytest

from payback import db
from payback.gateways import registry
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance
from tests.gateway import helpers as h


@pytest.fixture
def sandbox(tmp_path, clock):
    gw = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", clock)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()


def _balance(engine, account):
    with db.read(engine) as conn:
        return account_balance(conn, account, "EUR")


def test_card_refund_waits_for_the_gateway_then_succeeds(engine, clock, sandbox):
    inv, _pay = h.paid_invoice(engine, clock, sandbox)
    refund = h.refund(engine, clock, inv, 25000)
    assert refund["status"] == "processing"
    [intent] = h.intents(engine, refund["id"])
    assert (intent["status"], intent["idempotency_key"]) == ("requested", refund["id"])
    assert sandbox.count_refunds() == 0  # nothing is sent inside the creating transaction
    assert _balance(engine, ledger.REFUNDS_PAYABLE) == 25000  # owed, not paid

    reg = h.worker_registry()
    h.run_worker(engine, clock, reg)
    assert sandbox.count_refunds(idempotency_key=refund["id"]) == 1
    assert h.status(engine, refund["id"]) == "processing"  # pending at the gateway
    assert h.intents(engine, refund["id"])[0]["status"] == "pending"

    clock.advance(seconds=5)
    sandbox.advance()
    outcomes = h.deliver_webhooks(engine, clock, sandbox)
    assert [o["outcome"] for o in outcomes].count("applied") >= 1
    assert h.status(engine, refund["id"]) == "succeeded"
    assert _balance(engine, ledger.REFUNDS_PAYABLE) == 0
    h.run_worker(engine, clock, reg)
    assert sandbox.count_refunds() == 1


def test_expired_card_fails_and_reverses_the_provisional_entry(engine, clock, sandbox):
    inv, pay = h.paid_invoice(engine, clock, sandbox, card="tok_expired")
    refund = h.refund(engine, clock, inv, 30000)
    reg = h.worker_registry()
    h.run_worker(engine, clock, reg)
    clock.advance(seconds=5)
    sandbox.advance()
    h.deliver_webhooks(engine, clock, sandbox)
    with db.read(engine) as conn:
        from payback.refunds.service import get_refund
        got = get_refund(conn, refund["id"])
        from payback.payments.service import get_payment
        assert get_payment(conn, pay["id"])["refunded_minor"] == 0  # reservation released
    assert got["status"] == "failed"
    assert _balance(engine, ledger.REFUNDS_PAYABLE) == 0
    assert _balance(engine, ledger.SALES_RETURNS) == 0
    # the fallback: store credit for the same amount
    from payback.actor import SYSTEM
    from payback.gateways import flow
    with db.write(engine) as conn:
        fb = flow.fallback_refund(conn, clock, refund["id"], method="store_credit", actor=SYSTEM)
    assert (fb["status"], fb["method"], fb["amount_minor"], fb["fallback_of"]) == (
        "succeeded", "store_credit", 30000, refund["id"])
