"""Scenario: a German web shop (EUR, prices include VAT) over six weeks.

An order with headphones at 19 %, a cookbook at 7 %, an invoice discount and shipping at 19 % is
paid by card. The customer sends back one of the two headphones (a line refund that reverses that
unit's share of the discount too), later the shipping is refunded, later everything else is
turned into store credit, and then part of that credit pays for a new order.

Every figure below was worked out by hand (in the comments) from the documented rules, not by
calling the code under test: VAT per line ``round(gross × r / (1 + r))`` half up, the invoice
discount spread over item lines by largest remainder, refunds reversing tax cumulatively. The
story ends with exact balances of every ledger account and a revenue report that equals them.
Runs on SQLite and on PostgreSQL.
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
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.service import create_refund, preview_refund
from payback.reports.service import revenue
from payback.store_credit.service import get_wallet

VAT_19, VAT_7 = Decimal("0.19"), Decimal("0.07")


def _status(engine: Engine, invoice_id: str) -> tuple[str, int, int, int]:
    with read(engine) as conn:
        inv = get_invoice(conn, invoice_id)
    return (inv["status"], inv["amount_paid_minor"], inv["amount_refunded_minor"],
            inv["amount_refundable_minor"])


def _figures(refund: dict) -> tuple[int, int, int]:
    return refund["amount_minor"], refund["net_minor"], refund["tax_minor"]


def _lines(refund: dict) -> dict[str, tuple[int, int, int, int, int]]:
    """invoice line id -> (quantity, gross, net, tax, discount) reversed by this refund."""
    return {rl["invoice_line_id"]: (rl["quantity"], rl["gross_minor"], rl["net_minor"],
                                    rl["tax_minor"], rl["discount_minor"])
            for rl in refund["lines"]}


def test_eu_shop_return_shipping_store_credit_and_respend(engine: Engine, clock) -> None:
    # ------------------------------------------------------------ 15 Jan: the order
    # Headphones 2 × 59.50 = 119.00 (19 %), cookbook 1 × 24.00 (7 %), shipping 4.90 (19 %),
    # invoice discount 10.00 over the item lines only, by weight 11900 : 2400 (total 14300):
    #   1000 × 11900 / 14300 = 832 rem 2400;  1000 × 2400 / 14300 = 167 rem 11900
    #   one cent left over goes to the larger remainder (cookbook): shares 832 and 168.
    # Headphones gross 11900 − 832 = 11068, VAT 11068 × 19/119 = 1767.16 → 1767, net 9301.
    # Cookbook   gross  2400 − 168 =  2232, VAT  2232 ×  7/107 =  146.02 →  146, net 2086.
    # Shipping   gross               490, VAT   490 × 19/119 =   78.24 →   78, net  412.
    # Invoice: gross 13790, VAT 1991, net 11799, subtotal 14790, discount 1000.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Lena Fischer", email="lena@example.de",
                              locale="de_DE", country="DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="inclusive", discount_minor=1000, lines=[
                                 LineInput("Headphones", 2, 5950, VAT_19, sku="HP-1",
                                           category="audio"),
                                 LineInput("Cookbook", 1, 2400, VAT_7, sku="BK-7",
                                           category="books"),
                                 LineInput("Shipping DHL", 1, 490, VAT_19, kind="shipping"),
                             ])
    headphones, cookbook, shipping = (ln["id"] for ln in inv["lines"])
    assert [(ln["invoice_discount_minor"], ln["gross_minor"], ln["tax_minor"], ln["net_minor"])
            for ln in inv["lines"]] == [(832, 11068, 1767, 9301), (168, 2232, 146, 2086),
                                        (0, 490, 78, 412)]
    assert (inv["subtotal_minor"], inv["discount_minor"], inv["net_minor"], inv["tax_minor"],
            inv["total_minor"]) == (14790, 1000, 11799, 1991, 13790)
    assert inv["status"] == "open"

    clock.advance(minutes=5)
    with write(engine) as conn:
        record_payment(conn, clock, inv["id"], method="card", amount_minor=13790,
                       currency="EUR", card={"token": "tok_de_1", "brand": "mastercard",
                                             "last4": "5100"})
    assert _status(engine, inv["id"]) == ("paid", 13790, 0, 13790)

    # ------------------------------------------------- 18 Jan: one headphone comes back
    # 1 of 2 units: gross 11068 × 1/2 = 5534; VAT round(1767 × 5534/11068) = 883.5 → 884;
    # net 4650; discount share round(832 / 2) = 416.
    clock.advance(days=3)
    return_one = RefundRequest(kind="lines", method="original_payment",
                               reason="requested_by_customer",
                               lines=(LineRequest(headphones, 1),), note="14-day return")
    with read(engine) as conn:
        preview = preview_refund(conn, inv["id"], return_one, currency="EUR")
    assert _figures(preview) == (5534, 4650, 884)
    assert (preview["refundable_before_minor"], preview["refundable_after_minor"]) == (13790,
                                                                                      8256)
    with write(engine) as conn:
        r1 = create_refund(conn, clock, inv["id"], return_one, currency="EUR")
    assert _figures(r1) == (5534, 4650, 884)
    assert _lines(r1) == {headphones: (1, 5534, 4650, 884, 416)}
    assert [(t["destination"], t["amount_minor"]) for t in r1["tenders"]] == [
        ("original_payment", 5534)]
    assert _status(engine, inv["id"]) == ("partially_refunded", 13790, 5534, 8256)

    # ------------------------------------------------------ 22 Jan: shipping refunded
    # The whole shipping line: gross 490, VAT 78, net 412, no discount share.
    clock.advance(days=4)
    with write(engine) as conn:
        r2 = create_refund(conn, clock, inv["id"], RefundRequest(
            kind="lines", method="original_payment", reason="goodwill",
            lines=(LineRequest(shipping, 1),), note="parcel was late"))
    assert _figures(r2) == (490, 412, 78)
    assert _lines(r2) == {shipping: (1, 490, 412, 78, 0)}
    assert _status(engine, inv["id"]) == ("partially_refunded", 13790, 6024, 7766)

    # ---------------------------------------------- 1 Feb: the rest to store credit
    # Headphones: the last unit takes what remains, 11068 − 5534 = 5534; VAT 1767 − 884 = 883;
    #   net 4651; discount 832 − 416 = 416.
    # Cookbook: gross 2232, VAT 146, net 2086, discount 168.  Shipping: nothing left.
    # Refund: 7766 = 6737 net + 1029 VAT, all of it to the wallet.
    clock.advance(days=10)
    with write(engine) as conn:
        r3 = create_refund(conn, clock, inv["id"], RefundRequest(
            kind="full", method="store_credit", reason="requested_by_customer"))
    assert _figures(r3) == (7766, 6737, 1029)
    assert _lines(r3) == {headphones: (1, 5534, 4651, 883, 416),
                          cookbook: (1, 2232, 2086, 146, 168)}
    assert [(t["destination"], t["amount_minor"]) for t in r3["tenders"]] == [
        ("store_credit", 7766)]
    assert _status(engine, inv["id"]) == ("refunded", 13790, 13790, 0)
    # Over the three refunds: 5534 + 490 + 7766 = 13790 gross; VAT 884 + 78 + 1029 = 1991,
    # exactly the VAT charged; per line: headphones 884 + 883 = 1767, shipping 78, book 146.
    with read(engine) as conn:
        lines = {ln["id"]: ln for ln in get_invoice(conn, inv["id"])["lines"]}
    assert {k: (v["refunded_quantity"], v["refunded_gross_minor"], v["refunded_tax_minor"])
            for k, v in lines.items()} == {headphones: (2, 11068, 1767),
                                           cookbook: (1, 2232, 146), shipping: (1, 490, 78)}

    # ------------------------------------------- 15 Feb: part of the credit is spent
    # A headphone case 29.75 incl. 19 %: VAT 2975 × 19/119 = 475 exactly, net 2500.
    clock.advance(days=14)
    with write(engine) as conn:
        inv2 = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                              tax_mode="inclusive",
                              lines=[LineInput("Headphone case", 1, 2975, VAT_19)])
    assert (inv2["net_minor"], inv2["tax_minor"], inv2["total_minor"]) == (2500, 475, 2975)
    assert inv2["number"] != inv["number"]
    clock.advance(minutes=1)
    with write(engine) as conn:
        pay2 = record_payment(conn, clock, inv2["id"], method="store_credit", amount_minor=2975,
                              currency="EUR")
    assert pay2["wallet_id"] is not None
    assert _status(engine, inv2["id"]) == ("paid", 2975, 0, 2975)

    with read(engine) as conn:
        wallet = get_wallet(conn, cus["id"], "EUR")
    assert wallet["balance_minor"] == 7766 - 2975 == 4791
    assert [(t["kind"], t["amount_minor"], t["balance_after_minor"], t["refund_id"],
             t["payment_id"]) for t in wallet["transactions"]] == [
        ("refund", 7766, 7766, r3["id"], None),
        ("spend", -2975, 4791, None, pay2["id"])]

    # ------------------------------------------------------------- the books at the end
    # Invoice 1   Dr AR 13790            Cr Revenue 11799, Cr VAT 1991
    # Card        Dr Clearing 13790      Cr AR 13790
    # Refund 1    Dr Returns 4650, VAT 884   Cr Refunds payable 5534; paid: Dr RP, Cr Clearing
    # Refund 2    Dr Returns 412, VAT 78     Cr RP 490;                paid: Dr RP, Cr Clearing
    # Refund 3    Dr Returns 6737, VAT 1029  Cr Store credit 7766
    # Invoice 2   Dr AR 2975             Cr Revenue 2500, Cr VAT 475
    # Credit pays Dr Store credit 2975   Cr AR 2975
    with read(engine) as conn:
        balances = {acct.name: account_balance(conn, acct, "EUR") for acct in ledger.CHART}
        tb = trial_balance(conn, "EUR")
        report = revenue(conn, date(2026, 1, 1), date(2026, 3, 1), currency="EUR",
                         group_by="month")
    assert balances == {
        "Cash": 0,
        "Gateway clearing": 13790 - 5534 - 490,            # 7766 kept by the shop
        "Accounts receivable": 13790 + 2975 - 13790 - 2975,  # 0: both invoices settled
        "Tax payable": 1991 + 475 - 884 - 78 - 1029,       # 475: only the case's VAT is owed
        "Refunds payable": 0,
        "Store credit liability": 7766 - 2975,             # 4791, the wallet balance
        "Revenue": 11799 + 2500,                           # 14299
        # Contra-revenue, shown on the income side's normal balance: −(4650 + 412 + 6737).
        "Sales returns and allowances": -11799,
        "Restocking fee income": 0,
        "Breakage income": 0,
        "Chargeback losses": 0,
        "Dispute fees": 0,
        "Store credit incentives": 0,
    }
    # Debits: 13790 + 13790 + (4650 + 884) + 5534 + (412 + 78) + 490 + (6737 + 1029)
    #         + 2975 + 2975 = 53344, and the credits are the same.
    assert tb["totals"] == [{"currency": "EUR", "debit_minor": 53344, "credit_minor": 53344,
                             "balanced": True}]

    january, february = (p["currencies"] for p in report["periods"])
    assert january == [{
        "currency": "EUR", "gross_sales_minor": 11799, "returns_minor": 4650 + 412,
        "net_revenue_minor": 11799 - 5062, "tax_collected_minor": 1991,
        "tax_refunded_minor": 884 + 78, "net_tax_minor": 1991 - 962,
        "refunds_paid_out_minor": 5534 + 490, "refunds_to_store_credit_minor": 0}]
    assert february == [{
        "currency": "EUR", "gross_sales_minor": 2500, "returns_minor": 6737,
        "net_revenue_minor": 2500 - 6737, "tax_collected_minor": 475,
        "tax_refunded_minor": 1029, "net_tax_minor": 475 - 1029,
        "refunds_paid_out_minor": 0, "refunds_to_store_credit_minor": 7766}]
    # The report agrees with the ledger: summed over the periods it is the account balances.
    assert sum(p["gross_sales_minor"] for p in january + february) == balances["Revenue"]
    assert sum(p["returns_minor"] for p in january + february) == \
        -balances["Sales returns and allowances"]
    assert sum(p["net_tax_minor"] for p in january + february) == balances["Tax payable"]
