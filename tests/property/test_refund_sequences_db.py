"""Hypothesis: random refund sequences through the real services on SQLite and PostgreSQL.

Each example issues a fresh invoice for a fresh customer (the database is not emptied between
Hypothesis examples): 1–6 lines in JPY, EUR or KWD, both tax modes, rates including 0, line and
invoice discounts and an optional shipping line; pays it in full with one to three payments
(card, bank transfer and store credit, the store credit first granted by refunding a seed
invoice to the wallet); then runs 1–30 refunds by amount or by lines, to the original payment or
to store credit, through ``refunds.service.create_refund``, and a final full refund. After every
step, read back from the database:

- every journal entry balances per currency (postings grouped per entry), and the trial balance
  totals balance per currency;
- refunded ≤ captured on the invoice, and the preview taken just before equals the refund made;
- the ``invoice_lines`` guard counters equal the sums of the refund lines;
- each payment's ``refunded_minor`` equals the sum of its refund tenders;
- the store-credit balance equals the sum of its transactions and is never negative;
and at the end the invoice is ``refunded`` with the tax refunded equal to the tax charged, per
line and in total.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from payback import db
from payback.clock import FixedClock
from payback.customers.service import create_customer
from payback.errors import InvoiceNotRefundable
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.ledger.service import trial_balance
from payback.ledger.tables import postings
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.service import create_refund, preview_refund
from payback.refunds.tables import refund_lines, refund_tenders, refunds
from payback.store_credit.tables import wallet_transactions, wallets

RATES = [Decimal(r) for r in ("0", "0.07", "0.1", "0.2", "0.25")]
MAX_PRICE = {"JPY": 50_000, "EUR": 50_000, "KWD": 200_000}
CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def invoice_specs(draw) -> dict:
    currency = draw(st.sampled_from(sorted(MAX_PRICE)))
    lines = [LineInput(f"item {i}", draw(st.integers(1, 20)),
                       draw(st.integers(1, MAX_PRICE[currency])), draw(st.sampled_from(RATES)))
             for i in range(draw(st.integers(1, 6)))]
    lines = [LineInput(ln.description, ln.quantity, ln.unit_price_minor, ln.tax_rate,
                       discount_minor=draw(st.one_of(st.just(0), st.integers(
                           0, ln.quantity * ln.unit_price_minor // 2))))
             for ln in lines]
    if draw(st.booleans()):
        lines.append(LineInput("shipping", 1, draw(st.integers(0, MAX_PRICE[currency] // 10)),
                               draw(st.sampled_from(RATES)), kind="shipping"))
    items = sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in lines
                if ln.kind == "item")
    return {"currency": currency, "tax_mode": draw(st.sampled_from(["exclusive", "inclusive"])),
            "lines": lines, "discount_minor": draw(st.one_of(st.just(0),
                                                             st.integers(0, items // 2)))}


def clock() -> FixedClock:
    """The conftest ``clock`` fixture's instant; a new one per call (fixtures are per test)."""
    return FixedClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))


# ----------------------------------------------------------------------------- set-up


def seed_store_credit(conn, clk, customer_id: str, currency: str, amount: int) -> None:
    """Give the customer ``amount`` of store credit the way the product does: a refund."""
    seed = create_invoice(conn, clk, customer_id=customer_id, currency=currency,
                          tax_mode="exclusive", lines=[LineInput("seed", 1, amount, Decimal(0))])
    record_payment(conn, clk, seed["id"], method="card", amount_minor=amount, currency=currency,
                   card=CARD)
    create_refund(conn, clk, seed["id"], RefundRequest("full", "store_credit", "goodwill"))


