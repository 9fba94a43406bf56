"""The tax report (``reports.tax.tax_report``, ``GET /v1/reports/tax``, ``payback report tax``)
on SQLite and PostgreSQL.

Covers:
- rows per currency, customer country (``unknown`` without one) and tax rate, with taxable net,
  tax collected, refunded and due computed by hand to the minor unit;
- a void reverses its invoice in the period of the void, and each period still equals the ledger;
- on the demo's books, for every month: Σ tax collected per currency = Tax payable credits −
  debits of the invoice entries of that month, and the net tax due = the change of Tax payable;
- the reconciliation with the ledger after refunds: Σ collected − Σ refunded = the change of Tax
  payable (2100) over the period, per currency, with tax refunded read from the credit notes
  that refunds issue; an adjustment credit note counts as refunded and its void gives it back in
  the period of the void;
- seller scoping and the currency filter; bad ranges (422) and permissions over HTTP; the CLI in
  table and JSON form.
"""

from __future__ import annotations

import itertools
import json
import warnings
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from payback import db
from payback.access.service import create_key
from payback.access.tables import DEFAULT_SELLER_ID, sellers
from payback.api.app import create_app
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.credit_notes.service import create_adjustment, void_credit_note
from payback.credit_notes.tables import credit_notes
from payback.customers.service import create_customer
from payback.demo import seed_demo
from payback.errors import ValidationFailed
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, void_invoice
from payback.ledger.tables import journal_entries, postings
from payback.payments.service import record_payment
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.service import create_refund
from payback.reports.tax import tax_report
from payback.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

JAN = (date(2026, 1, 1), date(2026, 2, 1))
FEB = (date(2026, 2, 1), date(2026, 3, 1))
CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}


def figures(report: dict) -> list[tuple]:
    return [(r["currency"], r["country"], r["tax_rate"], r["taxable_net_minor"],
             r["tax_collected_minor"], r["tax_refunded_minor"], r["net_tax_due_minor"])
            for r in report["rows"]]


def books(engine, clock, seller_id: str = DEFAULT_SELLER_ID, prefix: str = "INV") -> dict:
    """Invoices for a German, a French and a country-less customer (EUR), and a German JPY one.
    Hand-computed (exclusive tax): DE EUR 2 × 10.00 @ 19 % = 20.00 + 3.80 and 1 × 5.00 @ 7 % =
    5.00 + 0.35; FR 30.00 @ 20 % = 6.00; no country 10.00 @ 19 % = 1.90; JPY 3 × 1000 @ 10 % =
    3000 + 300."""
    with db.write(engine) as conn:
        de = create_customer(conn, clock, name="Dora", country="de", seller_id=seller_id)
        fr = create_customer(conn, clock, name="Félix", country="FR", seller_id=seller_id)
        nowhere = create_customer(conn, clock, name="Nemo", seller_id=seller_id)

        def invoice(cust, cur, lines):
            return create_invoice(conn, clock, customer_id=cust["id"], currency=cur,
                                  tax_mode="exclusive", lines=lines, seller_id=seller_id,
                                  prefix=prefix)
        return {
            "de": invoice(de, "EUR", [LineInput("Boots", 2, 1000, Decimal("0.19")),
                                      LineInput("Book", 1, 500, Decimal("0.07"))]),
            "fr": invoice(fr, "EUR", [LineInput("Coat", 1, 3000, Decimal("0.2"))]),
            "none": invoice(nowhere, "EUR", [LineInput("Hat", 1, 1000, Decimal("0.19"))]),
            "jpy": invoice(de, "JPY", [LineInput("Tea", 3, 1000, Decimal("0.1"))]),
        }


def ledger_tax_change(conn, lo: date, hi: date, event_prefix: str = "") -> dict[str, int]:
    """Tax payable credits − debits per currency over [lo, hi), optionally only for entries
    whose event type starts with ``event_prefix`` (an independent query from the report's)."""
    q = (select(postings.c.currency,
                func.sum(postings.c.credit_minor) - func.sum(postings.c.debit_minor))
         .join(journal_entries, journal_entries.c.id == postings.c.entry_id)
         .where(postings.c.account_code == "2100",
                journal_entries.c.posted_at >= datetime.combine(lo, datetime.min.time(),
                                                                UTC),
                journal_entries.c.posted_at < datetime.combine(hi, datetime.min.time(),
                                                               UTC),
                journal_entries.c.event_type.like(event_prefix + "%"))
         .group_by(postings.c.currency))
    return {cur: int(v) for cur, v in conn.execute(q)}


# -------------------------------------------------------------------------------- figures


