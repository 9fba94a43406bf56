"""The ``payback`` CLI end to end, on SQLite and PostgreSQL (``PAYBACK_DATABASE_URL`` = the
``db_url`` fixture), through ``typer.testing.CliRunner``.

Covers: ``db upgrade`` is idempotent (and builds a fresh file from nothing); ``demo`` seeds what
the issue asks for (≥20 customers, ≥200 invoices in EUR, GBP, USD and JPY, both tax modes,
refunds full / by amount / by lines / to store credit, a refunded shipping line, store-credit
payments), leaves every currency balanced and every wallet equal to the ledger, spreads over the
months, is deterministic across databases for a seed, and ``--if-empty`` adds nothing the second
time; ``report revenue --json`` equals the ledger's account balances and the refund records;
the revenue and trial-balance tables show exact formatted amounts; ``serve`` builds the app from
the environment and prints its URL; a domain error exits 2 with ``error[<code>]`` on stderr, an
unexpected error exits 1.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from payback.cli import app
from payback.customers.service import create_customer
from payback.customers.tables import customers
from payback.db import make_engine, read, write
from payback.db.migrate import current_head, upgrade
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.invoicing.tables import invoice_lines, invoices
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund
from payback.refunds.tables import refund_lines, refund_tenders, refunds
from payback.store_credit.tables import wallets

CURRENCIES = {"EUR", "GBP", "USD", "JPY"}


def run(db_url: str, *args: str):
    """Invoke the CLI as a user would, with the database chosen by the environment."""
    env = {"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "220"}
    return CliRunner().invoke(app, list(args), env=env)


def ok(db_url: str, *args: str):
    result = run(db_url, *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def count(engine, table) -> int:
    with read(engine) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ------------------------------------------------------------------------------ db upgrade


def test_db_upgrade_is_idempotent(db_url, engine):
    first, second = ok(db_url, "db", "upgrade"), ok(db_url, "db", "upgrade")
    for result in (first, second):
        assert f"is at revision {current_head()}" in result.stdout
    with read(engine) as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        chart = conn.exec_driver_sql("SELECT count(*) FROM accounts").scalar_one()
    assert versions == [current_head()]
    assert chart == len(ledger.CHART)  # the seeded chart of accounts is not duplicated


def test_db_upgrade_creates_a_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ok(url, "db", "upgrade")
    eng = make_engine(url)
    try:
        assert count(eng, invoices) == 0
        with read(eng) as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version"
                                        ).scalar_one() == current_head()
    finally:
        eng.dispose()


# ------------------------------------------------------------------------------------ demo


def test_demo_seeds_the_issue_mix_balanced_and_only_once(db_url, engine):
    result = ok(db_url, "demo", "--seed", "1", "--customers", "20", "--invoices", "200")
    assert "Demo seeded" in result.stdout
    assert count(engine, customers) == 20
    assert count(engine, invoices) == 201  # the year's 200 and today's order
    _assert_demo_mix(engine)
    _assert_books_agree(db_url, engine)

    before = {t.name: count(engine, t) for t in (customers, invoices, payments, refunds)}
    again = ok(db_url, "demo", "--if-empty")
    assert "already has 201 invoices" in again.stdout
    assert {t.name: count(engine, t) for t in (customers, invoices, payments, refunds)} == before


def _assert_demo_mix(engine) -> None:
    with read(engine) as conn:
        currencies = set(conn.execute(select(invoices.c.currency).distinct()).scalars())
        modes = set(conn.execute(select(invoices.c.tax_mode).distinct()).scalars())
        kinds = set(conn.execute(select(refunds.c.kind).distinct()).scalars())
        methods = set(conn.execute(select(refunds.c.method).distinct()).scalars())
        pay_methods = set(conn.execute(select(payments.c.method).distinct()).scalars())
        shipping_refunded = conn.execute(
            select(func.count()).select_from(refund_lines.join(
                invoice_lines, invoice_lines.c.id == refund_lines.c.invoice_line_id))
            .where(invoice_lines.c.kind == "shipping", refund_lines.c.gross_minor > 0)
        ).scalar_one()
        rates = {Decimal(r) for r in conn.execute(select(invoice_lines.c.tax_rate).distinct())
                 .scalars()}
        discounted = conn.execute(select(func.count()).select_from(invoices)
                                  .where(invoices.c.discount_minor > 0)).scalar_one()
    assert currencies == CURRENCIES
    assert modes == {"exclusive", "inclusive"}
    assert kinds == {"full", "amount", "lines"}
    assert methods == {"original_payment", "store_credit"}
    assert pay_methods == {"card", "bank_transfer", "store_credit"}
    assert shipping_refunded >= 1
    assert {Decimal("0.19"), Decimal("0.07"), Decimal("0.20"), Decimal(0),
            Decimal("0.10"), Decimal("0.08")} <= rates
    assert rates & {Decimal("0.0725"), Decimal("0.08875")}
    assert discounted >= 20


def _assert_books_agree(db_url: str, engine) -> None:
    tb = json.loads(ok(db_url, "ledger", "trial-balance", "--json").stdout)
    assert {t["currency"] for t in tb["totals"]} == CURRENCIES
    for total in tb["totals"]:
        assert total["balanced"] is True
        assert total["debit_minor"] == total["credit_minor"] > 0

    report = json.loads(ok(db_url, "report", "revenue", "--from", "2026-01-01",
                           "--to", "2027-01-01", "--json").stdout)
    (period,) = report["periods"]
    rows = {row["currency"]: row for row in period["currencies"]}
    assert set(rows) == CURRENCIES
    with read(engine) as conn:
        for cur, row in rows.items():
            _assert_row_matches_ledger(conn, cur, row)


def _assert_row_matches_ledger(conn, cur: str, row: dict) -> None:
    revenue = account_balance(conn, ledger.REVENUE, cur)
    # Sales returns is an income account with a debit balance: its signed balance is negative.
    returns = -account_balance(conn, ledger.SALES_RETURNS, cur)
    assert returns > 0
    assert row["gross_sales_minor"] == revenue
    assert row["returns_minor"] == returns
    assert row["net_revenue_minor"] == revenue - returns
    assert row["net_tax_minor"] == account_balance(conn, ledger.TAX_PAYABLE, cur)
    # Refund records, independently of the ledger: paid out vs. sent to store credit. Only
    # settled refunds: the demo's approval queue holds refunds whose tenders are reserved, not
    # paid (pending_approval posts nothing to the ledger).
    settled = (refunds.c.currency == cur, refunds.c.status == "succeeded")
    to_credit = conn.execute(
        select(func.coalesce(func.sum(refund_tenders.c.amount_minor), 0))
        .join(refunds, refunds.c.id == refund_tenders.c.refund_id)
        .where(*settled, refund_tenders.c.destination == "store_credit")
    ).scalar_one()
    paid_out = conn.execute(
        select(func.coalesce(func.sum(refund_tenders.c.amount_minor), 0))
        .join(refunds, refunds.c.id == refund_tenders.c.refund_id)
        .where(*settled, refund_tenders.c.destination == "original_payment")
    ).scalar_one()
    assert row["refunds_to_store_credit_minor"] == to_credit
    assert row["refunds_paid_out_minor"] == paid_out
    # What customers still hold in their wallets is exactly the store-credit liability.
    held = conn.execute(select(func.coalesce(func.sum(wallets.c.balance_minor), 0))
                        .where(wallets.c.currency == cur)).scalar_one()
    assert held == account_balance(conn, ledger.STORE_CREDIT, cur)


def test_demo_is_deterministic_and_spread_over_the_year(db_url, engine, tmp_path):
    args = ("demo", "--if-empty", "--seed", "7", "--customers", "6", "--invoices", "40",
            "--no-today")
    ok(db_url, *args)  # an empty database: --if-empty seeds it
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other_url)
    ok(other_url, *args)
    other = make_engine(other_url)
    try:
        mine, theirs = _fingerprint(engine), _fingerprint(other)
    finally:
        other.dispose()
    assert mine == theirs
    issued = [row[2] for row in mine["invoices"]]
    assert len(issued) == 40 and all(d.startswith("2026-") for d in issued)
    assert len({d[:7] for d in issued}) >= 8  # spread over the months of 2026
    assert mine["refunds"] and mine["payments"]


def _fingerprint(engine) -> dict[str, list[tuple]]:
    """Everything but the random ids: numbers, amounts, methods and dates."""
    def iso(value) -> str:
        return value.isoformat()

    with read(engine) as conn:
        inv = [(r.number, r.currency, iso(r.issued_at), r.tax_mode, r.total_minor, r.tax_minor)
               for r in conn.execute(select(invoices))]
        pay = [(r.number, r.method, r.amount_minor, r.refunded_minor, iso(r.captured_at))
               for r in conn.execute(select(invoices.c.number, payments).join(
                   payments, payments.c.invoice_id == invoices.c.id))]
        ref = [(r.number, r.kind, r.method, r.reason, r.amount_minor, r.net_minor, r.tax_minor,
                iso(r.created_at))
               for r in conn.execute(select(invoices.c.number, refunds).join(
                   refunds, refunds.c.invoice_id == invoices.c.id))]
    return {"invoices": sorted(inv), "payments": sorted(pay), "refunds": sorted(ref)}


# ------------------------------------------------------------------------ reports as tables


@pytest.fixture
def one_refunded_invoice(engine, clock):
    """EUR 2 × 50.00 at 19 % exclusive (net 100.00, tax 19.00, total 119.00), paid by card,
    then 23.80 refunded by amount (net 20.00, tax 3.80)."""
    with write(engine) as conn:
        cust = create_customer(conn, clock, name="Lena Becker", country="DE")
        inv = create_invoice(conn, clock, customer_id=cust["id"], currency="EUR",
                             tax_mode="exclusive", lines=[LineInput(
                                 "Stoneware mug", 2, 5000, Decimal("0.19"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=11900,
                       currency="EUR", card={"token": "tok_1", "brand": "visa", "last4": "4242"})
        refund = create_refund(conn, clock, inv["id"], RefundRequest(
            "amount", "original_payment", "goodwill", amount_minor=2380))
    assert (refund["net_minor"], refund["tax_minor"]) == (2000, 380)
    return inv


def _table_row(output: str, first_cell: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r} in:\n{output}")


def test_report_revenue_table_shows_formatted_amounts(db_url, one_refunded_invoice):
    out = ok(db_url, "report", "revenue", "--from", "2026-01-01", "--to", "2026-02-01",
             "--currency", "eur").stdout
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["", "EUR"]
    expected = {"Gross sales": "€100.00", "Returns": "€20.00", "Net revenue": "€80.00",
                "Tax collected": "€19.00", "Tax refunded": "€3.80", "Net tax": "€15.20",
                "Refunds paid out": "€23.80", "To store credit": "€0.00"}
    for title, amount in expected.items():
        assert _table_row(out, title) == [title, amount]


def test_report_revenue_table_by_month_is_never_truncated(db_url, one_refunded_invoice):
    # A narrow terminal: amounts must still print whole (no "€100.…").
    result = CliRunner().invoke(app, ["report", "revenue", "--from", "2026-01-01", "--to",
                                      "2026-03-01", "--group-by", "month"],
                                env={"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "Revenue in EUR by month" in result.stdout
    assert _table_row(result.stdout, "2026-01") == [
        "2026-01", "€100.00", "€20.00", "€80.00", "€19.00", "€3.80", "€15.20", "€23.80",
        "€0.00"]
    assert _table_row(result.stdout, "2026-02") == ["2026-02"] + ["€0.00"] * 8


def test_report_revenue_json_by_month(db_url, one_refunded_invoice):
    report = json.loads(ok(db_url, "report", "revenue", "--from", "2026-01-01",
                           "--to", "2026-03-01", "--group-by", "month", "--json").stdout)
    jan, feb = report["periods"]
    assert (jan["from"], jan["to"], feb["from"], feb["to"]) == (
        "2026-01-01", "2026-02-01", "2026-02-01", "2026-03-01")
    (eur,) = jan["currencies"]
    assert (eur["gross_sales_minor"], eur["returns_minor"], eur["net_revenue_minor"],
            eur["tax_collected_minor"], eur["tax_refunded_minor"]) == (10000, 2000, 8000, 1900,
                                                                       380)
    assert feb["currencies"] == []


def test_trial_balance_table_totals(db_url, one_refunded_invoice):
    out = ok(db_url, "ledger", "trial-balance").stdout
    assert "Trial balance — EUR" in out
    # Dr: receivable 119.00 + clearing 119.00 + returns 20.00 + tax 3.80 + refunds payable 23.80
    assert _table_row(out, "Total") == ["Total", "€285.60", "€285.60", "balanced"]
    assert _table_row(out, "1100 Gateway clearing") == [
        "1100 Gateway clearing", "€119.00", "€23.80", "€95.20"]
    assert _table_row(out, "2100 Tax payable") == ["2100 Tax payable", "€3.80", "€19.00",
                                                   "€15.20"]


# ------------------------------------------------------------------------------ serve, errors


def test_serve_builds_the_app_from_the_environment(db_url, monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: seen.update(app=app_, **kw))
    out = ok(db_url, "serve", "--port", "8123").stdout
    assert "http://127.0.0.1:8123" in out and "/docs" in out
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123)
    assert seen["app"].state.settings.database_url == db_url
    seen["app"].state.engine.dispose()


@pytest.mark.parametrize("args, code", [
    (("report", "revenue", "--from", "2026-02-01", "--to", "2026-01-01"), "validation_failed"),
    (("report", "revenue", "--currency", "XYZ"), "unknown_currency"),
    (("ledger", "trial-balance", "--currency", "EURO"), "unknown_currency"),
    (("report", "revenue", "--group-by", "week"), "validation_failed"),
])
def test_domain_error_exits_2_with_its_code(db_url, args, code):
    result = run(db_url, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error[{code}]: ")
    assert result.stdout == ""


def test_unexpected_error_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path / 'not-migrated.db'}"
    result = run(url, "demo")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: OperationalError: no such table: invoices")
    assert "payback db upgrade" in result.stderr


def test_debug_shows_the_unexpected_error_itself(tmp_path):
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'not-migrated.db'}"
    result = run(url, "--debug", "demo")
    assert result.exit_code == 1
    assert isinstance(result.exception, OperationalError)  # raised, not mapped to a message
    assert "error: OperationalError" not in result.stderr


def test_ledger_and_report_on_an_empty_database(db_url):
    assert "The ledger is empty." in ok(db_url, "ledger", "trial-balance").stdout
    assert json.loads(ok(db_url, "ledger", "trial-balance", "--json").stdout) == {
        "accounts": [], "totals": []}
    year = date.today().year
    report = json.loads(ok(db_url, "report", "revenue", "--json").stdout)
    assert (report["from"], report["to"]) == (f"{year}-01-01", f"{year + 1}-01-01")
    assert report["periods"][0]["currencies"] == []