def issue_and_pay(engine, spec: dict, data: st.DataObject) -> tuple[dict, str]:
    """A fresh customer and invoice, paid in full by one to three tenders."""
    clk = clock()
    with db.write(engine) as conn:
        customer = create_customer(conn, clk, name="Hypothesis")
        inv = create_invoice(conn, clk, customer_id=customer["id"], **spec)
    total = inv["total_minor"]
    n = data.draw(st.integers(1, 3), label="payments")
    cuts = sorted(data.draw(st.lists(st.integers(0, total), min_size=n - 1, max_size=n - 1),
                            label="cuts"))
    amounts = [b - a for a, b in zip([0, *cuts], [*cuts, total]) if b - a]
    methods = [data.draw(st.sampled_from(["card", "bank_transfer", "store_credit"]),
                         label="method") for _ in amounts]
    with db.write(engine) as conn:
        credit = sum(a for a, m in zip(amounts, methods) if m == "store_credit")
        if credit:
            seed_store_credit(conn, clk, customer["id"], spec["currency"], credit)
        for amount, method in zip(amounts, methods):
            record_payment(conn, clk, inv["id"], method=method, amount_minor=amount,
                           currency=spec["currency"], card=CARD if method == "card" else None)
    return inv, customer["id"]


def draw_request(data: st.DataObject, inv: dict) -> RefundRequest:
    method = data.draw(st.sampled_from(["original_payment", "store_credit"]), label="to")
    open_lines = [ln for ln in inv["lines"] if ln["refundable_quantity"] > 0]
    kind = data.draw(st.sampled_from(["amount", "lines"] if open_lines else ["amount"]),
                     label="kind")
    if kind == "lines":
        chosen = data.draw(st.lists(st.sampled_from(open_lines), min_size=1, max_size=3,
                                    unique_by=lambda ln: ln["id"]), label="lines")
        return RefundRequest("lines", method, "product_defective", lines=tuple(
            LineRequest(ln["id"], data.draw(st.integers(1, ln["refundable_quantity"]),
                                            label="qty")) for ln in chosen))
    most = inv["amount_refundable_minor"]
    amount = data.draw(st.one_of(st.integers(1, min(most, 3)), st.integers(1, most)),
                       label="amount")
    return RefundRequest("amount", method, "requested_by_customer", amount_minor=amount)


def refund_once(engine, inv_id: str, req: RefundRequest) -> dict | None:
    with db.read(engine) as conn:
        try:
            preview = preview_refund(conn, inv_id, req)
        except InvoiceNotRefundable:
            preview = None
    clk = clock()
    try:
        with db.write(engine) as conn:
            made = create_refund(conn, clk, inv_id, req)
    except InvoiceNotRefundable:
        assert preview is None  # preview and create run the same calculator
        return None
    assert preview is not None
    assert (preview["amount_minor"], preview["net_minor"], preview["tax_minor"]) == \
        (made["amount_minor"], made["net_minor"], made["tax_minor"])
    assert sorted((p["invoice_line_id"], p["gross_minor"], p["tax_minor"])
                  for p in preview["lines"]) == \
        sorted((m["invoice_line_id"], m["gross_minor"], m["tax_minor"]) for m in made["lines"])
    return made


# ----------------------------------------------------------------------------- checks


def check_books(conn) -> None:
    unbalanced = conn.execute(
        select(postings.c.entry_id, postings.c.currency)
        .group_by(postings.c.entry_id, postings.c.currency)
        .having(func.sum(postings.c.debit_minor) != func.sum(postings.c.credit_minor))).all()
    assert unbalanced == []
    totals = trial_balance(conn)["totals"]
    assert totals and all(t["balanced"] and t["debit_minor"] == t["credit_minor"]
                          for t in totals)


