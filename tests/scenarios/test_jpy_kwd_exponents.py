"""Scenarios in currencies without cents and with mils: JPY (exponent 0) and KWD (exponent 3).

Japan: a kitchen shop invoice with a 10 % line and an 8 % (reduced-rate food) line, prices
including consumption tax, is refunded in three partial refunds of odd yen amounts that together
make the whole. The tax refunded equals the tax charged exactly, per rate, and no yen drifts.

Kuwait: an invoice in dinars with 5 % tax added on top is refunded in three equal thirds of
5.833 KWD; after the third nothing is refundable.

Every figure is worked out by hand in the comments. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from payback.customers.service import create_customer
from payback.db import read, write
from payback.errors import InvoiceNotRefundable
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.money import format_money
from payback.payments.service import record_payment
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund

BOOKS = (ledger.GATEWAY_CLEARING, ledger.RECEIVABLE, ledger.TAX_PAYABLE, ledger.REFUNDS_PAYABLE,
         ledger.STORE_CREDIT, ledger.REVENUE, ledger.SALES_RETURNS)


def _refund_by_amount(engine: Engine, clock, invoice_id: str, amount: int) -> dict:
    with write(engine) as conn:
        return create_refund(conn, clock, invoice_id, RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=amount))


def _per_line(refund: dict) -> dict[str, tuple[int, int, int]]:
    return {rl["invoice_line_id"]: (rl["gross_minor"], rl["net_minor"], rl["tax_minor"])
            for rl in refund["lines"]}


def _status(engine: Engine, invoice_id: str) -> tuple[str, int, int]:
    with read(engine) as conn:
        inv = get_invoice(conn, invoice_id)
    return inv["status"], inv["amount_refunded_minor"], inv["amount_refundable_minor"]


def _books(engine: Engine, currency: str) -> tuple[dict[str, int], list[dict]]:
    with read(engine) as conn:
        return ({a.name: account_balance(conn, a, currency) for a in BOOKS},
                trial_balance(conn, currency)["totals"])


def test_japan_three_odd_partial_refunds_return_the_tax_exactly_per_rate(engine: Engine,
                                                                         clock) -> None:
    # Rice bowls 3 × ¥1,234 = ¥3,702 at 10 %: tax 3702 × 10/110 = 336.5 → 337, net 3365.
    # Tea 7 × ¥389 = ¥2,723 at 8 %:           tax 2723 ×  8/108 = 201.7 → 202, net 2521.
    # Invoice: ¥6,425 = 5886 net + 539 tax.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="佐藤 花子", locale="ja_JP", country="JP")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="JPY",
                             tax_mode="inclusive", lines=[
                                 LineInput("Rice bowl", 3, 1234, Decimal("0.10")),
                                 LineInput("Sencha 100 g", 7, 389, Decimal("0.08"),
                                           category="food")])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=6425,
                       currency="JPY", card={"token": "tok_jp", "brand": "jcb", "last4": "0000"})
    bowls, tea = (ln["id"] for ln in inv["lines"])
    assert [(ln["gross_minor"], ln["net_minor"], ln["tax_minor"]) for ln in inv["lines"]] == [
        (3702, 3365, 337), (2723, 2521, 202)]
    assert (inv["net_minor"], inv["tax_minor"], inv["total_minor"]) == (5886, 539, 6425)
    assert format_money(6425, "JPY") == "¥6,425"

    # Refund 1: ¥1,111 over 3702 : 2723 (total 6425):
    #   1111 × 3702 = 4112922 = 6425 × 640 + 922   → 640
    #   1111 × 2723 = 3025253 = 6425 × 470 + 5503  → 470, +1 (larger remainder) = 471
    # Bowls: tax round(337 × 640/3702) = round(58.26) = 58, net 582.
    # Tea:   tax round(202 × 471/2723) = round(34.94) = 35, net 436.
    clock.advance(days=1)
    r1 = _refund_by_amount(engine, clock, inv["id"], 1111)
    assert (r1["amount_minor"], r1["net_minor"], r1["tax_minor"]) == (1111, 1018, 93)
    assert _per_line(r1) == {bowls: (640, 582, 58), tea: (471, 436, 35)}
    assert _status(engine, inv["id"]) == ("partially_refunded", 1111, 5314)

    # Refund 2: ¥2,222 over what remains, 3062 : 2252 (total 5314):
    #   2222 × 3062 = 6803764 = 5314 × 1280 + 1844  → 1280
    #   2222 × 2252 = 5003944 = 5314 × 941 + 3470   → 941, +1 = 942
    # Bowls, cumulative 640 + 1280 = 1920: round(337 × 1920/3702) = round(174.78) = 175;
    #   tax now 175 − 58 = 117, net 1163.
    # Tea, cumulative 471 + 942 = 1413: round(202 × 1413/2723) = round(104.82) = 105;
    #   tax now 105 − 35 = 70, net 872.
    clock.advance(days=1)
    r2 = _refund_by_amount(engine, clock, inv["id"], 2222)
    assert (r2["amount_minor"], r2["net_minor"], r2["tax_minor"]) == (2222, 2035, 187)
    assert _per_line(r2) == {bowls: (1280, 1163, 117), tea: (942, 872, 70)}
    assert _status(engine, inv["id"]) == ("partially_refunded", 3333, 3092)

    # Refund 3: ¥3,092, exactly what remains: bowls 3702 − 1920 = 1782, tea 2723 − 1413 = 1310.
    # Bowls: tax 337 − 175 = 162, net 1620.  Tea: tax 202 − 105 = 97, net 1213.
    clock.advance(days=1)
    r3 = _refund_by_amount(engine, clock, inv["id"], 3092)
    assert (r3["amount_minor"], r3["net_minor"], r3["tax_minor"]) == (3092, 2833, 259)
    assert _per_line(r3) == {bowls: (1782, 1620, 162), tea: (1310, 1213, 97)}
    assert _status(engine, inv["id"]) == ("refunded", 6425, 0)

    # Tax refunded per rate: 10 %: 58 + 117 + 162 = 337; 8 %: 35 + 70 + 97 = 202.
    rate_of = {bowls: "10%", tea: "8%"}
    refunded_tax: dict[str, int] = defaultdict(int)
    for refund in (r1, r2, r3):
        for line_id, (_gross, _net, tax) in _per_line(refund).items():
            refunded_tax[rate_of[line_id]] += tax
    assert dict(refunded_tax) == {"10%": 337, "8%": 202}
    assert 93 + 187 + 259 == 539 and 1018 + 2035 + 2833 == 5886

    balances, totals = _books(engine, "JPY")
    assert balances == {"Gateway clearing": 0, "Accounts receivable": 0, "Tax payable": 0,
                        "Refunds payable": 0, "Store credit liability": 0, "Revenue": 5886,
                        "Sales returns and allowances": -5886}
    # Debits: 6425 (AR) + 6425 (clearing) + 3 × (refund approved + refund paid) = 6425 × 4.
    assert totals == [{"currency": "JPY", "debit_minor": 25700, "credit_minor": 25700,
                       "balanced": True}]


def test_kuwait_invoice_refunded_in_thirds(engine: Engine, clock) -> None:
    # Consulting 1 × 10.000 KWD at 5 % on top: tax 0.500, gross 10.500.
    # Templates 2 × 3.333 = 6.666 KWD: tax 6666 × 0.05 = 333.3 → 0.333, gross 6.999.
    # Invoice: 16.666 net + 0.833 tax = 17.499 KWD; a third is 5.833.
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Fahad Al-Sabah", country="KW")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="KWD",
                             tax_mode="exclusive", lines=[
                                 LineInput("Consulting", 1, 10000, Decimal("0.05")),
                                 LineInput("Templates", 2, 3333, Decimal("0.05"))])
        record_payment(conn, clock, inv["id"], method="bank_transfer", amount_minor=17499,
                       currency="KWD", reference="KW-TRF-0091")
    consulting, templates = (ln["id"] for ln in inv["lines"])
    assert (inv["net_minor"], inv["tax_minor"], inv["total_minor"]) == (16666, 833, 17499)

    # Each third of 5833 splits 10500 : 6999 exactly into 3500 and 2333 (both divide by 3).
    # Consulting tax, cumulative: round(500/3) = 167; round(1000/3) = 333 → 166; 500 → 167.
    # Templates tax, cumulative: 111, 222, 333 → 111 each time.
    expected = [
        ((5833, 5555, 278), {consulting: (3500, 3333, 167), templates: (2333, 2222, 111)}),
        ((5833, 5556, 277), {consulting: (3500, 3334, 166), templates: (2333, 2222, 111)}),
        ((5833, 5555, 278), {consulting: (3500, 3333, 167), templates: (2333, 2222, 111)}),
    ]
    statuses = []
    for figures, lines in expected:
        clock.advance(days=10)
        refund = _refund_by_amount(engine, clock, inv["id"], 5833)
        assert (refund["amount_minor"], refund["net_minor"], refund["tax_minor"]) == figures
        assert _per_line(refund) == lines
        assert refund["tenders"][0]["destination"] == "original_payment"
        statuses.append(_status(engine, inv["id"]))
    assert statuses == [("partially_refunded", 5833, 11666), ("partially_refunded", 11666, 5833),
                        ("refunded", 17499, 0)]
    # 278 + 277 + 278 = 833 tax and 5555 + 5556 + 5555 = 16666 net: exactly what was charged.
    assert format_money(5833, "KWD") == "KWD5.833"  # three decimals, en_US style

    clock.advance(days=1)
    with pytest.raises(InvoiceNotRefundable) as info:
        _refund_by_amount(engine, clock, inv["id"], 1)  # 0.001 KWD more: nothing is left
    assert info.value.code == "invoice_not_refundable"

    balances, totals = _books(engine, "KWD")
    assert balances == {"Gateway clearing": 0, "Accounts receivable": 0, "Tax payable": 0,
                        "Refunds payable": 0, "Store credit liability": 0, "Revenue": 16666,
                        "Sales returns and allowances": -16666}
    with read(engine) as conn:
        assert account_balance(conn, ledger.CASH, "KWD") == 17499 - 3 * 5833 == 0
    # Debits: 17499 (AR) + 17499 (cash) + 3 × 5833 (approved) + 3 × 5833 (paid) = 17499 × 4.
    assert totals == [{"currency": "KWD", "debit_minor": 69996, "credit_minor": 69996,
                       "balanced": True}]
