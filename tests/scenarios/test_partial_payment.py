"""Scenario: a UK consultancy invoice (GBP, 20 % VAT on top) that is paid in two instalments and
refunded while only partly paid.

The client pays 50.00 of 120.00 by bank transfer. Refunds are limited by what was captured, not by
the invoice total: 50.01 is refused, 30.00 and then 20.00 go back to the bank account, and after
that nothing is refundable until the client pays the remaining 70.00 by card, which a full refund
then returns. The status goes open → partially_refunded → refunded, and VAT comes back to the
penny. Figures worked out by hand in the comments. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from payback.customers.service import create_customer
from payback.db import read, write
from payback.errors import AmountExceedsRefundable, InvoiceNotRefundable
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.ledger.tables import journal_entries
from payback.payments.service import record_payment
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund

VAT = Decimal("0.20")


def _summary(engine: Engine, invoice_id: str) -> tuple[str, int, int, int, int]:
    with read(engine) as conn:
        inv = get_invoice(conn, invoice_id)
    return (inv["status"], inv["amount_paid_minor"], inv["amount_due_minor"],
            inv["amount_refunded_minor"], inv["amount_refundable_minor"])


def _by_amount(amount: int) -> RefundRequest:
    return RefundRequest(kind="amount", method="original_payment", reason="billing_error",
                         amount_minor=amount)


def _entries(engine: Engine) -> int:
    with read(engine) as conn:
        return conn.execute(select(func.count()).select_from(journal_entries)).scalar_one()


def test_refunds_of_a_partly_paid_invoice_are_limited_by_what_was_captured(engine: Engine,
                                                                           clock) -> None:
    # Consulting 80.00 + VAT 16.00 = 96.00; report 20.00 + VAT 4.00 = 24.00. Total 120.00.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Hartley & Sons Ltd", locale="en_GB",
                              country="GB")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="GBP",
                             tax_mode="exclusive", lines=[
                                 LineInput("Consulting", 1, 8000, VAT),
                                 LineInput("Written report", 1, 2000, VAT)])
    consulting, report = (ln["id"] for ln in inv["lines"])
    assert (inv["net_minor"], inv["tax_minor"], inv["total_minor"]) == (10000, 2000, 12000)

    clock.advance(days=2)
    with write(engine) as conn:
        record_payment(conn, clock, inv["id"], method="bank_transfer", amount_minor=5000,
                       currency="GBP", reference="BACS 1")
    assert _summary(engine, inv["id"]) == ("open", 5000, 7000, 0, 5000)

    # 50.01 is more than was captured: refused, nothing written.
    clock.advance(days=1)
    before = _entries(engine)
    with pytest.raises(AmountExceedsRefundable) as info, write(engine) as conn:
        create_refund(conn, clock, inv["id"], _by_amount(5001))
    assert (info.value.code, info.value.extra["refundable_minor"]) == (
        "amount_exceeds_refundable", 5000)
    assert _entries(engine) == before

    # 30.00 spread 9600 : 2400 (total 12000): 2400 and 600, exactly.
    # Consulting VAT round(1600 × 2400/9600) = 400, net 2000; report VAT 100, net 500.
    with write(engine) as conn:
        r1 = create_refund(conn, clock, inv["id"], _by_amount(3000))
    assert (r1["amount_minor"], r1["net_minor"], r1["tax_minor"]) == (3000, 2500, 500)
    assert {rl["invoice_line_id"]: (rl["gross_minor"], rl["tax_minor"]) for rl in r1["lines"]} \
        == {consulting: (2400, 400), report: (600, 100)}
    assert _summary(engine, inv["id"]) == ("partially_refunded", 5000, 7000, 3000, 2000)

    # 20.00 spread over what remains, 7200 : 1800 (total 9000): 1600 and 400, exactly.
    # Consulting, cumulative 4000: VAT round(1600 × 4000/9600) = round(666.67) = 667,
    #   now 667 − 400 = 267, net 1333.
    # Report, cumulative 1000: VAT round(400 × 1000/2400) = round(166.67) = 167,
    #   now 167 − 100 = 67, net 333.
    clock.advance(days=1)
    with write(engine) as conn:
        r2 = create_refund(conn, clock, inv["id"], _by_amount(2000))
    assert (r2["amount_minor"], r2["net_minor"], r2["tax_minor"]) == (2000, 1666, 334)
    assert {rl["invoice_line_id"]: (rl["gross_minor"], rl["tax_minor"]) for rl in r2["lines"]} \
        == {consulting: (1600, 267), report: (400, 67)}
    # Everything captured is back with the client; 70.00 is still due on the invoice.
    assert _summary(engine, inv["id"]) == ("partially_refunded", 5000, 7000, 5000, 0)

    before = _entries(engine)
    with pytest.raises(InvoiceNotRefundable), write(engine) as conn:
        create_refund(conn, clock, inv["id"], _by_amount(1))
    assert _entries(engine) == before

    # The client pays the remaining 70.00 by card: paid in full, 50.00 of it refunded.
    clock.advance(days=7)
    with write(engine) as conn:
        by_card = record_payment(conn, clock, inv["id"], method="card", amount_minor=7000,
                                 currency="GBP",
                                 card={"token": "tok_gb", "brand": "visa", "last4": "0005"})
    assert _summary(engine, inv["id"]) == ("partially_refunded", 12000, 0, 5000, 7000)

    # Full refund of what remains: consulting 9600 − 4000 = 5600, VAT 1600 − 667 = 933;
    # report 2400 − 1000 = 1400, VAT 400 − 167 = 233. 7000 = 5834 net + 1166 VAT, all to card.
    clock.advance(days=1)
    with write(engine) as conn:
        r3 = create_refund(conn, clock, inv["id"], RefundRequest(
            kind="full", method="original_payment", reason="goodwill"))
    assert (r3["amount_minor"], r3["net_minor"], r3["tax_minor"]) == (7000, 5834, 1166)
    assert [(t["payment_id"], t["amount_minor"]) for t in r3["tenders"]] == [(by_card["id"],
                                                                              7000)]
    assert _summary(engine, inv["id"]) == ("refunded", 12000, 0, 12000, 0)
    # VAT back: 500 + 334 + 1166 = 2000; net back: 2500 + 1666 + 5834 = 10000.

    with read(engine) as conn:
        balances = {a.name: account_balance(conn, a, "GBP") for a in ledger.CHART}
        totals = trial_balance(conn, "GBP")["totals"]
    # Bank: 5000 in, 3000 + 2000 out. Card: 7000 in, 7000 out.
    assert balances == {
        "Cash": 0, "Gateway clearing": 0, "Accounts receivable": 0, "Tax payable": 0,
        "Refunds payable": 0, "Store credit liability": 0, "Revenue": 10000,
        "Sales returns and allowances": -10000, "Restocking fee income": 0, "Breakage income": 0,
        "Chargeback losses": 0, "Dispute fees": 0, "Store credit incentives": 0}
    # Debits: 12000 (AR) + 5000 (cash) + 7000 (clearing) + 2 × (3000 + 2000 + 7000) = 48000.
    assert totals == [{"currency": "GBP", "debit_minor": 48000, "credit_minor": 48000,
                       "balanced": True}]
