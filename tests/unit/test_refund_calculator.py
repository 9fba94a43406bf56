"""Unit tests of the refund calculator, payback.refunds.domain.calculate: pure, no database.

Covers Stripe's published tax vectors (reliability test 6), full refunds, refunds by amount
spread over lines, refunds by line and quantity (with the exact unit split of an indivisible
line), shipping refunded as a line, the cumulative tax and discount reversal, the errors a refund
can raise (quantity above what remains, amount above the refundable amount, unknown line, nothing
refundable, malformed requests), and the tender allocation across several payments (card plus
store credit, and method ``store_credit``). All expected values are exact minor units.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from payback.errors import (
    AmountExceedsRefundable,
    InvalidAmount,
    InvalidQuantity,
    InvoiceNotRefundable,
    NotFound,
    QuantityExceedsRemaining,
    ValidationFailed,
)
from payback.invoicing.domain import ComputedInvoice, LineInput, compute_invoice
from payback.refunds.domain import (
    LineRequest,
    LineState,
    RefundCalculation,
    RefundRequest,
    Tender,
    TenderState,
    allocate_tenders,
    calculate,
    cumulative_share,
    gross_for_quantity,
)

D = Decimal


def states(inv: ComputedInvoice) -> list[LineState]:
    """The calculator's view of a freshly issued invoice: line ids L0, L1, …"""
    return [LineState(f"L{ln.position}", ln.kind, ln.description, ln.quantity, ln.gross_minor,
                      ln.tax_minor, ln.discount_minor) for ln in inv.lines]


def card(amount: int, pid: str = "P1", refunded: int = 0) -> TenderState:
    return TenderState(pid, "card", amount, refunded)


def by_amount(amount: int, method: str = "original_payment") -> RefundRequest:
    return RefundRequest("amount", method, "requested_by_customer", amount_minor=amount)


def by_lines(*pairs: tuple[str, int], method: str = "original_payment") -> RefundRequest:
    return RefundRequest("lines", method, "product_defective",
                         lines=tuple(LineRequest(lid, q) for lid, q in pairs))


FULL = RefundRequest("full", "original_payment", "duplicate")


def apply(lines: list[LineState], tenders: list[TenderState],
          calc: RefundCalculation) -> tuple[list[LineState], list[TenderState]]:
    """What the service persists after a refund: bump the line and payment counters."""
    taken = {rl.line_id: rl for rl in calc.lines}
    new_lines = []
    for ln in lines:
        rl = taken.get(ln.id)
        new_lines.append(ln if rl is None else replace(
            ln, refunded_quantity=ln.refunded_quantity + rl.quantity,
            refunded_gross_minor=ln.refunded_gross_minor + rl.gross_minor,
            refunded_tax_minor=ln.refunded_tax_minor + rl.tax_minor))
    paid = {t.payment_id: t.amount_minor for t in calc.tenders}
    new_tenders = [replace(t, refunded_minor=t.refunded_minor + paid.get(t.payment_id, 0))
                   for t in tenders]
    return new_lines, new_tenders


def triples(calc: RefundCalculation) -> list[tuple[str, int, int, int]]:
    return [(rl.line_id, rl.gross_minor, rl.net_minor, rl.tax_minor) for rl in calc.lines]


# ------------------------------------------------------------------------ Stripe vectors


def test_stripe_vector_tax_exclusive_25_percent() -> None:
    """Stripe: tax-exclusive 25 %, lines 60.00 and 40.00 net (75.00 and 50.00 gross, 125.00 in
    all); a refund of 25.00 returns 5.00 of tax, 3.00 on the first line and 2.00 on the second.

    The amount is spread by remaining gross, 7500 : 5000 → 1500 and 1000; tax reversed
    1500 × 1500/7500 = 300 and 1000 × 1000/5000 = 200.
    """
    inv = compute_invoice("USD", "exclusive", [LineInput("A", 1, 6000, D("0.25")),
                                                LineInput("B", 1, 4000, D("0.25"))])
    assert (inv.net_minor, inv.tax_minor, inv.total_minor) == (10000, 2500, 12500)
    calc = calculate("USD", states(inv), [card(12500)], by_amount(2500))
    assert (calc.amount_minor, calc.net_minor, calc.tax_minor) == (2500, 2000, 500)
    assert triples(calc) == [("L0", 1500, 1200, 300), ("L1", 1000, 800, 200)]
    assert (calc.refundable_before_minor, calc.refundable_after_minor) == (12500, 10000)


