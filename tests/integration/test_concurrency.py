"""Real concurrency on real databases: the refundable amount, a line's last unit and a store-credit
balance are never given out twice, however many requests race for them.

Covered, on SQLite and PostgreSQL:

- 20 simultaneous refunds of 60.00 against one card payment of 100.00: exactly one succeeds, the
  19 others get ``amount_exceeds_refundable``; 60.00 refunded in total; the books balance.
- 20 simultaneous payments of 60.00 by store credit (on 20 different open invoices) from one
  wallet of 100.00: exactly one succeeds, the others get ``insufficient_store_credit``; the
  balance never goes negative and the wallet history sums to the balance.
- 20 simultaneous line refunds of the last unit of a line: exactly one.
- The database itself refuses the overflow: with the application's view of what was already
  refunded patched away, the CHECK constraints (``payments.refunded_minor <= amount_minor``,
  ``invoice_lines.refunded_* <= …``) refuse the second refund and nothing is written.

How the race is run: on SQLite 20 threads share the test's engine (one writer at a time through
``BEGIN IMMEDIATE``); on PostgreSQL each thread holds its own connection, opened before the start
gun. Threads are released together by a ``threading.Barrier``. One PostgreSQL variant runs the
refunds in 20 separate OS processes (``multiprocessing`` with the ``spawn`` context), each building
its own engine from the URL, to show that the row lock, not anything in-process, is what
serialises them (about 30 s on two cores: twenty interpreters import SQLAlchemy and Payback).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, exc, func, select

from payback.clock import FixedClock
from payback.customers.service import create_customer
from payback.db import is_sqlite, make_engine, read, write
from payback.errors import (
    AmountExceedsRefundable,
    DomainError,
    InsufficientStoreCredit,
    QuantityExceedsRemaining,
)
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.invoicing.tables import invoice_lines
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.ledger.tables import journal_entries, postings
from payback.outbox.tables import outbox_events
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds import service as refund_service
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.tables import refund_lines, refund_tenders, refunds
from payback.store_credit.service import get_wallet
from payback.store_credit.tables import wallet_transactions

pytestmark = pytest.mark.slow

N = 20
#: Generous: a spawned process needs a few seconds to import everything on a busy 2-core box.
START_TIMEOUT = 180
EUR_20 = Decimal("0.20")
REPO_ROOT = Path(__file__).resolve().parents[2]

postgres_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
    indirect=True)


# ---------------------------------------------------------------------------------- helpers


def _race(engine: Engine, action: Callable[[Connection, int], dict]) -> list:
    """Run ``action(conn, i)`` for i in 0..N-1 in N threads released together, each in its own
    write transaction. Returns, per thread, the action's result or the DomainError it raised
    (any other exception fails the test)."""
    barrier = threading.Barrier(N, timeout=START_TIMEOUT)
    sqlite = is_sqlite(engine)

    def one(i: int):
        try:
            if sqlite:
                # One shared engine; BEGIN IMMEDIATE queues the writers (busy_timeout).
                barrier.wait()
                with write(engine) as conn:
                    return action(conn, i)
            # PostgreSQL: a separate connection per thread, already open at the start gun.
            with engine.connect() as conn:
                barrier.wait()
                with conn.begin():
                    return action(conn, i)
        except DomainError as err:
            return err

    with ThreadPoolExecutor(max_workers=N) as pool:
        return list(pool.map(one, range(N)))


def _split(outcomes: list) -> tuple[list[dict], list[DomainError]]:
    ok = [o for o in outcomes if not isinstance(o, DomainError)]
    return ok, [o for o in outcomes if isinstance(o, DomainError)]


def _count(conn: Connection, table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _assert_books_balance(conn: Connection, currency: str) -> None:
    totals = trial_balance(conn, currency)["totals"]
    assert len(totals) == 1 and totals[0]["balanced"], totals
    assert totals[0]["debit_minor"] == totals[0]["credit_minor"]


def _invoice(conn: Connection, clock, customer_id: str, *lines: LineInput) -> dict:
    return create_invoice(conn, clock, customer_id=customer_id, currency="EUR",
                          tax_mode="inclusive", lines=list(lines))


def _card(conn: Connection, clock, invoice_id: str, amount: int) -> dict:
    return record_payment(conn, clock, invoice_id, method="card", amount_minor=amount,
                          currency="EUR", card={"token": "tok_visa", "brand": "visa",
                                                "last4": "4242"})


def _paid_invoice(engine: Engine, clock, gross: int = 10000) -> str:
    """An invoice of one line (``gross`` incl. 20 % tax) paid in full by card."""
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Racer")
        inv = _invoice(conn, clock, cus["id"], LineInput("Bike", 1, gross, EUR_20))
        _card(conn, clock, inv["id"], gross)
    return inv["id"]


def _amount_refund(amount: int, method: str = "original_payment") -> RefundRequest:
    return RefundRequest(kind="amount", method=method, reason="requested_by_customer",
                         amount_minor=amount)


def _wallet_and_open_invoices(engine: Engine, clock) -> tuple[str, list[str]]:
    """A customer whose wallet holds 100.00 (a card-paid invoice refunded to store credit) and
    N open invoices of 60.00 each."""
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Spender")
        first = _invoice(conn, clock, cus["id"], LineInput("Tent", 1, 10000, EUR_20))
        _card(conn, clock, first["id"], 10000)
        refund_service.create_refund(conn, clock, first["id"], RefundRequest(
            kind="full", method="store_credit", reason="not_as_described"))
        open_ids = [_invoice(conn, clock, cus["id"], LineInput(f"Lamp {i}", 1, 6000, EUR_20))["id"]
                    for i in range(N)]
    with read(engine) as conn:
        assert get_wallet(conn, cus["id"], "EUR")["balance_minor"] == 10000
    return cus["id"], open_ids


# ------------------------------------------------------------------- refunds by amount


def _assert_one_refund_of_6000(engine: Engine, invoice_id: str) -> None:
    with read(engine) as conn:
        assert [r.amount_minor for r in conn.execute(
            select(refunds.c.amount_minor).where(refunds.c.invoice_id == invoice_id))] == [6000]
        assert conn.execute(select(payments.c.refunded_minor)
                            .where(payments.c.invoice_id == invoice_id)).scalar_one() == 6000
        inv = get_invoice(conn, invoice_id)
        assert (inv["status"], inv["amount_refunded_minor"],
                inv["amount_refundable_minor"]) == ("partially_refunded", 6000, 4000)
        # 100.00 captured into clearing, 60.00 paid back out of it.
        assert account_balance(conn, ledger.GATEWAY_CLEARING, "EUR") == 4000
        assert account_balance(conn, ledger.REFUNDS_PAYABLE, "EUR") == 0
        _assert_books_balance(conn, "EUR")


def test_twenty_concurrent_refunds_exactly_one_succeeds(engine: Engine, clock) -> None:
    invoice_id = _paid_invoice(engine, clock)
    outcomes = _race(engine, lambda conn, i: refund_service.create_refund(
        conn, clock, invoice_id, _amount_refund(6000)))
    ok, errors = _split(outcomes)
    assert len(ok) == 1 and len(errors) == N - 1
    # 60.00 of 100.00 incl. 20 % tax: line tax 16.67 (10000/6 rounded), 60 % of it = 10.00.
    assert (ok[0]["amount_minor"], ok[0]["net_minor"], ok[0]["tax_minor"]) == (6000, 5000, 1000)
    assert all(type(e) is AmountExceedsRefundable for e in errors)
    assert {e.code for e in errors} == {"amount_exceeds_refundable"}
    # Every loser saw the winner's refund: 40.00 left.
    assert {e.extra["refundable_minor"] for e in errors} == {4000}
    _assert_one_refund_of_6000(engine, invoice_id)


# ------------------------------------------------------------------ store-credit spending


def _assert_one_spend_of_6000(engine: Engine, customer_id: str, open_ids: list[str]) -> None:
    with read(engine) as conn:
        wallet = get_wallet(conn, customer_id, "EUR")
        assert wallet["balance_minor"] == 4000
        history = [t["amount_minor"] for t in wallet["transactions"]]
        assert history == [10000, -6000]
        assert sum(history) == wallet["balance_minor"]
        assert [t["balance_after_minor"] for t in wallet["transactions"]] == [10000, 4000]
        statuses = sorted(get_invoice(conn, i)["status"] for i in open_ids)
        assert statuses == ["open"] * (N - 1) + ["paid"]
        assert conn.execute(select(func.count()).select_from(payments)
                            .where(payments.c.method == "store_credit")).scalar_one() == 1
        assert account_balance(conn, ledger.STORE_CREDIT, "EUR") == 4000
        _assert_books_balance(conn, "EUR")


def test_twenty_concurrent_store_credit_spends_exactly_one_succeeds(engine: Engine,
                                                                    clock) -> None:
    customer_id, open_ids = _wallet_and_open_invoices(engine, clock)
    outcomes = _race(engine, lambda conn, i: record_payment(
        conn, clock, open_ids[i], method="store_credit", amount_minor=6000, currency="EUR"))
    ok, errors = _split(outcomes)
    assert len(ok) == 1 and len(errors) == N - 1
    assert (ok[0]["method"], ok[0]["amount_minor"]) == ("store_credit", 6000)
    assert all(type(e) is InsufficientStoreCredit for e in errors)
    assert {e.code for e in errors} == {"insufficient_store_credit"}
    assert {e.extra["balance_minor"] for e in errors} == {4000}
    _assert_one_spend_of_6000(engine, customer_id, open_ids)


# ---------------------------------------------------------------- last unit of a line


def test_twenty_concurrent_refunds_of_a_lines_last_unit_exactly_one(engine: Engine,
                                                                    clock) -> None:
    # Line A: 3 × 20.00 incl. 20 % = 60.00, tax 10.00. Line B: 40.00, tax 6.67. Paid 100.00.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Returner")
        inv = _invoice(conn, clock, cus["id"], LineInput("Mug", 3, 2000, EUR_20),
                       LineInput("Teapot", 1, 4000, EUR_20))
        _card(conn, clock, inv["id"], 10000)
        line_a = inv["lines"][0]["id"]
        # Two of three mugs back first: 40.00, tax round(10.00 × 40/60) = 6.67.
        first = refund_service.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="lines", method="original_payment", reason="product_defective",
            lines=(LineRequest(line_a, 2),)))
    assert (first["amount_minor"], first["tax_minor"]) == (4000, 667)

    last_unit = RefundRequest(kind="lines", method="original_payment",
                              reason="product_defective", lines=(LineRequest(line_a, 1),))
    ok, errors = _split(_race(engine, lambda conn, i: refund_service.create_refund(
        conn, clock, inv["id"], last_unit)))
    assert len(ok) == 1 and len(errors) == N - 1
    # The last unit takes exactly what remains: 20.00, tax 10.00 − 6.67 = 3.33.
    assert (ok[0]["amount_minor"], ok[0]["net_minor"], ok[0]["tax_minor"]) == (2000, 1667, 333)
    assert all(type(e) is QuantityExceedsRemaining for e in errors)
    assert {e.code for e in errors} == {"quantity_exceeds_remaining"}
    assert {e.extra["remaining"] for e in errors} == {0}
    with read(engine) as conn:
        row = conn.execute(select(invoice_lines).where(invoice_lines.c.id == line_a)).one()
        assert (row.refunded_quantity, row.refunded_gross_minor,
                row.refunded_tax_minor) == (3, 6000, 1000)
        assert _count(conn, refunds) == 2
        assert conn.execute(select(payments.c.refunded_minor)).scalar_one() == 6000
        _assert_books_balance(conn, "EUR")


# ------------------------------------------------- PostgreSQL: separate OS processes


def _process_worker(url: str, invoice_id: str, index: int, start: datetime, barrier,
                    results) -> None:
    """Runs in a spawned process: its own engine, its own connection, one attempt."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    clock = FixedClock(start)
    try:
        with engine.connect() as conn:
            barrier.wait()
            try:
                with conn.begin():
                    out = refund_service.create_refund(conn, clock, invoice_id,
                                                       _amount_refund(6000))
                results.put((index, "ok", out["id"], None))
            except DomainError as err:
                results.put((index, "error", err.code, dict(err.extra)))
    except Exception as err:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((index, "crash", repr(err), None))
    finally:
        engine.dispose()


