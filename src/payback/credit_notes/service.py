"""Credit-note use cases: issue one for a refund (called when the refund's money moves), issue an
adjustment on demand, void an adjustment, read and list. Each write runs in the caller's
transaction with its ledger entry (adjustments and voids; a refund's reversal is already booked
by the refund) and its outbox event.

Invariants:
- numbers come from one gapless series per seller (``CN-000001``…), taken only at issue and
  inside the transaction, so a rollback gives the number back;
- a note is immutable once inserted (PostgreSQL refuses UPDATE/DELETE), so its
  ``document_sha256`` (SHA-256 of its UBL rendering) is computed before the insert;
- the credit notes of an invoice never exceed it per line (hence per tax rate): adjustments
  reserve the same guard counters on invoice lines as refunds (``invoice_lines.refunded_*``,
  whose CHECKs refuse any excess), and a void gives its adjustment's reservation back;
- an adjustment never exceeds the amount still due: total − payments − adjustments in force;
- lock order is the refunds' one: the invoice row first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from payback.actor import SYSTEM, Actor
from payback.clock import Clock
from payback.credit_notes import domain
from payback.credit_notes.tables import credit_note_lines, credit_notes
from payback.db import get_scoped
from payback.documents.service import credit_note_document, note_lines, parties, sha256
from payback.documents.ubl import render_ubl
from payback.errors import Conflict, CurrencyMismatch
from payback.ids import new_id
from payback.invoicing.service import adjustments_in_force, load_lines, lock_invoice, next_number
from payback.invoicing.tables import invoice_lines, invoices
from payback.ledger import domain as ledger
from payback.ledger.service import post
from payback.money import normalise_currency
from payback.outbox.service import emit, outbox_row
from payback.payments.tables import payments
from payback.refunds.domain import LineState
from payback.refunds.tables import refund_lines

_insert_note = insert(credit_notes)
_insert_lines = insert(credit_note_lines)
_LINE_COLUMNS = ("invoice_line_id", "description", "quantity", "tax_rate", "net_minor",
                 "tax_minor", "gross_minor")
_move_counters = (update(invoice_lines).where(invoice_lines.c.id == bindparam("b_id"))
                  .values(refunded_quantity=invoice_lines.c.refunded_quantity + bindparam("b_qty"),
                          refunded_gross_minor=invoice_lines.c.refunded_gross_minor
                          + bindparam("b_gross"),
                          refunded_tax_minor=invoice_lines.c.refunded_tax_minor
                          + bindparam("b_tax")))
_refund_lines = (select(refund_lines.c.invoice_line_id, invoice_lines.c.description,
                        refund_lines.c.quantity, invoice_lines.c.tax_rate,
                        refund_lines.c.net_minor, refund_lines.c.tax_minor,
                        refund_lines.c.gross_minor, invoice_lines.c.unit_price_minor)
                 .join(invoice_lines, invoice_lines.c.id == refund_lines.c.invoice_line_id)
                 .where(refund_lines.c.refund_id == bindparam("refund_id"))
                 .order_by(invoice_lines.c.position))


def _new_id() -> str:
    return new_id("credit_note")


def allocate_number(conn: Connection, seller_id: str) -> str:
    """The next number of the seller's series, in one statement that is safe even for the very
    first number under concurrency (an upsert: a missing series row cannot be inserted twice)."""
    return domain.number(next_number(conn, domain.series(seller_id)))


# --------------------------------------------------------------------------------- issue


def _issue(conn: Connection, note: dict, lines: list[dict], inv: dict, at: datetime,
           voided: dict | None = None) -> dict:
    """Number, hash and insert a note (``note`` holds the kind-specific columns)."""
    seller, buyer, locale = parties(conn, inv["seller_id"], inv["customer_id"])
    note.update(id=_new_id(), seller_id=inv["seller_id"], invoice_id=inv["id"],
                currency=inv["currency"], locale=locale, issued_at=at,
                number=allocate_number(conn, inv["seller_id"]))
    note.setdefault("refund_id", None)
    note.setdefault("voids_id", None)
    note.setdefault("memo", None)
    doc = credit_note_document(note, lines, inv, seller, buyer, voided)
    note["document_sha256"] = sha256(render_ubl(doc))
    conn.execute(_insert_note, note)
    conn.execute(_insert_lines, [{"credit_note_id": note["id"],
                                  **{k: ln[k] for k in _LINE_COLUMNS}} for ln in lines])
    return note


def issue_for_refund(conn: Connection, refund: dict, tenders: list[dict], inv: dict,
                     at: datetime, outbox: list[dict]) -> dict:
    """The credit note of a refund whose money moves now (refunds.service.money_moves)."""
    lines = [dict(r._mapping) for r in conn.execute(_refund_lines, {"refund_id": refund["id"]})]
    split = domain.refund_split(tenders, refund["amount_minor"], refund["fee_minor"])
    note = _issue(conn, {
        "kind": "refund", "refund_id": refund["id"], "reason": refund["reason"],
        "net_minor": refund["net_minor"], "tax_minor": refund["tax_minor"],
        "total_minor": refund["net_minor"] + refund["tax_minor"],
        "refunded_minor": split.refunded_minor, "credited_minor": split.credited_minor,
        "outside_minor": split.outside_minor}, lines, inv, at)
    outbox.append(outbox_row("credit_note.issued", note["id"], _event(note), at,
                             inv["seller_id"]))
    return note


def create_adjustment(conn: Connection, clock: Clock, invoice_id: str,
                      req: domain.AdjustmentRequest, *, actor: Actor = SYSTEM,
                      seller_id: str | None = None) -> dict:
    """Credit invoice lines without moving money: reduces what the customer owes."""
    domain.validate_adjustment(req)
    inv = lock_invoice(conn, invoice_id, seller_id)
    _check_invoice(inv, req.currency)
    rows = load_lines(conn, invoice_id)
    taken = domain.adjustment_lines([_line_state(r) for r in rows],
                                    {r["id"]: Decimal(r["tax_rate"]) for r in rows}, req)
    net = sum(nl.net_minor for nl, _ in taken)
    tax = sum(nl.tax_minor for nl, _ in taken)
    domain.check_due(net + tax, amount_due(conn, inv), inv["number"])
    _move(conn, [(nl.invoice_line_id, qty, nl.gross_minor, nl.tax_minor) for nl, qty in taken])
    unit_prices = {r["id"]: r["unit_price_minor"] for r in rows}
    lines = [{**_line_dict(nl), "unit_price_minor": unit_prices[nl.invoice_line_id]}
             for nl, _ in taken]
    split = domain.adjustment_split(net + tax)
    now = clock.now()
    note = _issue(conn, {
        "kind": "adjustment", "reason": req.reason, "memo": req.memo, "net_minor": net,
        "tax_minor": tax, "total_minor": net + tax, "refunded_minor": split.refunded_minor,
        "credited_minor": split.credited_minor, "outside_minor": split.outside_minor},
        lines, inv, now)
    cur = inv["currency"]
    post(conn, ledger.entry("credit_note.adjustment", note["id"], [
        ledger.debit(ledger.SALES_RETURNS, cur, net), ledger.debit(ledger.TAX_PAYABLE, cur, tax),
        ledger.credit(ledger.RECEIVABLE, cur, net + tax),
    ], memo=f"Credit note {note['number']} on invoice {inv['number']}"), now, inv["seller_id"])
    emit(conn, "credit_note.issued", note["id"], {**_event(note), "actor_id": actor.id}, now,
         inv["seller_id"])
    return get_credit_note(conn, note["id"])


def void_credit_note(conn: Connection, clock: Clock, credit_note_id: str, *, reason: str,
                     memo: str | None = None, actor: Actor = SYSTEM,
                     seller_id: str | None = None) -> dict:
    """Reverse an adjustment with a void note; its reservation on the lines is given back."""
    domain.check_reason(reason)
    original = _note_row(conn, credit_note_id, seller_id)
    inv = lock_invoice(conn, original["invoice_id"])  # serialises two voids of one note
    already = conn.execute(select(credit_notes.c.id)
                           .where(credit_notes.c.voids_id == credit_note_id)).first()
    domain.check_voidable(original, already is not None)
    lines = note_lines(conn, credit_note_id)
    _move(conn, [(ln["invoice_line_id"], -ln["quantity"], -ln["gross_minor"], -ln["tax_minor"])
                 for ln in lines])
    now = clock.now()
    note = _issue(conn, {
        "kind": "void", "voids_id": credit_note_id, "reason": reason, "memo": memo,
        **{k: original[k] for k in ("net_minor", "tax_minor", "total_minor", "refunded_minor",
                                    "credited_minor", "outside_minor")}},
        lines, inv, now, voided=original)
    cur = inv["currency"]
    post(conn, ledger.entry("credit_note.void", note["id"], [
        ledger.debit(ledger.RECEIVABLE, cur, note["total_minor"]),
        ledger.credit(ledger.SALES_RETURNS, cur, note["net_minor"]),
        ledger.credit(ledger.TAX_PAYABLE, cur, note["tax_minor"]),
    ], memo=f"Credit note {note['number']} voids {original['number']}"), now, inv["seller_id"])
    emit(conn, "credit_note.voided", note["id"],
         {**_event(note), "voids_id": credit_note_id, "actor_id": actor.id}, now,
         inv["seller_id"])
    return get_credit_note(conn, note["id"])


def _check_invoice(inv: dict, currency: str | None) -> None:
    if inv["voided_at"] is not None:
        raise Conflict(f"invoice {inv['number']} is void; there is nothing to credit")
    if currency is not None and normalise_currency(currency) != inv["currency"]:
        raise CurrencyMismatch(f"invoice {inv['number']} is in {inv['currency']}, not "
                               f"{normalise_currency(currency)}")


def _line_state(r: dict) -> LineState:
    return LineState(
        id=r["id"], kind=r["kind"], description=r["description"], quantity=r["quantity"],
        gross_minor=r["gross_minor"], tax_minor=r["tax_minor"],
        discount_minor=r["line_discount_minor"] + r["invoice_discount_minor"],
        refunded_quantity=r["refunded_quantity"], refunded_gross_minor=r["refunded_gross_minor"],
        refunded_tax_minor=r["refunded_tax_minor"])


def _line_dict(nl: domain.NoteLine) -> dict:
    return {"invoice_line_id": nl.invoice_line_id, "description": nl.description,
            "quantity": nl.quantity, "tax_rate": nl.tax_rate, "net_minor": nl.net_minor,
            "tax_minor": nl.tax_minor, "gross_minor": nl.gross_minor}


def _move(conn: Connection, moves: list[tuple[str, int, int, int]]) -> None:
    """Add to (or, negative, give back) the guard counters of invoice lines."""
    conn.execute(_move_counters, [{"b_id": line_id, "b_qty": qty, "b_gross": gross,
                                   "b_tax": tax} for line_id, qty, gross, tax in moves])


def amount_due(conn: Connection, inv: dict) -> int:
    """What the customer still owes: total − payments − adjustments in force (voids add back)."""
    paid = conn.execute(select(func.coalesce(func.sum(payments.c.amount_minor), 0))
                        .where(payments.c.invoice_id == inv["id"])).scalar_one()
    return max(inv["total_minor"] - int(paid) - adjustments_in_force(conn, inv["id"]), 0)


def _event(note: dict) -> dict:
    return {"id": note["id"], "number": note["number"], "kind": note["kind"],
            "invoice_id": note["invoice_id"], "refund_id": note.get("refund_id"),
            "total_minor": note["total_minor"], "currency": note["currency"]}


# ---------------------------------------------------------------------------------- read


def _note_row(conn: Connection, credit_note_id: str, seller_id: str | None) -> dict:
    return get_scoped(conn, credit_notes, credit_note_id, seller_id, "credit note")


def get_credit_note(conn: Connection, credit_note_id: str, seller_id: str | None = None) -> dict:
    note = _note_row(conn, credit_note_id, seller_id)
    inv = conn.execute(select(invoices.c.number, invoices.c.issued_at)
                       .where(invoices.c.id == note["invoice_id"])).one()
    note["invoice_number"], note["invoice_issued_at"] = inv.number, inv.issued_at
    note["lines"] = [{k: v for k, v in ln.items() if k not in ("credit_note_id",)}
                     for ln in note_lines(conn, credit_note_id)]
    for ln in note["lines"]:
        ln["tax_rate"] = str(Decimal(ln["tax_rate"]).normalize())
    voided_by = conn.execute(select(credit_notes.c.id)
                             .where(credit_notes.c.voids_id == credit_note_id)).scalar()
    note["voided_by_id"] = voided_by
    return note


def list_credit_notes(conn: Connection, *, after: str | None, limit: int,
                      invoice_id: str | None = None, kind: str | None = None,
                      seller_id: str | None = None) -> list[dict]:
    q = (select(credit_notes, invoices.c.number.label("invoice_number"))
         .join(invoices, invoices.c.id == credit_notes.c.invoice_id)
         .order_by(credit_notes.c.id).limit(limit))
    if seller_id:
        q = q.where(credit_notes.c.seller_id == seller_id)
    if after:
        q = q.where(credit_notes.c.id > after)
    if invoice_id:
        q = q.where(credit_notes.c.invoice_id == invoice_id)
    if kind:
        q = q.where(credit_notes.c.kind == kind)
    return [dict(r._mapping) for r in conn.execute(q)]


def credited_by_line(conn: Connection, invoice_id: str) -> dict[str, dict[str, int]]:
    """Per invoice line: gross, net and tax credited by the notes in force (refund and
    adjustment notes, less voids). What the never-exceed invariant is checked against."""
    sign = case((credit_notes.c.kind == "void", -1), else_=1)
    q = (select(credit_note_lines.c.invoice_line_id,
                func.sum(sign * credit_note_lines.c.gross_minor),
                func.sum(sign * credit_note_lines.c.net_minor),
                func.sum(sign * credit_note_lines.c.tax_minor))
         .join(credit_notes, credit_notes.c.id == credit_note_lines.c.credit_note_id)
         .where(credit_notes.c.invoice_id == invoice_id)
         .group_by(credit_note_lines.c.invoice_line_id))
    return {line_id: {"gross_minor": int(g), "net_minor": int(n), "tax_minor": int(t)}
            for line_id, g, n, t in conn.execute(q)}
