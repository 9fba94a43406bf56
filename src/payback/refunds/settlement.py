"""Moving a refund's money and keeping its books, inside the caller's transaction.

The functions return the journal entries to post (the caller posts them all with two
statements) and add their outbox events to the refund's ``Trail``.

- ``post_approval``: the refund is owed. Original payment: Dr sales returns (net), Dr tax payable
  (tax); Cr refunds payable (what the customer gets) and Cr restocking fee income (the fee).
- ``settle``: pays it. Original payment → ``settle_to_original_payment`` (Dr refunds payable,
  Cr the account each tender came from; a store-credit tender goes back to the wallet). Method
  store credit → the wallet is granted the amount as a 'refund' lot (plus the bonus as a 'bonus'
  lot, expiring as the seller's policy says) and the entry credits store credit liability
  directly. A store-credit tender goes back into the lots its payment drew from.
- ``release``: a refund that will not happen (rejected, canceled, failed) gives its reservation
  back: the guard counters on invoice lines and payments are decremented, so the amount is
  refundable again.

Gateway refunds: a card tender whose payment was captured through a connected gateway
(``payments.gateway``) is paid back by that gateway, after commit, by the worker
(``payback.gateways.flow``). Such a refund stays ``processing`` with only its approval entry
posted; ``settle`` runs when the gateway confirms, and a failure reverses the approval entry
(``reverse_approval``) and releases the reservation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from payback.invoicing.tables import invoice_lines
from payback.ledger import domain as ledger
from payback.ledger.service import post
from payback.outbox.service import outbox_row
from payback.payments.service import DEBIT_ACCOUNT
from payback.payments.tables import payments
from payback.policies.service import active_policy
from payback.refunds.tables import refund_lines, refund_tenders
from payback.store_credit import domain as store_credit_domain
from payback.store_credit import service as store_credit

_release_lines = (update(invoice_lines).where(invoice_lines.c.id == bindparam("b_id"))
                  .values(refunded_quantity=invoice_lines.c.refunded_quantity - bindparam("b_qty"),
                          refunded_gross_minor=invoice_lines.c.refunded_gross_minor
                          - bindparam("b_gross"),
                          refunded_tax_minor=invoice_lines.c.refunded_tax_minor
                          - bindparam("b_tax")))
_release_payments = (update(payments).where(payments.c.id == bindparam("b_id"))
                     .values(refunded_minor=payments.c.refunded_minor - bindparam("b_amount")))


def gateway_tenders(refund: dict, tenders: list[dict]) -> list[dict]:
    """The tenders a payment gateway must pay back: card payments captured through a gateway,
    refunded to the original payment."""
    if refund["method"] != "original_payment":
        return []
    return [t for t in tenders if t["destination"] == "original_payment"
            and t["payment_method"] == "card" and t.get("gateway")]


def approval_entry(refund: dict, inv: dict) -> list[ledger.Entry]:
    """The journal entry that makes an original-payment refund owed (store credit refunds are
    booked when the wallet is credited, in ``settle``)."""
    if refund["method"] != "original_payment":
        return []
    cur = refund["currency"]
    return [ledger.entry("refund.approved", refund["id"], [
        ledger.debit(ledger.SALES_RETURNS, cur, refund["net_minor"]),
        ledger.debit(ledger.TAX_PAYABLE, cur, refund["tax_minor"]),
        ledger.credit(ledger.REFUNDS_PAYABLE, cur, refund["amount_minor"]),
        ledger.credit(ledger.RESTOCKING_FEES, cur, refund["fee_minor"]),
    ], memo=f"Refund {refund['id']} on invoice {inv['number']}")]


def reverse_approval(conn: Connection, refund: dict, inv: dict, at: datetime) -> None:
    """Undo the approval entry when an approved refund is canceled before any money moved, or
    when its gateway refund failed."""
    if refund["method"] != "original_payment":
        return
    cur = refund["currency"]
    post(conn, ledger.entry("refund.approval_reversed", refund["id"], [
        ledger.debit(ledger.REFUNDS_PAYABLE, cur, refund["amount_minor"]),
        ledger.debit(ledger.RESTOCKING_FEES, cur, refund["fee_minor"]),
        ledger.credit(ledger.SALES_RETURNS, cur, refund["net_minor"]),
        ledger.credit(ledger.TAX_PAYABLE, cur, refund["tax_minor"]),
    ], memo=f"Approval of refund {refund['id']} reversed"), at, inv["seller_id"])


def settle(conn: Connection, refund: dict, tenders: list[dict], inv: dict, at: datetime,
           outbox: list[dict]) -> list[ledger.Entry]:
    if refund["method"] == "store_credit":
        return _settle_to_store_credit(conn, refund, inv, at, outbox)
    return settle_to_original_payment(conn, refund, tenders, inv, at, outbox)


def _settle_to_store_credit(conn: Connection, refund: dict, inv: dict, at: datetime,
                            outbox: list[dict]) -> list[ledger.Entry]:
    """The refund becomes a store-credit lot of kind 'refund' and its bonus a separate lot of
    kind 'bonus' (a cost: Dr store credit incentives), both with the policy's expiry."""
    cur, bonus = refund["currency"], refund["bonus_minor"]
    credited = refund["amount_minor"] + bonus
    _grant(conn, refund, inv, refund["amount_minor"], at, outbox, bonus=bonus)
    return [ledger.entry("refund.to_store_credit", refund["id"], [
        ledger.debit(ledger.SALES_RETURNS, cur, refund["net_minor"]),
        ledger.debit(ledger.TAX_PAYABLE, cur, refund["tax_minor"]),
        ledger.debit(ledger.STORE_CREDIT_INCENTIVES, cur, bonus),
        ledger.credit(ledger.STORE_CREDIT, cur, credited),
        ledger.credit(ledger.RESTOCKING_FEES, cur, refund["fee_minor"]),
    ], memo=f"Refund {refund['id']} on invoice {inv['number']} to store credit")]


