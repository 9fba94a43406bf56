"""Shared set-up for the gateway tests: a sandbox gateway on its own database, a paid invoice
whose card payment was captured through it, and a worker registry with every handler; for the
fault tests also: running the ``payback`` CLI as a subprocess, recording the sandbox's webhooks
instead of delivering them, and views of the outcome that leave ids and times out (a refund's
summary, the trial balance and its movement, a snapshot of every table)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select

from payback import db, jobs
from payback.credit_notes.tables import credit_notes
from payback.customers.service import create_customer
from payback.db.schema import metadata as schema_metadata
from payback.gateways import flow, registry
from payback.gateways.sandbox import SandboxBehaviour, SandboxGateway
from payback.gateways.tables import gateway_intents
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger.service import account_balance, trial_balance
from payback.ledger.tables import journal_entries, postings
from payback.outbox.fanout import Subscribers
from payback.outbox.tables import outbox_events
from payback.outbox.worker import Registry, count_by_status, drain
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.tables import refund_events, refund_tenders
from payback.refunds.tables import refunds as refunds_t

SECRET = "whsec_test_sandbox"


def make_sandbox(url: str, clock, **behaviour) -> SandboxGateway:
    gw = SandboxGateway(url, webhook_secret=SECRET, behaviour=SandboxBehaviour(**behaviour),
                        clock=clock, seed=7, sleep=lambda _s: None)
    registry.install(gw)
    return gw


def worker_registry(*, everything: bool = False) -> Registry:
    """The gateway jobs (and, with ``everything``, every feature's handlers and subscribers)."""
    reg = Registry()
    if everything:
        jobs.install(reg, Subscribers())
    else:
        flow.install(reg, Subscribers())
    return reg


def paid_invoice(engine, clock, sandbox, *, card: str = "tok_visa", amount: int = 100000,
                 email: str | None = "ada@example.com"):
    """An EUR invoice (net 800.00 + 25 % tax) paid by a card captured through the sandbox.
    ``email=None``: a customer without an address, so no notification is ever queued."""
    reference = sandbox.create_payment(amount, "EUR", card=card)
    return invoice_paid_through(engine, clock, "sandbox", reference, card=card, amount=amount,
                                email=email)


def invoice_paid_through(engine, clock, gateway: str, reference: str, *, card: str = "tok_visa",
                         amount: int = 100000, email: str | None = "ada@example.com"):
    """An EUR invoice paid by a card payment ``reference`` captured through ``gateway``."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada", email=email)
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Desk", 1, amount * 4 // 5, Decimal("0.25"))])
        pay = record_payment(conn, clock, inv["id"], method="card", amount_minor=amount,
                             currency="EUR", card={"token": card, "brand": "visa",
                                                   "last4": "4242"},
                             reference=reference, gateway=gateway)
    return inv, pay


def refund(engine, clock, inv, amount: int) -> dict:
    with db.write(engine) as conn:
        return refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=amount))


def status(engine, refund_id: str) -> str:
    with db.read(engine) as conn:
        return refunds.get_refund(conn, refund_id)["status"]


def intents(engine, refund_id: str) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(gateway_intents).where(gateway_intents.c.refund_id == refund_id))]


def run_worker(engine, clock, reg) -> None:
    drain(engine, clock, registry=reg)


def deliver_webhooks(engine, clock, sandbox) -> list[dict]:
    """Send the sandbox's due webhooks into Payback's receiver (the service function)."""
    from payback.gateways.flow import receive_webhook

    outcomes = []

    def send(headers, body):
        outcomes.append(receive_webhook(engine, clock, "sandbox", headers, body))
        return 200
    sandbox.deliver_webhooks(send)
    return outcomes


# ------------------------------------------------------------------ for the fault tests

#: The ``payback`` console script of this virtualenv (as tests/integration/test_outbox_worker.py).
PAYBACK_CLI = os.path.join(os.path.dirname(sys.executable), "payback")


def cli_env(db_url: str, sandbox_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``payback`` subprocess on these databases: the sandbox signs with
    SECRET, mail goes to a closed port (nothing is queued anyway for customers without an
    address), no scheduled reconciliation. ``extra``: more ``PAYBACK_*`` settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAYBACK_") or k == "PAYBACK_TEST_POSTGRES_URL"}
    env.update(PAYBACK_DATABASE_URL=db_url, PAYBACK_SANDBOX_DATABASE_URL=sandbox_url,
               PAYBACK_SANDBOX_WEBHOOK_SECRET=SECRET, PAYBACK_SECRET_KEY="test",
               PAYBACK_SMTP_PORT="9", PAYBACK_RECONCILE_INTERVAL_HOURS="0", **extra)
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PAYBACK_CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def recorder() -> tuple[list[tuple[dict[str, str], bytes]], Callable[[dict, bytes], int]]:
    """A ``send`` for ``SandboxGateway.deliver_webhooks`` that only records (headers, body)
    and acknowledges, so a test can deliver them later, in any order, any number of times."""
    sent: list[tuple[dict[str, str], bytes]] = []

    def send(headers: dict[str, str], body: bytes) -> int:
        sent.append((dict(headers), bytes(body)))
        return 200
    return sent, send


def ledger_totals(engine) -> dict[tuple[str, str], tuple[int, int]]:
    """(account, currency) → (debits, credits), from the trial balance (which must balance)."""
    with db.read(engine) as conn:
        tb = trial_balance(conn)
    assert all(t["balanced"] for t in tb["totals"]), tb["totals"]
    return {(a["account_code"], a["currency"]): (a["debit_minor"], a["credit_minor"])
            for a in tb["accounts"]}


def ledger_delta(before: dict, after: dict) -> dict[tuple[str, str], tuple[int, int]]:
    """What was posted between two ``ledger_totals`` (accounts that did not move left out)."""
    delta = {}
    for key in set(before) | set(after):
        d0, c0 = before.get(key, (0, 0))
        d1, c1 = after.get(key, (0, 0))
        if (d1 - d0, c1 - c0) != (0, 0):
            delta[key] = (d1 - d0, c1 - c0)
    return delta


def balance(engine, account) -> int:
    with db.read(engine) as conn:
        return account_balance(conn, account, "EUR")


def refund_summary(engine, refund_id: str) -> dict:
    """Everything about one refund that must not depend on how it got there (crashes,
    retries, webhook order), with ids and times left out: its status and amounts, its status
    history, its gateway intents, its journal entries, its credit note, its outbox events and
    what was refunded on its payment."""
    with db.read(engine) as conn:
        refund = conn.execute(select(refunds_t).where(refunds_t.c.id == refund_id)).one()._mapping
        history = [tuple(r) for r in conn.execute(
            select(refund_events.c.from_status, refund_events.c.to_status,
                   refund_events.c.actor_id)
            .where(refund_events.c.refund_id == refund_id).order_by(refund_events.c.id))]
        rows = conn.execute(select(gateway_intents)
                            .where(gateway_intents.c.refund_id == refund_id)).all()
        intent_ids = [r.id for r in rows]
        gateway_views = sorted((r.status, r.origin, r.amount_minor, r.currency,
                                r.failure_reason, r.gateway_refund_id is not None,
                                r.completed_at is not None) for r in rows)
        entries = []
        for entry in conn.execute(select(journal_entries.c.id, journal_entries.c.event_type)
                                  .where(journal_entries.c.object_id == refund_id)):
            lines = sorted(tuple(p) for p in conn.execute(
                select(postings.c.account_code, postings.c.currency, postings.c.debit_minor,
                       postings.c.credit_minor).where(postings.c.entry_id == entry.id)))
            entries.append((entry.event_type, tuple(lines)))
        notes = sorted(tuple(r) for r in conn.execute(
            select(credit_notes.c.kind, credit_notes.c.total_minor)
            .where(credit_notes.c.refund_id == refund_id)))
        topics = sorted(r.topic for r in conn.execute(
            select(outbox_events.c.topic)
            .where(outbox_events.c.object_id.in_([refund_id, *intent_ids]))))
        refunded = sorted(r.refunded_minor for r in conn.execute(
            select(payments.c.refunded_minor).join(
                refund_tenders, refund_tenders.c.payment_id == payments.c.id)
            .where(refund_tenders.c.refund_id == refund_id)))
    return {"status": refund["status"], "method": refund["method"],
            "amounts": (refund["amount_minor"], refund["net_minor"], refund["tax_minor"],
                        refund["fee_minor"]),
            "approved_by": refund["approved_by"], "settled": refund["settled_at"] is not None,
            "history": history, "intents": gateway_views, "journal": sorted(entries),
            "credit_notes": notes, "outbox_topics": topics, "payment_refunded": refunded}


def snapshot(engine, *, exclude: tuple[str, ...] = ()) -> dict[str, list]:
    """Every row of every Payback table but ``exclude`` (the sandbox's tables are not
    Payback's)."""
    out: dict[str, list] = {}
    with db.read(engine) as conn:
        for table in schema_metadata.sorted_tables:
            if table.name in exclude:
                continue
            out[table.name] = sorted((tuple(r) for r in conn.execute(select(table))), key=repr)
    return out


def outbox_counts(engine) -> dict[str, int]:
    with db.read(engine) as conn:
        return count_by_status(conn)


def wait_until(predicate: Callable[[], bool], seconds: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
