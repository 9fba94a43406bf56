"""Pure credit-note rules and document values, no database.

Covers: numbers and series; the split of a refund's note (to the payment method / to store
credit / fee kept) summing to the total; adjustments by amount and by quantity with the
cumulative tax rule (successive credits of a line end exactly on its tax), and their refusals
(more than remains, unknown line, amount and quantity together, bad reason); the amount-due
guard; which notes may be voided; the tax breakdown per rate; rates as percentages; the UBL
rendering being deterministic and escaping text; VAT number normalisation and refusals.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

import pytest

from payback.credit_notes import domain
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.documents.model import DocLine, Document, Party, Reference, Split, percent
from payback.documents.ubl import render_ubl
from payback.documents.vat import InvalidVatNumber, validate_vat_number
from payback.documents.view import present
from payback.errors import DomainError
from payback.refunds.domain import LineState

R19 = Decimal("0.19")


def line(id_="il_1", qty=3, gross=3570, tax=570, done_qty=0, done_gross=0, done_tax=0):
    return LineState(id_, "item", "Widget", qty, gross, tax, 0, done_qty, done_gross, done_tax)


def adjust(lines, *req_lines, reason="billing_error"):
    return domain.adjustment_lines(lines, {ln.id: R19 for ln in lines},
                                   AdjustmentRequest(reason, tuple(req_lines)))


def test_numbers_and_series():
    assert domain.number(1) == "CN-000001" and domain.number(1234567) == "CN-1234567"
    assert domain.series("sel_default") == "credit_note:sel_default"


def test_refund_split_sums_to_the_total():
    tenders = [{"destination": "original_payment", "amount_minor": 700},
               {"destination": "store_credit", "amount_minor": 250}]
    split = domain.refund_split(tenders, amount_minor=950, fee_minor=50)
    assert (split.refunded_minor, split.credited_minor, split.outside_minor) == (700, 250, 50)
    only_wallet = domain.refund_split([{"destination": "store_credit", "amount_minor": 900}],
                                      amount_minor=900, fee_minor=0)
    assert (only_wallet.refunded_minor, only_wallet.credited_minor) == (0, 900)
    assert domain.adjustment_split(1234) == domain.Split(0, 0, 1234)


def test_adjustment_by_amount_and_quantity_uses_the_cumulative_tax():
    ((by_amount, qty_a),) = adjust([line()], AdjustmentLine("il_1", amount_minor=1000))
    # tax = round(570 × 1000 / 3570) = 160 (159.66…)
    assert (by_amount.gross_minor, by_amount.tax_minor, by_amount.net_minor, qty_a) == \
        (1000, 160, 840, 0)
    ((by_qty, qty_q),) = adjust([line()], AdjustmentLine("il_1", quantity=1))
    assert (by_qty.gross_minor, by_qty.tax_minor, by_qty.quantity, qty_q) == (1190, 190, 1, 1)
    # after 1000 gross and 160 tax were credited, the rest of the line ends exactly on 570
    ((rest, _),) = adjust([line(done_gross=1000, done_tax=160)],
                          AdjustmentLine("il_1", amount_minor=2570))
    assert (rest.gross_minor, rest.tax_minor) == (2570, 410)


def test_adjustment_refusals():
    with pytest.raises(domain.CreditExceedsRemaining) as err:
        adjust([line(done_gross=3000, done_tax=479)], AdjustmentLine("il_1", amount_minor=571))
    assert (err.value.status, err.value.extra["remaining_minor"]) == (409, 570)
    with pytest.raises(DomainError, match="unit"):
        adjust([line(done_qty=3, done_gross=3570, done_tax=570)],
               AdjustmentLine("il_1", quantity=1))
    with pytest.raises(DomainError) as missing:
        adjust([line()], AdjustmentLine("il_2", amount_minor=1))
    assert missing.value.code == "not_found"
    for bad in (AdjustmentRequest("billing_error", ()),
                AdjustmentRequest("billing_error", (AdjustmentLine("il_1", 1, 1),)),
                AdjustmentRequest("billing_error", (AdjustmentLine("il_1"),)),
                AdjustmentRequest("billing_error", (AdjustmentLine("il_1", 1),
                                                    AdjustmentLine("il_1", 2))),
                AdjustmentRequest("because", (AdjustmentLine("il_1", 1),)),
                AdjustmentRequest("billing_error", (AdjustmentLine("il_1", quantity=0),))):
        with pytest.raises(DomainError) as e:
            domain.validate_adjustment(bad)
        assert e.value.status == 422, bad


def test_amount_due_and_voidable():
    domain.check_due(500, 500, "INV-1")
    with pytest.raises(domain.CreditExceedsAmountDue) as err:
        domain.check_due(501, 500, "INV-1")
    assert err.value.extra == {"requested_minor": 501, "due_minor": 500}
    adjustment = {"kind": "adjustment", "number": "CN-000001"}
    domain.check_voidable(adjustment, already_voided=False)
    with pytest.raises(domain.CreditNoteAlreadyVoided):
        domain.check_voidable(adjustment, already_voided=True)
    for kind in ("refund", "void"):
        with pytest.raises(domain.CreditNoteNotVoidable):
            domain.check_voidable({"kind": kind, "number": "CN-000002"}, already_voided=False)


def _doc(**extra) -> Document:
    lines = (DocLine(1, "Shoes & <laces>", 1, R19, 5000, 950, 5950, 5000),
             DocLine(2, "Book", 2, Decimal("0.07"), 2000, 140, 2140, 1000),
             DocLine(3, "Socks", 1, R19, 1000, 190, 1190, 1000))
    base = dict(type="credit_note", kind="refund", number="CN-000007",
                issued_on=date(2026, 2, 1), currency="EUR", locale="de_DE",
                tax_mode="exclusive", seller=Party("Seller", "Street 1\nBerlin", "DE",
                                                   "DE136695976"),
                buyer=Party("Buyer \x01"), lines=lines, net_minor=8000, tax_minor=1280,
                total_minor=9280, invoice_ref=Reference("INV-000003", date(2026, 1, 15)),
                split=Split(9000, 0, 280, "Kept as restocking fee"), reason="goodwill")
    return Document(**{**base, **extra})


def test_tax_breakdown_per_rate_sums_to_the_totals():
    breakdown = _doc().tax_breakdown()
    assert [(percent(t.rate), t.net_minor, t.tax_minor) for t in breakdown] == \
        [("7", 2000, 140), ("19", 6000, 1140)]
    assert sum(t.net_minor for t in breakdown) == 8000
    assert sum(t.tax_minor for t in breakdown) == 1280
    assert (percent(Decimal("0.055")), percent(Decimal("0.200000")), percent(Decimal(0))) == \
        ("5.5", "20", "0")


def test_view_formats_amounts_in_the_locale_and_negates_a_void():
    v = present(_doc())
    assert v["totals"][-1] == ("Total", "92,80\xa0€")
    assert v["references"] == ["Credits invoice INV-000003 of 2026-01-15"]
    void = present(_doc(kind="void", voids_ref=Reference("CN-000002", date(2026, 1, 20)),
                        locale="xx_XX"))  # an unknown locale falls back to en_US
    assert void["totals"][-1] == ("Total", "-€92.80")
    assert void["lines"][1]["quantity"] == "-2"
    assert void["title"] == "Credit note (void)"


def test_ubl_is_deterministic_and_carries_escaped_text():
    first, second = render_ubl(_doc()), render_ubl(_doc())
    assert first == second
    root = ET.fromstring(first)
    cbc = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
    cac = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"
    names = [el.text for el in root.iter(f"{cbc}Name")]
    assert "Shoes & <laces>" in names and "Buyer " in names  # \x01 cannot be in XML 1.0
    notes = [el.text for el in root.findall(f"{cbc}Note")]
    assert notes == ["Reason: goodwill", "Refunded to the original payment method: 90.00 EUR; "
                     "credited to store credit: 0.00 EUR; kept as restocking fee: 2.80 EUR"]
    prices = [(el.find(f"{cac}Price/{cbc}PriceAmount").text,
               el.find(f"{cac}Price/{cbc}BaseQuantity").text)
              for el in root.findall(f"{cac}CreditNoteLine")]
    assert prices == [("50.00", "1"), ("20.00", "2"), ("10.00", "1")]
    assert render_ubl(_doc(number="CN-000008")) != first


@pytest.mark.parametrize("raw, country, expected", [
    ("DE 136 695 976", None, "DE136695976"), ("136695976", "de", "DE136695976"),
    ("GB980780684", None, "GB980780684"), ("980 7806 84", "GB", "GB980780684"),
    ("094259216", "GR", "EL094259216"), ("CHE-107.787.577 IVA", "CH", "CHE107787577IVA"),
    ("", "DE", None), (None, None, None),
])
def test_vat_numbers_are_normalised(raw, country, expected):
    assert validate_vat_number(raw, country) == expected


@pytest.mark.parametrize("raw, country", [
    ("DE136695977", None), ("123", "DE"), ("XX123", None), ("9999", "GB"), ("<b>", "US"),
])
def test_invalid_vat_numbers_are_refused(raw, country):
    with pytest.raises(InvalidVatNumber) as err:
        validate_vat_number(raw, country)
    assert (err.value.code, err.value.status) == ("invalid_vat_number", 422)