def test_stripe_vector_tax_inclusive_20_percent_of_the_total() -> None:
    """Stripe: tax-inclusive, invoice total 100.00 containing 20.00 of tax (line 60.00 with
    12.00 tax, line 40.00 with 8.00 tax); a refund of 20.00 returns 4.00 of tax, 2.40 and 1.60.

    Stripe's table calls this "20%", which is the tax as a share of the inclusive total
    (20.00 / 100.00). Our per-line inclusive formula is ``tax = gross × rate / (1 + rate)``, and
    12.00 of tax in 60.00 gross is rate 0.25 (60.00 × 0.25 / 1.25 = 12.00): so the vector is an
    invoice with ``tax_rate=0.25`` and ``tax_mode="inclusive"``.

    Refund 20.00 spread 6000 : 4000 → 1200 and 800; tax 1200 × 1200/6000 = 240 and
    800 × 800/4000 = 160.
    """
    inv = compute_invoice("USD", "inclusive", [LineInput("A", 1, 6000, D("0.25")),
                                                LineInput("B", 1, 4000, D("0.25"))])
    assert [(ln.gross_minor, ln.tax_minor) for ln in inv.lines] == [(6000, 1200), (4000, 800)]
    assert (inv.tax_minor, inv.total_minor) == (2000, 10000)
    calc = calculate("USD", states(inv), [card(10000)], by_amount(2000))
    assert (calc.amount_minor, calc.net_minor, calc.tax_minor) == (2000, 1600, 400)
    assert triples(calc) == [("L0", 1200, 960, 240), ("L1", 800, 640, 160)]


def test_stripe_vector_exclusive_rest_returns_exactly_the_remaining_tax() -> None:
    """After the 25.00 refund, refunding the remaining 100.00 returns 20.00 of tax: 25.00 in all,
    exactly what was charged (12.00 + 8.00 on top of 3.00 + 2.00)."""
    inv = compute_invoice("USD", "exclusive", [LineInput("A", 1, 6000, D("0.25")),
                                                LineInput("B", 1, 4000, D("0.25"))])
    lines, tenders = states(inv), [card(12500)]
    first = calculate("USD", lines, tenders, by_amount(2500))
    lines, tenders = apply(lines, tenders, first)
    rest = calculate("USD", lines, tenders, FULL)
    assert triples(rest) == [("L0", 6000, 4800, 1200), ("L1", 4000, 3200, 800)]
    assert first.tax_minor + rest.tax_minor == inv.tax_minor == 2500
    assert rest.refundable_after_minor == 0


# ------------------------------------------------------------------------ full refunds


def test_full_refund_returns_exactly_the_lines() -> None:
    inv = compute_invoice("EUR", "exclusive", [
        LineInput("Mug", 3, 1250, D("0.2"), discount_minor=50),
        LineInput("Tea", 2, 799, D("0.07")),
        LineInput("Post", 1, 495, D("0.2"), kind="shipping")], discount_minor=300)
    calc = calculate("EUR", states(inv), [card(inv.total_minor)], FULL)
    assert [(rl.line_id, rl.quantity, rl.gross_minor, rl.net_minor, rl.tax_minor,
             rl.discount_minor) for rl in calc.lines] == [
        (f"L{ln.position}", ln.quantity, ln.gross_minor, ln.net_minor, ln.tax_minor,
         ln.discount_minor) for ln in inv.lines]
    assert (calc.amount_minor, calc.net_minor, calc.tax_minor) == \
        (inv.total_minor, inv.net_minor, inv.tax_minor)
    assert calc.tenders == (Tender("P1", "card", "original_payment", inv.total_minor),)
    assert calc.refundable_after_minor == 0


def test_full_refund_after_partial_returns_only_what_remains() -> None:
    lines = [LineState("A", "item", "a", 4, 10000, 2000, 0, refunded_quantity=1,
                       refunded_gross_minor=2500, refunded_tax_minor=500),
             LineState("B", "item", "b", 1, 3000, 500, 0)]
    calc = calculate("EUR", lines, [card(13000, refunded=2500)], FULL)
    assert [(rl.line_id, rl.quantity, rl.gross_minor, rl.tax_minor) for rl in calc.lines] == \
        [("A", 3, 7500, 1500), ("B", 1, 3000, 500)]
    assert calc.amount_minor == 10500