def test_rows_per_country_and_rate_to_the_minor_unit(engine, clock):
    books(engine, clock)
    with db.read(engine) as conn:
        report = tax_report(conn, *JAN)
    assert figures(report) == [
        ("EUR", "DE", "0.07", 500, 35, 0, 35),
        ("EUR", "DE", "0.19", 2000, 380, 0, 380),
        ("EUR", "FR", "0.2", 3000, 600, 0, 600),
        ("EUR", "unknown", "0.19", 1000, 190, 0, 190),
        ("JPY", "DE", "0.1", 3000, 300, 0, 300),
    ]
    eur, jpy = report["totals"]
    assert (eur["currency"], eur["taxable_net_minor"], eur["tax_collected_minor"],
            eur["net_tax_due_minor"], eur["ledger_tax_change_minor"], eur["reconciled"]) == \
        ("EUR", 6500, 1205, 1205, 1205, True)
    assert (jpy["net_tax_due_minor"], jpy["ledger_tax_change_minor"], jpy["difference_minor"]) \
        == (300, 300, 0)
    assert report["from"] == "2026-01-01" and report["to"] == "2026-02-01"


def test_a_void_reverses_the_invoice_in_the_period_of_the_void(engine, clock):
    invs = books(engine, clock)
    clock.advance(days=20)  # 2026-02-04
    with db.write(engine) as conn:
        void_invoice(conn, clock, invs["fr"]["id"])
    with db.read(engine) as conn:
        jan, feb = tax_report(conn, *JAN), tax_report(conn, *FEB)
        both = tax_report(conn, JAN[0], FEB[1], currency="eur")
    assert ("EUR", "FR", "0.2", 3000, 600, 0, 600) in figures(jan)
    assert figures(feb) == [("EUR", "FR", "0.2", -3000, -600, 0, -600)]
    assert ("EUR", "FR", "0.2", 0, 0, 0, 0) in figures(both)
    assert {r["currency"] for r in both["rows"]} == {"EUR"}
    for report, change in ((jan, 1205), (feb, -600), (both, 605)):
        eur = next(t for t in report["totals"] if t["currency"] == "EUR")
        assert (eur["net_tax_due_minor"], eur["ledger_tax_change_minor"], eur["reconciled"]) \
            == (change, change, True)


# -------------------------------------------------------- refunds: reconciliation with the ledger


def refund_one_boot(engine, clock) -> dict:
    invs = books(engine, clock)
    inv = invs["de"]
    with db.write(engine) as conn:
        record_payment(conn, clock, inv["id"], method="card", amount_minor=inv["total_minor"],
                       currency="EUR", card=CARD)
    clock.advance(days=1)
    boots = next(ln for ln in inv["lines"] if ln["description"] == "Boots")
    with db.write(engine) as conn:
        refund = create_refund(conn, clock, inv["id"], RefundRequest(
            "lines", "original_payment", "product_defective", lines=(LineRequest(boots["id"], 1),)))
    assert (refund["status"], refund["net_minor"], refund["tax_minor"]) == ("succeeded", 1000, 190)
    return refund


def test_refunds_move_the_ledger_by_their_tax(engine, clock):
    """What holds with or without credit notes: the ledger side of the reconciliation."""
    refund_one_boot(engine, clock)
    with db.read(engine) as conn:
        report = tax_report(conn, *JAN)
        assert ledger_tax_change(conn, *JAN) == {"EUR": 1205 - 190, "JPY": 300}
    eur = next(t for t in report["totals"] if t["currency"] == "EUR")
    assert (eur["tax_collected_minor"], eur["ledger_tax_change_minor"]) == (1205, 1015)


def test_tax_refunded_through_credit_notes_reconciles_with_the_ledger(engine, clock):
    refund_one_boot(engine, clock)
    with db.read(engine) as conn:
        report = tax_report(conn, *JAN)
        notes = conn.execute(select(func.count()).select_from(credit_notes)).scalar()
    assert notes == 1
    assert ("EUR", "DE", "0.19", 2000, 380, 190, 190) in figures(report)
    assert next(r for r in report["rows"] if r["tax_rate"] == "0.19" and r["country"] == "DE")[
        "refunded_net_minor"] == 1000
    assert all(t["reconciled"] and t["difference_minor"] == 0 for t in report["totals"])


def test_demo_tax_report_equals_the_ledger_every_month(engine):
    """Per month and currency: Σ collected = Tax payable credits − debits of the invoice entries,
    and Σ collected − Σ refunded = the change of Tax payable over all entries."""
    seed_demo(engine, seed=1, customers=8, invoices=80)
    months = [date(2026, m, 1) for m in range(1, 13)] + [date(2027, 1, 1)]
    with db.read(engine) as conn:
        for lo, hi in itertools.pairwise(months):
            report = tax_report(conn, lo, hi, seller_id=DEFAULT_SELLER_ID)
            collected = {t["currency"]: t["tax_collected_minor"] for t in report["totals"]}
            due = {t["currency"]: t["net_tax_due_minor"] for t in report["totals"]}
            invoiced = ledger_tax_change(conn, lo, hi, "invoice.")
            assert collected == {c: invoiced.get(c, 0) for c in collected}, (lo, hi)
            assert due == ledger_tax_change(conn, lo, hi), (lo, hi)
            assert all(t["reconciled"] for t in report["totals"])
        year = tax_report(conn, months[0], months[-1])
    assert sum(t["tax_collected_minor"] for t in year["totals"]) > 0
    assert sum(t["tax_refunded_minor"] for t in year["totals"]) > 0
    assert len({r["country"] for r in year["rows"]}) > 1


