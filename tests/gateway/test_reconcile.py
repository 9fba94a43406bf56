"""Reconciliation (payback.gateways.reconcile) against the sandbox, on SQLite and PostgreSQL.

Drift is injected at the gateway's side: a lost webhook (the gateway completed a refund and the
news never reached Payback), a refund made in the gateway's dashboard that Payback never heard
of, an intent Payback never managed to send, and an amount changed at the gateway. The safe ones
are repaired (the gateway's status applied; the dashboard refund recorded, attributed to
``gateway:sandbox`` with its journal entries; the intent sent again with the same key, making
one gateway refund), the amount mismatch is listed and never repaired, and a run with nothing
to find reports zero differences — also through ``payback reconcile``.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from payback import db
from payback.gateways import registry
from payback.gateways.reconcile import GRACE, last_runs, reconcile
from payback.ledger import domain as ledger
from payback.ledger.tables import journal_entries
from payback.refunds.tables import refunds as refunds_t
from tests.gateway import helpers as h

AMOUNT = 25000


@pytest.fixture
def sandbox(tmp_path, clock):
    gw = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", clock)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()


def _period(clock):
    return clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1)


def _deliver_except(engine, clock, sandbox, lost: set[str]) -> list[dict]:
    """Deliver the sandbox's due webhooks, except those about a refund of a payment in
    ``lost``: the gateway thinks they were delivered (2xx), Payback never saw them."""
    from payback.gateways.flow import receive_webhook

    outcomes = []

    def send(headers, body):
        if json.loads(body)["data"]["object"]["payment_intent"] not in lost:
            outcomes.append(receive_webhook(engine, clock, "sandbox", headers, body))
        return 200
    sandbox.deliver_webhooks(send)
    return outcomes


def _complete(engine, clock, sandbox) -> None:
    """Run the worker, let the gateway finish every refund and deliver all its news."""
    h.run_worker(engine, clock, h.worker_registry())
    clock.advance(seconds=5)
    sandbox.advance()
    h.deliver_webhooks(engine, clock, sandbox)


def _refund_rows(engine, invoice_id: str) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(refunds_t).where(refunds_t.c.invoice_id == invoice_id)
            .order_by(refunds_t.c.created_at, refunds_t.c.id))]


def _entry_types(engine, refund_id: str) -> list[str]:
    with db.read(engine) as conn:
        return sorted(conn.execute(select(journal_entries.c.event_type)
                                   .where(journal_entries.c.object_id == refund_id)).scalars())


def test_a_run_with_nothing_to_find_reports_zero_differences(engine, clock, sandbox):
    good, _ = h.paid_invoice(engine, clock, sandbox)
    expired, _ = h.paid_invoice(engine, clock, sandbox, card="tok_expired")
    dashboard, dash_pay = h.paid_invoice(engine, clock, sandbox)
    # A payment the gateway does not know: the refund is declined at once (no gateway refund).
    unknown, _ = h.invoice_paid_through(engine, clock, "sandbox", "pi_sbx_unknown")
    refunds = [h.refund(engine, clock, inv, AMOUNT) for inv in (good, expired, unknown)]
    sandbox.dashboard_refund(dash_pay["reference"], 5000)
    _complete(engine, clock, sandbox)
    assert [h.status(engine, r["id"]) for r in refunds] == ["succeeded", "failed", "failed"]
    assert [r["status"] for r in _refund_rows(engine, dashboard["id"])] == ["succeeded"]
    clock.advance(minutes=20)  # past the grace period: every intent is fair game

    before = h.snapshot(engine, exclude=("reconciliation_runs",))
    report = reconcile(engine, clock, "sandbox", *_period(clock))
    assert (report.compared, report.differences) == (4, [])
    assert h.snapshot(engine, exclude=("reconciliation_runs",)) == before
    [run] = last_runs(engine)
    assert (run["id"], run["compared"], run["repaired"], run["differences"]) == \
        (report.id, 4, 0, [])


def test_lost_webhook_dashboard_refund_and_unsent_intent_are_repaired_then_none_left(
        engine, clock, sandbox):
    matched, _ = h.paid_invoice(engine, clock, sandbox)
    lost_inv, lost_pay = h.paid_invoice(engine, clock, sandbox)
    dash_inv, dash_pay = h.paid_invoice(engine, clock, sandbox)
    unsent_inv, _ = h.paid_invoice(engine, clock, sandbox)
    ok = h.refund(engine, clock, matched, AMOUNT)
    lost = h.refund(engine, clock, lost_inv, AMOUNT)
    h.run_worker(engine, clock, h.worker_registry())
    h.deliver_webhooks(engine, clock, sandbox)  # the "created" news (pending) of both
    clock.advance(seconds=5)
    sandbox.advance()
    dashboard = sandbox.dashboard_refund(dash_pay["reference"], 30000)
    clock.advance(seconds=5)
    sandbox.advance()
    _deliver_except(engine, clock, sandbox, {lost_pay["reference"], dash_pay["reference"]})
    assert (h.status(engine, ok["id"]), h.status(engine, lost["id"])) == \
        ("succeeded", "processing")
    assert _refund_rows(engine, dash_inv["id"]) == []
    assert sandbox.pending_webhooks() == 0  # as far as the gateway knows, all was delivered
    # A refund whose submit job never ran (the worker was down longer than the grace period).
    unsent = h.refund(engine, clock, unsent_inv, AMOUNT)
    clock.advance(seconds=GRACE.total_seconds() + 60)

    report = reconcile(engine, clock, "sandbox", *_period(clock))
    kinds = {d.kind: d for d in report.differences}
    assert sorted(kinds) == ["missing_at_gateway", "missing_in_payback", "status_mismatch"]
    assert all(d.repaired for d in report.differences) and report.open == []

    # The lost webhook: the gateway's status applied, the refund paid.
    status = kinds["status_mismatch"]
    assert (status.refund_id, status.payback["status"], status.gateway["status"]) == \
        (lost["id"], "pending", "succeeded")
    assert h.status(engine, lost["id"]) == "succeeded"
    # The dashboard refund: a Payback refund attributed to the gateway, with its entries.
    missing = kinds["missing_in_payback"]
    assert missing.gateway_refund_id == dashboard.gateway_refund_id
    [recorded] = _refund_rows(engine, dash_inv["id"])
    assert recorded["id"] == missing.refund_id
    assert (recorded["status"], recorded["amount_minor"], recorded["method"]) == \
        ("succeeded", 30000, "original_payment")
    assert (recorded["requested_by"], recorded["approved_by"]) == \
        ("gateway:sandbox", "gateway:sandbox")
    assert _entry_types(engine, recorded["id"]) == _entry_types(engine, ok["id"])
    [intent] = h.intents(engine, recorded["id"])
    assert (intent["origin"], intent["status"], intent["gateway_refund_id"]) == \
        ("gateway", "succeeded", dashboard.gateway_refund_id)
    # The unsent intent: sent again with its own key, once.
    assert kinds["missing_at_gateway"].refund_id == unsent["id"]
    assert sandbox.count_refunds(idempotency_key=unsent["id"]) == 0
    _complete(engine, clock, sandbox)
    assert sandbox.count_refunds(idempotency_key=unsent["id"]) == 1
    assert h.status(engine, unsent["id"]) == "succeeded"
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0

    again = reconcile(engine, clock, "sandbox", *_period(clock))
    assert (again.compared, again.differences) == (4, [])
    assert sandbox.count_refunds() == 4


def test_an_amount_mismatch_is_listed_and_never_repaired(engine, clock, sandbox):
    paid_inv, _ = h.paid_invoice(engine, clock, sandbox)
    open_inv, _ = h.paid_invoice(engine, clock, sandbox)
    paid = h.refund(engine, clock, paid_inv, AMOUNT)
    _complete(engine, clock, sandbox)
    pending = h.refund(engine, clock, open_inv, AMOUNT)
    h.run_worker(engine, clock, h.worker_registry())
    h.deliver_webhooks(engine, clock, sandbox)
    for refund, amount in ((paid, AMOUNT - 100), (pending, AMOUNT + 100)):
        sandbox.set_refund_amount(sandbox.find_refund_by_key(refund["id"]).gateway_refund_id,
                                  amount)
    # The open one also completes at the gateway, and that news is lost: still, an amount
    # that disagrees means no status is taken from the gateway.
    clock.advance(seconds=5)
    sandbox.advance()
    _deliver_except(engine, clock, sandbox, {h.intents(engine, pending["id"])[0]
                                             ["payment_reference"]})
    before = h.snapshot(engine, exclude=("reconciliation_runs",))

    for _run in range(2):
        report = reconcile(engine, clock, "sandbox", *_period(clock))
        diffs = sorted(report.differences, key=lambda d: d.refund_id == pending["id"])
        assert [(d.kind, d.refund_id, d.repaired) for d in diffs] == [
            ("amount_mismatch", paid["id"], False), ("amount_mismatch", pending["id"], False)]
        assert [(d.payback["amount_minor"], d.gateway["amount_minor"]) for d in diffs] == \
            [(AMOUNT, AMOUNT - 100), (AMOUNT, AMOUNT + 100)]
        assert diffs[1].gateway["status"] == "succeeded"
        assert len(report.open) == 2
        assert h.snapshot(engine, exclude=("reconciliation_runs",)) == before
    assert (h.status(engine, paid["id"]), h.status(engine, pending["id"])) == \
        ("succeeded", "processing")
    assert [len(run["differences"]) for run in last_runs(engine)] == [2, 2]


def test_the_cli_prints_zero_differences_and_exits_0_then_1_on_drift(db_url, engine, clock,
                                                                     sandbox):
    inv, _ = h.paid_invoice(engine, clock, sandbox)
    refund = h.refund(engine, clock, inv, AMOUNT)
    _complete(engine, clock, sandbox)
    assert h.status(engine, refund["id"]) == "succeeded"
    env = h.cli_env(db_url, sandbox.database_url)
    period = ("--from", "2026-01-15T09:00:00Z", "--to", "2026-01-15T11:00:00Z",
              "--gateway", "sandbox")

    clean = h.run_cli(env, "reconcile", *period)
    assert clean.returncode == 0, clean.stderr
    assert "compared 1, 0 differences (0 repaired, 0 open)" in clean.stdout, clean.stdout

    sandbox.set_refund_amount(sandbox.find_refund_by_key(refund["id"]).gateway_refund_id, 100)
    drift = h.run_cli(env, "reconcile", *period, "--json")
    assert drift.returncode == 1, drift.stderr
    [report] = json.loads(drift.stdout)
    assert (report["differences"], report["open"]) == (1, 1)
    assert [(d["kind"], d["refund_id"]) for d in report["items"]] == \
        [("amount_mismatch", refund["id"])]
    assert h.status(engine, refund["id"]) == "succeeded"
