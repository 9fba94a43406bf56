"""Invoice use cases: issue (with its gapless number and journal entry), read, list, void.

Each write runs inside the caller's transaction: the invoice, its lines, its ledger entry and its
outbox event are committed together or not at all. Numbers come from ``number_series`` with a row
lock (``UPDATE … RETURNING``), so a rolled-back invoice gives its number back: no gaps.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Sequence

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from payback.access.tables import DEFAULT_SELLER_ID
from payback.clock import Clock
from payback.credit_notes.tables import credit_notes
from payback.customers.service import get_customer
from payback.errors import Conflict, NotFound
from payback.ids import new_id
from payback.invoicing import domain
from payback.invoicing.tables import invoice_lines, invoices, number_series
from payback.ledger import domain as ledger
from payback.ledger.service import post
from payback.money import normalise_currency
from payback.outbox.service import emit
from payback.payments.tables import payments
from payback.refunds.tables import refunds

_insert_invoice = insert(invoices)
_insert_line = insert(invoice_lines)
ACTIVE_REFUND_STATES = ("requested", "pending_approval", "approved", "processing", "succeeded")


def next_number(conn: Connection, series: str) -> int:
    """Take the next number of a gapless series inside the caller's transaction: one upsert,
    safe even for a series' very first number under concurrency (a missing row cannot be
    inserted twice), and given back if the transaction rolls back."""
    stmt = _NEXT_NUMBER["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    return int(conn.execute(stmt, {"series": series}).scalar_one())


def _next_number_stmt(dialect_insert):
    return (dialect_insert(number_series).values(series=bindparam("series"), last_number=1)
            .on_conflict_do_update(index_elements=["series"],
                                   set_={"last_number": number_series.c.last_number + 1})
            .returning(number_series.c.last_number))


# Built once per dialect: every invoice and credit note takes a number (the hot path).
_NEXT_NUMBER = {"postgresql": _next_number_stmt(pg_insert),
                "sqlite": _next_number_stmt(sqlite_insert)}


def adjustments_in_force(conn: Connection, invoice_id: str) -> int:
    """What adjustment credit notes took off the invoice (their voids give it back)."""
    return int(conn.execute(select(func.coalesce(func.sum(case(
        (credit_notes.c.kind == "adjustment", credit_notes.c.total_minor),
        (credit_notes.c.kind == "void", -credit_notes.c.total_minor), else_=0)), 0))
        .where(credit_notes.c.invoice_id == invoice_id)).scalar_one())


def create_invoice(conn: Connection, clock: Clock, *, customer_id: str, currency: str,
                   tax_mode: str, lines: Sequence[domain.LineInput], discount_minor: int = 0,
                   memo: str | None = None, rounding: str = "half_up",
                   prefix: str = "INV", seller_id: str = DEFAULT_SELLER_ID,
                   contract_type: str = "goods", delivered_at: datetime | None = None) -> dict:
    currency = normalise_currency(currency)
    get_customer(conn, customer_id, seller_id)
    computed = domain.compute_invoice(currency, tax_mode, lines, discount_minor, rounding=rounding)
    now = clock.now()
    invoice_id = new_id("invoice")
    number = f"{prefix}-{next_number(conn, _series(seller_id, prefix)):06d}"
    conn.execute(_insert_invoice, {
        "id": invoice_id, "number": number, "customer_id": customer_id, "currency": currency,
        "tax_mode": tax_mode, "discount_minor": computed.discount_minor,
        "subtotal_minor": computed.subtotal_minor, "net_minor": computed.net_minor,
        "tax_minor": computed.tax_minor, "total_minor": computed.total_minor, "memo": memo,
        "issued_at": now, "voided_at": None, "seller_id": seller_id,
        "contract_type": contract_type, "delivered_at": delivered_at})
    conn.execute(_insert_line, [_line_row(invoice_id, c) for c in computed.lines])
    if computed.total_minor:  # a free invoice moves no money: nothing to book
        post(conn, _issue_entry(invoice_id, number, computed), now, seller_id)
    emit(conn, "invoice.created", invoice_id,
         {"id": invoice_id, "number": number, "total_minor": computed.total_minor,
          "currency": currency}, now, seller_id)
    from payback.documents.service import stamp_invoice  # documents read invoices: no cycle
    stamp_invoice(conn, invoice_id)  # the document's hash, stored at issue
    return get_invoice(conn, invoice_id)


def _series(seller_id: str, prefix: str) -> str:
    # One gapless series per seller and prefix (the default seller keeps the short name).
    return f"invoice:{prefix}" if seller_id == DEFAULT_SELLER_ID else \
        f"invoice:{seller_id}:{prefix}"


def _line_row(invoice_id: str, c: domain.ComputedLine) -> dict:
    return {"id": new_id("invoice_line"), "invoice_id": invoice_id, "position": c.position,
            "kind": c.kind, "description": c.description, "sku": c.sku, "category": c.category,
            "quantity": c.quantity, "unit_price_minor": c.unit_price_minor,
            "line_discount_minor": c.line_discount_minor,
            "invoice_discount_minor": c.invoice_discount_minor, "tax_rate": c.tax_rate,
            "net_minor": c.net_minor, "tax_minor": c.tax_minor, "gross_minor": c.gross_minor,
            "refunded_quantity": 0, "refunded_gross_minor": 0, "refunded_tax_minor": 0}


def _issue_entry(invoice_id: str, number: str, inv: domain.ComputedInvoice) -> ledger.Entry:
    cur = inv.currency
    return ledger.entry("invoice.issued", invoice_id, [
        ledger.debit(ledger.RECEIVABLE, cur, inv.total_minor),
        ledger.credit(ledger.REVENUE, cur, inv.net_minor),
        ledger.credit(ledger.TAX_PAYABLE, cur, inv.tax_minor),
    ], memo=f"Invoice {number}")


def _by_id(invoice_id: str, seller_id: str | None):
    q = select(invoices).where(invoices.c.id == invoice_id)
    return q.where(invoices.c.seller_id == seller_id) if seller_id else q


# Built once: these two run on every refund and payment (the hot path).
_lock_any = select(invoices).where(invoices.c.id == bindparam("id")).with_for_update()
_lock_scoped = (select(invoices).where(invoices.c.id == bindparam("id"),
                                       invoices.c.seller_id == bindparam("seller_id"))
                .with_for_update())
_select_lines = (select(invoice_lines).where(invoice_lines.c.invoice_id == bindparam("id"))
                 .order_by(invoice_lines.c.position))


def lock_invoice(conn: Connection, invoice_id: str, seller_id: str | None = None) -> dict:
    """Load the invoice row and hold its lock until the transaction ends (fixed lock order:
    invoice first, then wallet). Another seller's invoice is reported like a missing one."""
    if seller_id:
        row = conn.execute(_lock_scoped, {"id": invoice_id, "seller_id": seller_id}).first()
    else:
        row = conn.execute(_lock_any, {"id": invoice_id}).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    return dict(row._mapping)


