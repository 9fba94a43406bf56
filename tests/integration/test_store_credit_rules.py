"""Store-credit rules on real SQLite and PostgreSQL, with exact minor units and the books checked
after every step (balanced; store credit liability = Σ wallet balances; each wallet's balance =
Σ its transactions = Σ its lots' remaining, never negative; every transaction names its lot and
carries the right running balance):

- a refund taken as store credit is a 'refund' lot and its bonus a separate 'bonus' lot, both
  expiring as the seller's policy says (``store_credit.expiry_days``), never when it says none;
- staff grants (goodwill, promotional) book a cost: Dr 6300 / Cr 2300;
- spending draws from lots earliest expiry first, no expiry last, one row per lot;
- ``expire_due`` closes lots whose expiry has come: 'expiry' rows, Dr 2300 / Cr breakage 4900,
  ``store_credit.expired`` events; idempotent; ``seller_id`` limits it to one seller; an expired
  lot is never spent even before the job has run;
- revocation: goodwill/promotional only (refund and bonus credit: 409), only what remains,
  Dr 2300 / Cr 6300; a refused revocation writes nothing;
- refunding a purchase paid with store credit puts the amount back into the lots it came from
  (kind and expiry kept), also over several partial refunds;
- a balance from before lots existed is adopted as one refund lot without expiry;
- the statement: opening balance, the period's rows with running balance, closing balance.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from payback import db
from payback.access.tables import sellers
from payback.actor import Actor
from payback.customers.service import create_customer
from payback.errors import InsufficientStoreCredit, NotFound, ValidationFailed
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.ledger.tables import journal_entries
from payback.outbox.tables import outbox_events
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.store_credit import domain
from payback.store_credit import service as sc
from payback.store_credit.tables import lots, wallet_transactions, wallets

AGENT = Actor("usr_agent", "staff", "agent")
ADMIN = Actor("usr_admin", "staff", "admin")
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
VAT = Decimal("0.20")
CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}


# ---------------------------------------------------------------------------------- helpers


def assert_books(engine, currency: str = "EUR") -> None:
    """Every invariant of store credit and the books, for every wallet in ``currency``."""
    with db.read(engine) as conn:
        totals = trial_balance(conn, currency)["totals"]
        assert len(totals) == 1 and totals[0]["balanced"], totals
        all_wallets = conn.execute(select(wallets).where(wallets.c.currency == currency)).all()
        for w in all_wallets:
            txns = conn.execute(select(wallet_transactions)
                                .where(wallet_transactions.c.wallet_id == w.id)
                                .order_by(wallet_transactions.c.id)).all()
            remaining = conn.execute(select(func.coalesce(func.sum(lots.c.remaining_minor), 0))
                                     .where(lots.c.wallet_id == w.id)).scalar_one()
            assert w.balance_minor >= 0
            assert w.balance_minor == sum(t.amount_minor for t in txns) == remaining
            running = 0
            for t in txns:
                running += t.amount_minor
                assert t.balance_after_minor == running >= 0, t
                assert t.lot_id is not None, t
        liability = sum(w.balance_minor for w in all_wallets)
        assert account_balance(conn, ledger.STORE_CREDIT, currency) == liability


def customer(engine, clock, name: str = "Grace", seller_id: str = "sel_default") -> str:
    with db.write(engine) as conn:
        return create_customer(conn, clock, name=name, seller_id=seller_id)["id"]


def invoice(conn, clock, customer_id: str, gross: int, seller_id: str = "sel_default") -> dict:
    """A one-line tax-inclusive (20 %) EUR invoice of ``gross``."""
    return create_invoice(conn, clock, customer_id=customer_id, currency="EUR",
                          tax_mode="inclusive", lines=[LineInput("Item", 1, gross, VAT)],
                          seller_id=seller_id)


def refund_credit(engine, clock, customer_id: str, gross: int) -> dict:
    """A card-paid invoice of ``gross`` refunded in full to store credit (with consent)."""
    with db.write(engine) as conn:
        inv = invoice(conn, clock, customer_id, gross)
        record_payment(conn, clock, inv["id"], method="card", amount_minor=gross,
                       currency="EUR", card=CARD)
        return refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="full", method="store_credit", reason="requested_by_customer",
            consent_to_other_method=True), actor=AGENT)


def give(engine, clock, customer_id: str, kind: str, amount: int,
         expires_at: datetime | None = None, memo: str = "sorry for the delay") -> dict:
    with db.write(engine) as conn:
        return sc.grant_credit(conn, clock, customer_id=customer_id, kind=kind,
                               amount_minor=amount, currency="EUR", memo=memo, actor=AGENT,
                               expires_at=expires_at)


def pay_with_credit(engine, clock, customer_id: str, gross: int) -> dict:
    with db.write(engine) as conn:
        inv = invoice(conn, clock, customer_id, gross)
        return record_payment(conn, clock, inv["id"], method="store_credit", amount_minor=gross,
                              currency="EUR")


def wallet(engine, customer_id: str) -> dict:
    with db.read(engine) as conn:
        return sc.get_wallet(conn, customer_id, "EUR")


def rows(w: dict) -> list[tuple]:
    return [(t["kind"], t["amount_minor"], t["balance_after_minor"], t["lot_id"])
            for t in w["transactions"]]


def remaining(w: dict) -> dict[str, int]:
    return {lot["id"]: lot["remaining_minor"] for lot in w["lots"]}


def balance(engine, account) -> int:
    with db.read(engine) as conn:
        return account_balance(conn, account, "EUR")


def count(engine, table, *where) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def set_policy(engine, clock, extends: str, **store_credit) -> None:
    data = {"extends": extends, "id": f"shop-{extends.lower()}", "version": "2026-01-01",
            "store_credit": store_credit}
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", data=data, actor=ADMIN)


def other_seller(engine) -> str:
    with db.write(engine) as conn:
        conn.execute(insert(sellers).values(id="sel_other", name="Other shop", created_at=T0))
    return "sel_other"


# ------------------------------------------------------------------ refund and bonus lots


def test_refund_to_store_credit_is_a_refund_lot_plus_a_bonus_lot_expiring_per_policy(
        engine, clock):
    set_policy(engine, clock, "US-FED", bonus_percent=10, expiry_days=365)
    cus = customer(engine, clock)
    r = refund_credit(engine, clock, cus, 10000)
    assert (r["status"], r["amount_minor"], r["bonus_minor"]) == ("succeeded", 10000, 1000)
    w = wallet(engine, cus)
    refund_lot, bonus_lot = w["lots"]
    one_year = datetime(2027, 1, 15, 10, 0, tzinfo=timezone.utc)
    assert (refund_lot["kind"], refund_lot["amount_minor"], refund_lot["remaining_minor"],
            refund_lot["expires_at"], refund_lot["refund_id"]) == (
        "refund", 10000, 10000, one_year, r["id"])
    assert (bonus_lot["kind"], bonus_lot["amount_minor"], bonus_lot["expires_at"],
            bonus_lot["refund_id"]) == ("bonus", 1000, one_year, r["id"])
    assert rows(w) == [("refund", 10000, 10000, refund_lot["id"]),
                       ("bonus", 1000, 11000, bonus_lot["id"])]
    assert [t["refund_id"] for t in w["transactions"]] == [r["id"], r["id"]]
    # The bonus is a cost; the liability is what the customer can spend.
    assert balance(engine, ledger.STORE_CREDIT_INCENTIVES) == 1000
    assert balance(engine, ledger.STORE_CREDIT) == 11000
    with db.read(engine) as conn:
        event = conn.execute(select(outbox_events.c.payload).where(
            outbox_events.c.topic == "store_credit.granted")).scalar_one()
    assert (event["amount_minor"], event["bonus_minor"], event["lot_ids"],
            event["expires_at"]) == (11000, 1000, [refund_lot["id"], bonus_lot["id"]],
                                     "2027-01-15T10:00:00+00:00")
    assert_books(engine)


@pytest.mark.parametrize("extends", [None, "US-CA"], ids=["no-policy", "US-CA"])
def test_refund_credit_never_expires_where_the_policy_gives_no_expiry(engine, clock, extends):
    if extends:
        set_policy(engine, clock, extends, bonus_percent=5)
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 8000)
    w = wallet(engine, cus)
    expected = [("refund", 8000), ("bonus", 400)] if extends else [("refund", 8000)]
    assert [(lot["kind"], lot["amount_minor"]) for lot in w["lots"]] == expected
    assert {lot["expires_at"] for lot in w["lots"]} == {None}
    with db.write(engine) as conn:   # twenty years on, nothing is due
        assert sc.expire_due(conn, clock, now=T0 + timedelta(days=7305))["count"] == 0
    assert wallet(engine, cus)["balance_minor"] == sum(n for _, n in expected)
    assert_books(engine)


# ------------------------------------------------------------------------- staff grants


def test_staff_grant_is_a_cost_with_its_own_lot_memo_and_event(engine, clock):
    cus = customer(engine, clock)
    expires = T0 + timedelta(days=90)
    lot = give(engine, clock, cus, "goodwill", 2500, expires, memo="  parcel arrived late ")
    assert (lot["kind"], lot["amount_minor"], lot["remaining_minor"], lot["expires_at"],
            lot["customer_id"], lot["currency"]) == ("goodwill", 2500, 2500, expires, cus, "EUR")
    w = wallet(engine, cus)
    assert rows(w) == [("goodwill", 2500, 2500, lot["id"])]
    assert w["transactions"][0]["memo"] == "parcel arrived late"
    assert balance(engine, ledger.STORE_CREDIT_INCENTIVES) == 2500   # Dr 6300
    assert balance(engine, ledger.STORE_CREDIT) == 2500              # Cr 2300
    assert balance(engine, ledger.SALES_RETURNS) == 0                # not a reversal of a sale
    with db.read(engine) as conn:
        event = conn.execute(select(outbox_events.c.payload).where(
            outbox_events.c.topic == "store_credit.granted")).scalar_one()
    assert (event["kind"], event["amount_minor"], event["granted_by"], event["lot_id"]) == (
        "goodwill", 2500, "usr_agent", lot["id"])
    assert_books(engine)


def test_staff_grant_refusals_write_nothing(engine, clock):
    cus = customer(engine, clock)
    stranger = customer(engine, clock, "Stranger", other_seller(engine))
    with db.write(engine) as conn, pytest.raises(NotFound):
        sc.grant_credit(conn, clock, customer_id=stranger, kind="goodwill", amount_minor=100,
                        currency="EUR", memo="x", actor=AGENT, seller_id="sel_default")
    for kind, expires in (("refund", None), ("promotional", T0 - timedelta(seconds=1))):
        with db.write(engine) as conn, pytest.raises(ValidationFailed):
            sc.grant_credit(conn, clock, customer_id=cus, kind=kind, amount_minor=100,
                            currency="EUR", memo="x", actor=AGENT, expires_at=expires)
    assert count(engine, wallets) == count(engine, lots) == count(engine, journal_entries) == 0


# ------------------------------------------------------------------------------ spending


def test_spend_draws_earliest_expiry_first_one_row_per_lot(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 5000)                          # no expiry
    goodwill = give(engine, clock, cus, "goodwill", 1000, T0 + timedelta(days=30))
    promo = give(engine, clock, cus, "promotional", 2000, T0 + timedelta(days=10))
    refund_lot = wallet(engine, cus)["lots"][0]["id"]
    pay = pay_with_credit(engine, clock, cus, 3500)
    w = wallet(engine, cus)
    assert rows(w)[3:] == [("spend", -2000, 6000, promo["id"]),
                           ("spend", -1000, 5000, goodwill["id"]),
                           ("spend", -500, 4500, refund_lot)]
    assert {t["payment_id"] for t in w["transactions"][3:]} == {pay["id"]}
    assert remaining(w) == {refund_lot: 4500, goodwill["id"]: 0, promo["id"]: 0}
    assert balance(engine, ledger.STORE_CREDIT) == 4500
    assert_books(engine)


def test_an_expired_lot_is_never_spent_even_before_the_job_runs(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 1000)
    promo = give(engine, clock, cus, "promotional", 2000, T0 + timedelta(days=1))
    clock.advance(days=2)
    with pytest.raises(InsufficientStoreCredit) as err:
        pay_with_credit(engine, clock, cus, 1500)
    assert err.value.extra["balance_minor"] == 1000
    # Rolled back: the balance still shows the unexpired-by-the-job promotion.
    assert wallet(engine, cus)["balance_minor"] == 3000
    assert balance(engine, ledger.BREAKAGE) == 0
    pay_with_credit(engine, clock, cus, 1000)
    w = wallet(engine, cus)
    assert [(k, a, b) for k, a, b, _ in rows(w)] == [
        ("refund", 1000, 1000), ("promotional", 2000, 3000), ("expiry", -2000, 1000),
        ("spend", -1000, 0)]
    assert rows(w)[2][3] == promo["id"]
    assert balance(engine, ledger.BREAKAGE) == 2000
    assert_books(engine)


def test_a_balance_from_before_lots_existed_is_adopted_as_a_refund_lot(engine, clock):
    cus = customer(engine, clock)
    with db.write(engine) as conn:   # what migration 0003 found: a wallet, no lots
        conn.execute(insert(wallets).values(id="wal_legacy", customer_id=cus, currency="EUR",
                                            balance_minor=700, created_at=T0 - timedelta(days=400),
                                            seller_id="sel_default"))
        conn.execute(insert(wallet_transactions).values(
            id="wtx_" + "0" * 26, wallet_id="wal_legacy", kind="refund", amount_minor=700,
            balance_after_minor=700, created_at=T0 - timedelta(days=400)))
    pay_with_credit(engine, clock, cus, 300)
    w = wallet(engine, cus)
    (adopted,) = w["lots"]
    assert (adopted["kind"], adopted["amount_minor"], adopted["remaining_minor"],
            adopted["expires_at"]) == ("refund", 700, 400, None)
    assert rows(w)[1] == ("spend", -300, 400, adopted["id"])


# ---------------------------------------------------------------------------------- expiry


def test_expiry_posts_breakage_and_running_it_again_does_nothing(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 4000)
    goodwill = give(engine, clock, cus, "goodwill", 1500, T0 + timedelta(days=7))
    promo = give(engine, clock, cus, "promotional", 800, T0 + timedelta(days=30))
    pay_with_credit(engine, clock, cus, 500)                      # from the goodwill lot
    assert_books(engine)
    clock.advance(days=7)                                         # exactly the expiry instant
    with db.write(engine) as conn:
        first = sc.expire_due(conn, clock)
    assert (first["count"], first["totals"]) == (1, [{"currency": "EUR", "amount_minor": 1000}])
    assert first["lots"][0]["lot_id"] == goodwill["id"]
    w = wallet(engine, cus)
    assert rows(w)[-1] == ("expiry", -1000, 4800, goodwill["id"])
    lot = next(x for x in w["lots"] if x["id"] == goodwill["id"])
    assert (lot["remaining_minor"], lot["closed_at"]) == (0, clock.now())
    assert balance(engine, ledger.BREAKAGE) == 1000
    assert balance(engine, ledger.STORE_CREDIT) == 4800
    before = (count(engine, journal_entries), count(engine, wallet_transactions),
              count(engine, outbox_events))
    with db.write(engine) as conn:
        assert sc.expire_due(conn, clock)["count"] == 0
    assert (count(engine, journal_entries), count(engine, wallet_transactions),
            count(engine, outbox_events)) == before
    assert count(engine, outbox_events, outbox_events.c.topic == "store_credit.expired") == 1
    clock.advance(days=30)
    with db.write(engine) as conn:
        assert sc.expire_due(conn, clock)["lots"][0]["lot_id"] == promo["id"]
    assert balance(engine, ledger.BREAKAGE) == 1800
    assert wallet(engine, cus)["balance_minor"] == 4000               # the refund credit stays
    assert_books(engine)


def test_expiry_for_one_seller_leaves_the_others(engine, clock):
    mine = customer(engine, clock)
    theirs = customer(engine, clock, "Other", other_seller(engine))
    give(engine, clock, mine, "promotional", 300, T0 + timedelta(days=1))
    with db.write(engine) as conn:
        sc.grant_credit(conn, clock, customer_id=theirs, kind="promotional", amount_minor=700,
                        currency="EUR", memo="launch", actor=AGENT, seller_id="sel_other",
                        expires_at=T0 + timedelta(days=1))
    later = T0 + timedelta(days=2)
    with db.write(engine) as conn:
        done = sc.expire_due(conn, clock, seller_id="sel_other", now=later)
    assert [(x["customer_id"], x["amount_minor"]) for x in done["lots"]] == [(theirs, 700)]
    assert wallet(engine, mine)["balance_minor"] == 300
    with db.write(engine) as conn:
        assert sc.expire_due(conn, clock, now=later)["totals"] == [
            {"currency": "EUR", "amount_minor": 300}]
    assert balance(engine, ledger.BREAKAGE) == 1000
    assert_books(engine)


# ------------------------------------------------------------------------------ revocation


def test_revocation_takes_back_what_remains_of_goodwill_and_reverses_the_cost(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 2000)
    goodwill = give(engine, clock, cus, "goodwill", 3000, T0 + timedelta(days=60))
    pay_with_credit(engine, clock, cus, 1200)                     # from goodwill (expires first)
    with db.write(engine) as conn:
        lot = sc.revoke_lot(conn, clock, goodwill["id"], reason=" granted by mistake ",
                            actor=ADMIN, seller_id="sel_default")
    assert (lot["remaining_minor"], lot["closed_at"]) == (0, clock.now())
    w = wallet(engine, cus)
    assert rows(w)[-1] == ("revocation", -1800, 2000, goodwill["id"])
    assert w["transactions"][-1]["memo"] == "granted by mistake"
    assert balance(engine, ledger.STORE_CREDIT_INCENTIVES) == 3000 - 1800
    assert balance(engine, ledger.STORE_CREDIT) == 2000
    with db.read(engine) as conn:
        event = conn.execute(select(outbox_events.c.payload).where(
            outbox_events.c.topic == "store_credit.revoked")).scalar_one()
    assert (event["amount_minor"], event["revoked_by"]) == (1800, "usr_admin")
    assert_books(engine)


def test_refused_revocations_write_nothing(engine, clock):
    set_policy(engine, clock, "US-FED", bonus_percent=10)
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 2000)
    promo = give(engine, clock, cus, "promotional", 500)
    refund_lot, bonus_lot = wallet(engine, cus)["lots"][:2]
    with db.write(engine) as conn:
        sc.revoke_lot(conn, clock, promo["id"], reason="campaign ended", actor=ADMIN)
    before = (count(engine, journal_entries), count(engine, wallet_transactions))
    for lot_id, error in ((refund_lot["id"], domain.LotNotRevocable),
                          (bonus_lot["id"], domain.LotNotRevocable),
                          (promo["id"], domain.NothingToRevoke)):
        with db.write(engine) as conn, pytest.raises(error) as err:
            sc.revoke_lot(conn, clock, lot_id, reason="x", actor=ADMIN)
        assert err.value.status == 409
    with db.write(engine) as conn, pytest.raises(NotFound):
        sc.revoke_lot(conn, clock, promo["id"], reason="x", actor=ADMIN, seller_id="sel_x")
    assert (count(engine, journal_entries), count(engine, wallet_transactions)) == before
    assert wallet(engine, cus)["balance_minor"] == 2200
    assert_books(engine)


# ------------------------------------------------------ refund of a store-credit purchase


def test_refunding_a_store_credit_purchase_puts_it_back_into_its_lots(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 5000)
    promo = give(engine, clock, cus, "promotional", 2000, T0 + timedelta(days=30))
    refund_lot = wallet(engine, cus)["lots"][0]["id"]
    pay = pay_with_credit(engine, clock, cus, 3000)              # promo 2000, refund lot 1000
    assert remaining(wallet(engine, cus)) == {refund_lot: 4000, promo["id"]: 0}
    for amount, expected in ((1500, {refund_lot: 5000, promo["id"]: 500}),
                             (1500, {refund_lot: 5000, promo["id"]: 2000})):
        with db.write(engine) as conn:
            r = refunds.create_refund(conn, clock, pay["invoice_id"], RefundRequest(
                kind="amount", method="original_payment", reason="requested_by_customer",
                amount_minor=amount), actor=AGENT)
        assert r["status"] == "succeeded"
        assert remaining(wallet(engine, cus)) == expected
        assert_books(engine)
    w = wallet(engine, cus)
    assert rows(w)[-3:] == [("refund", 1000, 5000, refund_lot), ("refund", 500, 5500, promo["id"]),
                            ("refund", 1500, 7000, promo["id"])]
    assert len(w["lots"]) == 2                                    # no new refund credit made
    promo_lot = next(x for x in w["lots"] if x["id"] == promo["id"])
    assert (promo_lot["kind"], promo_lot["expires_at"]) == ("promotional", promo["expires_at"])


# ------------------------------------------------------------------------------- statement


def test_statement_opening_running_and_closing_balances(engine, clock):
    cus = customer(engine, clock)
    refund_credit(engine, clock, cus, 5000)                       # 15 Jan
    clock.advance(days=5)
    pay_with_credit(engine, clock, cus, 1200)                     # 20 Jan
    clock.advance(days=13)
    give(engine, clock, cus, "goodwill", 1000, clock.now() + timedelta(days=1))   # 2 Feb
    clock.advance(days=2)
    with db.write(engine) as conn:
        sc.expire_due(conn, clock)                                # 4 Feb: goodwill expires
    with db.read(engine) as conn:
        january = sc.statement(conn, cus, "eur", date_from=date(2026, 1, 20),
                               date_to=date(2026, 2, 1))
        whole = sc.statement(conn, cus, "EUR")
        tail = sc.statement(conn, cus, "EUR", date_from=date(2026, 2, 1))
        stored = {t["id"]: t["balance_after_minor"]
                  for t in sc.get_wallet(conn, cus, "EUR")["transactions"]}
    assert (january["opening_balance_minor"], january["closing_balance_minor"]) == (5000, 3800)
    assert [(t["kind"], t["amount_minor"], t["balance_minor"], t["lot_kind"])
            for t in january["transactions"]] == [("spend", -1200, 3800, "refund")]
    assert [(t["kind"], t["amount_minor"], t["balance_minor"]) for t in whole["transactions"]] == [
        ("refund", 5000, 5000), ("spend", -1200, 3800), ("goodwill", 1000, 4800),
        ("expiry", -1000, 3800)]
    assert (whole["opening_balance_minor"], whole["closing_balance_minor"]) == (0, 3800)
    assert whole["totals_by_kind"] == {"expiry": -1000, "goodwill": 1000, "refund": 5000,
                                       "spend": -1200}
    assert all(t["balance_minor"] == stored[t["id"]] for t in whole["transactions"])
    assert (tail["opening_balance_minor"], tail["closing_balance_minor"],
            len(tail["transactions"])) == (3800, 3800, 2)
    with db.read(engine) as conn:
        with pytest.raises(ValidationFailed):
            sc.statement(conn, cus, "EUR", date_from=date(2026, 2, 1), date_to=date(2026, 2, 1))
        with pytest.raises(NotFound):
            sc.statement(conn, cus, "USD")


# ------------------------------------------------------------------------------------- CLI


def test_cli_expire_job_and_statement(engine, db_url):
    """``payback store-credit expire`` (the scheduled job, on the system clock) and
    ``payback store-credit statement``; the second expiry run finds nothing."""
    from typer.testing import CliRunner

    from payback.audit.tables import audit_records
    from payback.cli import app
    from payback.clock import FixedClock

    def run(*args: str):
        result = CliRunner().invoke(app, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                          "COLUMNS": "220"})
        assert result.exit_code == 0, result.output
        return result.output

    past = FixedClock(datetime(2000, 1, 1, tzinfo=timezone.utc))   # long expired by now
    cus = customer(engine, past)
    give(engine, past, cus, "promotional", 1234, datetime(2000, 2, 1, tzinfo=timezone.utc))
    give(engine, past, cus, "goodwill", 500)
    assert run("store-credit", "expire") == (
        "Expired 1 store-credit lot(s): €12.34 to breakage income.\n")
    assert run("store-credit", "expire") == "No store credit is due to expire.\n"
    assert balance(engine, ledger.BREAKAGE) == 1234
    assert count(engine, audit_records, audit_records.c.action == "cli.store_credit.expire") == 1
    text = run("store-credit", "statement", cus, "--currency", "EUR")
    for needle in ("opening balance", "promotional", "expiry", "-€12.34", "closing balance",
                   "€5.00"):
        assert needle in text, text

    data = json.loads(run("store-credit", "statement", cus, "--currency", "EUR", "--json",
                          "--from", "2000-01-01", "--to", "2000-01-02"))
    assert (data["opening_balance_minor"], data["closing_balance_minor"]) == (0, 1734)
    assert [(t["kind"], t["balance_minor"]) for t in data["transactions"]] == [
        ("promotional", 1234), ("goodwill", 1734)]
    assert_books(engine)
