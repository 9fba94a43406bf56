"""Store-credit wallets: grant, spend, read. One wallet per customer and currency.

Invariants: the balance never goes negative (checked under the wallet's row lock, and backed by
``CHECK (balance_minor >= 0)``); every change appends a history row whose ``balance_after_minor``
is the balance after it. Callers post the matching journal entry in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from payback.access.tables import DEFAULT_SELLER_ID
from payback.errors import InsufficientStoreCredit, NotFound
from payback.ids import new_id
from payback.money import check_minor, normalise_currency
from payback.store_credit.tables import wallet_transactions, wallets

_insert_txn = insert(wallet_transactions)


def lock_wallet(conn: Connection, customer_id: str, currency: str, *,
                create_at: datetime | None = None,
                seller_id: str = DEFAULT_SELLER_ID) -> dict | None:
    """The wallet row under lock; created empty when ``create_at`` is given and none exists."""
    q = select(wallets).where(wallets.c.customer_id == customer_id,
                              wallets.c.currency == currency).with_for_update()
    row = conn.execute(q).first()
    if row is None and create_at is not None:
        _create_if_missing(conn, customer_id, currency, create_at, seller_id)
        row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def _create_if_missing(conn: Connection, customer_id: str, currency: str, at: datetime,
                       seller_id: str) -> None:
    """Insert an empty wallet unless a concurrent transaction just did (no unique-key error)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(wallets).values(
        id=new_id("wallet"), customer_id=customer_id, currency=currency, balance_minor=0,
        created_at=at, seller_id=seller_id).on_conflict_do_nothing(index_elements=["customer_id", "currency"]))


def grant(conn: Connection, *, customer_id: str, currency: str, amount_minor: int, at: datetime,
          kind: str = "refund", refund_id: str | None = None,
          seller_id: str = DEFAULT_SELLER_ID) -> dict:
    check_minor(amount_minor, allow_zero=False)
    wallet = lock_wallet(conn, customer_id, currency, create_at=at, seller_id=seller_id)
    return _apply(conn, wallet, amount_minor, kind, at, refund_id=refund_id)


def spend(conn: Connection, *, wallet: dict, amount_minor: int, at: datetime,
          payment_id: str) -> dict:
    """Debit a locked wallet; raises ``InsufficientStoreCredit`` rather than go below zero."""
    check_minor(amount_minor, allow_zero=False)
    if amount_minor > wallet["balance_minor"]:
        raise InsufficientStoreCredit(
            f"store credit balance is {wallet['balance_minor']}, {amount_minor} requested",
            balance_minor=wallet["balance_minor"])
    return _apply(conn, wallet, -amount_minor, "spend", at, payment_id=payment_id)


def _apply(conn: Connection, wallet: dict, delta: int, kind: str, at: datetime,
           refund_id: str | None = None, payment_id: str | None = None) -> dict:
    balance = wallet["balance_minor"] + delta
    conn.execute(update(wallets).where(wallets.c.id == wallet["id"])
                 .values(balance_minor=wallets.c.balance_minor + delta))
    txn = {"id": new_id("wallet_txn"), "wallet_id": wallet["id"], "kind": kind,
           "amount_minor": delta, "balance_after_minor": balance, "refund_id": refund_id,
           "payment_id": payment_id, "created_at": at}
    conn.execute(_insert_txn, txn)
    wallet["balance_minor"] = balance
    return txn


def get_wallets(conn: Connection, customer_id: str, seller_id: str | None = None) -> list[dict]:
    q = select(wallets).where(wallets.c.customer_id == customer_id).order_by(wallets.c.currency)
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def get_wallet(conn: Connection, customer_id: str, currency: str,
               seller_id: str | None = None) -> dict:
    currency = normalise_currency(currency)
    q = select(wallets).where(wallets.c.customer_id == customer_id, wallets.c.currency == currency)
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"customer {customer_id} has no {currency} store credit")
    wallet = dict(row._mapping)
    wallet["transactions"] = [
        dict(r._mapping) for r in conn.execute(
            select(wallet_transactions).where(wallet_transactions.c.wallet_id == wallet["id"])
            .order_by(wallet_transactions.c.id))]
    return wallet