def test_full_refund_of_a_fully_refunded_invoice_is_refused() -> None:
    lines = [LineState("A", "item", "a", 1, 1000, 200, 0, 1, 1000, 200)]
    with pytest.raises(InvoiceNotRefundable):
        calculate("EUR", lines, [card(1000, refunded=999)], FULL)


# ------------------------------------------------------------------------ by quantity


def test_three_units_of_an_indivisible_line_split_33_33_then_33_34_then_33_33() -> None:
    """A line of 3 units totalling 100.00 (tax 16.67 inside, as 20 % inclusive gives). Units are
    refunded one at a time from what remains: 10000 × 1/3 = 3333.3 → 33.33; 6667 × 1/2 = 3333.5
    → 33.34 (half up); the last unit takes the remainder, 33.33. Tax is cumulative:
    round(1667 × 3333/10000) = 556, round(1667 × 6667/10000) = 1111 → 555, then 1667 − 1111 = 556.
    """
    lines, tenders = [LineState("L", "item", "x", 3, 10000, 1667, 0)], [card(10000)]
    got = []
    for _ in range(3):
        calc = calculate("EUR", lines, tenders, by_lines(("L", 1)))
        got.append((calc.lines[0].quantity, calc.amount_minor, calc.lines[0].net_minor,
                    calc.tax_minor))
        lines, tenders = apply(lines, tenders, calc)
    assert got == [(1, 3333, 2777, 556), (1, 3334, 2779, 555), (1, 3333, 2777, 556)]
    assert lines[0].refunded_gross_minor == 10000 and lines[0].refunded_tax_minor == 1667
    assert lines[0].remaining_quantity == 0 and tenders[0].refundable == 0


def test_two_units_then_one_of_the_indivisible_line() -> None:
    lines, tenders = [LineState("L", "item", "x", 3, 10000, 0, 0)], [card(10000)]
    first = calculate("EUR", lines, tenders, by_lines(("L", 2)))
    assert first.amount_minor == 6667  # 10000 × 2/3 = 6666.67 → 6667
    lines, tenders = apply(lines, tenders, first)
    assert calculate("EUR", lines, tenders, by_lines(("L", 1))).amount_minor == 3333


def test_quantity_refund_with_exclusive_tax_reverses_the_line_tax() -> None:
    # 5 × 19.99 at 19 % exclusive: net 9995, tax 1899.05 → 1899, gross 11894.
    inv = compute_invoice("EUR", "exclusive", [LineInput("Book", 5, 1999, D("0.19"))])
    assert (inv.lines[0].tax_minor, inv.lines[0].gross_minor) == (1899, 11894)
    calc = calculate("EUR", states(inv), [card(11894)], by_lines(("L0", 2)))
    # gross 11894 × 2/5 = 4757.6 → 4758 ; tax 1899 × 4758/11894 = 759.66 → 760 ; net 3998
    assert triples(calc) == [("L0", 4758, 3998, 760)]
    assert calc.lines[0].quantity == 2


def test_shipping_is_refunded_as_a_line() -> None:
    inv = compute_invoice("EUR", "exclusive", [
        LineInput("Mug", 2, 1000, D("0.2")),
        LineInput("Post", 1, 495, D("0.2"), kind="shipping")], discount_minor=200)
    lines = states(inv)
    assert lines[1].kind == "shipping" and lines[1].discount_minor == 0
    calc = calculate("EUR", lines, [card(inv.total_minor)], by_lines(("L1", 1)))
    # shipping 4.95 net + 0.99 tax = 5.94
    assert triples(calc) == [("L1", 594, 495, 99)]
    assert calc.lines[0].discount_minor == 0


