"""Documents of invoices and credit notes, on SQLite and PostgreSQL.

Covers: the PDF's extracted text (pypdf) carries the number, the reference to the invoice's
number and date, seller and buyer with their VAT numbers, the lines, the tax breakdown per rate,
the totals and the split, amounts formatted for the customer's locale (de_DE, en_US); the UBL
XML parses, has type code 381 (380 for the invoice), the ``BillingReference``, the totals and
the tax subtotals, the ISO 4217 decimals (JPY 0, KWD 3), negated amounts on a void note, and
hashes to the stored ``document_sha256`` (and no longer does once the content changes); the
HTML escapes everything; without a Unicode font the PDF still renders; VAT numbers of customers
and sellers are validated (invalid → ``invalid_vat_number`` and nothing written); the CLI
writes the same bytes as the renderers and lists credit notes.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from decimal import Decimal

import pypdf
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from payback import db
from payback.cli import app as cli
from payback.credit_notes import service as notes
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.customers.service import create_customer
from payback.customers.tables import customers
from payback.documents import pdf as pdf_module
from payback.documents import render_html, render_pdf, render_ubl
from payback.documents.service import (invoice_document, load_credit_note_document, sha256,
                                       stamp_invoice, verify_credit_note)
from payback.documents.vat import InvalidVatNumber
from payback.errors import DomainError
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.payments.service import record_payment
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.service import create_refund
from payback.sellers.service import get_seller, update_seller

CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}
UBL = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
       "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
       "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
       "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"}


def norm(text: str) -> str:
    """As the PDF prints it (with the font this machine has; see ``documents.pdf``), with one
    kind of space: locales use no-break and narrow no-break spaces in amounts."""
    text = pdf_module.shown(text)
    return " ".join(text.replace("\xa0", " ").replace("\u202f", " ").split())


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return norm("\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages))


@pytest.fixture
def shop(engine, clock) -> dict:
    """A German seller and customer; invoice: shoes 2 × 50.00 at 19 % and a book 20.00 at 7 %,
    exclusive: net 120.00, tax 20.40, total 140.40; paid by card; one pair of shoes refunded
    (net 50.00, tax 9.50, total 59.50) → credit note CN-000001."""
    with db.write(engine) as conn:
        update_seller(conn, clock, "sel_default", {
            "name": "Schuhhaus Müller GmbH", "address": "Hauptstraße 1\n10115 Berlin",
            "country": "DE", "vat_number": "DE 136 695 976", "email": "rechnung@example.com"})
        cus = create_customer(conn, clock, name="Ada Lovelace", locale="de_DE", country="DE",
                              address="Marktplatz 5\n80331 München", vat_number="DE136695976")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Shoes", 2, 5000, Decimal("0.19")),
                                    LineInput("Book", 1, 2000, Decimal("0.07"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=14040,
                       currency="EUR", card=CARD)
        create_refund(conn, clock, inv["id"], RefundRequest(
            "lines", "original_payment", "product_defective",
            lines=(LineRequest(inv["lines"][0]["id"], 1),)))
        note = notes.list_credit_notes(conn, after=None, limit=1)[0]
    return {"invoice": inv, "customer": cus, "note": note}


def test_credit_note_pdf_shows_number_reference_parties_taxes_and_totals(engine, shop):
    with db.read(engine) as conn:
        text = pdf_text(render_pdf(load_credit_note_document(conn, shop["note"]["id"])))
    for expected in ("Credit note CN-000001", "Date of issue: 2026-01-15",
                     "Credits invoice INV-000001 of 2026-01-15",
                     "Schuhhaus Müller GmbH", "Hauptstraße 1", "VAT number: DE136695976",
                     "Ada Lovelace", "Marktplatz 5", "80331 München",
                     "1 Shoes 1 50,00 € 19 % 50,00 € 9,50 € 59,50 €",
                     "19 % 50,00 € 9,50 €", "Net 50,00 €", "Tax 9,50 €", "Total 59,50 €",
                     "Refunded to the original payment method 59,50 €",
                     "Credited to store credit 0,00 €", "Kept as restocking fee 0,00 €",
                     "Reason: Product defective", shop["note"]["document_sha256"]):
        assert norm(expected) in text, (expected, text)
    assert "7 %" not in text  # only the credited rate is in this note's breakdown


def test_invoice_pdf_has_a_tax_breakdown_per_rate(engine, shop):
    with db.read(engine) as conn:
        text = pdf_text(render_pdf(invoice_document(conn, shop["invoice"]["id"])))
    for expected in ("Invoice INV-000001", "7 % 20,00 € 1,40 €", "19 % 100,00 € 19,00 €",
                     "Net 120,00 €", "Tax 20,40 €", "Total 140,40 €",
                     "2 Book 1 20,00 € 7 % 20,00 € 1,40 € 21,40 €"):
        assert norm(expected) in text, (expected, text)
    assert "Credits invoice" not in text


def _xml(data: bytes) -> ET.Element:
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(data)


def _t(root: ET.Element, path: str) -> str:
    el = root.find(path, UBL)
    assert el is not None, path
    return el.text


def test_credit_note_ubl_has_type_381_the_billing_reference_and_the_stored_hash(engine, shop):
    with db.read(engine) as conn:
        data = render_ubl(load_credit_note_document(conn, shop["note"]["id"]))
        assert verify_credit_note(conn, shop["note"]["id"])
    assert sha256(data) == shop["note"]["document_sha256"]
    root = _xml(data)
    assert root.tag == f"{{{UBL['cn']}}}CreditNote"
    assert _t(root, "cbc:CreditNoteTypeCode") == "381"
    assert (_t(root, "cbc:ID"), _t(root, "cbc:IssueDate")) == ("CN-000001", "2026-01-15")
    ref = "cac:BillingReference/cac:InvoiceDocumentReference/"
    assert (_t(root, ref + "cbc:ID"), _t(root, ref + "cbc:IssueDate")) == \
        ("INV-000001", "2026-01-15")
    seller = "cac:AccountingSupplierParty/cac:Party/"
    assert _t(root, seller + "cac:PartyTaxScheme/cbc:CompanyID") == "DE136695976"
    assert _t(root, seller + "cac:PostalAddress/cac:Country/cbc:IdentificationCode") == "DE"
    assert _t(root, "cac:TaxTotal/cbc:TaxAmount") == "9.50"
    sub = "cac:TaxTotal/cac:TaxSubtotal/"
    assert (_t(root, sub + "cbc:TaxableAmount"), _t(root, sub + "cbc:TaxAmount"),
            _t(root, sub + "cac:TaxCategory/cbc:Percent")) == ("50.00", "9.50", "19")
    totals = "cac:LegalMonetaryTotal/"
    assert [_t(root, totals + f"cbc:{n}") for n in (
        "LineExtensionAmount", "TaxExclusiveAmount", "TaxInclusiveAmount", "PayableAmount")] \
        == ["50.00", "50.00", "59.50", "59.50"]
    assert root.find(totals + "cbc:PayableAmount", UBL).get("currencyID") == "EUR"
    assert (_t(root, "cac:CreditNoteLine/cbc:CreditedQuantity"),
            _t(root, "cac:CreditNoteLine/cac:Price/cbc:PriceAmount")) == ("1", "50.00")


def test_invoice_ubl_has_type_380_and_its_hash_can_be_stamped(engine, shop):
    with db.write(engine) as conn:
        digest = stamp_invoice(conn, shop["invoice"]["id"])
        data = render_ubl(invoice_document(conn, shop["invoice"]["id"]))
    root = _xml(data)
    assert root.tag == f"{{{UBL['inv']}}}Invoice"
    assert _t(root, "cbc:InvoiceTypeCode") == "380" and root.find("cac:BillingReference",
                                                                   UBL) is None
    assert _t(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "140.40"
    assert [_t(s, "cac:TaxCategory/cbc:Percent") for s in
            root.findall("cac:TaxTotal/cac:TaxSubtotal", UBL)] == ["7", "19"]
    assert sha256(data) == digest
    with db.read(engine) as conn:
        assert invoice_document(conn, shop["invoice"]["id"]).document_sha256 == digest


def test_the_hash_detects_a_changed_document(engine, clock, shop):
    with db.write(engine) as conn:
        update_seller(conn, clock, "sel_default", {"address": "Elsewhere 9"})
    with db.read(engine) as conn:
        assert not verify_credit_note(conn, shop["note"]["id"])


def test_a_void_note_in_ubl_reverses_the_amounts_and_names_the_voided_note(engine, clock):
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Yen", locale="ja_JP")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="JPY",
                             tax_mode="inclusive", lines=[LineInput("Tea", 3, 1100,
                                                                    Decimal("0.1"))])
        adj = notes.create_adjustment(conn, clock, inv["id"], AdjustmentRequest(
            "billing_error", (AdjustmentLine(inv["lines"][0]["id"], quantity=2),)))
        void = notes.void_credit_note(conn, clock, adj["id"], reason="billing_error")
        data = render_ubl(load_credit_note_document(conn, void["id"]))
        text = pdf_text(render_pdf(load_credit_note_document(conn, void["id"])))
    root = _xml(data)
    assert _t(root, "cac:BillingReference/cac:CreditNoteDocumentReference/cbc:ID") == \
        adj["number"] == "CN-000001"
    assert _t(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "-2200"  # JPY: no decimals
    assert _t(root, "cac:TaxTotal/cbc:TaxAmount") == "-200"
    assert (_t(root, "cac:CreditNoteLine/cbc:CreditedQuantity"),
            _t(root, "cac:CreditNoteLine/cac:Price/cbc:PriceAmount")) == ("-2", "2000")
    assert "Voids credit note CN-000001 of 2026-01-15" in text
    # ja_JP writes the fullwidth yen sign, which DejaVu lacks: the PDF prints its compatible ¥
    assert norm("Net -¥2,000 Tax -¥200 Total -¥2,200") in text, text
    assert "Settled against the invoice balance -" in text


def test_kwd_amounts_have_three_decimals_and_en_us_formatting(engine, clock):
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Dinar", locale="en_US")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="KWD",
                             tax_mode="exclusive", lines=[LineInput("Oud", 1, 12345,
                                                                    Decimal("0.05"))])
        doc = invoice_document(conn, inv["id"])
    root = _xml(render_ubl(doc))
    assert _t(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == "12.962"
    assert "Net KWD12.345 Tax KWD0.617 Total KWD12.962" in pdf_text(render_pdf(doc))


def test_html_escapes_everything(engine, clock):
    evil = "<script>alert(1)</script> & Co"
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name=evil, address="<b>bold</b>")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="USD",
                             tax_mode="exclusive",
                             lines=[LineInput('"><img src=x onerror=alert(1)>', 1, 1000,
                                              Decimal("0"))])
        html = render_html(invoice_document(conn, inv["id"]))
        ubl = render_ubl(invoice_document(conn, inv["id"]))
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<h1>Invoice <span class=\"number\">INV-000001</span></h1>" in html
    assert _t(_xml(ubl), "cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name") == evil


def test_without_a_unicode_font_the_pdf_still_renders(engine, shop, monkeypatch):
    monkeypatch.setattr(pdf_module, "FONT_CANDIDATES", ("/nonexistent/font.ttf",))
    with db.read(engine) as conn:
        text = pdf_text(render_pdf(load_credit_note_document(conn, shop["note"]["id"])))
    assert "Total 59,50 EUR" in text and "Credits invoice INV-000001" in text
    assert pdf_module.shown("Hauptstraße 1 · ￥ → €") == \
        "Hauptstraße 1 · ¥ ? EUR"


# --------------------------------------------------------------------------- VAT numbers


def test_customer_vat_numbers_are_validated_and_normalised(engine, clock):
    with db.write(engine) as conn:
        ok = create_customer(conn, clock, name="Ltd", country="GB", vat_number="980 7806 84")
        gr = create_customer(conn, clock, name="AE", country="GR", vat_number="094259216")
    assert (ok["vat_number"], gr["vat_number"]) == ("GB980780684", "EL094259216")
    for vat, country in (("DE136695977", "DE"), ("GB123", None), ("12345", None)):
        with pytest.raises(InvalidVatNumber) as err:
            with db.write(engine) as conn:
                create_customer(conn, clock, name="Bad", country=country, vat_number=vat)
        assert (err.value.code, err.value.status) == ("invalid_vat_number", 422)
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(customers)).scalar() == 2


def test_seller_details_are_validated(engine, clock):
    with pytest.raises(InvalidVatNumber):
        with db.write(engine) as conn:
            update_seller(conn, clock, "sel_default", {"country": "FR",
                                                       "vat_number": "DE136695976x"})
    with pytest.raises(DomainError) as err:
        with db.write(engine) as conn:
            update_seller(conn, clock, "sel_default", {"name": "  "})
    assert err.value.code == "validation_failed"
    with db.write(engine) as conn:
        got = update_seller(conn, clock, "sel_default", {"country": "fr",
                                                         "vat_number": "FR 40 303 265 045"})
    assert (got["country"], got["vat_number"], got["name"]) == ("FR", "FR40303265045",
                                                                "Default seller")
    with db.read(engine) as conn:
        assert get_seller(conn, "sel_default")["vat_number"] == "FR40303265045"


# ---------------------------------------------------------------------------------- CLI


def _cli(db_url: str, *args: str):
    return CliRunner().invoke(cli, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                    "COLUMNS": "220"})


def test_cli_writes_the_documents_and_lists_credit_notes(db_url, engine, shop, tmp_path):
    note_id, inv_id = shop["note"]["id"], shop["invoice"]["id"]
    out = tmp_path / "cn.xml"
    res = _cli(db_url, "documents", "credit-note", note_id, "--format", "xml", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert sha256(out.read_bytes()) == shop["note"]["document_sha256"]
    pdf = tmp_path / "inv.pdf"
    res = _cli(db_url, "documents", "invoice", inv_id, "-f", "pdf", "-o", str(pdf))
    assert res.exit_code == 0 and "Invoice INV-000001" in pdf_text(pdf.read_bytes())
    res = _cli(db_url, "credit-notes", "list", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [(r["number"], r["kind"], r["total_minor"], r["invoice_number"]) for r in rows] == \
        [("CN-000001", "refund", 5950, "INV-000001")]
    res = _cli(db_url, "credit-notes", "list")
    assert "CN-000001" in res.output and "59,50 €" not in res.output and "€59.50" in res.output
    bad = _cli(db_url, "documents", "credit-note", note_id, "--format", "docx", "-o",
               str(tmp_path / "x"))
    assert bad.exit_code == 2 and "error[validation_failed]" in bad.output
    missing = _cli(db_url, "documents", "credit-note", "cn_missing", "-o", str(tmp_path / "y"))
    assert missing.exit_code == 2 and "error[not_found]" in missing.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with db.read(engine) as conn:
        assert get_invoice(conn, inv_id)["amount_refunded_minor"] == 5950
