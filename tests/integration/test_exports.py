"""Accounting exports on SQLite and PostgreSQL: Beancount and CSV journals of real books.

Covers:
- the demo's books (``seed_demo(seed=1, customers=20, invoices=200)``) exported as Beancount: the
  real ``bean-check`` (``.venv/bin/bean-check``) accepts the file, and the balances Beancount
  computes from it (summing the loaded postings) equal ``ledger.service.trial_balance`` per
  account and currency, exactly;
- a period that does not start at the beginning: opening-balance transactions against
  ``Equity:OpeningBalances`` make the end balances equal the trial balance, and they equal the
  closing balances of the export of the preceding period;
- exponents: JPY 0, EUR 2, KWD 3 decimals, written exactly in both formats;
- the CSV journal parsed back (RFC 4180, CRLF, quoting of a memo with a comma, a quote and a line
  break): one row per posting, one-sided rows, balanced per entry and currency, sums equal to the
  trial balance; Beancount escaping of the same memo;
- the account mapping covers the whole chart with the root of each account's type;
- HTTP: ``GET /v1/exports/journal.beancount|csv`` as downloads, scoped to the caller's seller,
  ``ledger:read`` required; a reversed or empty range or a missing bound is a 422 problem;
- CLI: ``payback export beancount|csv --from --to -o FILE``; a reversed range exits 2 and
  writes no file.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import warnings
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data as bc
from sqlalchemy import func, insert, select

from payback import db
from payback.access.service import create_key
from payback.access.tables import DEFAULT_SELLER_ID, sellers
from payback.api.app import create_app
from payback.customers.service import create_customer
from payback.demo import seed_demo
from payback.exports import service
from payback.exports.domain import BEANCOUNT_NAMES, ROOTS, beancount_account, major
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import post, trial_balance
from payback.ledger.tables import postings
from payback.money import to_minor
from payback.payments.service import record_payment
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund
from payback.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

BEAN_CHECK = Path(sys.executable).with_name("bean-check")
EVER = (date(2000, 1, 1), date(2100, 1, 1))
CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}
TRICKY_MEMO = 'Adjust, "quoted" \\ memo\nsecond line'


# ----------------------------------------------------------------------------- helpers


def bean_check(path: Path) -> None:
    """The real command-line checker: exit status 0 and nothing printed."""
    done = subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), \
        (done.returncode, done.stdout[-2000:], done.stderr[-2000:])


def beancount_balances(text: str) -> dict[tuple[str, str], int]:
    """Load the text with Beancount (errors fail the test) and sum the postings per (account,
    currency), in minor units (``to_minor`` refuses any excess decimal)."""
    entries, errors, _ = loader.load_string(text)
    assert errors == [], [str(e) for e in errors][:5]
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        if isinstance(entry, bc.Transaction):
            for p in entry.postings:
                sums[(p.account, p.units.currency)] += to_minor(p.units.number,
                                                                p.units.currency)
    return {k: v for k, v in sums.items() if v}


def expected_balances(conn, seller_id: str | None = DEFAULT_SELLER_ID) -> dict:
    """Payback's trial balance as {(Beancount account, currency): debits − credits}."""
    tb = trial_balance(conn, seller_id=seller_id)
    return {(beancount_account(ledger.BY_CODE[a["account_code"]]), a["currency"]):
            a["debit_minor"] - a["credit_minor"]
            for a in tb["accounts"] if a["debit_minor"] != a["credit_minor"]}


def add_seller(engine, seller_id: str) -> None:
    with db.write(engine) as conn:
        conn.execute(insert(sellers), {"id": seller_id, "name": seller_id,
                                       "created_at": datetime(2026, 1, 1, tzinfo=UTC)})


def small_books(engine, clock, seller_id: str = DEFAULT_SELLER_ID) -> dict:
    """Three invoices in JPY, EUR and KWD, paid; the EUR one partly refunded to store credit.
    Returns the invoices by currency."""
    out = {}
    with db.write(engine) as conn:
        cust = create_customer(conn, clock, name="Export test", country="DE",
                               seller_id=seller_id)
        for cur, price in (("JPY", 1234), ("EUR", 1999), ("KWD", 12345)):
            # Another prefix per seller: invoices.number is unique across sellers (see report).
            inv = create_invoice(conn, clock, customer_id=cust["id"], currency=cur,
                                 tax_mode="exclusive", seller_id=seller_id,
                                 prefix="INV" if seller_id == DEFAULT_SELLER_ID else "OTH",
                                 lines=[LineInput("Widget", 3, price, Decimal("0.1"))])
            record_payment(conn, clock, inv["id"], method="card", amount_minor=inv["total_minor"],
                           currency=cur, card=CARD, seller_id=seller_id)
            out[cur] = inv
    clock.advance(days=3)
    with db.write(engine) as conn:
        create_refund(conn, clock, out["EUR"]["id"],
                      RefundRequest("amount", "store_credit", "requested_by_customer",
                                    amount_minor=1000), seller_id=seller_id)
    return out