def test_several_lines_in_one_request_sum_to_the_amount() -> None:
    inv = compute_invoice("EUR", "inclusive", [
        LineInput("A", 4, 2500, D("0.2")), LineInput("B", 3, 1000, D("0.07")),
        LineInput("Post", 1, 600, D("0.2"), kind="shipping")])
    calc = calculate("EUR", states(inv), [card(inv.total_minor)],
                     by_lines(("L0", 1), ("L2", 1), ("L1", 3)))
    # A: 10000 × 1/4 = 2500, tax 1667 × 2500/10000 = 416.75 → 417
    # Post: 600 with tax 100 ; B: whole line 3000 with tax 196 (3000 × .07/1.07 = 196.26)
    assert triples(calc) == [("L0", 2500, 2083, 417), ("L2", 600, 500, 100),
                             ("L1", 3000, 2804, 196)]
    assert calc.amount_minor == 6100 and calc.tax_minor == 713 and calc.net_minor == 5387


def test_discount_share_is_reversed_cumulatively() -> None:
    # 10 units at 10.00 with a 10.00 line discount: gross 9000 (no tax), discount 1000.
    lines, tenders = [LineState("L", "item", "x", 10, 9000, 0, 1000)], [card(9000)]
    first = calculate("EUR", lines, tenders, by_lines(("L", 3)))
    assert (first.amount_minor, first.lines[0].discount_minor) == (2700, 300)
    lines, tenders = apply(lines, tenders, first)
    second = calculate("EUR", lines, tenders, by_amount(1))
    # cumulative share 1000 × 2701/9000 = 300.1 → 300: nothing more for one cent
    assert second.lines[0].discount_minor == 0
    lines, tenders = apply(lines, tenders, second)
    rest = calculate("EUR", lines, tenders, FULL)
    assert (rest.amount_minor, rest.lines[0].discount_minor, rest.lines[0].quantity) == \
        (6299, 700, 7)
    assert first.lines[0].discount_minor + second.lines[0].discount_minor + \
        rest.lines[0].discount_minor == 1000


def test_invoice_discount_share_is_part_of_the_reversed_discount() -> None:
    inv = compute_invoice("EUR", "exclusive", [LineInput("A", 2, 5000, D("0"), discount_minor=500),
                                                LineInput("B", 1, 500, D("0"))],
                          discount_minor=1000)
    # weights 9500 and 500 → invoice discount 950 and 50; line A discount 500 + 950 = 1450
    lines = states(inv)
    assert [ln.discount_minor for ln in lines] == [1450, 50]
    calc = calculate("EUR", lines, [card(inv.total_minor)], by_lines(("L0", 1)))
    assert (calc.amount_minor, calc.lines[0].discount_minor) == (4275, 725)


# ------------------------------------------------------------------------ by amount


def test_amount_is_spread_by_what_remains_on_each_line() -> None:
    lines = [LineState("A", "item", "a", 1, 6000, 1000, 0, 0, 3000, 500),
             LineState("B", "item", "b", 1, 3000, 500, 0),
             LineState("S", "shipping", "s", 1, 1000, 0, 0)]
    # remaining 3000 : 3000 : 1000 ; 1000 → 428.57, 428.57, 142.86 → floors 428 + 428 + 142 = 998;
    # the 2 units left go to the largest remainders: .857 (S), then .571 (A, earliest of the tie)
    calc = calculate("EUR", lines, [card(10000, refunded=3000)], by_amount(1000))
    assert [(rl.line_id, rl.gross_minor, rl.quantity) for rl in calc.lines] == \
        [("A", 429, 0), ("B", 428, 0), ("S", 143, 0)]
    # A cumulative: round(1000 × 3429/6000) = 571.5 → 572, minus 500 refunded → 72
    # B: round(500 × 428/3000) = 71.33 → 71 ; S: no tax
    assert [rl.tax_minor for rl in calc.lines] == [72, 71, 0]
    assert calc.amount_minor == 1000


def test_amount_skips_lines_with_nothing_left() -> None:
    lines = [LineState("A", "item", "a", 1, 1000, 0, 0, 0, 1000, 0),
             LineState("B", "item", "b", 1, 1000, 0, 0)]
    calc = calculate("EUR", lines, [card(2000, refunded=1000)], by_amount(999))
    assert [(rl.line_id, rl.gross_minor) for rl in calc.lines] == [("B", 999)]


