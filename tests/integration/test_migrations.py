"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL,
seed the chart of accounts, and (PostgreSQL) install the ledger guards: balanced entries at
commit, append-only ledger and store-credit history. CHECK constraints hold on both databases.

If ``test_migrated_schema_matches_metadata`` fails, a table changed without a migration: run
``make migration m="what changed"`` and review the generated revision.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, exc, insert, inspect, select, update

from payback.customers.tables import customers
from payback.db.migrate import current_head
from payback.db.schema import metadata
from payback.invoicing.tables import invoices
from payback.ledger import domain
from payback.ledger.tables import accounts, journal_entries, postings
from payback.payments.tables import payments
from payback.store_credit.tables import wallet_transactions, wallets

postgres_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
    indirect=True)


# ------------------------------------------------------------------------- schema and seed


def test_upgrade_creates_every_table(engine: Engine) -> None:
    present = set(inspect(engine).get_table_names())
    assert set(metadata.tables) - present == set()
    assert "alembic_version" in present


def test_database_is_at_head(engine: Engine) -> None:
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == current_head()


def test_migrated_schema_matches_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == [], ("tables changed without a migration (run `make migration m=...`): "
                        f"{diff}")


def test_chart_of_accounts_is_seeded(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = set(conn.execute(select(accounts.c.code, accounts.c.name, accounts.c.type)))
    assert rows == {(a.code, a.name, a.type) for a in domain.CHART}


# ---------------------------------------------------------------------- CHECK constraints


def _customer_and_invoice(conn: Connection, clock) -> None:
    conn.execute(insert(customers), {"id": "cus_1", "name": "Ada", "created_at": clock.now()})
    conn.execute(insert(invoices), {
        "id": "inv_1", "number": "INV-1", "customer_id": "cus_1", "currency": "EUR",
        "tax_mode": "exclusive", "discount_minor": 0, "subtotal_minor": 1000, "net_minor": 1000,
        "tax_minor": 200, "total_minor": 1200, "issued_at": clock.now()})


def _payment(refunded_minor: int, clock) -> dict:
    return {"id": "pay_1", "invoice_id": "inv_1", "method": "card", "amount_minor": 1200,
            "refunded_minor": refunded_minor, "currency": "EUR", "captured_at": clock.now()}


def _wallet(balance_minor: int, clock) -> dict:
    return {"id": "wal_1", "customer_id": "cus_1", "currency": "EUR",
            "balance_minor": balance_minor, "created_at": clock.now()}


def test_payment_cannot_be_refunded_beyond_its_amount(engine: Engine, clock) -> None:
    with engine.begin() as conn:
        _customer_and_invoice(conn, clock)
    with pytest.raises(exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert(payments), _payment(1201, clock))
    with engine.begin() as conn:
        conn.execute(insert(payments), _payment(1200, clock))
    with pytest.raises(exc.IntegrityError), engine.begin() as conn:
        conn.execute(update(payments).values(refunded_minor=payments.c.refunded_minor + 1))


def test_wallet_balance_cannot_go_negative(engine: Engine, clock) -> None:
    with engine.begin() as conn:
        _customer_and_invoice(conn, clock)
    with pytest.raises(exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert(wallets), _wallet(-1, clock))
    with engine.begin() as conn:
        conn.execute(insert(wallets), _wallet(500, clock))
    with pytest.raises(exc.IntegrityError), engine.begin() as conn:
        conn.execute(update(wallets).values(balance_minor=wallets.c.balance_minor - 501))


# ------------------------------------------------------------- PostgreSQL ledger guards


def _entry(conn: Connection, entry_id: str, clock, *legs: tuple[str, str, int, int]) -> None:
    conn.execute(insert(journal_entries), {"id": entry_id, "event_type": "test",
                                           "object_id": "obj_1", "posted_at": clock.now()})
    conn.execute(insert(postings), [
        {"entry_id": entry_id, "account_code": code, "currency": cur, "debit_minor": d,
         "credit_minor": c} for code, cur, d, c in legs])


@postgres_only
@pytest.mark.parametrize("legs", [
    pytest.param([("1000", "EUR", 100, 0)], id="debit-only"),
    pytest.param([("1000", "EUR", 100, 0), ("4000", "USD", 0, 100)], id="across-currencies"),
])
def test_unbalanced_entry_fails_at_commit(engine: Engine, clock, legs) -> None:
    with engine.connect() as conn:
        tx = conn.begin()
        _entry(conn, "je_bad", clock, *legs)  # accepted until COMMIT: the trigger is deferred
        with pytest.raises(exc.IntegrityError, match="does not balance"):
            tx.commit()
    with engine.connect() as conn:
        assert conn.execute(select(journal_entries.c.id)).all() == []


@postgres_only
def test_balanced_entry_commits(engine: Engine, clock) -> None:
    with engine.begin() as conn:
        _entry(conn, "je_ok", clock, ("1200", "EUR", 1200, 0), ("4000", "EUR", 0, 1000),
               ("2100", "EUR", 0, 200), ("1000", "USD", 5, 0), ("4000", "USD", 0, 5))
    with engine.connect() as conn:
        assert conn.execute(select(postings.c.id)).all() != []


@postgres_only
@pytest.mark.parametrize("table", [postings, journal_entries, wallet_transactions],
                         ids=lambda t: t.name)
@pytest.mark.parametrize("change", ["update", "delete"])
def test_ledger_rows_are_append_only(engine: Engine, clock, table, change) -> None:
    with engine.begin() as conn:
        _entry(conn, "je_ok", clock, ("1000", "EUR", 100, 0), ("4000", "EUR", 0, 100))
        _customer_and_invoice(conn, clock)
        conn.execute(insert(wallets), _wallet(100, clock))
        conn.execute(insert(wallet_transactions), {
            "id": "sct_1", "wallet_id": "wal_1", "kind": "refund", "amount_minor": 100,
            "balance_after_minor": 100, "created_at": clock.now()})
    first = list(table.primary_key.columns)[0]
    stmt = table.delete() if change == "delete" else table.update().values({first.name: first})
    with pytest.raises(exc.IntegrityError, match="append-only"), engine.begin() as conn:
        conn.execute(stmt)
