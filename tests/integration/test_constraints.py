"""The database refuses, on SQLite and on PostgreSQL, rows that break Payback's rules even when
they are written directly, past every check in the application.

Each case inserts one row that is valid except for one field and expects an ``IntegrityError``
with nothing written; a positive control inserts the same row unchanged and expects it to land,
so a case fails for the reason it names and not because the base row was broken.

Covered: negative and zero amounts; totals that are not net + tax (invoices, lines, refunds,
refund lines); unknown statuses, methods, kinds, destinations, tax modes and account types;
line counters refunded beyond the line; one-sided postings; a duplicate invoice number; a second
wallet for the same customer and currency; a duplicate idempotency key; foreign keys to missing
rows.

Left to ``test_migrations.py`` (not repeated here): a payment refunded beyond its amount, a
negative wallet balance, unbalanced journal entries and the append-only ledger (PostgreSQL
triggers).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, Table, exc, func, insert, select

from payback.api.tables import idempotency_keys
from payback.customers.tables import customers
from payback.invoicing.tables import invoice_lines, invoices, number_series
from payback.ledger.tables import accounts, journal_entries, postings
from payback.payments.tables import payments
from payback.refunds.tables import refund_lines, refund_tenders, refunds
from payback.store_credit.tables import wallet_transactions, wallets

TABLES: dict[str, Table] = {t.name: t for t in (
    customers, invoices, invoice_lines, payments, refunds, refund_lines, refund_tenders,
    wallets, wallet_transactions, journal_entries, postings, accounts, number_series,
    idempotency_keys)}


def _base_rows(now: datetime) -> list[tuple[Table, list[dict]]]:
    """A small consistent world: invoice 10.00 + 2.00 tax paid by card, 3.00 of it refunded to
    store credit, with its journal entry. Parents before children."""
    return [
        (customers, [{"id": "cus_1", "name": "Ada", "created_at": now}]),
        (invoices, [{"id": "inv_1", "number": "INV-1", "customer_id": "cus_1", "currency": "EUR",
                     "tax_mode": "exclusive", "discount_minor": 0, "subtotal_minor": 1000,
                     "net_minor": 1000, "tax_minor": 200, "total_minor": 1200,
                     "issued_at": now}]),
        (invoice_lines, [_line("il_1", now)]),
        (wallets, [{"id": "wal_1", "customer_id": "cus_1", "currency": "EUR",
                    "balance_minor": 300, "created_at": now}]),
        (payments, [_payment("pay_1", now)]),
        (refunds, [_refund("re_1", now)]),
        (refund_lines, [_refund_line("rl_1")]),
        (refund_tenders, [{"refund_id": "re_1", "payment_id": "pay_1",
                           "destination": "store_credit", "amount_minor": 300}]),
        (wallet_transactions, [_wallet_txn("wtx_1", now)]),
        (journal_entries, [{"id": "je_1", "event_type": "test", "object_id": "re_1",
                            "posted_at": now}]),
        (postings, _balanced_postings()),
        (number_series, [{"series": "invoice:INV", "last_number": 1}]),
        (idempotency_keys, [{"scope": "POST /v1/refunds", "key": "k1", "fingerprint": "f" * 64,
                             "state": "done", "status_code": 201, "created_at": now}]),
    ]


def _line(line_id: str, now: datetime) -> dict:
    return {"id": line_id, "invoice_id": "inv_1", "position": 0, "kind": "item",
            "description": "Widget", "quantity": 2, "unit_price_minor": 500,
            "line_discount_minor": 0, "invoice_discount_minor": 0, "tax_rate": Decimal("0.2"),
            "net_minor": 1000, "tax_minor": 200, "gross_minor": 1200, "refunded_quantity": 0,
            "refunded_gross_minor": 300, "refunded_tax_minor": 50}


def _payment(payment_id: str, now: datetime) -> dict:
    return {"id": payment_id, "invoice_id": "inv_1", "method": "card", "amount_minor": 1200,
            "refunded_minor": 300, "currency": "EUR", "card_token": "tok_1",
            "card_brand": "visa", "card_last4": "4242", "captured_at": now}


def _refund(refund_id: str, now: datetime) -> dict:
    return {"id": refund_id, "invoice_id": "inv_1", "customer_id": "cus_1",
            "status": "succeeded", "kind": "amount", "method": "store_credit",
            "reason": "goodwill", "currency": "EUR", "amount_minor": 300, "net_minor": 250,
            "tax_minor": 50, "created_at": now, "settled_at": now}


def _refund_line(line_id: str) -> dict:
    return {"id": line_id, "refund_id": "re_1", "invoice_line_id": "il_1", "quantity": 0,
            "gross_minor": 300, "net_minor": 250, "tax_minor": 50, "discount_minor": 0}


def _wallet_txn(txn_id: str, now: datetime) -> dict:
    return {"id": txn_id, "wallet_id": "wal_1", "kind": "refund", "amount_minor": 300,
            "balance_after_minor": 300, "refund_id": "re_1", "created_at": now}


def _balanced_postings() -> list[dict]:
    return [{"entry_id": "je_1", "account_code": "4100", "currency": "EUR", "debit_minor": 250,
             "credit_minor": 0},
            {"entry_id": "je_1", "account_code": "2100", "currency": "EUR", "debit_minor": 50,
             "credit_minor": 0},
            {"entry_id": "je_1", "account_code": "2300", "currency": "EUR", "debit_minor": 0,
             "credit_minor": 300}]


def _fresh_rows(table: str, now: datetime) -> list[dict]:
    """A second valid row for ``table`` (the case's override goes into the first dict)."""
    return {
        "customers": lambda: [{"id": "cus_2", "name": "Grace", "created_at": now}],
        "invoices": lambda: [{"id": "inv_2", "number": "INV-2", "customer_id": "cus_1",
                              "currency": "EUR", "tax_mode": "inclusive", "discount_minor": 100,
                              "subtotal_minor": 1300, "net_minor": 1000, "tax_minor": 200,
                              "total_minor": 1200, "issued_at": now}],
        "invoice_lines": lambda: [_line("il_2", now)],
        "payments": lambda: [{**_payment("pay_2", now), "refunded_minor": 0}],
        "refunds": lambda: [_refund("re_2", now)],
        "refund_lines": lambda: [_refund_line("rl_2")],
        "refund_tenders": lambda: [{"refund_id": "re_1", "payment_id": "pay_1",
                                    "destination": "original_payment", "amount_minor": 1}],
        "store_credit_wallets": lambda: [{"id": "wal_2", "customer_id": "cus_1",
                                          "currency": "USD", "balance_minor": 0,
                                          "created_at": now}],
        "store_credit_transactions": lambda: [_wallet_txn("wtx_2", now)],
        "journal_entries": lambda: [{"id": "je_2", "event_type": "test", "object_id": "x",
                                     "posted_at": now}],
        # Two legs, so the entry still balances at commit on PostgreSQL.
        "postings": lambda: [{"entry_id": "je_1", "account_code": "1000", "currency": "EUR",
                              "debit_minor": 5, "credit_minor": 0},
                             {"entry_id": "je_1", "account_code": "4000", "currency": "EUR",
                              "debit_minor": 0, "credit_minor": 5}],
        "accounts": lambda: [{"code": "9999", "name": "Suspense", "type": "equity"}],
        "number_series": lambda: [{"series": "credit_note:CN", "last_number": 0}],
        "idempotency_keys": lambda: [{"scope": "POST /v1/refunds", "key": "k2",
                                      "fingerprint": "f" * 64, "state": "in_flight",
                                      "created_at": now}],
    }[table]()


@pytest.fixture
def world(engine: Engine, clock) -> Engine:
    with engine.begin() as conn:
        for table, rows in _base_rows(clock.now()):
            conn.execute(insert(table), rows)
    return engine


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_valid_row_is_accepted(world: Engine, clock, table: str) -> None:
    """Positive control: every refusal below is caused by its one override."""
    before = _count(world, TABLES[table])
    rows = _fresh_rows(table, clock.now())
    if table == "accounts":
        # The chart of accounts survives between tests (seeded by the migration): roll back.
        with world.connect() as conn, conn.begin() as tx:
            conn.execute(insert(accounts), rows)
            assert conn.execute(select(func.count()).select_from(accounts)).scalar_one() \
                == before + 1
            tx.rollback()
        return
    with world.begin() as conn:
        conn.execute(insert(TABLES[table]), rows)
    assert _count(world, TABLES[table]) == before + len(rows)


#: Each case: (table, override, id, reason). ``reason`` is the name of the CHECK constraint that
#: must refuse the row (without its ``ck_<table>_`` prefix; both databases name it), or how both
#: databases word a foreign-key or uniqueness refusal (SQLite names neither constraint).
FOREIGN_KEY = r"(?i)foreign key constraint"
UNIQUE = r"(?i)unique constraint"

CASES = [
    # --- negative or zero amounts
    ("invoices", {"discount_minor": -1}, "invoice-negative-discount", "amounts_non_negative"),
    ("invoices", {"net_minor": -100, "tax_minor": 100, "total_minor": 0},
     "invoice-negative-net", "amounts_non_negative"),
    ("invoice_lines", {"unit_price_minor": -500}, "line-negative-price", "amounts_non_negative"),
    ("invoice_lines", {"quantity": 0}, "line-zero-quantity", "quantity_positive"),
    ("invoice_lines", {"tax_rate": Decimal("-0.01")},
     "line-negative-tax-rate", "tax_rate_non_negative"),
    ("payments", {"amount_minor": 0}, "payment-zero", "amount_positive"),
    # A negative amount also makes refunded (0) exceed it: either CHECK may be the one named.
    ("payments", {"amount_minor": -1200}, "payment-negative",
     "(amount_positive|refunded_within_amount)"),
    ("payments", {"refunded_minor": -1}, "payment-negative-refunded", "refunded_within_amount"),
    ("refunds", {"amount_minor": 0, "net_minor": 0, "tax_minor": 0},
     "refund-zero", "amount_positive"),
    ("refunds", {"amount_minor": 300, "net_minor": 350, "tax_minor": -50},
     "refund-negative-tax", "parts_non_negative"),
    ("refund_lines", {"quantity": -1}, "refund-line-negative-quantity", "non_negative"),
    ("refund_lines", {"discount_minor": -1}, "refund-line-negative-discount", "non_negative"),
    ("refund_tenders", {"amount_minor": 0}, "tender-zero", "amount_positive"),
    ("store_credit_transactions", {"amount_minor": 0}, "wallet-txn-zero", "amount_non_zero"),
    ("store_credit_transactions", {"balance_after_minor": -1},
     "wallet-txn-negative-after", "balance_after_non_negative"),
    ("postings", {"debit_minor": -5, "credit_minor": 0}, "posting-negative", "one_sided_positive"),
    ("postings", {"debit_minor": 0, "credit_minor": 0}, "posting-zero", "one_sided_positive"),
    ("postings", {"debit_minor": 5, "credit_minor": 5}, "posting-two-sided", "one_sided_positive"),
    ("number_series", {"last_number": -1}, "series-negative", "last_number_non_negative"),
    # --- totals that are not net + tax
    ("invoices", {"total_minor": 1201}, "invoice-total-not-net-plus-tax", "total_is_net_plus_tax"),
    ("invoice_lines", {"gross_minor": 1199},
     "line-gross-not-net-plus-tax", "gross_is_net_plus_tax"),
    ("refunds", {"amount_minor": 301}, "refund-amount-not-net-plus-tax", "amount_is_net_plus_tax"),
    ("refunds", {"net_minor": 249}, "refund-net-short", "amount_is_net_plus_tax"),
    ("refund_lines", {"gross_minor": 301},
     "refund-line-gross-not-net-plus-tax", "gross_is_net_plus_tax"),
    # --- unknown status, method, kind, destination, mode, type
    ("refunds", {"status": "done"}, "refund-status", "status_known"),
    ("refunds", {"method": "cash"}, "refund-method", "method_known"),
    ("refunds", {"kind": "partial"}, "refund-kind", "kind_known"),
    ("payments", {"method": "bitcoin"}, "payment-method", "method_known"),
    ("payments", {"method": "store_credit", "wallet_id": None},
     "store-credit-without-wallet", "store_credit_has_wallet"),
    ("invoices", {"tax_mode": "mixed"}, "invoice-tax-mode", "tax_mode_known"),
    ("invoice_lines", {"kind": "fee"}, "line-kind", "kind_known"),
    ("refund_tenders", {"destination": "bank"}, "tender-destination", "destination_known"),
    ("store_credit_transactions", {"kind": "gift"}, "wallet-txn-kind", "kind_known"),
    ("accounts", {"type": "revenue"}, "account-type", "type_known"),
    # --- line guard counters beyond the line
    ("invoice_lines", {"refunded_quantity": 3},
     "line-refunded-quantity-beyond", "refunded_quantity_within_line"),
    ("invoice_lines", {"refunded_quantity": -1},
     "line-refunded-quantity-negative", "refunded_quantity_within_line"),
    ("invoice_lines", {"refunded_gross_minor": 1201},
     "line-refunded-gross-beyond", "refunded_gross_within_line"),
    ("invoice_lines", {"refunded_tax_minor": 201},
     "line-refunded-tax-beyond", "refunded_tax_within_line"),
    # --- uniqueness
    ("invoices", {"number": "INV-1"}, "duplicate-invoice-number", UNIQUE),
    ("store_credit_wallets", {"currency": "EUR"}, "second-wallet-same-currency", UNIQUE),
    ("idempotency_keys", {"key": "k1"}, "duplicate-idempotency-key", UNIQUE),
    ("customers", {"id": "cus_1"}, "duplicate-primary-key", UNIQUE),
    ("accounts", {"code": "9999", "name": "Revenue"}, "duplicate-account-name", UNIQUE),
    # --- foreign keys to missing rows
    ("payments", {"invoice_id": "inv_missing"}, "payment-missing-invoice", FOREIGN_KEY),
    ("invoice_lines", {"invoice_id": "inv_missing"}, "line-missing-invoice", FOREIGN_KEY),
    ("refunds", {"invoice_id": "inv_missing"}, "refund-missing-invoice", FOREIGN_KEY),
    ("refunds", {"customer_id": "cus_missing"}, "refund-missing-customer", FOREIGN_KEY),
    ("invoices", {"customer_id": "cus_missing"}, "invoice-missing-customer", FOREIGN_KEY),
    ("refund_lines", {"invoice_line_id": "il_missing"},
     "refund-line-missing-invoice-line", FOREIGN_KEY),
    ("refund_lines", {"refund_id": "re_missing"}, "refund-line-missing-refund", FOREIGN_KEY),
    ("refund_tenders", {"payment_id": "pay_missing"}, "tender-missing-payment", FOREIGN_KEY),
    ("payments", {"method": "store_credit", "wallet_id": "wal_missing"},
     "payment-missing-wallet", FOREIGN_KEY),
    ("store_credit_wallets", {"customer_id": "cus_missing"},
     "wallet-missing-customer", FOREIGN_KEY),
    ("store_credit_transactions", {"wallet_id": "wal_missing"},
     "wallet-txn-missing-wallet", FOREIGN_KEY),
    ("store_credit_transactions", {"refund_id": "re_missing"},
     "wallet-txn-missing-refund", FOREIGN_KEY),
    ("postings", {"account_code": "9998"}, "posting-missing-account", FOREIGN_KEY),
    ("postings", {"entry_id": "je_missing"}, "posting-missing-entry", FOREIGN_KEY),
]


@pytest.mark.parametrize(("table", "override", "reason"),
                         [pytest.param(t, o, r, id=i) for t, o, i, r in CASES])
def test_database_refuses_a_rule_breaking_row(world: Engine, clock, table: str, override: dict,
                                              reason: str) -> None:
    rows = _fresh_rows(table, clock.now())
    rows[0] = {**rows[0], **override}
    before = _count(world, TABLES[table])
    with pytest.raises(exc.IntegrityError) as info, world.begin() as conn:
        conn.execute(insert(TABLES[table]), rows)
    if reason not in (FOREIGN_KEY, UNIQUE):
        reason = f"ck_{table}_{reason}"  # the CHECK constraint's full name, alike on both DBs
    assert re.search(reason, str(info.value.orig)), str(info.value.orig)
    assert _count(world, TABLES[table]) == before