def test_one_minor_unit_in_jpy_kwd() -> None:
    for cur in ("JPY", "KWD"):
        inv = compute_invoice(cur, "exclusive", [LineInput("A", 1, 1000, D("0.1"))])
        calc = calculate(cur, states(inv), [card(1100)], by_amount(1))
        assert triples(calc) == [("L0", 1, 1, 0)]  # round(100 × 1/1100) = 0
        assert calc.currency == cur


# ------------------------------------------------------------------------ errors


def test_quantity_above_remaining_is_refused() -> None:
    lines = [LineState("A", "item", "a", 3, 3000, 0, 0, refunded_quantity=2,
                       refunded_gross_minor=2000)]
    with pytest.raises(QuantityExceedsRemaining,
                       match="line A has 1 unit\\(s\\) left to refund, 2 requested") as info:
        calculate("EUR", lines, [card(3000, refunded=2000)], by_lines(("A", 2)))
    assert info.value.extra == {"line_id": "A", "remaining": 1}
    assert info.value.code == "quantity_exceeds_remaining"


def test_amount_above_what_remains_on_the_lines_is_refused() -> None:
    lines = [LineState("A", "item", "a", 1, 1000, 0, 0, 0, 400, 0)]
    with pytest.raises(AmountExceedsRefundable, match="exceeds what remains") as info:
        calculate("EUR", lines, [card(1000, refunded=400)], by_amount(601))
    assert info.value.extra == {"requested_minor": 601, "refundable_minor": 600}


def test_amount_above_what_was_paid_is_refused() -> None:
    # The invoice is 10.00 but only 6.00 was captured: 6.01 cannot be refunded.
    lines = [LineState("A", "item", "a", 1, 1000, 0, 0)]
    with pytest.raises(AmountExceedsRefundable,
                       match="refund of 601 exceeds the refundable amount of 600") as info:
        calculate("EUR", lines, [card(600)], by_amount(601))
    assert info.value.extra == {"requested_minor": 601, "refundable_minor": 600}
    assert calculate("EUR", lines, [card(600)], by_amount(600)).amount_minor == 600


def test_full_refund_of_a_partly_paid_invoice_gives_back_what_was_captured() -> None:
    # Invoice 10.00 + 5.00, only 6.00 captured: "full" returns the 6.00, spread over the lines
    # by what remains (4.00 and 2.00), with no units returned.
    lines = [LineState("A", "item", "a", 2, 1000, 200, 0), LineState("B", "item", "b", 1, 500, 0, 0)]
    calc = calculate("EUR", lines, [card(600)], FULL)
    assert [(rl.line_id, rl.quantity, rl.gross_minor, rl.tax_minor) for rl in calc.lines] == \
        [("A", 0, 400, 80), ("B", 0, 200, 0)]
    assert (calc.amount_minor, calc.refundable_after_minor) == (600, 0)


def test_unknown_line_is_not_found() -> None:
    lines = [LineState("A", "item", "a", 1, 1000, 0, 0)]
    with pytest.raises(NotFound, match="invoice line Z is not on this invoice") as info:
        calculate("EUR", lines, [card(1000)], by_lines(("Z", 1)))
    assert info.value.status == 404


def test_nothing_paid_is_not_refundable() -> None:
    lines = [LineState("A", "item", "a", 1, 1000, 0, 0)]
    with pytest.raises(InvoiceNotRefundable, match="nothing has been paid"):
        calculate("EUR", lines, [], by_amount(1))


def test_lines_with_nothing_left_are_not_refundable() -> None:
    # A line whose gross was taken by amount refunds but whose units were never returned.
    lines = [LineState("A", "item", "a", 2, 1000, 0, 0, 0, 1000, 0),
             LineState("B", "item", "b", 1, 500, 0, 0)]
    with pytest.raises(InvoiceNotRefundable, match="nothing remains to refund"):
        calculate("EUR", lines, [card(1500, refunded=1000)], by_lines(("A", 1)))