def check_invoice(conn, inv_id: str) -> dict:
    inv = get_invoice(conn, inv_id)
    assert 0 <= inv["amount_refunded_minor"] <= inv["amount_paid_minor"] == inv["total_minor"]
    assert inv["amount_refundable_minor"] == inv["amount_paid_minor"] - inv["amount_refunded_minor"]
    sums = {line_id: (int(q), int(g), int(t)) for line_id, q, g, t in conn.execute(
        select(refund_lines.c.invoice_line_id, func.sum(refund_lines.c.quantity),
               func.sum(refund_lines.c.gross_minor), func.sum(refund_lines.c.tax_minor))
        .join(refunds, refunds.c.id == refund_lines.c.refund_id)
        .where(refunds.c.invoice_id == inv_id).group_by(refund_lines.c.invoice_line_id))}
    for ln in inv["lines"]:
        counters = (ln["refunded_quantity"], ln["refunded_gross_minor"], ln["refunded_tax_minor"])
        assert counters == sums.get(ln["id"], (0, 0, 0))
        assert ln["refunded_gross_minor"] <= ln["gross_minor"]
        assert ln["refunded_tax_minor"] <= ln["tax_minor"]
    refunded = sum(ln["refunded_gross_minor"] for ln in inv["lines"])
    assert refunded == inv["amount_refunded_minor"]
    return inv


def check_payments(conn, inv_id: str) -> None:
    tendered = dict(conn.execute(
        select(refund_tenders.c.payment_id, func.sum(refund_tenders.c.amount_minor))
        .join(payments, payments.c.id == refund_tenders.c.payment_id)
        .where(payments.c.invoice_id == inv_id).group_by(refund_tenders.c.payment_id)).all())
    for p in conn.execute(select(payments).where(payments.c.invoice_id == inv_id)):
        assert p.refunded_minor == int(tendered.get(p.id, 0))
        assert 0 <= p.refunded_minor <= p.amount_minor


def check_wallet(conn, customer_id: str) -> None:
    for w in conn.execute(select(wallets).where(wallets.c.customer_id == customer_id)):
        history = conn.execute(select(wallet_transactions.c.amount_minor,
                                      wallet_transactions.c.balance_after_minor)
                               .where(wallet_transactions.c.wallet_id == w.id)
                               .order_by(wallet_transactions.c.created_at,
                                         wallet_transactions.c.id)).all()
        assert w.balance_minor == sum(h.amount_minor for h in history) >= 0
        running = 0
        for h in history:
            running += h.amount_minor
            assert running >= 0 and h.balance_after_minor == running


def check_all(engine, inv_id: str, customer_id: str) -> dict:
    with db.read(engine) as conn:
        check_books(conn)
        check_payments(conn, inv_id)
        check_wallet(conn, customer_id)
        return check_invoice(conn, inv_id)


# ----------------------------------------------------------------------------- the property


@SETTINGS
@given(spec=invoice_specs(), data=st.data())
def test_random_refund_sequences_keep_the_books_exact(engine, spec: dict,
                                                      data: st.DataObject) -> None:
    inv, customer_id = issue_and_pay(engine, spec, data)
    state = check_all(engine, inv["id"], customer_id)
    for _ in range(data.draw(st.integers(1, 30), label="refunds")):
        if state["amount_refundable_minor"] == 0:
            break
        refund_once(engine, inv["id"], draw_request(data, state))
        state = check_all(engine, inv["id"], customer_id)
    if state["amount_refundable_minor"]:
        method = data.draw(st.sampled_from(["original_payment", "store_credit"]), label="last")
        assert refund_once(engine, inv["id"], RefundRequest("full", method, "other"))
        state = check_all(engine, inv["id"], customer_id)
    assert state["status"] == "refunded"
    assert state["amount_refunded_minor"] == state["total_minor"]
    assert [(ln["refunded_gross_minor"], ln["refunded_tax_minor"]) for ln in state["lines"]] == \
        [(ln["gross_minor"], ln["tax_minor"]) for ln in state["lines"]]
    with db.read(engine) as conn:
        tax = conn.execute(select(func.sum(refunds.c.tax_minor), func.sum(refunds.c.net_minor))
                           .where(refunds.c.invoice_id == inv["id"])).one()
    assert (int(tax[0]), int(tax[1])) == (inv["tax_minor"], inv["net_minor"])
