"""After a gateway failure: the fallback is offered as the policy allows, made at most once
(also when two requests race), never offered for a refund attempted in the gateway's
dashboard; and reconciliation never forgets an intent that is not final, whatever its age."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from payback import db
from payback.actor import Actor
from payback.errors import Conflict
from payback.gateways import flow, reconcile, registry
from payback.gateways.tables import gateway_intents
from payback.policies import service as policies
from payback.refunds.service import get_refund
from payback.refunds.tables import refunds
from tests.gateway import helpers as h

APPROVER = Actor("usr_approver", "staff", "approver")


@pytest.fixture
def sandbox(tmp_path, clock):
    gw = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", clock)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()


def _failed_refund(engine, clock, sandbox) -> dict:
    inv, _pay = h.paid_invoice(engine, clock, sandbox, card="tok_expired", email=None)
    refund = h.refund(engine, clock, inv, 30000)
    h.run_worker(engine, clock, h.worker_registry())
    clock.advance(seconds=5)
    sandbox.advance()
    h.deliver_webhooks(engine, clock, sandbox)
    assert h.status(engine, refund["id"]) == "failed"
    return refund


def _fallback(engine, clock, refund_id: str, method: str) -> dict:
    with db.write(engine) as conn:
        return flow.fallback_refund(conn, clock, refund_id, method=method, actor=APPROVER)


def test_a_failed_refund_has_one_fallback_even_when_two_requests_race(engine, clock, sandbox):
    failed = _failed_refund(engine, clock, sandbox)
    results, barrier = [], threading.Barrier(2)

    def attempt(method):
        barrier.wait()
        try:
            results.append(_fallback(engine, clock, failed["id"], method)["status"])
        except Conflict as exc:
            results.append(exc.code)
    threads = [threading.Thread(target=attempt, args=(m,))
               for m in ("manual_payout", "store_credit")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["conflict", "succeeded"]
    with db.read(engine) as conn:
        made = conn.execute(select(refunds.c.id).where(refunds.c.fallback_of == failed["id"])
                            ).scalars().all()
    assert len(made) == 1


def test_only_the_fallbacks_the_policy_offers_are_accepted(engine, clock, sandbox):
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", actor=APPROVER, data={
            "extends": "EU-CRD", "id": "cash-only", "version": "2026-01-01",
            "method_rule": "original_only"})
    failed = _failed_refund(engine, clock, sandbox)
    with db.read(engine) as conn:
        refund = get_refund(conn, failed["id"])
        [event] = [e for e in refund["events"] if e["to_status"] == "failed"]
    with pytest.raises(flow.FallbackNotOffered):
        _fallback(engine, clock, failed["id"], "store_credit")
    assert _fallback(engine, clock, failed["id"], "manual_payout")["status"] == "succeeded"


def test_a_refund_attempted_in_the_dashboard_that_fails_offers_no_fallback(engine, clock,
                                                                           sandbox):
    inv, pay = h.paid_invoice(engine, clock, sandbox, card="tok_expired", email=None)
    sandbox.dashboard_refund(pay["reference"], 20000)
    clock.advance(seconds=5)
    sandbox.advance()
    outcomes = h.deliver_webhooks(engine, clock, sandbox)
    refund_id = next(o["refund_id"] for o in outcomes if o.get("refund_id"))
    assert h.status(engine, refund_id) == "failed"
    with db.read(engine) as conn:
        refund = get_refund(conn, refund_id)
        assert flow.fallback_state(conn, refund, {"seller_id": "sel_default"}) == {
            "fallback_refund_id": None, "fallback_options": []}
    with pytest.raises(flow.FallbackNotOffered):
        _fallback(engine, clock, refund_id, "manual_payout")


def test_reconciliation_sends_again_an_old_intent_that_never_got_an_answer(engine, clock,
                                                                          sandbox):
    inv, _pay = h.paid_invoice(engine, clock, sandbox, email=None)
    refund = h.refund(engine, clock, inv, 10000)  # its submit job is never run (lost outbox)
    clock.advance(days=10)
    report = reconcile.reconcile(engine, clock, "sandbox", clock.now() - timedelta(days=2),
                                 clock.now())
    [diff] = report.differences
    assert (diff.kind, diff.intent_id is not None, diff.repaired) == (
        "missing_at_gateway", True, True)
    with db.write(engine) as conn:  # the original job is gone: only the repair's job remains
        from payback.outbox.tables import outbox_events
        conn.execute(update(outbox_events).where(
            outbox_events.c.object_id == diff.intent_id,
            outbox_events.c.created_at < clock.now()).values(status="done"))
    h.run_worker(engine, clock, h.worker_registry())
    assert sandbox.count_refunds(idempotency_key=refund["id"]) == 1
    with db.read(engine) as conn:
        status = conn.execute(select(gateway_intents.c.status).where(
            gateway_intents.c.refund_id == refund["id"])).scalar()
    assert status in ("pending", "succeeded")