@pytest.mark.parametrize(("req", "error", "message"), [
    (RefundRequest("partial", "original_payment", "other"), ValidationFailed,
     "kind must be one of full, amount, lines"),
    (RefundRequest("full", "cash", "other"), ValidationFailed,
     "method must be one of original_payment, store_credit"),
    (RefundRequest("full", "original_payment", "because"), ValidationFailed,
     "reason must be one of duplicate"),
    (RefundRequest("amount", "original_payment", "other"), InvalidAmount,
     "a refund by amount needs amount"),
    (RefundRequest("amount", "original_payment", "other", amount_minor=0), InvalidAmount,
     "amount must be greater than zero"),
    (RefundRequest("amount", "original_payment", "other", amount_minor=-1), InvalidAmount,
     "amount must not be negative"),
    (RefundRequest("full", "original_payment", "other", amount_minor=5), ValidationFailed,
     "amount is only allowed with kind 'amount', not 'full'"),
    (RefundRequest("lines", "original_payment", "other"), ValidationFailed,
     "a refund by lines needs at least one line"),
    (RefundRequest("amount", "original_payment", "other", amount_minor=5,
                   lines=(LineRequest("A", 1),)), ValidationFailed,
     "lines are only allowed with kind 'lines', not 'amount'"),
    (by_lines(("A", 0)), InvalidQuantity, "quantity for line A must be a positive integer"),
    (by_lines(("A", 1), ("A", 1)), ValidationFailed, "line A is named twice"),
])
def test_malformed_requests(req: RefundRequest, error: type, message: str) -> None:
    lines = [LineState("A", "item", "a", 2, 1000, 0, 0)]
    with pytest.raises(error, match=message) as info:
        calculate("EUR", lines, [card(1000)], req)
    assert type(info.value) is error


# ------------------------------------------------------------------------ tenders


def card_and_credit() -> list[TenderState]:
    return [TenderState("P1", "card", 7000), TenderState("P2", "store_credit", 3000)]


def test_tenders_pro_rata_card_and_store_credit() -> None:
    lines = [LineState("A", "item", "a", 1, 10000, 0, 0)]
    calc = calculate("EUR", lines, card_and_credit(), by_amount(2500))
    assert calc.tenders == (Tender("P1", "card", "original_payment", 1750),
                            Tender("P2", "store_credit", "store_credit", 750))


def test_tender_parts_sum_exactly_by_largest_remainder() -> None:
    lines = [LineState("A", "item", "a", 1, 10000, 0, 0)]
    # 1001 × 0.7 = 700.7, × 0.3 = 300.3 → 700 + 300, one unit to the larger remainder (card)
    calc = calculate("EUR", lines, card_and_credit(), by_amount(1001))
    assert [(t.payment_id, t.amount_minor) for t in calc.tenders] == [("P1", 701), ("P2", 300)]
    # 1 unit only: the card has the larger remainder, the store credit gets nothing and is left out
    one = calculate("EUR", lines, card_and_credit(), by_amount(1))
    assert one.tenders == (Tender("P1", "card", "original_payment", 1),)


def test_tenders_follow_what_each_can_still_give_back() -> None:
    lines = [LineState("A", "item", "a", 1, 10000, 0, 0, 0, 4000, 0)]
    tenders = [TenderState("P1", "card", 7000, 1000), TenderState("P2", "store_credit", 3000, 3000),
               TenderState("P3", "bank_transfer", 0)]
    calc = calculate("EUR", lines, tenders, by_amount(3000))
    assert calc.tenders == (Tender("P1", "card", "original_payment", 3000),)
    assert calc.refundable_before_minor == 6000


def test_method_store_credit_sends_every_tender_to_store_credit() -> None:
    lines = [LineState("A", "item", "a", 1, 10000, 0, 0)]
    calc = calculate("EUR", lines, card_and_credit(), by_amount(1000, method="store_credit"))
    assert calc.tenders == (Tender("P1", "card", "store_credit", 700),
                            Tender("P2", "store_credit", "store_credit", 300))
    assert calc.method == "store_credit"


def test_full_refund_of_a_mixed_payment_empties_every_tender() -> None:
    lines = [LineState("A", "item", "a", 1, 10000, 0, 0)]
    tenders = card_and_credit()
    first = calculate("EUR", lines, tenders, by_amount(3333))
    lines, tenders = apply(lines, tenders, first)
    rest = calculate("EUR", lines, tenders, FULL)
    assert [(t.payment_id, t.amount_minor) for t in first.tenders] == [("P1", 2333), ("P2", 1000)]
    assert [(t.payment_id, t.amount_minor) for t in rest.tenders] == [("P1", 4667), ("P2", 2000)]
    _, tenders = apply(lines, tenders, rest)
    assert [t.refundable for t in tenders] == [0, 0]