def _race_processes(db_url: str, invoice_id: str, start: datetime, monkeypatch) -> list[tuple]:
    # The child unpickles ``_process_worker`` by importing this module by the name pytest gave
    # it (importlib mode: ``tests.integration.test_concurrency``), so the repository root must be
    # on the sys.path that spawn hands to the children.
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(N, timeout=START_TIMEOUT), ctx.Queue()
    procs = [ctx.Process(target=_process_worker,
                         args=(db_url, invoice_id, i, start, barrier, results))
             for i in range(N)]
    for p in procs:
        p.start()
    out = []
    try:
        for _ in range(N):
            out.append(results.get(timeout=START_TIMEOUT + 60))
    except queue.Empty:
        pytest.fail(f"only {len(out)} of {N} processes reported: {out}")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * N
    assert [o for o in out if o[1] == "crash"] == []
    assert sorted(o[0] for o in out) == list(range(N))
    return out


@postgres_only
def test_refund_race_across_processes_exactly_one_succeeds(engine: Engine, db_url: str,
                                                           clock, monkeypatch) -> None:
    invoice_id = _paid_invoice(engine, clock)
    out = _race_processes(db_url, invoice_id, clock.now(), monkeypatch)
    winners = [o for o in out if o[1] == "ok"]
    losers = [o for o in out if o[1] == "error"]
    assert len(winners) == 1 and len(losers) == N - 1
    assert {o[2] for o in losers} == {"amount_exceeds_refundable"}
    assert {o[3]["refundable_minor"] for o in losers} == {4000}
    _assert_one_refund_of_6000(engine, invoice_id)


