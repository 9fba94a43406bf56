"""EN 16931 / UBL 2.1 XML of invoices (type code 380) and credit notes (type code 381).

Invariants:
- deterministic: the same ``Document`` always gives the same bytes, so the SHA-256 stored on a
  credit note at issue (``document_sha256``) can be checked later by rendering it again;
- a credit note carries ``BillingReference/InvoiceDocumentReference`` (number and issue date of
  the invoice it amends); a void note also ``CreditNoteDocumentReference`` to the note it
  reverses, and negated amounts (negative quantities, non-negative prices, as EN 16931 BR-27
  requires);
- line amounts are exact: ``PriceAmount`` is the line's net for ``BaseQuantity`` = the line's
  quantity, so quantity × price / base quantity equals the line net to the minor unit with no
  division (a line credited by amount has quantity 1);
- amounts have the currency's ISO 4217 number of decimals; text is stripped of characters XML
  1.0 cannot carry, and escaped by ElementTree.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from payback.documents.model import Document, DocLine, Party, percent
from payback.money import Money, exponent

NS = {"cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
ROOT_NS = {"invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
           "credit_note": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"}
TYPE_CODES = {"invoice": "380", "credit_note": "381"}
CUSTOMIZATION = "urn:cen.eu:en16931:2017"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_ubl(doc: Document) -> bytes:
    root_name = "Invoice" if doc.type == "invoice" else "CreditNote"
    # Prefixed names are written literally with their xmlns declarations on the root: no use
    # of ElementTree's process-wide namespace registry, so the bytes never depend on it.
    root = ET.Element(root_name, {"xmlns": ROOT_NS[doc.type], "xmlns:cac": NS["cac"],
                                  "xmlns:cbc": NS["cbc"]})
    _text(root, "cbc:CustomizationID", CUSTOMIZATION)
    _text(root, "cbc:ID", doc.number)
    _text(root, "cbc:IssueDate", doc.issued_on.isoformat())
    _text(root, f"cbc:{root_name}TypeCode", TYPE_CODES[doc.type])
    for note in _notes(doc):
        _text(root, "cbc:Note", note)
    _text(root, "cbc:DocumentCurrencyCode", doc.currency)
    _references(root, doc)
    _party(root, "cac:AccountingSupplierParty", doc.seller)
    _party(root, "cac:AccountingCustomerParty", doc.buyer)
    _tax_total(root, doc)
    _monetary_total(root, doc)
    for ln in doc.lines:
        _line(root, doc, ln, root_name)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    el = _el(parent, tag, **attrs)
    el.text = _NOT_XML.sub("", text)
    return el


def _amount(parent: ET.Element, tag: str, doc: Document, minor: int) -> None:
    value = Money(doc.sign * minor, doc.currency).to_decimal()
    _text(parent, tag, f"{value:.{exponent(doc.currency)}f}", currencyID=doc.currency)


def _notes(doc: Document) -> list[str]:
    notes = []
    if doc.reason:
        notes.append(f"Reason: {doc.reason}")
    if doc.split is not None:
        s, cur = doc.split, doc.currency
        notes.append(f"Refunded to the original payment method: {Money(s.refunded_minor, cur)}; "
                     f"credited to store credit: {Money(s.credited_minor, cur)}; "
                     f"{s.outside_label.lower()}: {Money(s.outside_minor, cur)}")
    if doc.memo:
        notes.append(doc.memo)
    return notes


def _references(root: ET.Element, doc: Document) -> None:
    for tag, ref in (("cac:InvoiceDocumentReference", doc.invoice_ref),
                     ("cac:CreditNoteDocumentReference", doc.voids_ref)):
        if ref is not None:
            holder = _el(_el(root, "cac:BillingReference"), tag)
            _text(holder, "cbc:ID", ref.number)
            _text(holder, "cbc:IssueDate", ref.issued_on.isoformat())


def _party(root: ET.Element, tag: str, p: Party) -> None:
    party = _el(_el(root, tag), "cac:Party")
    _text(_el(party, "cac:PartyName"), "cbc:Name", p.name)
    lines = p.address_lines
    if lines or p.country:
        _address(_el(party, "cac:PostalAddress"), lines, p.country)
    if p.vat_number:
        scheme = _el(party, "cac:PartyTaxScheme")
        _text(scheme, "cbc:CompanyID", p.vat_number)
        _text(_el(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    _text(_el(party, "cac:PartyLegalEntity"), "cbc:RegistrationName", p.name)
    if p.email:
        _text(_el(party, "cac:Contact"), "cbc:ElectronicMail", p.email)


def _address(address: ET.Element, lines: list[str], country: str | None) -> None:
    if lines:
        _text(address, "cbc:StreetName", lines[0])
    if len(lines) > 1:
        _text(address, "cbc:AdditionalStreetName", lines[1])
    for extra in lines[2:]:
        _text(_el(address, "cac:AddressLine"), "cbc:Line", extra)
    if country:
        _text(_el(address, "cac:Country"), "cbc:IdentificationCode", country)


def _category(parent: ET.Element, tag: str, rate) -> None:
    cat = _el(parent, tag)
    _text(cat, "cbc:ID", "S" if rate else "Z")
    _text(cat, "cbc:Percent", percent(rate))
    _text(_el(cat, "cac:TaxScheme"), "cbc:ID", "VAT")


def _tax_total(root: ET.Element, doc: Document) -> None:
    total = _el(root, "cac:TaxTotal")
    _amount(total, "cbc:TaxAmount", doc, doc.tax_minor)
    for sub in doc.tax_breakdown():
        el = _el(total, "cac:TaxSubtotal")
        _amount(el, "cbc:TaxableAmount", doc, sub.net_minor)
        _amount(el, "cbc:TaxAmount", doc, sub.tax_minor)
        _category(el, "cac:TaxCategory", sub.rate)


def _monetary_total(root: ET.Element, doc: Document) -> None:
    total = _el(root, "cac:LegalMonetaryTotal")
    _amount(total, "cbc:LineExtensionAmount", doc, sum(ln.net_minor for ln in doc.lines))
    _amount(total, "cbc:TaxExclusiveAmount", doc, doc.net_minor)
    _amount(total, "cbc:TaxInclusiveAmount", doc, doc.total_minor)
    _amount(total, "cbc:PayableAmount", doc, doc.total_minor)


def _line(root: ET.Element, doc: Document, ln: DocLine, root_name: str) -> None:
    line = _el(root, f"cac:{root_name}Line")
    _text(line, "cbc:ID", str(ln.position))
    quantity = ln.quantity or 1
    qty_tag = "cbc:InvoicedQuantity" if doc.type == "invoice" else "cbc:CreditedQuantity"
    _text(line, qty_tag, str(doc.sign * quantity), unitCode="C62")
    _amount(line, "cbc:LineExtensionAmount", doc, ln.net_minor)
    item = _el(line, "cac:Item")
    _text(item, "cbc:Name", ln.description)
    _category(item, "cac:ClassifiedTaxCategory", ln.tax_rate)
    price = _el(line, "cac:Price")
    value = Money(ln.net_minor, doc.currency).to_decimal()  # never negative (BR-27)
    _text(price, "cbc:PriceAmount", f"{value:.{exponent(doc.currency)}f}",
          currencyID=doc.currency)
    _text(price, "cbc:BaseQuantity", str(quantity), unitCode="C62")