def test_allocate_tenders_ties_go_to_the_earliest_payment() -> None:
    tenders = [TenderState("P1", "card", 500), TenderState("P2", "card", 500)]
    assert [t.amount_minor for t in allocate_tenders(tenders, 3, "original_payment")] == [2, 1]


# ------------------------------------------------------------------------ helpers


def test_gross_for_quantity_and_cumulative_share() -> None:
    ln = LineState("L", "item", "x", 7, 1000, 0, 0, 1, 100, 0)
    assert gross_for_quantity(ln, 6) == 900          # the last units take exactly the rest
    assert gross_for_quantity(ln, 1) == 150          # 900 × 1/6
    assert gross_for_quantity(ln, 4) == 600
    assert cumulative_share(333, 1000, 1000) == 333  # the whole line takes the whole part
    assert cumulative_share(333, 500, 1000) == 167   # 166.5 → 167 half up
    assert cumulative_share(333, 0, 0) == 0          # a zero line has nothing to share


# ------------------------------------------------------------------------ docs example


def test_worked_example_of_docs_money_and_tax() -> None:
    """The worked example of docs/money-and-tax.md, number for number: an invoice with two
    rates, shipping and an invoice discount, refunded by one unit, by 10.00, by another unit and
    finally in full; the four refunds return exactly the 9.13 of tax charged, per rate too."""
    inv = compute_invoice("EUR", "exclusive", [
        LineInput("Mug", 3, 1250, D("0.2")), LineInput("Tea", 2, 799, D("0.07")),
        LineInput("Shipping", 1, 495, D("0.2"), kind="shipping")], discount_minor=300)
    assert [(ln.invoice_discount_minor, ln.net_minor, ln.tax_minor, ln.gross_minor)
            for ln in inv.lines] == [(210, 3540, 708, 4248), (90, 1508, 106, 1614),
                                     (0, 495, 99, 594)]
    assert (inv.net_minor, inv.tax_minor, inv.total_minor) == (5543, 913, 6456)
    lines, tenders = states(inv), [card(6456)]
    steps = [by_lines(("L0", 1)), by_amount(1000), by_lines(("L0", 1)), FULL]
    got = []
    for req in steps:
        calc = calculate("EUR", lines, tenders, req)
        got.append([(rl.line_id, rl.quantity, rl.gross_minor, rl.tax_minor) for rl in calc.lines])
        lines, tenders = apply(lines, tenders, calc)
    assert got == [
        [("L0", 1, 1416, 236)],
        [("L0", 0, 562, 94), ("L1", 0, 320, 21), ("L2", 0, 118, 20)],
        [("L0", 1, 1135, 189)],
        [("L0", 1, 1135, 189), ("L1", 2, 1294, 85), ("L2", 1, 476, 79)],
    ]
    assert sum(t for step in got for *_, t in step) == 913
    assert 236 + 94 + 189 + 189 + 20 + 79 == 807 and 21 + 85 == 106  # 20 % and 7 % buckets
    assert {r: b["tax_minor"] for r, b in inv.tax_by_rate().items()} == \
        {D("0.2"): 807, D("0.07"): 106}
    assert tenders[0].refundable == 0


def test_rounding_each_refund_on_its_own_would_drift_a_cent() -> None:
    """Why the calculator is cumulative: three one-unit refunds of a 100.00 line carrying 16.67
    of tax. Rounding each refund's share of the tax on its own gives 5.56 + 5.56 + 5.56 = 16.68,
    one cent more than was charged; the cumulative method gives 5.56 + 5.55 + 5.56 = 16.67."""
    naive = [round(1667 * g / 10000) for g in (3333, 3334, 3333)]
    assert naive == [556, 556, 556] and sum(naive) == 1668
    lines, tenders = [LineState("L", "item", "x", 3, 10000, 1667, 0)], [card(10000)]
    taxes = []
    for _ in range(3):
        calc = calculate("EUR", lines, tenders, by_lines(("L", 1)))
        taxes.append(calc.tax_minor)
        lines, tenders = apply(lines, tenders, calc)
    assert taxes == [556, 555, 556] and sum(taxes) == 1667