# ------------------------------------------- the database refuses what the code lets through


_WRITTEN_BY_A_REFUND = (refunds, refund_lines, refund_tenders, journal_entries, postings,
                        outbox_events, wallet_transactions)


def _snapshot(engine: Engine) -> dict:
    """Row counts of everything a refund writes, and the guard counters."""
    with read(engine) as conn:
        counts = {t.name: _count(conn, t) for t in _WRITTEN_BY_A_REFUND}
        counts["payments.refunded"] = sorted(conn.execute(select(payments.c.refunded_minor))
                                             .scalars())
        counts["lines.refunded"] = sorted(tuple(r) for r in conn.execute(select(
            invoice_lines.c.refunded_quantity, invoice_lines.c.refunded_gross_minor,
            invoice_lines.c.refunded_tax_minor)))
    return counts


def _forget(monkeypatch, *, tenders: bool, lines: bool) -> None:
    """Make the refund service believe nothing was refunded yet (payments and/or lines), so only
    the database's CHECK constraints stand between a second refund and an over-refund."""
    real_state = refund_service._state

    def forgetful(conn, inv, currency):
        line_states, tender_states, routes = real_state(conn, inv, currency)
        if lines:
            line_states = [dataclasses.replace(ln, refunded_quantity=0, refunded_gross_minor=0,
                                               refunded_tax_minor=0) for ln in line_states]
        if tenders:
            tender_states = [dataclasses.replace(t, refunded_minor=0) for t in tender_states]
        return line_states, tender_states, routes

    monkeypatch.setattr(refund_service, "_state", forgetful)


