"""Hypothesis properties of invoice arithmetic and the refund calculator (pure, no database).

Random invoices (1–8 lines, quantities 1–20, unit prices, line discounts, an optional invoice
discount and shipping line, tax rates from a set that includes 0, both tax modes, currencies with
exponent 0, 2 and 3: JPY, EUR, KWD), paid in full by one to three tenders (card, bank transfer,
store credit), then refunded by a random sequence of 1–30 refunds by amount, by lines or mixed,
to the original payment or to store credit, and finally by a full refund. The test keeps the
state the service would persist (``LineState`` / ``TenderState``) from each returned
``RefundCalculation``. Checked:

- invoices: every line's gross = net + tax with the documented per-line formula; totals are
  sums of lines; total = net + tax; the invoice discount is shared out exactly to item lines;
- at every step: Σ refunds ≤ captured; per line refunded gross ≤ gross, refunded tax ≤ tax,
  refunded quantity ≤ quantity; each refund line has net ≥ 0 and tax ≥ 0 and gross = net + tax;
  a refund's lines sum to its amount; its tenders sum to its amount and none exceeds what its
  payment could still give back; the tax refunded on a line is the cumulative share of its gross;
- once everything is refunded: refunded gross, net and tax equal the invoice's exactly per line
  and per rate; discounts reversed equal the discounts given (lines with a gross); every
  tender is empty.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from payback.errors import AmountExceedsRefundable, InvoiceNotRefundable
from payback.invoicing.domain import ComputedInvoice, LineInput, compute_invoice
from payback.refunds.domain import (
    REASONS,
    LineRequest,
    LineState,
    RefundCalculation,
    RefundRequest,
    TenderState,
    calculate,
    cumulative_share,
    gross_for_quantity,
)

RATES = [Decimal(r) for r in ("0", "0.05", "0.07", "0.1", "0.19", "0.2", "0.25")]
#: Largest unit price per currency: about 1,000 in major units whatever the exponent.
MAX_PRICE = {"JPY": 150_000, "EUR": 100_000, "KWD": 300_000}


@st.composite
def invoices(draw) -> ComputedInvoice:
    currency = draw(st.sampled_from(sorted(MAX_PRICE)))
    tax_mode = draw(st.sampled_from(["exclusive", "inclusive"]))
    lines = []
    for i in range(draw(st.integers(1, 8))):
        qty = draw(st.integers(1, 20))
        price = draw(st.integers(0, MAX_PRICE[currency]))
        discount = draw(st.one_of(st.just(0), st.integers(0, qty * price)))
        lines.append(LineInput(f"item {i}", qty, price, draw(st.sampled_from(RATES)),
                               discount_minor=discount))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), LineInput(
            "shipping", 1, draw(st.integers(0, MAX_PRICE[currency] // 10)),
            draw(st.sampled_from(RATES)), kind="shipping"))
    items = sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in lines
                if ln.kind == "item")
    invoice_discount = draw(st.one_of(st.just(0), st.integers(0, items)))
    rounding = draw(st.sampled_from(["half_up", "half_even"]))
    return compute_invoice(currency, tax_mode, lines, invoice_discount, rounding=rounding)


def round_half(value: Fraction, rounding: str) -> int:
    """Independent reference rounding of a non-negative rational."""
    floor, rest = divmod(value.numerator, value.denominator)
    twice = 2 * rest
    if twice > value.denominator or (twice == value.denominator and
                                     (rounding == "half_up" or floor % 2 == 1)):
        floor += 1
    return floor


@st.composite
def tenders_for(draw, total: int) -> list[TenderState]:
    """One to three payments that together capture the whole total."""
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=n - 1, max_size=n - 1)))
    amounts = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
    methods = draw(st.lists(st.sampled_from(["card", "bank_transfer", "store_credit"]),
                            min_size=n, max_size=n))
    return [TenderState(f"P{i}", m, a) for i, (m, a) in enumerate(zip(methods, amounts)) if a]


def initial_state(inv: ComputedInvoice) -> list[LineState]:
    return [LineState(f"L{ln.position}", ln.kind, ln.description, ln.quantity, ln.gross_minor,
                      ln.tax_minor, ln.discount_minor) for ln in inv.lines]


def apply(lines: list[LineState], tenders: list[TenderState],
          calc: RefundCalculation) -> tuple[list[LineState], list[TenderState]]:
    """What the service persists after a refund: bump the line and payment counters."""
    taken = {rl.line_id: rl for rl in calc.lines}
    new_lines = [ln if ln.id not in taken else replace(
        ln, refunded_quantity=ln.refunded_quantity + taken[ln.id].quantity,
        refunded_gross_minor=ln.refunded_gross_minor + taken[ln.id].gross_minor,
        refunded_tax_minor=ln.refunded_tax_minor + taken[ln.id].tax_minor) for ln in lines]
    paid = {t.payment_id: t.amount_minor for t in calc.tenders}
    new_tenders = [replace(t, refunded_minor=t.refunded_minor + paid.get(t.payment_id, 0))
                   for t in tenders]
    return new_lines, new_tenders


@st.composite
def next_request(draw, lines: list[LineState], tenders: list[TenderState]) -> RefundRequest:
    """A refund that may legitimately be asked for in the current state."""
    method = draw(st.sampled_from(["original_payment", "store_credit"]))
    reason = draw(st.sampled_from(REASONS))
    open_lines = [ln for ln in lines if ln.remaining_quantity > 0]
    refundable = sum(t.refundable for t in tenders)
    kinds = ["amount"] + (["lines"] if open_lines else [])
    if draw(st.sampled_from(kinds)) == "lines":
        chosen = draw(st.lists(st.sampled_from(open_lines), min_size=1, max_size=3,
                               unique_by=lambda ln: ln.id))
        wanted = tuple(LineRequest(ln.id, draw(st.integers(1, ln.remaining_quantity)))
                       for ln in chosen)
        return RefundRequest("lines", method, reason, lines=wanted)
    most = min(refundable, sum(ln.remaining_gross for ln in lines))
    amount = draw(st.one_of(st.integers(1, min(most, 3)), st.integers(1, most)))
    return RefundRequest("amount", method, reason, amount_minor=amount)


def check_refund(calc: RefundCalculation, req: RefundRequest, lines: list[LineState],
                 tenders: list[TenderState]) -> None:
    by_id = {ln.id: ln for ln in lines}
    assert calc.amount_minor == sum(rl.gross_minor for rl in calc.lines) > 0
    assert calc.amount_minor == calc.net_minor + calc.tax_minor
    assert calc.tax_minor == sum(rl.tax_minor for rl in calc.lines)
    for rl in calc.lines:
        ln = by_id[rl.line_id]
        assert rl.net_minor >= 0 and rl.tax_minor >= 0 and rl.discount_minor >= 0
        assert rl.gross_minor == rl.net_minor + rl.tax_minor
        assert rl.gross_minor <= ln.remaining_gross and rl.quantity <= ln.remaining_quantity
    if req.kind == "lines":
        assert {(rl.line_id, rl.quantity) for rl in calc.lines} <= \
            {(lr.line_id, lr.quantity) for lr in req.lines}
    if req.kind == "amount":
        assert calc.amount_minor == req.amount_minor
    check_tenders(calc, tenders)


def check_tenders(calc: RefundCalculation, tenders: list[TenderState]) -> None:
    before = {t.payment_id: t for t in tenders}
    assert sum(t.amount_minor for t in calc.tenders) == calc.amount_minor
    assert len({t.payment_id for t in calc.tenders}) == len(calc.tenders)
    for t in calc.tenders:
        assert 0 < t.amount_minor <= before[t.payment_id].refundable
        store = calc.method == "store_credit" or t.payment_method == "store_credit"
        assert t.destination == ("store_credit" if store else "original_payment")
    assert calc.refundable_before_minor == sum(t.refundable for t in tenders)
    assert calc.refundable_after_minor == calc.refundable_before_minor - calc.amount_minor


def check_state(inv: ComputedInvoice, lines: list[LineState], tenders: list[TenderState]) -> None:
    captured = sum(t.amount_minor for t in tenders)
    assert sum(t.refunded_minor for t in tenders) == sum(ln.refunded_gross_minor for ln in lines)
    assert sum(t.refunded_minor for t in tenders) <= captured
    assert all(0 <= t.refunded_minor <= t.amount_minor for t in tenders)
    for ln in lines:
        assert 0 <= ln.refunded_gross_minor <= ln.gross_minor
        assert 0 <= ln.refunded_tax_minor <= ln.tax_minor
        assert 0 <= ln.refunded_quantity <= ln.quantity
        # Cumulative method: tax refunded is a function of the cumulative gross refunded only.
        assert ln.refunded_tax_minor == cumulative_share(ln.tax_minor, ln.refunded_gross_minor,
                                                         ln.gross_minor)


def step(lines, tenders, req):
    """Run one refund; None when the request only names lines with nothing left on them."""
    try:
        return calculate("EUR", lines, tenders, req)
    except InvoiceNotRefundable:
        by_id = {ln.id: ln for ln in lines}
        # Legitimate only when the units asked for are worth nothing any more: their money was
        # taken by amount refunds (q of r units take round(remaining × q / r), which can be 0).
        assert req.kind == "lines"
        assert all(gross_for_quantity(by_id[lr.line_id], lr.quantity) == 0 for lr in req.lines)
        return None


# ---------------------------------------------------------------------------- invoices


@settings(max_examples=300)
@given(invoices())
def test_invoice_lines_follow_the_formula_and_totals_are_sums(inv: ComputedInvoice) -> None:
    assert inv.net_minor == sum(ln.net_minor for ln in inv.lines)
    assert inv.tax_minor == sum(ln.tax_minor for ln in inv.lines)
    assert inv.total_minor == inv.net_minor + inv.tax_minor == sum(ln.gross_minor
                                                                     for ln in inv.lines)
    assert inv.subtotal_minor == sum(ln.quantity * ln.unit_price_minor for ln in inv.lines)
    assert inv.discount_minor == sum(ln.discount_minor for ln in inv.lines)
    for ln in inv.lines:
        taxable = ln.quantity * ln.unit_price_minor - ln.discount_minor
        assert ln.gross_minor == ln.net_minor + ln.tax_minor
        assert ln.net_minor >= 0 and ln.tax_minor >= 0 and taxable >= 0
        rate = Fraction(ln.tax_rate)
        if inv.tax_mode == "exclusive":
            assert ln.net_minor == taxable
            expected_tax = round_half(taxable * rate, "half_up")
            expected_even = round_half(taxable * rate, "half_even")
        else:
            assert ln.gross_minor == taxable
            expected_tax = round_half(taxable * rate / (1 + rate), "half_up")
            expected_even = round_half(taxable * rate / (1 + rate), "half_even")
        assert ln.tax_minor in (expected_tax, expected_even)
        if ln.kind == "shipping":
            assert ln.invoice_discount_minor == 0
    by_rate = inv.tax_by_rate()
    assert sum(b["tax_minor"] for b in by_rate.values()) == inv.tax_minor
    assert sum(b["net_minor"] for b in by_rate.values()) == inv.net_minor


@settings(max_examples=200)
@given(invoices(), st.sampled_from(["half_up", "half_even"]))
def test_rounding_mode_is_applied_exactly_per_line(inv: ComputedInvoice, rounding: str) -> None:
    again = compute_invoice(inv.currency, inv.tax_mode, [
        LineInput(ln.description, ln.quantity, ln.unit_price_minor, ln.tax_rate,
                  ln.line_discount_minor, ln.kind) for ln in inv.lines],
        sum(ln.invoice_discount_minor for ln in inv.lines), rounding=rounding)
    for ln in again.lines:
        taxable = ln.net_minor if inv.tax_mode == "exclusive" else ln.gross_minor
        rate = Fraction(ln.tax_rate)
        exact = taxable * rate if inv.tax_mode == "exclusive" else taxable * rate / (1 + rate)
        assert ln.tax_minor == round_half(exact, rounding)


# ---------------------------------------------------------------------------- refunds


@settings(max_examples=300, deadline=None)
@given(invoices(), st.data())
def test_random_refund_sequences_never_drift(inv: ComputedInvoice, data: st.DataObject) -> None:
    assume(inv.total_minor > 0)
    lines = initial_state(inv)
    tenders = data.draw(tenders_for(inv.total_minor), label="tenders")
    captured = inv.total_minor
    refunds: list[RefundCalculation] = []
    for _ in range(data.draw(st.integers(1, 30), label="refunds")):
        if sum(t.refundable for t in tenders) == 0:
            break
        req = data.draw(next_request(lines, tenders))
        calc = step(lines, tenders, req)
        if calc is None:
            continue
        check_refund(calc, req, lines, tenders)
        lines, tenders = apply(lines, tenders, calc)
        refunds.append(calc)
        check_state(inv, lines, tenders)
        assert sum(r.amount_minor for r in refunds) <= captured
    if sum(t.refundable for t in tenders):
        req = RefundRequest("full", data.draw(st.sampled_from(["original_payment",
                                                               "store_credit"])), "other")
        calc = calculate(inv.currency, lines, tenders, req)
        check_refund(calc, req, lines, tenders)
        lines, tenders = apply(lines, tenders, calc)
        refunds.append(calc)
        check_state(inv, lines, tenders)
    check_everything_refunded(inv, lines, tenders, refunds)


def check_everything_refunded(inv: ComputedInvoice, lines: list[LineState],
                              tenders: list[TenderState],
                              refunds: list[RefundCalculation]) -> None:
    assert all(t.refundable == 0 for t in tenders)
    assert sum(r.amount_minor for r in refunds) == inv.total_minor
    assert sum(r.tax_minor for r in refunds) == inv.tax_minor
    assert sum(r.net_minor for r in refunds) == inv.net_minor
    per_line: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in refunds:
        for rl in r.lines:
            acc = per_line[rl.line_id]
            acc[0] += rl.gross_minor
            acc[1] += rl.net_minor
            acc[2] += rl.tax_minor
            acc[3] += rl.discount_minor
    per_rate: dict[Decimal, list[int]] = defaultdict(lambda: [0, 0])
    for ln, state in zip(inv.lines, lines):
        got = per_line[state.id]
        assert got[:3] == [ln.gross_minor, ln.net_minor, ln.tax_minor]
        # The discount share follows the gross; a line with no gross (discounted to zero) has
        # no money to carry its discount back, so only lines with a gross are checked.
        if ln.gross_minor:
            assert got[3] == ln.discount_minor
        assert state.refunded_gross_minor == ln.gross_minor
        assert state.refunded_tax_minor == ln.tax_minor
        per_rate[ln.tax_rate][0] += got[1]
        per_rate[ln.tax_rate][1] += got[2]
    assert {rate: [b["net_minor"], b["tax_minor"]] for rate, b in inv.tax_by_rate().items()} \
        == dict(per_rate)


@settings(max_examples=150, deadline=None)
@given(invoices(), st.data())
def test_partly_paid_invoice_never_refunds_more_than_captured(inv: ComputedInvoice,
                                                              data: st.DataObject) -> None:
    assume(inv.total_minor > 1)
    paid = data.draw(st.integers(1, inv.total_minor - 1), label="paid")
    lines, tenders = initial_state(inv), data.draw(tenders_for(paid), label="tenders")
    refunded = 0
    for _ in range(data.draw(st.integers(0, 10), label="refunds")):
        if sum(t.refundable for t in tenders) == 0:
            break
        req = data.draw(next_request(lines, tenders))
        try:
            calc = calculate(inv.currency, lines, tenders, req)
        except InvoiceNotRefundable:
            continue
        except AmountExceedsRefundable:  # units may be worth more than was captured
            assert req.kind == "lines"
            continue
        check_refund(calc, req, lines, tenders)
        lines, tenders = apply(lines, tenders, calc)
        refunded += calc.amount_minor
        check_state(inv, lines, tenders)
    if sum(t.refundable for t in tenders):
        calc = calculate(inv.currency, lines, tenders,
                         RefundRequest("full", "original_payment", "other"))
        lines, tenders = apply(lines, tenders, calc)
        refunded += calc.amount_minor
        check_state(inv, lines, tenders)
    assert refunded == paid
    assert all(t.refundable == 0 for t in tenders)
