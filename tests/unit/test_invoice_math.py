"""Unit tests of payback.invoicing.domain.compute_invoice: pure invoice arithmetic, no database.

Covers tax-exclusive and tax-inclusive lines, line discounts, the invoice-level discount
apportioned by largest remainder to item lines only (never to shipping), per-line rounding with
``half_up`` and ``half_even``, ``tax_by_rate``, currencies with exponent 0, 2 and 3 (JPY, EUR,
KWD), totals that are sums of lines, ``derive_status``, and the validation errors with their
messages. Every expected value is an exact integer of minor units, worked out by hand in the
comments.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from payback.errors import InvalidAmount, InvalidInvoice
from payback.invoicing.domain import LineInput, compute_invoice, derive_status

D = Decimal


def item(qty: int, price: int, rate: str, discount: int = 0, **kw) -> LineInput:
    return LineInput("item", qty, price, D(rate), discount_minor=discount, **kw)


def shipping(price: int, rate: str) -> LineInput:
    return LineInput("shipping", 1, price, D(rate), kind="shipping")


def values(line) -> tuple[int, int, int]:
    return line.net_minor, line.tax_minor, line.gross_minor


# ----------------------------------------------------------------------------- tax modes


def test_exclusive_tax_is_added_on_top_of_the_net() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(2, 3000, "0.25"), item(1, 4000, "0.25")])
    assert [values(ln) for ln in inv.lines] == [(6000, 1500, 7500), (4000, 1000, 5000)]
    assert (inv.subtotal_minor, inv.net_minor, inv.tax_minor, inv.total_minor) == \
        (10000, 10000, 2500, 12500)
    assert inv.discount_minor == 0


def test_inclusive_tax_is_extracted_from_the_gross() -> None:
    # 6000 × 0.25 / 1.25 = 1200 ; 4000 × 0.25 / 1.25 = 800
    inv = compute_invoice("EUR", "inclusive", [item(1, 6000, "0.25"), item(2, 2000, "0.25")])
    assert [values(ln) for ln in inv.lines] == [(4800, 1200, 6000), (3200, 800, 4000)]
    assert (inv.net_minor, inv.tax_minor, inv.total_minor) == (8000, 2000, 10000)


def test_inclusive_twenty_percent_line_rounds_per_line() -> None:
    # 1999 × 0.2 / 1.2 = 333.1666… → 333 ; net 1666
    inv = compute_invoice("EUR", "inclusive", [item(1, 1999, "0.2"), item(1, 1999, "0.2")])
    assert [values(ln) for ln in inv.lines] == [(1666, 333, 1999)] * 2
    # Rounded per line, not on the invoice: 3998 × 0.2 / 1.2 would give 666, lines give 666 too
    # here, but the total is the sum of the lines by construction.
    assert inv.tax_minor == 666 and inv.total_minor == 3998


def test_zero_rate_line_has_no_tax() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(3, 333, "0")])
    assert values(inv.lines[0]) == (999, 0, 999)


def test_full_rate_of_one_hundred_percent_is_allowed() -> None:
    inv = compute_invoice("EUR", "inclusive", [item(1, 1001, "1")])
    # 1001 × 1 / 2 = 500.5 → 501 half up
    assert values(inv.lines[0]) == (500, 501, 1001)


# ----------------------------------------------------------------------------- discounts


def test_line_discount_reduces_the_taxable_amount() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(3, 1000, "0.2", discount=500)])
    line = inv.lines[0]
    assert (line.line_discount_minor, line.invoice_discount_minor, line.discount_minor) == \
        (500, 0, 500)
    assert values(line) == (2500, 500, 3000)
    assert (inv.subtotal_minor, inv.discount_minor, inv.total_minor) == (3000, 500, 3000)


def test_line_discount_equal_to_the_line_leaves_a_zero_line() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(2, 500, "0.2", discount=1000),
                                                item(1, 100, "0.2")])
    assert values(inv.lines[0]) == (0, 0, 0)
    assert inv.total_minor == 120


def test_invoice_discount_is_apportioned_by_largest_remainder() -> None:
    # Item weights after line discount: 2900 and 999; discount 1001.
    # 1001 × 2900 / 3899 = 744.52…, 1001 × 999 / 3899 = 256.47… → floors 744 + 256 = 1000;
    # the one unit left goes to the larger remainder (.52): 745 and 256.
    inv = compute_invoice("EUR", "exclusive", [
        item(3, 1000, "0.2", discount=100), item(1, 999, "0.07"), shipping(500, "0.2")],
        discount_minor=1001)
    assert [ln.invoice_discount_minor for ln in inv.lines] == [745, 256, 0]
    assert [ln.discount_minor for ln in inv.lines] == [845, 256, 0]
    assert [values(ln) for ln in inv.lines] == [(2155, 431, 2586), (743, 52, 795),
                                                (500, 100, 600)]
    assert (inv.subtotal_minor, inv.discount_minor, inv.net_minor, inv.tax_minor,
            inv.total_minor) == (4499, 1101, 3398, 583, 3981)


def test_invoice_discount_never_touches_shipping() -> None:
    # A shipping line far bigger than the items still gets no share of the discount.
    inv = compute_invoice("EUR", "exclusive", [item(1, 100, "0"), shipping(100000, "0")],
                          discount_minor=100)
    assert [ln.invoice_discount_minor for ln in inv.lines] == [100, 0]
    assert [ln.gross_minor for ln in inv.lines] == [0, 100000]


def test_invoice_discount_ties_go_to_the_earliest_line() -> None:
    # Three equal items, discount 100: 33 each, the unit left over goes to the first.
    inv = compute_invoice("EUR", "exclusive", [item(1, 1000, "0")] * 3, discount_minor=100)
    assert [ln.invoice_discount_minor for ln in inv.lines] == [34, 33, 33]
    assert inv.total_minor == 2900


def test_invoice_discount_with_inclusive_pricing_reduces_the_gross() -> None:
    # Items 6000 and 4000 inclusive at 25 %, discount 1000 → shares 600 and 400.
    # Gross 5400 → tax 1080 ; gross 3600 → tax 720.
    inv = compute_invoice("EUR", "inclusive", [item(1, 6000, "0.25"), item(1, 4000, "0.25")],
                          discount_minor=1000)
    assert [ln.invoice_discount_minor for ln in inv.lines] == [600, 400]
    assert [values(ln) for ln in inv.lines] == [(4320, 1080, 5400), (2880, 720, 3600)]
    assert (inv.net_minor, inv.tax_minor, inv.total_minor) == (7200, 1800, 9000)


def test_invoice_discount_equal_to_the_items_is_allowed() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(2, 500, "0.2"), shipping(300, "0.2")],
                          discount_minor=1000)
    assert [values(ln) for ln in inv.lines] == [(0, 0, 0), (300, 60, 360)]


# ----------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(("rounding", "expected_tax"), [("half_up", 53), ("half_even", 52)])
def test_exclusive_half_cent_rounds_by_the_chosen_mode(rounding: str, expected_tax: int) -> None:
    # 1050 × 0.05 = 52.5 exactly
    inv = compute_invoice("EUR", "exclusive", [item(1, 1050, "0.05")], rounding=rounding)
    assert values(inv.lines[0]) == (1050, expected_tax, 1050 + expected_tax)


@pytest.mark.parametrize(("rounding", "expected_tax"), [("half_up", 3), ("half_even", 2)])
def test_inclusive_half_cent_rounds_by_the_chosen_mode(rounding: str, expected_tax: int) -> None:
    # 15 × 0.2 / 1.2 = 2.5 exactly
    inv = compute_invoice("EUR", "inclusive", [item(1, 15, "0.2")], rounding=rounding)
    assert values(inv.lines[0]) == (15 - expected_tax, expected_tax, 15)


def test_half_even_rounds_odd_halves_up() -> None:
    # 1150 × 0.05 = 57.5 → 58 under both modes (58 is even)
    for mode in ("half_up", "half_even"):
        inv = compute_invoice("EUR", "exclusive", [item(1, 1150, "0.05")], rounding=mode)
        assert inv.lines[0].tax_minor == 58


def test_rounding_is_per_line_not_on_the_invoice_total() -> None:
    # Each line: 10 × 0.05 = 0.5 → 1 (half up). On the total 30 × 0.05 = 1.5 would be 2.
    inv = compute_invoice("EUR", "exclusive", [item(1, 10, "0.05")] * 3)
    assert [ln.tax_minor for ln in inv.lines] == [1, 1, 1]
    assert inv.tax_minor == 3 and inv.total_minor == 33


def test_unknown_rounding_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rounding mode 'down'"):
        compute_invoice("EUR", "exclusive", [item(1, 100, "0.2")], rounding="down")


# ----------------------------------------------------------------------------- tax_by_rate


def test_tax_by_rate_groups_lines_including_shipping() -> None:
    inv = compute_invoice("EUR", "exclusive", [
        item(3, 1000, "0.2", discount=100), item(1, 999, "0.07"), shipping(500, "0.2"),
        item(1, 250, "0")], discount_minor=1001)
    # Weights 2900, 999, 250 (sum 4149): 1001 × w / 4149 = 699.65…, 241.02…, 60.31… → floors
    # 699 + 241 + 60 = 1000, the unit left to the largest remainder: shares 700, 241, 60.
    assert [ln.invoice_discount_minor for ln in inv.lines] == [700, 241, 0, 60]
    by_rate = inv.tax_by_rate()
    assert by_rate == {
        D("0.2"): {"net_minor": 2200 + 500, "tax_minor": 440 + 100},
        D("0.07"): {"net_minor": 758, "tax_minor": 53},  # 758 × 0.07 = 53.06
        D("0"): {"net_minor": 190, "tax_minor": 0},
    }
    assert sum(b["tax_minor"] for b in by_rate.values()) == inv.tax_minor
    assert sum(b["net_minor"] for b in by_rate.values()) == inv.net_minor


def test_tax_by_rate_treats_equal_decimals_as_one_rate() -> None:
    inv = compute_invoice("EUR", "exclusive", [item(1, 1000, "0.20"), item(1, 1000, "0.2")])
    assert inv.tax_by_rate() == {D("0.2"): {"net_minor": 2000, "tax_minor": 400}}


# ----------------------------------------------------------------------------- currencies


def test_jpy_has_no_minor_unit_and_rounds_to_whole_yen() -> None:
    # ¥1,234 × 3 = ¥3,702 ; × 0.1 = 370.2 → ¥370. Inclusive ¥1,100 at 10 % → ¥100.
    exc = compute_invoice("JPY", "exclusive", [item(3, 1234, "0.1")])
    assert values(exc.lines[0]) == (3702, 370, 4072)
    inc = compute_invoice("JPY", "inclusive", [item(1, 1100, "0.1"), item(1, 1005, "0.08")])
    # 1005 × 0.08 / 1.08 = 74.44… → 74
    assert [values(ln) for ln in inc.lines] == [(1000, 100, 1100), (931, 74, 1005)]
    assert exc.currency == "JPY" and inc.total_minor == 2105


def test_eur_two_decimals() -> None:
    # €19.99 × 7 = €139.93 ; × 0.19 = 26.5867 → 26.59
    inv = compute_invoice("EUR", "exclusive", [item(7, 1999, "0.19")])
    assert values(inv.lines[0]) == (13993, 2659, 16652)


def test_kwd_three_decimals() -> None:
    # KWD 12.345 × 2 = 24.690 ; VAT 5 % → 1.2345 → 1.235 (half up) / 1.234 (half even)
    up = compute_invoice("KWD", "exclusive", [item(2, 12345, "0.05")])
    even = compute_invoice("KWD", "exclusive", [item(2, 12345, "0.05")], rounding="half_even")
    assert values(up.lines[0]) == (24690, 1235, 25925)
    assert values(even.lines[0]) == (24690, 1234, 25924)


# ----------------------------------------------------------------------------- totals


def test_totals_are_sums_of_lines_and_total_is_net_plus_tax() -> None:
    inv = compute_invoice("EUR", "inclusive", [
        item(3, 3333, "0.19", discount=7), item(5, 1999, "0.07"), shipping(499, "0.19")],
        discount_minor=1234)
    assert inv.net_minor == sum(ln.net_minor for ln in inv.lines)
    assert inv.tax_minor == sum(ln.tax_minor for ln in inv.lines)
    assert inv.total_minor == inv.net_minor + inv.tax_minor == sum(ln.gross_minor
                                                                     for ln in inv.lines)
    assert inv.subtotal_minor == 3 * 3333 + 5 * 1999 + 499
    assert inv.discount_minor == 7 + 1234
    assert [ln.position for ln in inv.lines] == [0, 1, 2]
    assert [ln.kind for ln in inv.lines] == ["item", "item", "shipping"]


def test_line_metadata_is_carried_through() -> None:
    inv = compute_invoice("EUR", "exclusive", [
        LineInput("Mug", 2, 1250, D("0.2"), sku="MUG-1", category="kitchen")])
    line = inv.lines[0]
    assert (line.description, line.sku, line.category, line.quantity, line.unit_price_minor) == \
        ("Mug", "MUG-1", "kitchen", 2, 1250)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"lines": []}, InvalidInvoice, "an invoice needs at least one line"),
    ({"tax_mode": "gross"}, InvalidInvoice, "tax_mode must be one of exclusive, inclusive"),
    ({"lines": [item(1, 100, "1.01")]}, InvalidInvoice,
     r"lines\[0\]\.tax_rate must be a decimal between 0 and 1 \(0\.2 = 20%\)"),
    ({"lines": [item(1, 100, "0.2"), item(1, 100, "25")]}, InvalidInvoice,
     r"lines\[1\]\.tax_rate must be a decimal between 0 and 1"),
    ({"lines": [item(1, 100, "-0.1")]}, InvalidInvoice, r"lines\[0\]\.tax_rate"),
    ({"lines": [LineInput("x", 1, 100, 0.2)]}, InvalidInvoice, r"lines\[0\]\.tax_rate"),
    ({"lines": [item(2, 100, "0.2", discount=201)]}, InvalidInvoice,
     r"lines\[0\]\.discount exceeds the line amount"),
    ({"lines": [item(1, 100, "0.2"), shipping(1000, "0.2")], "discount_minor": 101},
     InvalidInvoice, "the invoice discount exceeds the item lines' amount"),
    ({"lines": [shipping(1000, "0.2")], "discount_minor": 1}, InvalidInvoice,
     "an invoice discount needs at least one item line"),
    ({"lines": [item(0, 100, "0.2")]}, InvalidInvoice,
     r"lines\[0\]\.quantity must be a positive integer"),
    ({"lines": [item(True, 100, "0.2")]}, InvalidInvoice, r"lines\[0\]\.quantity"),
    ({"lines": [LineInput("x", 1, 100, D("0.2"), kind="fee")]}, InvalidInvoice,
     r"lines\[0\]\.kind must be one of item, shipping"),
    ({"lines": [item(1, -1, "0.2")]}, InvalidAmount, "amount must not be negative"),
    ({"lines": [item(1, 100, "0.2")], "discount_minor": -5}, InvalidAmount,
     "amount must not be negative"),
    ({"lines": [item(1, 10.5, "0.2")]}, InvalidAmount, "must be an integer number of minor"),
])
def test_validation_errors(kwargs: dict, error: type, message: str) -> None:
    args = {"currency": "EUR", "tax_mode": "exclusive", "lines": [item(1, 100, "0.2")],
            "discount_minor": 0} | kwargs
    with pytest.raises(error, match=message) as info:
        compute_invoice(args["currency"], args["tax_mode"], args["lines"],
                        args["discount_minor"])
    assert info.value.code == error.code


def test_invoice_discount_above_items_ignores_the_shipping_amount() -> None:
    # Items 100 + shipping 1000 = 1100, but only the 100 of items can be discounted.
    with pytest.raises(InvalidInvoice, match="exceeds the item lines' amount"):
        compute_invoice("EUR", "exclusive", [item(1, 100, "0"), shipping(1000, "0")], 101)
    ok = compute_invoice("EUR", "exclusive", [item(1, 100, "0"), shipping(1000, "0")], 100)
    assert ok.total_minor == 1000


def test_line_amount_beyond_64_bits_is_refused() -> None:
    with pytest.raises(InvalidAmount, match="too large"):
        compute_invoice("EUR", "exclusive", [item(4, 2**62, "0")])


# ----------------------------------------------------------------------------- status


@pytest.mark.parametrize(("total", "paid", "refunded", "voided", "status"), [
    (1000, 0, 0, False, "open"),
    (1000, 400, 0, False, "open"),
    (1000, 1000, 0, False, "paid"),
    (0, 0, 0, False, "paid"),
    (1000, 1000, 1, False, "partially_refunded"),
    (1000, 1000, 999, False, "partially_refunded"),
    (1000, 1000, 1000, False, "refunded"),
    (1000, 400, 400, False, "partially_refunded"),
    (1000, 1000, 1000, True, "void"),
])
def test_derive_status(total: int, paid: int, refunded: int, voided: bool, status: str) -> None:
    assert derive_status(total, paid, refunded, voided) == status
