"""Build ``Document`` values from the database: invoices and credit notes with the seller's and
the customer's details. Reads only, except ``stamp_invoice``.

Invariants:
- another seller's invoice or credit note is reported exactly like a missing one;
- ``credit_note_document`` is a pure function of the stored rows, used both at issue (before
  the rows are inserted, to hash the UBL) and on every download, so the hash of a re-rendered
  credit note equals the stored one as long as the parties' details are unchanged;
- a credit note is printed in the locale stored on it at issue (the customer's at that time).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from sqlalchemy import Connection, bindparam, select, update

from payback.access.tables import sellers
from payback.credit_notes.tables import credit_note_lines, credit_notes
from payback.customers.tables import customers
from payback.db import get_scoped
from payback.documents.model import OUTSIDE_LABELS, DocLine, Document, Party, Reference, Split
from payback.documents.ubl import render_ubl
from payback.errors import NotFound
from payback.invoicing.tables import invoice_lines, invoices


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Built once: it runs for every credit note, so on every refund (the hot path).
_parties = (select(sellers.c.name, sellers.c.address, sellers.c.country, sellers.c.vat_number,
                   sellers.c.email, customers.c.name.label("c_name"),
                   customers.c.address.label("c_address"),
                   customers.c.country.label("c_country"),
                   customers.c.vat_number.label("c_vat"), customers.c.email.label("c_email"),
                   customers.c.locale)
            .select_from(customers.join(sellers, sellers.c.id == bindparam("seller_id")))
            .where(customers.c.id == bindparam("customer_id")))


def parties(conn: Connection, seller_id: str, customer_id: str) -> tuple[Party, Party, str]:
    """(seller, buyer, the buyer's locale) in one round trip."""
    row = conn.execute(_parties, {"seller_id": seller_id, "customer_id": customer_id}).one()
    return (Party(row.name, row.address, row.country, row.vat_number, row.email),
            Party(row.c_name, row.c_address, row.c_country, row.c_vat, row.c_email),
            row.locale)


# ------------------------------------------------------------------------------ invoices


def _invoice_row(conn: Connection, invoice_id: str, seller_id: str | None) -> dict:
    return get_scoped(conn, invoices, invoice_id, seller_id, "invoice")


def invoice_document(conn: Connection, invoice_id: str, seller_id: str | None = None) -> Document:
    inv = _invoice_row(conn, invoice_id, seller_id)
    seller, buyer, locale = parties(conn, inv["seller_id"], inv["customer_id"])
    rows = conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id == invoice_id)
                        .order_by(invoice_lines.c.position)).all()
    lines = tuple(DocLine(
        position=i, description=r.description, quantity=r.quantity,
        tax_rate=Decimal(r.tax_rate), net_minor=r.net_minor, tax_minor=r.tax_minor,
        gross_minor=r.gross_minor, unit_price_minor=r.unit_price_minor,
        discount_minor=r.line_discount_minor + r.invoice_discount_minor)
        for i, r in enumerate(rows, start=1))
    return Document(
        type="invoice", kind="invoice", number=inv["number"], issued_on=inv["issued_at"].date(),
        currency=inv["currency"], locale=locale, tax_mode=inv["tax_mode"], seller=seller,
        buyer=buyer, lines=lines, net_minor=inv["net_minor"], tax_minor=inv["tax_minor"],
        total_minor=inv["total_minor"], memo=inv["memo"],
        discount_minor=sum(ln.discount_minor for ln in lines),
        document_sha256=inv.get("document_sha256"))


def stamp_invoice(conn: Connection, invoice_id: str) -> str:
    """Store the SHA-256 of the invoice's UBL rendering (once; meant to run at issue)."""
    digest = sha256(render_ubl(invoice_document(conn, invoice_id)))
    conn.execute(update(invoices).where(invoices.c.id == invoice_id,
                                        invoices.c.document_sha256.is_(None))
                 .values(document_sha256=digest))
    return digest


# -------------------------------------------------------------------------- credit notes


def credit_note_document(note: dict, lines: list[dict], invoice: dict, seller: Party,
                         buyer: Party, voided: dict | None = None) -> Document:
    """A credit note as a document. ``lines`` carry the credit-note line columns plus the
    invoice line's ``unit_price_minor``; ``voided`` is the note a void reverses."""
    doc_lines = tuple(DocLine(
        position=i, description=ln["description"], quantity=ln["quantity"],
        tax_rate=Decimal(ln["tax_rate"]), net_minor=ln["net_minor"], tax_minor=ln["tax_minor"],
        gross_minor=ln["gross_minor"], unit_price_minor=ln.get("unit_price_minor"))
        for i, ln in enumerate(lines, start=1))
    label = OUTSIDE_LABELS.get(note["kind"], OUTSIDE_LABELS["adjustment"])
    return Document(
        type="credit_note", kind=note["kind"], number=note["number"],
        issued_on=note["issued_at"].date(), currency=note["currency"], locale=note["locale"],
        tax_mode=invoice["tax_mode"], seller=seller, buyer=buyer, lines=doc_lines,
        net_minor=note["net_minor"], tax_minor=note["tax_minor"],
        total_minor=note["total_minor"],
        invoice_ref=Reference(invoice["number"], invoice["issued_at"].date()),
        voids_ref=Reference(voided["number"], voided["issued_at"].date()) if voided else None,
        split=Split(note["refunded_minor"], note["credited_minor"], note["outside_minor"],
                    label),
        reason=note["reason"], memo=note["memo"],
        document_sha256=note.get("document_sha256"))


def note_lines(conn: Connection, credit_note_id: str) -> list[dict]:
    q = (select(credit_note_lines, invoice_lines.c.unit_price_minor)
         .join(invoice_lines, invoice_lines.c.id == credit_note_lines.c.invoice_line_id)
         .where(credit_note_lines.c.credit_note_id == credit_note_id)
         .order_by(credit_note_lines.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def _note_row(conn: Connection, credit_note_id: str, seller_id: str | None) -> dict:
    q = select(credit_notes).where(credit_notes.c.id == credit_note_id)
    if seller_id:
        q = q.where(credit_notes.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"credit note {credit_note_id} not found")
    return dict(row._mapping)


def load_credit_note_document(conn: Connection, credit_note_id: str,
                              seller_id: str | None = None) -> Document:
    note = _note_row(conn, credit_note_id, seller_id)
    inv = _invoice_row(conn, note["invoice_id"], None)
    seller, buyer, _ = parties(conn, note["seller_id"], inv["customer_id"])
    voided = _note_row(conn, note["voids_id"], None) if note["voids_id"] else None
    return credit_note_document(note, note_lines(conn, credit_note_id), inv, seller, buyer,
                                voided)


def verify_credit_note(conn: Connection, credit_note_id: str,
                       seller_id: str | None = None) -> bool:
    """Does the UBL rendered now hash to what was stored at issue?"""
    doc = load_credit_note_document(conn, credit_note_id, seller_id)
    return doc.document_sha256 == sha256(render_ubl(doc))
