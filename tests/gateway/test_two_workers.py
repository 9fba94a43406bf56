"""Two real ``payback worker`` processes on PostgreSQL drain 1,000 queued gateway refunds: every
refund is paid, none twice.

The sandbox keeps its state in the same PostgreSQL database (its ``sandbox_*`` tables, which the
test creates and drops itself: the shared fixtures only empty Payback's tables), answers good
cards ``succeeded`` at once, and is shared by both worker processes and the test, so its unique
idempotency key and its payment lock are what the workers race on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from payback import db
from payback.gateways import registry, sandbox_state
from payback.gateways.tables import gateway_intents
from payback.ledger import domain as ledger
from payback.outbox.worker import count_by_status
from payback.payments.tables import payments
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.tables import refunds as refunds_t
from tests.gateway import helpers as h

INVOICES, PER_INVOICE, AMOUNT = 100, 10, 1000
TOTAL = INVOICES * PER_INVOICE
#: Seconds to wait for the workers (about 20 s alone on 2 cores; far more on a busy machine).
PATIENCE = 300


@pytest.fixture
def pg_sandbox(db_url, engine, clock):
    """The sandbox on this test's PostgreSQL database, its tables fresh, dropped afterwards."""
    sandbox_state.metadata.drop_all(engine)
    gw = h.make_sandbox(db_url, clock, async_completion=False)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()
    sandbox_state.metadata.drop_all(engine)


def _queue_refunds(engine, clock, sandbox) -> list[str]:
    ids = []
    for _ in range(INVOICES):
        inv, _pay = h.paid_invoice(engine, clock, sandbox, email=None)
        with db.write(engine) as conn:
            for _ in range(PER_INVOICE):
                ids.append(refunds.create_refund(conn, clock, inv["id"], RefundRequest(
                    kind="amount", method="original_payment", reason="requested_by_customer",
                    amount_minor=AMOUNT))["id"])
    return ids


def _succeeded(engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(refunds_t)
                            .where(refunds_t.c.status == "succeeded")).scalar_one()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", id="postgresql")], indirect=True)
def test_two_worker_processes_pay_1000_refunds_each_exactly_once(db_url, engine, clock,
                                                                 pg_sandbox):
    started = time.monotonic()
    ids = _queue_refunds(engine, clock, pg_sandbox)
    setup_seconds = time.monotonic() - started
    assert len(set(ids)) == TOTAL and sandbox_refunds_by_key(engine) == {}
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == TOTAL * AMOUNT

    env = h.cli_env(db_url, db_url, PAYBACK_SANDBOX_BEHAVIOUR="async_completion=false")
    # Commits need not wait for the disk (PostgreSQL's own durability is not under test here;
    # locking and visibility are unchanged): the test spends less time in fsync.
    env["PGOPTIONS"] = "-c synchronous_commit=off"
    workers = [subprocess.Popen([h.PAYBACK_CLI, "worker", "--poll", "0.1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        done = h.wait_until(lambda: _succeeded(engine) == TOTAL, PATIENCE, interval=0.5)
        paid = time.monotonic() - started - setup_seconds
        # Then the follow-up events (refund.succeeded, credit notes …) are drained too.
        quiet = h.wait_until(lambda: _unfinished(engine) == 0, PATIENCE, interval=0.5)
        drained = time.monotonic() - started - setup_seconds
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30) for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert done, f"{_succeeded(engine)} of {TOTAL} refunds succeeded after {PATIENCE} s"
    assert quiet, f"{_unfinished(engine)} outbox events still to do after {PATIENCE} s more"
    for proc, (out, err) in zip(workers, outputs):
        assert proc.returncode == 0, err[-2000:]
        processed = int(out.splitlines()[-1].split()[1])
        assert processed > 0, out  # both workers took part

    by_key = sandbox_refunds_by_key(engine)
    assert set(by_key) == set(ids)
    assert Counter(by_key.values()) == {1: TOTAL}  # one gateway refund per Payback refund
    assert pg_sandbox.count_refunds() == TOTAL
    with db.read(engine) as conn:
        intents = Counter(conn.execute(select(gateway_intents.c.status)).scalars())
        refunded = Counter(conn.execute(select(payments.c.refunded_minor)).scalars())
        outbox = count_by_status(conn)
    assert intents == {"succeeded": TOTAL}
    assert refunded == {PER_INVOICE * AMOUNT: INVOICES}
    assert (outbox["pending"], outbox["processing"], outbox["dead"]) == (0, 0, 0), outbox
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0
    print(f"set-up {setup_seconds:.1f} s, all paid by two workers in {paid:.1f} s, outbox "
          f"drained in {drained:.1f} s ({os.cpu_count()} cores)")


def _unfinished(engine) -> int:
    with db.read(engine) as conn:
        counts = count_by_status(conn)
    return counts["pending"] + counts["processing"]


def sandbox_refunds_by_key(engine) -> dict[str, int]:
    """Idempotency key → number of refunds the sandbox holds with it."""
    r = sandbox_state.sandbox_refunds
    with db.read(engine) as conn:
        return dict(conn.execute(select(r.c.idempotency_key, func.count())
                                 .group_by(r.c.idempotency_key)).all())
