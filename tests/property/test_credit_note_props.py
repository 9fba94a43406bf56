"""Hypothesis: credit notes never exceed their invoice, per line and per tax rate, and equal it
exactly once everything is credited — through the real services on SQLite and PostgreSQL.

Each example issues a fresh invoice (1–4 lines in EUR, JPY or KWD, both tax modes, rates
including 0), pays any part of it (nothing, some, all), then runs 1–10 random steps: refunds by
amount or by lines, adjustments by amount or by quantity, and voids of the latest adjustment.
A step the rules refuse must write nothing. After every step, read back from the database:

- per invoice line, the gross, net and tax credited by the notes in force (refund and
  adjustment notes less voids) never exceed the line's, and equal the line's guard counters;
- per tax rate, the credited net and tax never exceed the invoice's;
- every note's total is net + tax, equals the sum of its lines, and its split sums to it.

Finally a full refund and an adjustment of whatever remains (which the amount-due rule always
allows) credit the invoice exactly: every line's gross, net and tax, to the minor unit.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payback import db
from payback.clock import FixedClock
from payback.credit_notes import service as notes
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.credit_notes.tables import credit_notes
from payback.customers.service import create_customer
from payback.errors import DomainError
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.payments.service import record_payment
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.service import create_refund

RATES = [Decimal(r) for r in ("0", "0.07", "0.19", "0.2", "0.25")]
CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}
SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def invoices_(draw) -> dict:
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    lines = [LineInput(f"item {i}", draw(st.integers(1, 6)), draw(st.integers(1, 30_000)),
                       draw(st.sampled_from(RATES))) for i in range(draw(st.integers(1, 4)))]
    return {"currency": currency, "lines": lines,
            "tax_mode": draw(st.sampled_from(["exclusive", "inclusive"]))}


STEPS = st.lists(st.tuples(
    st.sampled_from(["refund_amount", "refund_lines", "adjust_amount", "adjust_quantity",
                     "void"]),
    st.integers(0, 3), st.integers(1, 40_000)), min_size=1, max_size=10)


def _clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))


def _step(conn, inv: dict, kind: str, idx: int, n: int, adjustments: list[str]) -> None:
    clk, lines = _clock(), inv["lines"]
    line = lines[idx % len(lines)]["id"]
    if kind == "refund_amount":
        create_refund(conn, clk, inv["id"], RefundRequest("amount", "original_payment",
                                                          "goodwill", amount_minor=n))
    elif kind == "refund_lines":
        create_refund(conn, clk, inv["id"], RefundRequest(
            "lines", "original_payment", "goodwill", lines=(LineRequest(line, 1 + n % 3),)))
    elif kind == "void":
        if adjustments:
            notes.void_credit_note(conn, clk, adjustments.pop(), reason="billing_error")
    else:
        al = AdjustmentLine(line, amount_minor=n) if kind == "adjust_amount" else \
            AdjustmentLine(line, quantity=1 + n % 3)
        note = notes.create_adjustment(conn, clk, inv["id"],
                                       AdjustmentRequest("billing_error", (al,)))
        adjustments.append(note["id"])


def _check(conn, inv: dict) -> dict:
    credited = notes.credited_by_line(conn, inv["id"])
    fresh = get_invoice(conn, inv["id"])
    by_rate: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for ln in fresh["lines"]:
        got = credited.get(ln["id"], {"gross_minor": 0, "net_minor": 0, "tax_minor": 0})
        assert 0 <= got["gross_minor"] <= ln["gross_minor"]
        assert 0 <= got["tax_minor"] <= ln["tax_minor"]
        assert 0 <= got["net_minor"] <= ln["net_minor"]
        assert (got["gross_minor"], got["tax_minor"]) == (ln["refunded_gross_minor"],
                                                          ln["refunded_tax_minor"])
        rate = by_rate[ln["tax_rate"]]
        rate[0] += got["net_minor"]
        rate[1] += got["tax_minor"]
        rate[2] += ln["net_minor"]
        rate[3] += ln["tax_minor"]
    assert all(net <= inv_net and tax <= inv_tax for net, tax, inv_net, inv_tax
               in by_rate.values())
    for n in conn.execute(select(credit_notes).where(credit_notes.c.invoice_id == inv["id"])):
        full = notes.get_credit_note(conn, n.id)
        assert n.total_minor == n.net_minor + n.tax_minor == \
            sum(ln["gross_minor"] for ln in full["lines"])
        assert n.tax_minor == sum(ln["tax_minor"] for ln in full["lines"])
        assert n.refunded_minor + n.credited_minor + n.outside_minor == n.total_minor
    return credited


@SETTINGS
@given(spec=invoices_(), paid_share=st.integers(0, 4), steps=STEPS)
def test_credit_notes_never_exceed_their_invoice_and_equal_it_when_all_is_credited(
        engine, spec, paid_share, steps):
    clk = _clock()
    with db.write(engine) as conn:
        cus = create_customer(conn, clk, name="Hypothesis")
        inv = create_invoice(conn, clk, customer_id=cus["id"], **spec)
        paid = inv["total_minor"] * paid_share // 4
        if paid:
            record_payment(conn, clk, inv["id"], method="card", amount_minor=paid,
                           currency=spec["currency"], card=CARD)
    adjustments: list[str] = []
    for kind, idx, n in steps:
        try:
            with db.write(engine) as conn:
                _step(conn, inv, kind, idx, n, adjustments)
        except DomainError:
            pass  # refused: the check below also proves nothing was half-written
        with db.read(engine) as conn:
            _check(conn, inv)
    _credit_everything(engine, inv)
    with db.read(engine) as conn:
        credited = _check(conn, inv)
    for ln in inv["lines"]:
        assert credited[ln["id"]] == {"gross_minor": ln["gross_minor"],
                                      "net_minor": ln["net_minor"],
                                      "tax_minor": ln["tax_minor"]}


def _credit_everything(engine, inv: dict) -> None:
    clk = _clock()
    try:
        with db.write(engine) as conn:
            create_refund(conn, clk, inv["id"], RefundRequest("full", "original_payment",
                                                              "goodwill"))
    except DomainError as err:
        assert err.code == "invoice_not_refundable", err.detail
    with db.write(engine) as conn:
        lines = get_invoice(conn, inv["id"])["lines"]
        rest = tuple(AdjustmentLine(ln["id"], amount_minor=ln["refundable_gross_minor"])
                     for ln in lines if ln["refundable_gross_minor"] > 0)
        if rest:
            notes.create_adjustment(conn, clk, inv["id"],
                                    AdjustmentRequest("billing_error", rest))