# ---------------------------------------------------------------------------- Beancount


def test_demo_books_pass_bean_check_and_equal_the_trial_balance(engine, tmp_path):
    seed_demo(engine, seed=1, customers=20, invoices=200)
    with db.read(engine) as conn:
        text = service.export_beancount(conn, *EVER, seller_id=DEFAULT_SELLER_ID)
        expected = expected_balances(conn)
        n_postings = conn.execute(select(func.count()).select_from(postings)).scalar()
    path = tmp_path / "demo.beancount"
    path.write_text(text, encoding="utf-8")
    bean_check(path)
    got = beancount_balances(text)
    assert got == expected
    assert len(expected) >= 20  # the demo touches many accounts in four currencies
    assert text.count("\n  entry_id: ") == len({ln for ln in text.splitlines()
                                                 if ln.startswith("  entry_id: ")})
    # Every Payback posting is one Beancount posting (no opening transactions from the start).
    body = [ln for ln in text.splitlines() if ln.startswith("  ") and ":" in ln.split()[0]
            and not ln.strip().startswith(("entry_id", "event_type", "object_id", "posted_at",
                                           "payback_"))]
    assert len(body) == n_postings
    assert "Equity:OpeningBalances" not in text


def test_a_later_period_opens_with_balances_that_continue_the_earlier_one(engine, tmp_path):
    seed_demo(engine, seed=3, customers=6, invoices=60)
    cut = date(2026, 7, 1)
    with db.read(engine) as conn:
        before = service.export_beancount(conn, EVER[0], cut, seller_id=DEFAULT_SELLER_ID)
        after = service.export_beancount(conn, cut, EVER[1], seller_id=DEFAULT_SELLER_ID)
        expected = expected_balances(conn)
        opening = service.balances_before(conn, datetime(2026, 7, 1, tzinfo=UTC),
                                          DEFAULT_SELLER_ID)
    for name, text in (("before", before), ("after", after)):
        (tmp_path / f"{name}.beancount").write_text(text, encoding="utf-8")
        bean_check(tmp_path / f"{name}.beancount")
    assert "Equity:OpeningBalances" in after and "Equity:OpeningBalances" not in before
    assert beancount_balances(after) == expected
    # The first period's end balances are exactly the second period's opening balances.
    closing_before = beancount_balances(before)
    assert closing_before == {(beancount_account(ledger.BY_CODE[code]), cur): v
                              for (code, cur), v in opening.items() if v}
    assert closing_before != expected  # the cut really splits the year
    opening_lines = [ln for ln in after.split("\n\n") if "Opening balance:" in ln]
    assert len(opening_lines) == len({code for (code, _), v in opening.items() if v})


def test_exponents_are_exact_in_both_formats(engine, clock):
    books = small_books(engine, clock)
    with db.read(engine) as conn:
        text = service.export_beancount(conn, *EVER)
        table = service.export_csv(conn, *EVER)
        expected = expected_balances(conn)
    # 3 × 1234 JPY + 10 % = 4072 yen (370.2 rounded half up); EUR 59.97 + 6.00; KWD 37.035 + 3.704
    assert books["JPY"]["total_minor"] == 4072 and books["EUR"]["total_minor"] == 6597
    assert books["KWD"]["total_minor"] == 40739
    for needle in ("Assets:AccountsReceivable  4072 JPY", "Assets:AccountsReceivable  65.97 EUR",
                   "Assets:AccountsReceivable  40.739 KWD", "Liabilities:TaxPayable  -3.704 KWD",
                   "Income:Revenue  -37.035 KWD", "Liabilities:StoreCredit  -10.00 EUR"):
        assert needle in text
    rows = list(csv.DictReader(io.StringIO(table)))
    kwd = [r for r in rows if r["currency"] == "KWD" and r["account_code"] == "2100"]
    assert [(r["debit"], r["credit"]) for r in kwd] == [("", "3.704")]
    assert beancount_balances(text) == expected


