"""Payments against an invoice: card (gateway token, brand, last four), bank transfer, store
credit, cash or other. Partial payments and several payments per invoice are allowed; paying
more than is due is not.

One transaction per payment: the payment row, the wallet debit (store credit), the journal entry
(Dr clearing/cash/store-credit liability, Cr receivable) and the outbox event.
Card data: a field that looks like a full card number is refused and never stored.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, select

from payback.cards import find_pans
from payback.clock import Clock
from payback.db import get_scoped
from payback.errors import (
    Conflict,
    CurrencyMismatch,
    InsufficientStoreCredit,
    Overpayment,
    ValidationFailed,
)
from payback.ids import new_id
from payback.invoicing.service import adjustments_in_force, lock_invoice
from payback.ledger import domain as ledger
from payback.ledger.service import post
from payback.money import check_minor, normalise_currency
from payback.outbox.service import emit
from payback.payments.tables import payments
from payback.store_credit import service as store_credit

METHODS = ("card", "bank_transfer", "store_credit", "cash", "other")
CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay", "other")
DEBIT_ACCOUNT = {"card": ledger.GATEWAY_CLEARING, "bank_transfer": ledger.CASH,
                 "cash": ledger.CASH, "other": ledger.CASH,
                 "store_credit": ledger.STORE_CREDIT}
_insert = insert(payments)


class CardDataRefused(ValidationFailed):
    code, title = "card_data_refused", "Card numbers are never accepted"


def refuse_card_numbers(**fields: str | None) -> None:
    """Raise if any text field holds something that looks like a full card number (PAN)."""
    for name, value in fields.items():
        if find_pans(value or ""):
            raise CardDataRefused(
                f"{name} looks like a full card number; send the gateway token instead")


def record_payment(conn: Connection, clock: Clock, invoice_id: str, *, method: str,
                   amount_minor: int, currency: str, card: dict | None = None,
                   reference: str | None = None, seller_id: str | None = None,
                   gateway: str | None = None) -> dict:
    """``gateway``: the connected gateway that captured a card payment ('sandbox', 'stripe');
    ``reference`` is then the gateway's payment id, and refunds go back through that gateway."""
    check_minor(amount_minor, allow_zero=False)
    currency = normalise_currency(currency)
    _validate_method(method, card, reference)
    _validate_gateway(method, gateway, reference)
    inv = lock_invoice(conn, invoice_id, seller_id)
    _check_payable(conn, inv, currency, amount_minor)
    now = clock.now()
    payment_id = new_id("payment")
    wallet = _lock_wallet_for(conn, inv, amount_minor) if method == "store_credit" else None
    card = card or {}
    conn.execute(_insert, {
        "id": payment_id, "invoice_id": invoice_id, "method": method,
        "amount_minor": amount_minor, "refunded_minor": 0, "currency": currency,
        "card_token": card.get("token"), "card_brand": card.get("brand"),
        "card_last4": card.get("last4"), "card_exp_month": card.get("exp_month"),
        "card_exp_year": card.get("exp_year"), "reference": reference, "gateway": gateway,
        "seller_id": inv["seller_id"],
        "wallet_id": wallet["id"] if wallet else None, "captured_at": now})
    if wallet is not None:
        store_credit.spend(conn, wallet=wallet, amount_minor=amount_minor, at=now,
                           payment_id=payment_id)
    post(conn, ledger.entry("payment.captured", payment_id, [
        ledger.debit(DEBIT_ACCOUNT[method], currency, amount_minor),
        ledger.credit(ledger.RECEIVABLE, currency, amount_minor),
    ], memo=f"Payment on invoice {inv['number']} by {method}"), now, inv["seller_id"])
    emit(conn, "payment.captured", payment_id,
         {"id": payment_id, "invoice_id": invoice_id, "amount_minor": amount_minor,
          "currency": currency, "method": method}, now, inv["seller_id"])
    return get_payment(conn, payment_id)


def _validate_method(method: str, card: dict | None, reference: str | None) -> None:
    if method not in METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(METHODS)}")
    refuse_card_numbers(reference=reference, **{f"card.{k}": str(v) for k, v in
                                                (card or {}).items() if v is not None})
    if method == "card":
        _validate_card(card or {})
    elif card:
        raise ValidationFailed("card details are only allowed with method 'card'")


GATEWAY_NAMES = ("sandbox", "stripe")


def _validate_gateway(method: str, gateway: str | None, reference: str | None) -> None:
    if gateway is None:
        return
    if gateway not in GATEWAY_NAMES:
        raise ValidationFailed(f"gateway must be one of {', '.join(GATEWAY_NAMES)}")
    if method != "card":
        raise ValidationFailed("only card payments are captured through a gateway")
    if not reference:
        raise ValidationFailed("a gateway payment needs reference (the gateway's payment id)")


def _validate_card(card: dict) -> None:
    if not card.get("token"):
        raise ValidationFailed("a card payment needs card.token (the gateway's token)")
    if card.get("brand") not in CARD_BRANDS:
        raise ValidationFailed(f"card.brand must be one of {', '.join(CARD_BRANDS)}")
    last4 = card.get("last4")
    if not (isinstance(last4, str) and len(last4) == 4 and last4.isdigit()):
        raise ValidationFailed("card.last4 must be exactly four digits")


def _check_payable(conn: Connection, inv: dict, currency: str, amount: int) -> None:
    if inv["voided_at"] is not None:
        raise Conflict(f"invoice {inv['number']} is void")
    if currency != inv["currency"]:
        raise CurrencyMismatch(f"invoice {inv['number']} is in {inv['currency']}, not {currency}")
    paid = conn.execute(select(func.coalesce(func.sum(payments.c.amount_minor), 0))
                        .where(payments.c.invoice_id == inv["id"])).scalar()
    due = inv["total_minor"] - adjustments_in_force(conn, inv["id"]) - int(paid)
    if amount > due:
        raise Overpayment(f"{amount} exceeds the amount due of {due}", amount_due_minor=due)


def _lock_wallet_for(conn: Connection, inv: dict, amount: int) -> dict:
    """The customer's wallet in the invoice currency, locked, holding at least ``amount``."""
    wallet = store_credit.lock_wallet(conn, inv["customer_id"], inv["currency"])
    balance = wallet["balance_minor"] if wallet else 0
    if wallet is None or balance < amount:
        raise InsufficientStoreCredit(
            f"store credit balance is {balance} {inv['currency']}, {amount} requested",
            balance_minor=balance)
    return wallet


def get_payment(conn: Connection, payment_id: str, seller_id: str | None = None) -> dict:
    return get_scoped(conn, payments, payment_id, seller_id, "payment")


def list_payments(conn: Connection, *, after: str | None, limit: int,
                  invoice_id: str | None = None, seller_id: str | None = None) -> list[dict]:
    q = select(payments).order_by(payments.c.id).limit(limit)
    if seller_id:
        q = q.where(payments.c.seller_id == seller_id)
    if after:
        q = q.where(payments.c.id > after)
    if invoice_id:
        q = q.where(payments.c.invoice_id == invoice_id)
    return [dict(r._mapping) for r in conn.execute(q)]
