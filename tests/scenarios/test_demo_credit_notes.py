"""Issue 5's "done when", on the demo: every succeeded refund has a credit note whose PDF names
the note, the original invoice (number and date) and its tax, and whose tax per rate equals the
refund's; refunds still waiting for approval have none (no money has moved). Both databases."""

from __future__ import annotations

import io
from collections import defaultdict

import pypdf
from sqlalchemy import select

from payback import db
from payback.credit_notes.tables import credit_note_lines, credit_notes
from payback.demo import seed_demo
from payback.documents import pdf as pdf_module
from payback.documents.pdf import render_pdf
from payback.documents.service import load_credit_note_document
from payback.invoicing.tables import invoice_lines, invoices
from payback.refunds.tables import refund_lines, refunds


def _text(data: bytes) -> str:
    raw = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    return " ".join(raw.replace("\xa0", " ").replace("\u202f", " ").split())


def _shown(text: str) -> str:
    return " ".join(pdf_module.shown(text).replace("\xa0", " ").replace("\u202f", " ").split())


def test_every_demo_refund_has_a_credit_note_pdf_with_references_and_taxes(engine):
    seed_demo(engine, seed=7, customers=6, invoices=50)
    with db.read(engine) as conn:
        done = conn.execute(select(refunds).where(refunds.c.status == "succeeded")).all()
        waiting = conn.execute(select(refunds.c.id).where(
            refunds.c.status == "pending_approval")).scalars().all()
        notes = {n.refund_id: n for n in conn.execute(select(credit_notes))}
        assert done, "the demo made no refunds"
        for refund in done:
            note = notes[refund.id]
            inv = conn.execute(select(invoices).where(invoices.c.id == refund.invoice_id)).one()
            assert (note.tax_minor, note.net_minor) == (refund.tax_minor, refund.net_minor)
            assert _tax_by_rate(conn, credit_note_lines.c.credit_note_id, note.id,
                                credit_note_lines) == _refund_tax_by_rate(conn, refund.id)
            text = _text(render_pdf(load_credit_note_document(conn, note.id)))
            for expected in (note.number, inv.number, f"{inv.issued_at:%Y-%m-%d}",
                             note.document_sha256):
                assert _shown(expected) in text, (expected, text[:400])
        assert not {r for r in waiting} & set(notes)


def _tax_by_rate(conn, key, value, table) -> dict:
    out: dict = defaultdict(int)
    for row in conn.execute(select(table.c.tax_rate, table.c.tax_minor).where(key == value)):
        out[str(row.tax_rate.normalize())] += row.tax_minor
    return dict(out)


def _refund_tax_by_rate(conn, refund_id: str) -> dict:
    out: dict = defaultdict(int)
    rows = conn.execute(select(invoice_lines.c.tax_rate, refund_lines.c.tax_minor)
                        .join(invoice_lines, invoice_lines.c.id == refund_lines.c.invoice_line_id)
                        .where(refund_lines.c.refund_id == refund_id))
    for row in rows:
        out[str(row.tax_rate.normalize())] += row.tax_minor
    return dict(out)