def test_memo_is_escaped_in_beancount_and_quoted_in_csv(engine, clock, tmp_path):
    with db.write(engine) as conn:
        post(conn, ledger.entry("manual.adjustment", "obj_1", [
            ledger.debit(ledger.CASH, "EUR", 150), ledger.credit(ledger.BREAKAGE, "EUR", 150)],
            memo=TRICKY_MEMO), clock.now())
    with db.read(engine) as conn:
        text = service.export_beancount(conn, *EVER)
        table = service.export_csv(conn, *EVER)
    path = tmp_path / "memo.beancount"
    path.write_text(text, encoding="utf-8")
    bean_check(path)
    entries, errors, _ = loader.load_string(text)
    txn = next(e for e in entries if isinstance(e, bc.Transaction))
    assert errors == [] and txn.narration == 'Adjust, "quoted" \\ memo second line'
    assert txn.meta["event_type"] == "manual.adjustment" and txn.meta["object_id"] == "obj_1"
    assert table.split("\r\n")[1].startswith("2026-01-15,je_")
    assert '"Adjust, ""quoted"" \\ memo\nsecond line"' in table
    rows = list(csv.reader(io.StringIO(table, newline="")))
    assert rows[1][4:8] == ["1.50", "", "EUR", TRICKY_MEMO]
    assert rows[2][2:8] == ["4900", "Breakage income", "", "1.50", "EUR", TRICKY_MEMO]


def test_every_chart_account_has_a_beancount_name_under_its_type_root():
    assert set(BEANCOUNT_NAMES) == {a.code for a in ledger.CHART}
    names = [beancount_account(a) for a in ledger.CHART]
    assert len(set(names)) == len(names)
    for acct, name in zip(ledger.CHART, names):
        assert name.split(":")[0] == ROOTS[acct.type]
    assert beancount_account(ledger.GATEWAY_CLEARING) == "Assets:GatewayClearing"
    assert beancount_account(ledger.SALES_RETURNS) == "Income:SalesReturns"
    assert beancount_account(ledger.STORE_CREDIT_INCENTIVES) == "Expenses:StoreCreditIncentives"
    assert [major(12345, "EUR"), major(-5, "JPY"), major(1, "KWD"), major(0, "EUR"),
            major(-100, "EUR")] == ["123.45", "-5", "0.001", "0.00", "-1.00"]


# ---------------------------------------------------------------------------------- CSV


def test_csv_journal_parses_back_balanced_and_equal_to_the_trial_balance(engine, clock):
    seed_demo(engine, seed=2, customers=6, invoices=40)
    with db.read(engine) as conn:
        table = service.export_csv(conn, *EVER, seller_id=DEFAULT_SELLER_ID)
        tb = trial_balance(conn, seller_id=DEFAULT_SELLER_ID)
        n_postings = conn.execute(select(func.count()).select_from(postings)).scalar()
    assert table.endswith("\r\n") and "\n" not in table.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(table, newline="")))
    assert list(rows[0]) == ["date", "entry_id", "account_code", "account_name", "debit",
                             "credit", "currency", "memo", "event_type", "object_id"]
    assert len(rows) == n_postings
    per_entry: dict[tuple[str, str], int] = defaultdict(int)
    per_account: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        assert bool(r["debit"]) != bool(r["credit"]), r  # exactly one side
        assert r["account_name"] == ledger.BY_CODE[r["account_code"]].name
        date.fromisoformat(r["date"])
        d = to_minor(r["debit"], r["currency"]) if r["debit"] else 0
        c = to_minor(r["credit"], r["currency"]) if r["credit"] else 0
        per_entry[(r["entry_id"], r["currency"])] += d - c
        per_account[(r["account_code"], r["currency"])][0] += d
        per_account[(r["account_code"], r["currency"])][1] += c
    assert all(v == 0 for v in per_entry.values())
    assert dict(per_account) == {(a["account_code"], a["currency"]):
                                 [a["debit_minor"], a["credit_minor"]] for a in tb["accounts"]}


def test_period_bounds_are_utc_days_start_inclusive_end_exclusive(engine, clock):
    small_books(engine, clock)  # entries on 2026-01-15 (invoices) and 2026-01-18 (refund)
    with db.read(engine) as conn:
        first = service.export_csv(conn, date(2026, 1, 15), date(2026, 1, 18))
        second = service.export_csv(conn, date(2026, 1, 18), date(2026, 1, 19))
        none = service.export_csv(conn, date(2026, 1, 16), date(2026, 1, 18))
    assert {r["date"] for r in csv.DictReader(io.StringIO(first))} == {"2026-01-15"}
    assert {r["event_type"] for r in csv.DictReader(io.StringIO(second))} == \
        {"refund.to_store_credit"}
    assert none == ("date,entry_id,account_code,account_name,debit,credit,currency,memo,"
                    "event_type,object_id\r\n")


@pytest.mark.parametrize("bounds", [(date(2026, 2, 1), date(2026, 1, 1)),
                                    (date(2026, 1, 1), date(2026, 1, 1))],
                         ids=["reversed", "empty"])
def test_reversed_or_empty_range_is_refused(engine, bounds):
    from payback.errors import ValidationFailed

    with db.read(engine) as conn, pytest.raises(ValidationFailed, match="must be after"):
        service.export_beancount(conn, *bounds)


# --------------------------------------------------------------------------------- HTTP