def load_lines(conn: Connection, invoice_id: str) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(_select_lines, {"id": invoice_id})]


def get_invoice(conn: Connection, invoice_id: str, seller_id: str | None = None) -> dict:
    row = conn.execute(_by_id(invoice_id, seller_id)).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    inv = dict(row._mapping)
    inv["lines"] = [_line_view(ln) for ln in load_lines(conn, invoice_id)]
    inv.update(_money_summary(conn, inv))
    return inv


def _line_view(ln: dict) -> dict:
    ln = dict(ln)
    ln["tax_rate"] = str(Decimal(ln["tax_rate"]).normalize()) if ln["tax_rate"] is not None else "0"
    ln["refundable_quantity"] = ln["quantity"] - ln["refunded_quantity"]
    ln["refundable_gross_minor"] = ln["gross_minor"] - ln["refunded_gross_minor"]
    return ln


def _money_summary(conn: Connection, inv: dict) -> dict:
    paid, refundable = conn.execute(
        select(func.coalesce(func.sum(payments.c.amount_minor), 0),
               func.coalesce(func.sum(payments.c.amount_minor - payments.c.refunded_minor), 0))
        .where(payments.c.invoice_id == inv["id"])).one()
    by_status = dict(conn.execute(
        select(refunds.c.status, func.sum(refunds.c.amount_minor))
        .where(refunds.c.invoice_id == inv["id"]).group_by(refunds.c.status)).all())
    refunded = int(by_status.get("succeeded", 0) or 0)
    pending = sum(int(v or 0) for k, v in by_status.items()
                  if k in ACTIVE_REFUND_STATES and k != "succeeded")
    owed = inv["total_minor"] - adjustments_in_force(conn, inv["id"])
    status = domain.derive_status(owed, int(paid), refunded, inv["voided_at"] is not None)
    return {"status": status, "amount_paid_minor": int(paid), "amount_refunded_minor": refunded,
            "amount_pending_refund_minor": pending, "amount_refundable_minor": int(refundable),
            "amount_due_minor": max(owed - int(paid), 0) if inv["voided_at"] is None else 0}


def list_invoices(conn: Connection, *, after: str | None, limit: int,
                  customer_id: str | None = None, seller_id: str | None = None) -> list[dict]:
    q = select(invoices).order_by(invoices.c.id).limit(limit)
    if seller_id:
        q = q.where(invoices.c.seller_id == seller_id)
    if after:
        q = q.where(invoices.c.id > after)
    if customer_id:
        q = q.where(invoices.c.customer_id == customer_id)
    out = []
    for r in conn.execute(q).all():
        inv = dict(r._mapping)
        inv.update(_money_summary(conn, inv))
        out.append(inv)
    return out


def void_invoice(conn: Connection, clock: Clock, invoice_id: str,
                 seller_id: str | None = None) -> dict:
    """Void an invoice that has no payments: reverses its issue entry."""
    inv = lock_invoice(conn, invoice_id, seller_id)
    if inv["voided_at"] is not None:
        raise Conflict(f"invoice {inv['number']} is already void")
    has_payment = conn.execute(select(func.count()).select_from(payments)
                               .where(payments.c.invoice_id == invoice_id)).scalar()
    if has_payment:
        raise Conflict(f"invoice {inv['number']} has payments; refund them instead of voiding")
    now = clock.now()
    conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(voided_at=now))
    cur = inv["currency"]
    if inv["total_minor"]:
        post(conn, ledger.entry("invoice.voided", invoice_id, [
            ledger.debit(ledger.REVENUE, cur, inv["net_minor"]),
            ledger.debit(ledger.TAX_PAYABLE, cur, inv["tax_minor"]),
            ledger.credit(ledger.RECEIVABLE, cur, inv["total_minor"]),
            ], memo=f"Void of invoice {inv['number']}"), now, inv["seller_id"])
    emit(conn, "invoice.voided", invoice_id, {"id": invoice_id}, now, inv["seller_id"])
    return get_invoice(conn, invoice_id)
