"""Refund use cases: preview (writes nothing), create, get, list.

``create_refund`` is one transaction: lock the invoice row (PostgreSQL ``FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), load what remains refundable, run the same
calculator as the preview, then write the refund, its lines and tenders, bump the guard counters
(whose CHECK constraints refuse any over-refund the code might miss), move store credit, post the
journal entries and emit the outbox events.

Settlement seam: refunds to the original payment method are settled synchronously by
``settle_to_original_payment`` for now. The gateway issue replaces it with an outbox job run after
commit; nothing else in this module needs to change.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from payback.clock import Clock
from payback.errors import Conflict, CurrencyMismatch, NotFound
from payback.ids import new_id
from payback.invoicing.service import load_lines, lock_invoice
from payback.invoicing.tables import invoice_lines, invoices
from payback.ledger import domain as ledger
from payback.ledger.service import post
from payback.money import normalise_currency
from payback.outbox.service import emit
from payback.payments.service import DEBIT_ACCOUNT
from payback.payments.tables import payments
from payback.refunds import domain
from payback.refunds.tables import refund_lines, refund_tenders, refunds
from payback.store_credit import service as store_credit

_insert_refund = insert(refunds)
_insert_lines = insert(refund_lines)
_insert_tenders = insert(refund_tenders)
_bump_lines = (update(invoice_lines).where(invoice_lines.c.id == bindparam("b_id"))
               .values(refunded_quantity=invoice_lines.c.refunded_quantity + bindparam("b_qty"),
                       refunded_gross_minor=invoice_lines.c.refunded_gross_minor
                       + bindparam("b_gross"),
                       refunded_tax_minor=invoice_lines.c.refunded_tax_minor
                       + bindparam("b_tax")))
_bump_payments = (update(payments).where(payments.c.id == bindparam("b_id"))
                  .values(refunded_minor=payments.c.refunded_minor + bindparam("b_amount")))
_select_tenders = (select(payments.c.id, payments.c.method, payments.c.amount_minor,
                          payments.c.refunded_minor)
                   .where(payments.c.invoice_id == bindparam("invoice_id"))
                   .order_by(payments.c.captured_at, payments.c.id))


def _state(conn: Connection, inv: dict, currency: str | None):
    if inv["voided_at"] is not None:
        raise Conflict(f"invoice {inv['number']} is void")
    if currency is not None and normalise_currency(currency) != inv["currency"]:
        raise CurrencyMismatch(f"invoice {inv['number']} is in {inv['currency']}, not {currency}")
    lines = [domain.LineState(
        id=ln["id"], kind=ln["kind"], description=ln["description"], quantity=ln["quantity"],
        gross_minor=ln["gross_minor"], tax_minor=ln["tax_minor"],
        discount_minor=ln["line_discount_minor"] + ln["invoice_discount_minor"],
        refunded_quantity=ln["refunded_quantity"],
        refunded_gross_minor=ln["refunded_gross_minor"],
        refunded_tax_minor=ln["refunded_tax_minor"]) for ln in load_lines(conn, inv["id"])]
    tenders = [domain.TenderState(r.id, r.method, r.amount_minor, r.refunded_minor)
               for r in conn.execute(_select_tenders, {"invoice_id": inv["id"]})]
    return lines, tenders


def preview_refund(conn: Connection, invoice_id: str, req: domain.RefundRequest,
                   currency: str | None = None) -> dict:
    """The numbers a refund would have right now. Reads only; nothing is written."""
    row = conn.execute(select(invoices).where(invoices.c.id == invoice_id)).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    inv = dict(row._mapping)
    lines, tenders = _state(conn, inv, currency)
    calc = domain.calculate(inv["currency"], lines, tenders, req)
    return _calculation_view(inv, req, calc)


def create_refund(conn: Connection, clock: Clock, invoice_id: str, req: domain.RefundRequest,
                  currency: str | None = None) -> dict:
    domain.validate_request(req)
    inv = lock_invoice(conn, invoice_id)
    lines, tenders = _state(conn, inv, currency)
    calc = domain.calculate(inv["currency"], lines, tenders, req)
    now = clock.now()
    refund_id = new_id("refund")
    refund = _insert_rows(conn, refund_id, inv, req, calc, now)
    _settle(conn, refund_id, inv, calc, now)
    return refund


def _insert_rows(conn: Connection, refund_id: str, inv: dict, req: domain.RefundRequest,
                 calc: domain.RefundCalculation, now: datetime) -> dict:
    """Write the refund, its lines and tenders, and bump the guard counters. Returns the refund
    as ``get_refund`` would read it back (saves three queries on the hot path)."""
    refund = {
        "id": refund_id, "invoice_id": inv["id"], "customer_id": inv["customer_id"],
        "status": "succeeded", "kind": req.kind, "method": req.method, "reason": req.reason,
        "note": req.note, "currency": inv["currency"], "amount_minor": calc.amount_minor,
        "net_minor": calc.net_minor, "tax_minor": calc.tax_minor, "created_at": now,
        "settled_at": now}
    lines = [{"id": new_id("refund_line"), "refund_id": refund_id, "invoice_line_id": rl.line_id,
              "quantity": rl.quantity, "gross_minor": rl.gross_minor, "net_minor": rl.net_minor,
              "tax_minor": rl.tax_minor, "discount_minor": rl.discount_minor}
             for rl in calc.lines]
    tenders = [{"refund_id": refund_id, "payment_id": t.payment_id,
                "destination": t.destination, "amount_minor": t.amount_minor}
               for t in calc.tenders]
    conn.execute(_insert_refund, refund)
    conn.execute(_insert_lines, lines)
    conn.execute(_insert_tenders, tenders)
    conn.execute(_bump_lines, [
        {"b_id": rl.line_id, "b_qty": rl.quantity, "b_gross": rl.gross_minor,
         "b_tax": rl.tax_minor} for rl in calc.lines])
    conn.execute(_bump_payments, [
        {"b_id": t.payment_id, "b_amount": t.amount_minor} for t in calc.tenders])
    emit(conn, "refund.created", refund_id, _event(refund_id, inv, calc), now)
    return {**refund, "lines": lines,
            "tenders": [{k: t[k] for k in ("payment_id", "destination", "amount_minor")}
                        for t in tenders]}


def _settle(conn: Connection, refund_id: str, inv: dict, calc: domain.RefundCalculation,
            now: datetime) -> None:
    """Move the money: store credit now; original payment through the settlement seam."""
    cur = inv["currency"]
    to_wallet = sum(t.amount_minor for t in calc.tenders if t.destination == "store_credit")
    if to_wallet:
        store_credit.grant(conn, customer_id=inv["customer_id"], currency=cur,
                           amount_minor=to_wallet, at=now, refund_id=refund_id)
        emit(conn, "store_credit.granted", refund_id,
             {"customer_id": inv["customer_id"], "amount_minor": to_wallet, "currency": cur,
              "refund_id": refund_id}, now)
    post(conn, _reversal_entry(refund_id, inv, calc), now)
    if calc.method == "original_payment":
        settle_to_original_payment(conn, refund_id, inv, calc, now)
    emit(conn, "refund.succeeded", refund_id, _event(refund_id, inv, calc), now)


def _reversal_entry(refund_id: str, inv: dict, calc: domain.RefundCalculation) -> ledger.Entry:
    """Dr sales returns (net) and tax payable (tax); Cr refunds payable, or store credit
    liability directly when the whole refund goes to store credit."""
    cur = inv["currency"]
    to_store_credit = calc.method == "store_credit"
    target = ledger.STORE_CREDIT if to_store_credit else ledger.REFUNDS_PAYABLE
    event = "refund.to_store_credit" if to_store_credit else "refund.approved"
    return ledger.entry(event, refund_id, [
        ledger.debit(ledger.SALES_RETURNS, cur, calc.net_minor),
        ledger.debit(ledger.TAX_PAYABLE, cur, calc.tax_minor),
        ledger.credit(target, cur, calc.amount_minor),
    ], memo=f"Refund {refund_id} on invoice {inv['number']}")


def settle_to_original_payment(conn: Connection, refund_id: str, inv: dict,
                               calc: domain.RefundCalculation, now: datetime) -> None:
    """Pay the refund back to each tender: Dr refunds payable, Cr the account the payment
    went into (gateway clearing for cards, cash, store-credit liability)."""
    cur = inv["currency"]
    post(conn, ledger.entry("refund.paid", refund_id, [
        ledger.debit(ledger.REFUNDS_PAYABLE, cur, calc.amount_minor),
        *[ledger.credit(DEBIT_ACCOUNT[t.payment_method], cur, t.amount_minor)
          for t in calc.tenders],
    ], memo=f"Refund {refund_id} paid out"), now)


def _event(refund_id: str, inv: dict, calc: domain.RefundCalculation) -> dict:
    return {"id": refund_id, "invoice_id": inv["id"], "amount_minor": calc.amount_minor,
            "currency": inv["currency"], "method": calc.method}


def _calculation_view(inv: dict, req: domain.RefundRequest,
                      calc: domain.RefundCalculation) -> dict:
    return {
        "invoice_id": inv["id"], "currency": calc.currency, "kind": calc.kind,
        "method": calc.method, "reason": req.reason, "amount_minor": calc.amount_minor,
        "net_minor": calc.net_minor, "tax_minor": calc.tax_minor,
        "refundable_before_minor": calc.refundable_before_minor,
        "refundable_after_minor": calc.refundable_after_minor,
        "lines": [{"invoice_line_id": rl.line_id, "quantity": rl.quantity,
                   "gross_minor": rl.gross_minor, "net_minor": rl.net_minor,
                   "tax_minor": rl.tax_minor, "discount_minor": rl.discount_minor}
                  for rl in calc.lines],
        "tenders": [{"payment_id": t.payment_id, "payment_method": t.payment_method,
                     "destination": t.destination, "amount_minor": t.amount_minor}
                    for t in calc.tenders],
    }


def get_refund(conn: Connection, refund_id: str) -> dict:
    row = conn.execute(select(refunds).where(refunds.c.id == refund_id)).first()
    if row is None:
        raise NotFound(f"refund {refund_id} not found")
    out = dict(row._mapping)
    out["lines"] = [dict(r._mapping) for r in conn.execute(
        select(refund_lines).where(refund_lines.c.refund_id == refund_id)
        .order_by(refund_lines.c.id))]
    out["tenders"] = [dict(r._mapping) for r in conn.execute(
        select(refund_tenders.c.payment_id, refund_tenders.c.destination,
               refund_tenders.c.amount_minor)
        .where(refund_tenders.c.refund_id == refund_id).order_by(refund_tenders.c.id))]
    return out


def list_refunds(conn: Connection, *, after: str | None, limit: int,
                 invoice_id: str | None = None, status: str | None = None) -> list[dict]:
    q = select(refunds).order_by(refunds.c.id).limit(limit)
    if after:
        q = q.where(refunds.c.id > after)
    if invoice_id:
        q = q.where(refunds.c.invoice_id == invoice_id)
    if status:
        q = q.where(refunds.c.status == status)
    return [dict(r._mapping) for r in conn.execute(q)]