@pytest.fixture
def http(engine, db_url, clock):
    """(client as an admin of the default seller, app, clock)."""
    app = create_app(Settings(database_url=db_url), engine=engine, clock=clock)
    with db.write(engine) as conn:
        token = create_key(conn, clock, seller_id=DEFAULT_SELLER_ID, name="t", role="admin")[1]
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c, app


def test_api_downloads_are_the_service_output_of_the_callers_seller(engine, clock, http):
    client, _ = http
    small_books(engine, clock)
    add_seller(engine, "sel_other")
    small_books(engine, clock, seller_id="sel_other")
    with db.read(engine) as conn:
        want_bean = service.export_beancount(conn, *EVER, seller_id=DEFAULT_SELLER_ID)
        want_csv = service.export_csv(conn, *EVER, seller_id=DEFAULT_SELLER_ID)
        everything = service.export_csv(conn, *EVER)
    q = {"from": "2000-01-01", "to": "2100-01-01"}
    bean = client.get("/v1/exports/journal.beancount", params=q)
    assert bean.status_code == 200, bean.text
    assert bean.headers["content-type"].startswith("text/plain")
    assert bean.headers["content-disposition"] == \
        'attachment; filename="payback-journal-sel_default-2000-01-01-2100-01-01.beancount"'
    assert bean.text == want_bean
    table = client.get("/v1/exports/journal.csv", params=q)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert table.text == want_csv
    # The other seller's entries are in the books but not in this seller's export.
    assert len(everything.splitlines()) == 2 * len(want_csv.splitlines()) - 1


@pytest.mark.parametrize("path", ["journal.beancount", "journal.csv"])
@pytest.mark.parametrize("query", [{"from": "2026-02-01", "to": "2026-01-01"},
                                   {"from": "2026-01-01", "to": "2026-01-01"},
                                   {"from": "2026-01-01"}, {"from": "2026-13-01", "to": "x"}],
                         ids=["reversed", "empty", "missing_to", "not_a_date"])
def test_api_refuses_bad_ranges_with_422(http, path, query):
    client, _ = http
    resp = client.get(f"/v1/exports/{path}", params=query)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    if query.get("to") == "2026-01-01":
        assert body["code"] == "validation_failed"
        assert "'to' (2026-01-01) must be after 'from'" in body["detail"]


def test_api_export_needs_ledger_read(engine, clock, http):
    _, app = http
    with db.write(engine) as conn:
        viewer = create_key(conn, clock, seller_id=DEFAULT_SELLER_ID, name="v", role="viewer")[1]
        auditor = create_key(conn, clock, seller_id=DEFAULT_SELLER_ID, name="a",
                             role="auditor")[1]
    q = {"from": "2026-01-01", "to": "2026-02-01"}
    with TestClient(app, headers={"Authorization": f"Bearer {viewer}"}) as c:
        resp = c.get("/v1/exports/journal.csv", params=q)
        assert resp.status_code == 403, resp.text
    with TestClient(app, headers={"Authorization": f"Bearer {auditor}"}) as c:
        assert c.get("/v1/exports/journal.beancount", params=q).status_code == 200
    with TestClient(app) as c:
        assert c.get("/v1/exports/journal.csv", params=q).status_code == 401


# ---------------------------------------------------------------------------------- CLI


def cli(db_url: str, *args: str):
    from typer.testing import CliRunner

    from payback.cli import app

    return CliRunner().invoke(app, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                    "COLUMNS": "200"})


def test_cli_writes_the_export_to_a_file_or_stdout(engine, db_url, clock, tmp_path):
    small_books(engine, clock)
    with db.read(engine) as conn:
        want = service.export_beancount(conn, date(2026, 1, 1), date(2026, 2, 1),
                                        seller_id=DEFAULT_SELLER_ID)
        want_csv = service.export_csv(conn, date(2026, 1, 1), date(2026, 2, 1),
                                      seller_id=DEFAULT_SELLER_ID)
    out = tmp_path / "books.beancount"
    result = cli(db_url, "export", "beancount", "--from", "2026-01-01", "--to", "2026-02-01",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == want
    bean_check(out)
    result = cli(db_url, "export", "csv", "--from", "2026-01-01", "--to", "2026-02-01")
    assert result.exit_code == 0, result.output
    assert result.stdout.replace("\r\n", "\n") == want_csv.replace("\r\n", "\n")


def test_cli_reversed_range_exits_2_and_writes_nothing(engine, db_url, clock, tmp_path):
    small_books(engine, clock)
    out = tmp_path / "never.csv"
    result = cli(db_url, "export", "csv", "--from", "2026-02-01", "--to", "2026-01-01",
                 "-o", str(out))
    assert result.exit_code == 2
    assert "error[validation_failed]" in result.output and "must be after" in result.output
    assert not out.exists()
