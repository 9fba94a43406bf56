"""Store-credit wallets under real concurrency (reliability test 32, the Homakov pattern): threads
on SQLite (one engine; ``BEGIN IMMEDIATE`` queues the writers), a separate connection per thread
on PostgreSQL (all open before the start gun; the wallet row lock serialises them).

- 50 concurrent redemptions of the FULL balance of one wallet (held in two lots): exactly one
  succeeds, the other 49 get ``insufficient_store_credit``; nothing is debited beyond the balance;
- 20 concurrent redemptions of 30.00 from 100.00: exactly three succeed, 10.00 is left;
- 10 concurrent expiry runs: each due lot expires exactly once, breakage is posted once;
- revocations racing spends of the same goodwill lot: what was spent plus what was revoked is
  exactly the lot, and at most one revocation succeeds.

After each: the balance is not negative and equals Σ transactions and Σ lots' remaining, every
row's running balance is right, store credit liability equals the balance, the books balance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Connection, Engine, func, select

from payback import db
from payback.actor import Actor
from payback.customers.service import create_customer
from payback.db import make_engine
from payback.errors import DomainError, InsufficientStoreCredit
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.store_credit import domain
from payback.store_credit import service as sc
from payback.store_credit.tables import lots, wallet_transactions

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
AGENT = Actor("usr_agent", "staff", "agent")
START_TIMEOUT = 180


def race(engine: Engine, n: int, action: Callable[[Connection, int], object]) -> list:
    """Run ``action(conn, i)`` for i in 0..n-1 in n threads released together, each in its own
    write transaction; returns each result or the DomainError raised (others fail the test)."""
    barrier = threading.Barrier(n, timeout=START_TIMEOUT)
    sqlite = db.is_sqlite(engine)

    def one(i: int):
        try:
            if sqlite:
                barrier.wait()
                with db.write(engine) as conn:
                    return action(conn, i)
            with engine.connect() as conn:
                barrier.wait()
                with conn.begin():
                    return action(conn, i)
        except DomainError as err:
            return err

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture
def wide_engine(db_url: str):
    """An engine whose pool holds 50 PostgreSQL connections at once (the default holds 30)."""
    eng = make_engine(db_url, **({} if db_url.startswith("sqlite") else
                                 {"pool_size": 52, "max_overflow": 0}))
    yield eng
    eng.dispose()


def split(outcomes: list) -> tuple[list, list[DomainError]]:
    return ([o for o in outcomes if not isinstance(o, DomainError)],
            [o for o in outcomes if isinstance(o, DomainError)])


def assert_wallet_consistent(engine: Engine, customer_id: str, expected_balance: int) -> dict:
    with db.read(engine) as conn:
        w = sc.get_wallet(conn, customer_id, "EUR")
        assert w["balance_minor"] == expected_balance >= 0
        assert sum(t["amount_minor"] for t in w["transactions"]) == expected_balance
        assert sum(lot["remaining_minor"] for lot in w["lots"]) == expected_balance
        assert all(lot["remaining_minor"] >= 0 for lot in w["lots"])
        running = 0
        for t in w["transactions"]:
            running += t["amount_minor"]
            assert t["balance_after_minor"] == running >= 0 and t["lot_id"], t
        assert account_balance(conn, ledger.STORE_CREDIT, "EUR") == expected_balance
        totals = trial_balance(conn, "EUR")["totals"]
        assert len(totals) == 1 and totals[0]["balanced"], totals
    return w


def funded_wallet(engine: Engine, clock, *, invoices: int, gross: int) -> tuple[str, list[str]]:
    """A wallet of 100.00: 60.00 refund credit (no expiry) and 40.00 goodwill expiring in 30
    days; plus ``invoices`` open invoices of ``gross`` (tax-inclusive 20 %)."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Homakov")["id"]
        first = _invoice(conn, clock, cus, 6000)
        record_payment(conn, clock, first["id"], method="card", amount_minor=6000,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
        refunds.create_refund(conn, clock, first["id"], RefundRequest(
            kind="full", method="store_credit", reason="not_as_described",
            consent_to_other_method=True), actor=AGENT)
        sc.grant_credit(conn, clock, customer_id=cus, kind="goodwill", amount_minor=4000,
                        currency="EUR", memo="sorry", actor=AGENT,
                        expires_at=T0 + timedelta(days=30))
        open_ids = [_invoice(conn, clock, cus, gross)["id"] for _ in range(invoices)]
    assert_wallet_consistent(engine, cus, 10000)
    return cus, open_ids


def _invoice(conn: Connection, clock, customer_id: str, gross: int) -> dict:
    return create_invoice(conn, clock, customer_id=customer_id, currency="EUR",
                          tax_mode="inclusive",
                          lines=[LineInput("Item", 1, gross, Decimal("0.20"))])


def _store_credit_paid(engine: Engine) -> int:
    with db.read(engine) as conn:
        return int(conn.execute(select(func.coalesce(func.sum(payments.c.amount_minor), 0))
                                .where(payments.c.method == "store_credit")).scalar_one())


# ------------------------------------------------------------------ reliability test 32


def test_fifty_concurrent_redemptions_of_the_full_balance_exactly_one_succeeds(wide_engine,
                                                                                clock):
    engine = wide_engine
    cus, open_ids = funded_wallet(engine, clock, invoices=50, gross=10000)
    outcomes = race(engine, 50, lambda conn, i: record_payment(
        conn, clock, open_ids[i], method="store_credit", amount_minor=10000, currency="EUR"))
    ok, errors = split(outcomes)
    assert len(ok) == 1 and len(errors) == 49
    assert all(type(e) is InsufficientStoreCredit for e in errors)
    assert {e.extra["balance_minor"] for e in errors} == {0}
    assert _store_credit_paid(engine) == 10000           # total debited ≤ the balance
    w = assert_wallet_consistent(engine, cus, 0)
    assert [(t["kind"], t["amount_minor"], t["balance_after_minor"])
            for t in w["transactions"]] == [
        ("refund", 6000, 6000), ("goodwill", 4000, 10000),
        ("spend", -4000, 6000), ("spend", -6000, 0)]    # the expiring goodwill first


def test_twenty_concurrent_partial_redemptions_never_overdraw(engine, clock):
    cus, open_ids = funded_wallet(engine, clock, invoices=20, gross=3000)
    outcomes = race(engine, 20, lambda conn, i: record_payment(
        conn, clock, open_ids[i], method="store_credit", amount_minor=3000, currency="EUR"))
    ok, errors = split(outcomes)
    assert (len(ok), len(errors)) == (3, 17)
    assert {e.code for e in errors} == {"insufficient_store_credit"}
    assert {e.extra["balance_minor"] for e in errors} == {1000}
    assert _store_credit_paid(engine) == 9000
    w = assert_wallet_consistent(engine, cus, 1000)
    # 40.00 goodwill then 60.00 refund credit: 30 | 10 + 20 | 30, and 10.00 of refund credit left.
    assert [t["amount_minor"] for t in w["transactions"] if t["kind"] == "spend"] == [
        -3000, -1000, -2000, -3000]
    assert [(lot["kind"], lot["remaining_minor"]) for lot in w["lots"]] == [
        ("refund", 1000), ("goodwill", 0)]


def test_ten_concurrent_expiry_runs_expire_each_lot_once(engine, clock):
    with db.write(engine) as conn:
        customers = [create_customer(conn, clock, name=f"C{i}")["id"] for i in range(2)]
        for cus, amounts in zip(customers, ((500, 700), (1100,))):
            for amount in amounts:
                sc.grant_credit(conn, clock, customer_id=cus, kind="promotional",
                                amount_minor=amount, currency="EUR", memo="sale", actor=AGENT,
                                expires_at=T0 + timedelta(days=1))
    later = T0 + timedelta(days=1, seconds=1)
    outcomes = race(engine, 10, lambda conn, i: sc.expire_due(conn, clock, now=later))
    ok, errors = split(outcomes)
    assert not errors and sum(o["count"] for o in ok) == 3
    assert sorted(x["amount_minor"] for o in ok for x in o["lots"]) == [500, 700, 1100]
    with db.read(engine) as conn:
        assert account_balance(conn, ledger.BREAKAGE, "EUR") == 2300
        assert conn.execute(select(func.count()).select_from(wallet_transactions).where(
            wallet_transactions.c.kind == "expiry")).scalar_one() == 3
    for cus in customers:
        assert_wallet_consistent(engine, cus, 0)


def test_revocations_racing_spends_take_exactly_the_lot(engine, clock):
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Racer")["id"]
        lot = sc.grant_credit(conn, clock, customer_id=cus, kind="goodwill", amount_minor=5000,
                              currency="EUR", memo="apology", actor=AGENT)
        open_ids = [_invoice(conn, clock, cus, 1000)["id"] for _ in range(10)]

    def act(conn: Connection, i: int):   # even: spend 10.00 on its own invoice; odd: revoke
        if i % 2:
            return sc.revoke_lot(conn, clock, lot["id"], reason="abuse", actor=AGENT)
        return record_payment(conn, clock, open_ids[i // 2], method="store_credit",
                              amount_minor=1000, currency="EUR")

    outcomes = race(engine, 20, act)
    _, errors = split(outcomes)
    assert {type(e) for e in errors} <= {InsufficientStoreCredit, domain.NothingToRevoke}
    with db.read(engine) as conn:
        revoked = -int(conn.execute(select(func.coalesce(func.sum(
            wallet_transactions.c.amount_minor), 0)).where(
            wallet_transactions.c.kind == "revocation")).scalar_one())
        revocations = conn.execute(select(func.count()).select_from(wallet_transactions).where(
            wallet_transactions.c.kind == "revocation")).scalar_one()
        closed = conn.execute(select(lots.c.remaining_minor).where(
            lots.c.id == lot["id"])).scalar_one()
    assert revocations <= 1
    assert _store_credit_paid(engine) + revoked == 5000
    assert closed == 0
    assert_wallet_consistent(engine, cus, 0)
    with db.read(engine) as conn:
        assert account_balance(conn, ledger.STORE_CREDIT_INCENTIVES, "EUR") == 5000 - revoked
