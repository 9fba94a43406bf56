"""Scenario: a New York running shop (USD, sales tax 8.875 % added on top) and a split payment.

A customer who returned a jacket holds 54.44 of store credit. She buys shoes and socks for 173.08,
pays 54.44 with her store credit and the rest, 118.64, by card. A week later the shop gives back
50.00 (a partial refund by amount, spread over both lines and over both tenders), and later it
refunds the remainder in full. Each tender gets back exactly what it paid: the card 118.64, the
wallet 54.44; the tax refunded is exactly the tax charged, per line.

All figures are worked out by hand in the comments (largest-remainder spreading, tax reversed
cumulatively, half-up rounding). Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from payback.customers.service import create_customer
from payback.db import read, write
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.payments.service import record_payment
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund
from payback.reports.service import revenue
from payback.store_credit.service import get_wallet

NYC = Decimal("0.08875")
CARD = {"token": "tok_us_1", "brand": "visa", "last4": "1881"}


def _status(engine: Engine, invoice_id: str) -> tuple[str, int, int, int]:
    with read(engine) as conn:
        inv = get_invoice(conn, invoice_id)
    return (inv["status"], inv["amount_paid_minor"], inv["amount_refunded_minor"],
            inv["amount_refundable_minor"])


def _per_line(refund: dict) -> dict[str, tuple[int, int, int]]:
    return {rl["invoice_line_id"]: (rl["gross_minor"], rl["net_minor"], rl["tax_minor"])
            for rl in refund["lines"]}


def _per_tender(refund: dict) -> dict[str, tuple[str, int]]:
    return {t["payment_id"]: (t["destination"], t["amount_minor"]) for t in refund["tenders"]}


def test_us_split_tender_partial_then_full_refund(engine: Engine, clock) -> None:
    # ------------------------------------------------- 15 Jan: the store credit she holds
    # Jacket 50.00 + tax 50.00 × 8.875 % = 4.4375 → 4.44: total 54.44, paid by card, then
    # returned in full to store credit.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Maya Chen", locale="en_US", country="US")
        jacket_inv = create_invoice(conn, clock, customer_id=cus["id"], currency="USD",
                                    tax_mode="exclusive",
                                    lines=[LineInput("Rain jacket", 1, 5000, NYC)])
        record_payment(conn, clock, jacket_inv["id"], method="card", amount_minor=5444,
                       currency="USD", card=CARD)
    assert (jacket_inv["net_minor"], jacket_inv["tax_minor"],
            jacket_inv["total_minor"]) == (5000, 444, 5444)
    clock.advance(days=2)
    with write(engine) as conn:
        jacket_refund = create_refund(conn, clock, jacket_inv["id"], RefundRequest(
            kind="full", method="store_credit", reason="not_as_described"))
    assert (jacket_refund["amount_minor"], jacket_refund["net_minor"],
            jacket_refund["tax_minor"]) == (5444, 5000, 444)
    assert _status(engine, jacket_inv["id"]) == ("refunded", 5444, 5444, 0)

    # ------------------------------------------- 20 Jan: shoes and socks, split payment
    # Shoes 1 × 120.00: tax 12000 × 0.08875 = 1065.00 exactly; gross 13065.
    # Socks 3 × 12.99 = 38.97: tax 3897 × 0.08875 = 345.85875 → 346; gross 4243.
    # Invoice: net 15897, tax 1411, total 17308 = 5444 store credit + 11864 card.
    clock.advance(days=3)
    with write(engine) as conn:
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="USD",
                             tax_mode="exclusive", lines=[
                                 LineInput("Running shoes", 1, 12000, NYC, sku="RS-42"),
                                 LineInput("Running socks", 3, 1299, NYC, sku="SK-3")])
    shoes, socks = (ln["id"] for ln in inv["lines"])
    assert [(ln["net_minor"], ln["tax_minor"], ln["gross_minor"]) for ln in inv["lines"]] == [
        (12000, 1065, 13065), (3897, 346, 4243)]
    assert (inv["net_minor"], inv["tax_minor"], inv["total_minor"]) == (15897, 1411, 17308)
    with write(engine) as conn:
        by_credit = record_payment(conn, clock, inv["id"], method="store_credit",
                                   amount_minor=5444, currency="USD")
    assert _status(engine, inv["id"]) == ("open", 5444, 0, 5444)
    clock.advance(minutes=1)
    with write(engine) as conn:
        by_card = record_payment(conn, clock, inv["id"], method="card", amount_minor=11864,
                                 currency="USD", card=CARD)
    assert _status(engine, inv["id"]) == ("paid", 17308, 0, 17308)
    with read(engine) as conn:
        assert get_wallet(conn, cus["id"], "USD")["balance_minor"] == 0

    # -------------------------------------------- 27 Jan: 50.00 back, by amount
    # Over the lines, by what remains (13065 : 4243, total 17308):
    #   5000 × 13065 = 65325000 = 17308 × 3774 + 4608   → 3774
    #   5000 ×  4243 = 21215000 = 17308 × 1225 + 12700  → 1225, +1 (larger remainder) = 1226
    # Shoes: tax round(1065 × 3774/13065) = round(307.64) = 308, net 3466.
    # Socks: tax round(346 × 1226/4243) = round(99.98) = 100, net 1126.
    # Refund: 5000 = 4592 net + 408 tax.
    # Over the tenders, by what each can give back (5444 : 11864, total 17308):
    #   5000 × 5444 = 27220000 = 17308 × 1572 + 11824   → 1572, +1 = 1573 (store credit)
    #   5000 × 11864 = 59320000 = 17308 × 3427 + 5484   → 3427 (card)
    clock.advance(days=7)
    with write(engine) as conn:
        partial = create_refund(conn, clock, inv["id"], RefundRequest(
            kind="amount", method="original_payment", reason="billing_error",
            amount_minor=5000, note="price match"))
    assert (partial["amount_minor"], partial["net_minor"], partial["tax_minor"]) == (5000,
                                                                                     4592, 408)
    assert _per_line(partial) == {shoes: (3774, 3466, 308), socks: (1226, 1126, 100)}
    assert _per_tender(partial) == {by_credit["id"]: ("store_credit", 1573),
                                    by_card["id"]: ("original_payment", 3427)}
    assert _status(engine, inv["id"]) == ("partially_refunded", 17308, 5000, 12308)
    with read(engine) as conn:
        assert get_wallet(conn, cus["id"], "USD")["balance_minor"] == 1573

    # ---------------------------------------------- 10 Feb: the remainder, in full
    # Shoes: gross 13065 − 3774 = 9291, tax 1065 − 308 = 757, net 8534.
    # Socks: gross 4243 − 1226 = 3017, tax 346 − 100 = 246, net 2771.
    # Refund: 12308 = 11305 net + 1003 tax.
    # Tenders: store credit 5444 − 1573 = 3871, card 11864 − 3427 = 8437.
    clock.advance(days=14)
    with write(engine) as conn:
        rest = create_refund(conn, clock, inv["id"], RefundRequest(
            kind="full", method="original_payment", reason="product_defective"))
    assert (rest["amount_minor"], rest["net_minor"], rest["tax_minor"]) == (12308, 11305, 1003)
    assert _per_line(rest) == {shoes: (9291, 8534, 757), socks: (3017, 2771, 246)}
    assert _per_tender(rest) == {by_credit["id"]: ("store_credit", 3871),
                                 by_card["id"]: ("original_payment", 8437)}
    assert _status(engine, inv["id"]) == ("refunded", 17308, 17308, 0)

    # Each tender got back exactly what it paid; the tax refunded is the tax charged per line.
    assert 1573 + 3871 == by_credit["amount_minor"] == 5444
    assert 3427 + 8437 == by_card["amount_minor"] == 11864
    with read(engine) as conn:
        final = get_invoice(conn, inv["id"])
        wallet = get_wallet(conn, cus["id"], "USD")
        balances = {acct.name: account_balance(conn, acct, "USD") for acct in ledger.CHART}
        tb = trial_balance(conn, "USD")
        report = revenue(conn, date(2026, 1, 1), date(2026, 3, 1), currency="USD")
    assert [(ln["refunded_gross_minor"], ln["refunded_tax_minor"]) for ln in final["lines"]] == [
        (13065, 308 + 757), (4243, 100 + 246)]
    assert [(t["kind"], t["amount_minor"], t["balance_after_minor"])
            for t in wallet["transactions"]] == [
        ("refund", 5444, 5444), ("spend", -5444, 0), ("refund", 1573, 1573),
        ("refund", 3871, 5444)]

    # ------------------------------------------------------------ the books at the end
    # Jacket:  Dr AR 5444 / Cr Revenue 5000, Tax 444; Dr Clearing 5444 / Cr AR 5444;
    #          Dr Returns 5000, Tax 444 / Cr Store credit 5444.
    # Shoes:   Dr AR 17308 / Cr Revenue 15897, Tax 1411;
    #          Dr Store credit 5444 / Cr AR 5444; Dr Clearing 11864 / Cr AR 11864.
    # Partial: Dr Returns 4592, Tax 408 / Cr Refunds payable 5000;
    #          Dr RP 5000 / Cr Clearing 3427, Cr Store credit 1573.
    # Rest:    Dr Returns 11305, Tax 1003 / Cr RP 12308;
    #          Dr RP 12308 / Cr Clearing 8437, Cr Store credit 3871.
    assert balances == {
        "Cash": 0,
        "Gateway clearing": 5444 + 11864 - 3427 - 8437,      # 5444: the jacket's card money
        "Accounts receivable": 0,
        "Tax payable": 444 + 1411 - 444 - 408 - 1003,        # 0: everything was returned
        "Refunds payable": 0,
        "Store credit liability": 5444 - 5444 + 1573 + 3871,  # 5444 = the wallet balance
        "Revenue": 5000 + 15897,                             # 20897
        "Sales returns and allowances": -(5000 + 4592 + 11305),  # −20897
        "Restocking fee income": 0,
        "Breakage income": 0,
        "Chargeback losses": 0,
        "Dispute fees": 0,
        "Store credit incentives": 0,
    }
    assert balances["Store credit liability"] == wallet["balance_minor"]
    # Debits: 5444 + 5444 + (5000 + 444) + 17308 + 5444 + 11864 + (4592 + 408) + 5000
    #         + (11305 + 1003) + 12308 = 85564.
    assert tb["totals"] == [{"currency": "USD", "debit_minor": 85564, "credit_minor": 85564,
                             "balanced": True}]
    assert report["periods"][0]["currencies"] == [{
        "currency": "USD", "gross_sales_minor": 20897, "returns_minor": 20897,
        "net_revenue_minor": 0, "tax_collected_minor": 1855, "tax_refunded_minor": 1855,
        # Money that left through the card: 5000 + 12308 minus the wallet's legs of the split
        # refunds (1573 + 3871), which went back to store credit instead.
        "net_tax_minor": 0, "refunds_paid_out_minor": 5000 + 12308 - 1573 - 3871,
        # Store credit credited by refund entries: the jacket (5444) and the wallet's legs of
        # the split refunds (1573 + 3871). The two figures never overlap.
        "refunds_to_store_credit_minor": 5444 + 1573 + 3871}]