def test_database_refuses_refund_beyond_the_payment(engine: Engine, clock, monkeypatch) -> None:
    # An invoice of 200.00 of which only 100.00 was paid: the lines could give 200.00 back, the
    # payment only 100.00, so the payment's CHECK is the one that must bite.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Half payer")
        inv = _invoice(conn, clock, cus["id"], LineInput("Sofa", 1, 20000, EUR_20))
        _card(conn, clock, inv["id"], 10000)
        refund_service.create_refund(conn, clock, inv["id"], _amount_refund(6000))
    with pytest.raises(AmountExceedsRefundable), write(engine) as conn:  # the code's own check
        refund_service.create_refund(conn, clock, inv["id"], _amount_refund(6000))
    before = _snapshot(engine)
    assert before["payments.refunded"] == [6000]

    _forget(monkeypatch, tenders=True, lines=False)
    with pytest.raises(exc.IntegrityError, match="refunded_within_amount"), \
            write(engine) as conn:
        refund_service.create_refund(conn, clock, inv["id"], _amount_refund(6000))
    assert _snapshot(engine) == before


@pytest.mark.parametrize("kind", ["amount", "lines"])
def test_database_refuses_refund_beyond_the_line(engine: Engine, clock, monkeypatch,
                                                 kind: str) -> None:
    # Two lines of 50.00 (incl. 20 %: tax 8.33 each), paid 100.00. Line A is refunded in full
    # (by its one unit, or by 50.00 spread over a one-line invoice when kind is "amount").
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Double dipper")
        lines = [LineInput("Lamp", 1, 5000, EUR_20)]
        if kind == "lines":
            lines.append(LineInput("Shade", 1, 5000, EUR_20))
        inv = _invoice(conn, clock, cus["id"], *lines)
        _card(conn, clock, inv["id"], 10000 if kind == "lines" else 5000)
    line_a = inv["lines"][0]["id"]
    req = (RefundRequest(kind="lines", method="original_payment", reason="duplicate",
                         lines=(LineRequest(line_a, 1),)) if kind == "lines"
           else _amount_refund(5000))
    with write(engine) as conn:
        done = refund_service.create_refund(conn, clock, inv["id"], req)
    assert (done["amount_minor"], done["tax_minor"]) == (5000, 833)
    before = _snapshot(engine)

    # The payment is forgotten too for kind "amount" (its only payment is used up), so that
    # the line's counters are the first guard the second refund reaches.
    _forget(monkeypatch, tenders=kind == "amount", lines=True)
    with pytest.raises(exc.IntegrityError,
                       match=r"ck_invoice_lines_refunded_(quantity|gross|tax)_within_line"), \
            write(engine) as conn:
        refund_service.create_refund(conn, clock, inv["id"], req)
    assert _snapshot(engine) == before
    with read(engine) as conn:
        assert conn.execute(select(invoice_lines.c.refunded_gross_minor)
                            .where(invoice_lines.c.id == line_a)).scalar_one() == 5000