def test_adjustment_and_its_void_count_in_their_own_periods(engine, clock):
    coat = books(engine, clock)["fr"]
    with db.write(engine) as conn:
        note = create_adjustment(conn, clock, coat["id"], AdjustmentRequest(
            "goodwill", (AdjustmentLine(coat["lines"][0]["id"], quantity=1),)))
    assert (note["net_minor"], note["tax_minor"]) == (3000, 600)
    clock.advance(days=20)  # February
    with db.write(engine) as conn:
        void_credit_note(conn, clock, note["id"], reason="goodwill")
    with db.read(engine) as conn:
        jan, feb = tax_report(conn, *JAN), tax_report(conn, *FEB)
        both = tax_report(conn, JAN[0], FEB[1])
    assert ("EUR", "FR", "0.2", 3000, 600, 600, 0) in figures(jan)
    assert figures(feb) == [("EUR", "FR", "0.2", 0, 0, -600, 600)]
    assert feb["rows"][0]["refunded_net_minor"] == -3000
    assert ("EUR", "FR", "0.2", 3000, 600, 0, 600) in figures(both)
    for report, due in ((jan, 1205 - 600), (feb, 600), (both, 1205)):
        eur = next(t for t in report["totals"] if t["currency"] == "EUR")
        assert (eur["net_tax_due_minor"], eur["ledger_tax_change_minor"], eur["reconciled"]) \
            == (due, due, True)


# --------------------------------------------------------------------- scope, bad input


def test_another_sellers_invoices_are_not_in_the_report(engine, clock):
    books(engine, clock)
    with db.write(engine) as conn:
        conn.execute(insert(sellers), {"id": "sel_b", "name": "B", "created_at": clock.now()})
    books(engine, clock, seller_id="sel_b", prefix="B")
    with db.read(engine) as conn:
        mine = tax_report(conn, *JAN, seller_id=DEFAULT_SELLER_ID)
        theirs = tax_report(conn, *JAN, seller_id="sel_b")
        everyone = tax_report(conn, *JAN)
    assert figures(mine) == figures(theirs)
    assert [t["tax_collected_minor"] for t in everyone["totals"]] == [2 * 1205, 2 * 300]
    assert all(t["reconciled"] for t in mine["totals"] + theirs["totals"])


@pytest.mark.parametrize("bounds", [(date(2026, 2, 1), date(2026, 1, 1)),
                                    (date(2026, 1, 1), date(2026, 1, 1))])
def test_reversed_or_empty_range_is_refused(engine, bounds):
    with db.read(engine) as conn, pytest.raises(ValidationFailed, match="must be after"):
        tax_report(conn, *bounds)


# ----------------------------------------------------------------------------- HTTP, CLI


@pytest.fixture
def app(engine, db_url, clock):
    return create_app(Settings(database_url=db_url), engine=engine, clock=clock)


def token(engine, clock, role: str) -> dict:
    with db.write(engine) as conn:
        key = create_key(conn, clock, seller_id=DEFAULT_SELLER_ID, name=role, role=role)[1]
    return {"Authorization": f"Bearer {key}"}


def test_api_returns_the_service_report(engine, clock, app):
    books(engine, clock)
    with db.read(engine) as conn:
        want = tax_report(conn, *JAN, seller_id=DEFAULT_SELLER_ID, currency="JPY")
    with TestClient(app, headers=token(engine, clock, "auditor")) as c:
        resp = c.get("/v1/reports/tax", params={"from": "2026-01-01", "to": "2026-02-01",
                                                "currency": "JPY"})
        assert resp.status_code == 200, resp.text
        assert resp.json() == want and want["rows"][0]["tax_collected_minor"] == 300
        bad = c.get("/v1/reports/tax", params={"from": "2026-02-01", "to": "2026-01-01"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["code"] == "validation_failed" and "must be after" in \
            bad.json()["detail"]
        assert c.get("/v1/reports/tax", params={"from": "2026-01-01"}).status_code == 422
    with TestClient(app, headers=token(engine, clock, "viewer")) as c:
        assert c.get("/v1/reports/tax", params={"from": "2026-01-01",
                                                "to": "2026-02-01"}).status_code == 403


def cli(db_url: str, *args: str):
    from typer.testing import CliRunner

    from payback.cli import app as cli_app

    return CliRunner().invoke(cli_app, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                        "COLUMNS": "200"})


def test_cli_prints_the_report_as_json_and_as_tables(engine, db_url, clock):
    books(engine, clock)
    with db.read(engine) as conn:
        want = tax_report(conn, *JAN, seller_id=DEFAULT_SELLER_ID)
    result = cli(db_url, "report", "tax", "--from", "2026-01-01", "--to", "2026-02-01", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == want
    result = cli(db_url, "report", "tax", "--from", "2026-01-01", "--to", "2026-02-01")
    assert result.exit_code == 0, result.output
    assert "Tax in EUR" in result.output and "Tax in JPY" in result.output
    assert "19 %" in result.output and "€12.05" in result.output and "reconciled" in \
        result.output
    result = cli(db_url, "report", "tax", "--from", "2026-02-01", "--to", "2026-01-01")
    assert result.exit_code == 2 and "error[validation_failed]" in result.output