def settle_to_original_payment(conn: Connection, refund: dict, tenders: list[dict], inv: dict,
                               at: datetime, outbox: list[dict]) -> list[ledger.Entry]:
    """Pay each tender back: Dr refunds payable, Cr the account the payment went into (a manual
    payout leaves from the bank account, whatever the payment was)."""
    cur = refund["currency"]
    to_wallet = sum(t["amount_minor"] for t in tenders if t["destination"] == "store_credit")
    if to_wallet:
        _grant(conn, refund, inv, to_wallet, at, outbox)
    return [ledger.entry("refund.paid", refund["id"], [
        ledger.debit(ledger.REFUNDS_PAYABLE, cur, refund["amount_minor"]),
        *[ledger.credit(_paid_from(t), cur, t["amount_minor"]) for t in tenders],
    ], memo=f"Refund {refund['id']} paid out")]


def _paid_from(tender: dict) -> str:
    if tender["destination"] == "manual_payout":
        return ledger.CASH
    return DEBIT_ACCOUNT[tender["payment_method"]]


def _grant(conn: Connection, refund: dict, inv: dict, amount: int, at: datetime,
           outbox: list[dict], bonus: int = 0) -> None:
    """Credit the customer's wallet with ``amount`` (+ ``bonus``).

    The part that refunds a payment made WITH store credit goes back into the lots that payment
    drew from (same kind and expiry, so promotional credit cannot be laundered into refund
    credit by buying and returning). The rest is a new lot of kind 'refund', the bonus a lot of
    kind 'bonus'; both expire after the seller's policy ``store_credit.expiry_days``, and never
    when the policy sets none."""
    policy = active_policy(conn, inv["seller_id"])
    expires_at = store_credit_domain.expiry_after(
        at, policy.store_credit.expiry_days if policy else None)
    where = {"customer_id": inv["customer_id"], "currency": refund["currency"], "at": at,
             "refund_id": refund["id"], "seller_id": inv["seller_id"]}
    fresh, lot_ids = amount, []
    for payment_id, tender_amount in _store_credit_tenders(conn, refund["id"]):
        txns, _unrestored = store_credit.restore(
            conn, payment_id=payment_id, amount_minor=min(tender_amount, fresh), **where)
        fresh -= sum(t["amount_minor"] for t in txns)
        lot_ids += [t["lot_id"] for t in txns]
    for kind, part in (("refund", fresh), ("bonus", bonus)):
        if part:
            lot_ids.append(store_credit.grant(conn, amount_minor=part, kind=kind,
                                              expires_at=expires_at, **where)["lot_id"])
    outbox.append(outbox_row("store_credit.granted", refund["id"],
                             {"customer_id": inv["customer_id"], "amount_minor": amount + bonus,
                              "currency": refund["currency"], "refund_id": refund["id"],
                              "bonus_minor": bonus, "lot_ids": lot_ids,
                              "expires_at": expires_at.isoformat() if expires_at else None},
                             at, inv["seller_id"]))


def _store_credit_tenders(conn: Connection, refund_id: str) -> list[tuple[str, int]]:
    """(payment id, amount) of this refund's tenders that pay back a store-credit payment."""
    q = (select(refund_tenders.c.payment_id, refund_tenders.c.amount_minor)
         .join(payments, payments.c.id == refund_tenders.c.payment_id)
         .where(refund_tenders.c.refund_id == refund_id, payments.c.method == "store_credit")
         .order_by(refund_tenders.c.id))
    return [(r.payment_id, r.amount_minor) for r in conn.execute(q)]


def release(conn: Connection, refund_id: str) -> None:
    """Give a refund's reservation back to the invoice lines and payments."""
    lines = conn.execute(select(refund_lines.c.invoice_line_id, refund_lines.c.quantity,
                                refund_lines.c.gross_minor, refund_lines.c.tax_minor)
                         .where(refund_lines.c.refund_id == refund_id)).all()
    tenders = conn.execute(select(refund_tenders.c.payment_id, refund_tenders.c.amount_minor)
                           .where(refund_tenders.c.refund_id == refund_id)).all()
    if lines:
        conn.execute(_release_lines, [{"b_id": ln.invoice_line_id, "b_qty": ln.quantity,
                                       "b_gross": ln.gross_minor, "b_tax": ln.tax_minor}
                                      for ln in lines])
    if tenders:
        conn.execute(_release_payments, [{"b_id": t.payment_id, "b_amount": t.amount_minor}
                                         for t in tenders])
