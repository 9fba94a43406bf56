"""Store-credit wallets and their lots: grant, spend, restore, staff grants, revocation, expiry,
statements. One wallet per customer and currency; one lot per grant (see ``domain``).

Invariants:
- every change happens under the wallet's row lock (``SELECT … FOR UPDATE`` on PostgreSQL; the
  SQLite write transaction is already exclusive), so lots and balance move together;
- the balance never goes negative (checked here, and backed by ``CHECK (balance_minor >= 0)``);
- balance = Σ transactions = Σ lots' remaining; every transaction names its lot and carries the
  balance after it (a spend across several lots is one row per lot);
- ``grant``/``spend``/``restore`` leave the journal entry to the caller (refund settlement,
  payments); the staff use cases (``grant_credit``, ``revoke_lot``, ``expire_due``) post their
  own entries and outbox events in the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timezone

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from payback.access.tables import DEFAULT_SELLER_ID
from payback.actor import Actor
from payback.clock import Clock
from payback.errors import InsufficientStoreCredit, NotFound, ValidationFailed
from payback.ids import new_id
from payback.ledger import domain as ledger
from payback.ledger.service import post, post_many
from payback.money import check_minor, normalise_currency
from payback.outbox.service import emit, emit_many, outbox_row
from payback.store_credit import domain
from payback.store_credit.tables import lots, wallet_transactions, wallets

_insert_txn = insert(wallet_transactions)
_insert_lot = insert(lots)
_take_from_lot = (update(lots).where(lots.c.id == bindparam("b_id"))
                  .values(remaining_minor=lots.c.remaining_minor - bindparam("b_take")))


# ------------------------------------------------------------------------------ wallets


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


def _lock_wallet_by_id(conn: Connection, wallet_id: str) -> dict:
    row = conn.execute(select(wallets).where(wallets.c.id == wallet_id).with_for_update()).one()
    return dict(row._mapping)


def _create_if_missing(conn: Connection, customer_id: str, currency: str, at: datetime,
                       seller_id: str) -> None:
    """Insert an empty wallet unless a concurrent transaction just did (no unique-key error)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(wallets).values(
        id=new_id("wallet"), customer_id=customer_id, currency=currency, balance_minor=0,
        created_at=at, seller_id=seller_id).on_conflict_do_nothing(index_elements=["customer_id", "currency"]))


def _apply(conn: Connection, wallet: dict, delta: int, kind: str, at: datetime, *,
           lot_id: str, refund_id: str | None = None, payment_id: str | None = None,
           memo: str | None = None) -> dict:
    """Move the balance of a locked wallet and append the history row naming the lot."""
    balance = wallet["balance_minor"] + delta
    conn.execute(update(wallets).where(wallets.c.id == wallet["id"])
                 .values(balance_minor=wallets.c.balance_minor + delta))
    txn = {"id": new_id("wallet_txn"), "wallet_id": wallet["id"], "kind": kind,
           "amount_minor": delta, "balance_after_minor": balance, "refund_id": refund_id,
           "payment_id": payment_id, "lot_id": lot_id, "memo": memo, "created_at": at}
    conn.execute(_insert_txn, txn)
    wallet["balance_minor"] = balance
    return txn


# ------------------------------------------------------------------ grant, spend, restore


def grant(conn: Connection, *, customer_id: str, currency: str, amount_minor: int, at: datetime,
          kind: str = "refund", refund_id: str | None = None,
          seller_id: str = DEFAULT_SELLER_ID, expires_at: datetime | None = None,
          memo: str | None = None) -> dict:
    """Credit the wallet with a new lot of ``kind``; returns the transaction (with ``lot_id``).
    The caller posts the journal entry."""
    check_minor(amount_minor, allow_zero=False)
    if kind not in domain.KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(domain.KINDS)}")
    wallet = lock_wallet(conn, customer_id, currency, create_at=at, seller_id=seller_id)
    lot_id = _new_lot(conn, wallet["id"], kind, amount_minor, at, expires_at, refund_id)
    return _apply(conn, wallet, amount_minor, kind, at, lot_id=lot_id, refund_id=refund_id,
                  memo=memo)


def _new_lot(conn: Connection, wallet_id: str, kind: str, amount: int, at: datetime,
             expires_at: datetime | None, refund_id: str | None = None) -> str:
    lot_id = new_id("store_credit_lot")
    conn.execute(_insert_lot, {"id": lot_id, "wallet_id": wallet_id, "kind": kind,
                               "amount_minor": amount, "remaining_minor": amount,
                               "expires_at": expires_at, "refund_id": refund_id,
                               "created_at": at, "closed_at": None})
    return lot_id


def spend(conn: Connection, *, wallet: dict, amount_minor: int, at: datetime,
          payment_id: str) -> dict:
    """Debit a locked wallet, drawing from its lots in ``domain.spend_order``; raises
    ``InsufficientStoreCredit`` rather than go below zero or touch expired credit (lots past
    their expiry are expired here first, as the scheduled job would). Returns the last row."""
    check_minor(amount_minor, allow_zero=False)
    if amount_minor > wallet["balance_minor"]:
        raise InsufficientStoreCredit(
            f"store credit balance is {wallet['balance_minor']}, {amount_minor} requested",
            balance_minor=wallet["balance_minor"])
    _expire_wallet(conn, wallet, at)
    plan = domain.plan_spend(_open_lots(conn, wallet), amount_minor, at)
    conn.execute(_take_from_lot, [{"b_id": lot.id, "b_take": take} for lot, take in plan])
    txns = [_apply(conn, wallet, -take, "spend", at, lot_id=lot.id, payment_id=payment_id)
            for lot, take in plan]
    return txns[-1]


def _open_lots(conn: Connection, wallet: dict) -> list[domain.Lot]:
    """The locked wallet's lots with something left. A balance from before lots existed
    (migration 0003 added them) is adopted as one refund lot without expiry, the conservative
    reading of what old store credit was."""
    rows = [dict(r._mapping) for r in conn.execute(
        select(lots).where(lots.c.wallet_id == wallet["id"], lots.c.remaining_minor > 0))]
    untracked = wallet["balance_minor"] - sum(r["remaining_minor"] for r in rows)
    if untracked < 0:
        raise RuntimeError(f"wallet {wallet['id']}: lots hold more than the balance")
    if untracked:
        lot_id = _new_lot(conn, wallet["id"], "refund", untracked, wallet["created_at"], None)
        rows.append({"id": lot_id, "kind": "refund", "amount_minor": untracked,
                     "remaining_minor": untracked, "created_at": wallet["created_at"]})
    return [domain.lot_from_row(r) for r in rows]


def restore(conn: Connection, *, customer_id: str, currency: str, payment_id: str,
            amount_minor: int, at: datetime, refund_id: str,
            seller_id: str = DEFAULT_SELLER_ID) -> tuple[list[dict], int]:
    """Put a refunded store-credit payment back into the lots it was drawn from (same kind,
    same expiry: promotional credit stays promotional). Returns the rows written and the part
    no lot could take back (payments from before lots existed), which the caller grants."""
    wallet = lock_wallet(conn, customer_id, currency, create_at=at, seller_id=seller_id)
    plan, left = domain.plan_restore(_draws(conn, wallet["id"], payment_id), amount_minor)
    txns = []
    for lot_id, back in plan:
        conn.execute(update(lots).where(lots.c.id == lot_id).values(
            remaining_minor=lots.c.remaining_minor + back, closed_at=None))
        txns.append(_apply(conn, wallet, back, "refund", at, lot_id=lot_id, refund_id=refund_id,
                           payment_id=payment_id))
    return txns, left


def _draws(conn: Connection, wallet_id: str, payment_id: str) -> list[domain.Draw]:
    t = wallet_transactions
    q = (select(t.c.lot_id,
                func.sum(case((t.c.kind == "spend", -t.c.amount_minor), else_=0)).label("drawn"),
                func.sum(case((t.c.kind == "refund", t.c.amount_minor), else_=0)).label("back"),
                func.min(t.c.id).label("first"))
         .where(t.c.wallet_id == wallet_id, t.c.payment_id == payment_id,
                t.c.lot_id.is_not(None))
         .group_by(t.c.lot_id).order_by("first"))
    return [domain.Draw(r.lot_id, int(r.drawn), int(r.back)) for r in conn.execute(q)]


# --------------------------------------------------------------------- staff: grant, revoke


def grant_credit(conn: Connection, clock: Clock, *, customer_id: str, kind: str,
                 amount_minor: int, currency: str, memo: str, actor: Actor,
                 expires_at: datetime | None = None, seller_id: str | None = None) -> dict:
    """Goodwill or promotional credit given by staff: a cost, Dr store credit incentives /
    Cr store credit liability. Returns the new lot."""
    from payback.customers.service import get_customer

    currency, now = normalise_currency(currency), clock.now()
    domain.check_staff_grant(kind, amount_minor, expires_at, memo, now)
    seller = get_customer(conn, customer_id, seller_id)["seller_id"]
    txn = grant(conn, customer_id=customer_id, currency=currency, amount_minor=amount_minor,
                at=now, kind=kind, seller_id=seller, expires_at=expires_at, memo=memo.strip())
    lot_id = txn["lot_id"]
    post(conn, ledger.entry("store_credit.granted", lot_id, [
        ledger.debit(ledger.STORE_CREDIT_INCENTIVES, currency, amount_minor),
        ledger.credit(ledger.STORE_CREDIT, currency, amount_minor),
    ], memo=f"{kind.capitalize()} store credit for {customer_id}: {memo.strip()}"), now, seller)
    emit(conn, "store_credit.granted", lot_id,
         {"customer_id": customer_id, "lot_id": lot_id, "kind": kind,
          "amount_minor": amount_minor, "currency": currency, "granted_by": actor.id,
          "expires_at": expires_at.isoformat() if expires_at else None}, now, seller)
    return get_lot(conn, lot_id)


def revoke_lot(conn: Connection, clock: Clock, lot_id: str, *, reason: str, actor: Actor,
               seller_id: str | None = None) -> dict:
    """Take back what remains of a goodwill or promotional lot (a refund or bonus lot: 409).
    Dr store credit liability / Cr store credit incentives: the cost is reversed."""
    if not reason or not reason.strip():
        raise ValidationFailed("reason is required")
    found = get_lot(conn, lot_id, seller_id)
    wallet = _lock_wallet_by_id(conn, found["wallet_id"])
    lot = domain.lot_from_row(get_lot(conn, lot_id))   # re-read under the wallet's lock
    amount, now, cur = domain.check_revocable(lot), clock.now(), wallet["currency"]
    conn.execute(update(lots).where(lots.c.id == lot_id).values(remaining_minor=0,
                                                                closed_at=now))
    _apply(conn, wallet, -amount, "revocation", now, lot_id=lot_id, memo=reason.strip())
    post(conn, ledger.entry("store_credit.revoked", lot_id, [
        ledger.debit(ledger.STORE_CREDIT, cur, amount),
        ledger.credit(ledger.STORE_CREDIT_INCENTIVES, cur, amount),
    ], memo=f"{lot.kind.capitalize()} store credit {lot_id} revoked: {reason.strip()}"),
        now, wallet["seller_id"])
    emit(conn, "store_credit.revoked", lot_id,
         {"customer_id": wallet["customer_id"], "lot_id": lot_id, "kind": lot.kind,
          "amount_minor": amount, "currency": cur, "revoked_by": actor.id,
          "reason": reason.strip()}, now, wallet["seller_id"])
    return get_lot(conn, lot_id)


# ---------------------------------------------------------------------------------- expiry


def expire_due(conn: Connection, clock: Clock, *, seller_id: str | None = None,
               now: datetime | None = None) -> dict:
    """Close every lot whose expiry has come (``expires_at <= now``) with something left:
    wallet transaction 'expiry', remaining → 0, Dr store credit liability / Cr breakage income,
    outbox ``store_credit.expired``. Idempotent: a second run finds nothing left to expire.
    Wallets are locked in id order, so two concurrent runs cannot deadlock."""
    now = now or clock.now()
    q = (select(lots.c.wallet_id).join(wallets, wallets.c.id == lots.c.wallet_id)
         .where(lots.c.expires_at <= now, lots.c.remaining_minor > 0)
         .group_by(lots.c.wallet_id).order_by(lots.c.wallet_id))
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    expired: list[dict] = []
    for wallet_id in conn.execute(q).scalars().all():
        expired += _expire_wallet(conn, _lock_wallet_by_id(conn, wallet_id), now)
    totals: dict[str, int] = defaultdict(int)
    for e in expired:
        totals[e["currency"]] += e["amount_minor"]
    return {"now": now, "lots": expired, "count": len(expired),
            "totals": [{"currency": c, "amount_minor": a} for c, a in sorted(totals.items())]}


def _expire_wallet(conn: Connection, wallet: dict, now: datetime) -> list[dict]:
    """Expire the due lots of a locked wallet (re-read under the lock)."""
    rows = conn.execute(select(lots).where(lots.c.wallet_id == wallet["id"],
                                           lots.c.expires_at <= now,
                                           lots.c.remaining_minor > 0))
    due = domain.due_for_expiry([domain.lot_from_row(dict(r._mapping)) for r in rows], now)
    if not due:
        return []
    cur, seller, out, entries, events = wallet["currency"], wallet["seller_id"], [], [], []
    for lot in due:
        amount = lot.remaining_minor
        conn.execute(update(lots).where(lots.c.id == lot.id).values(remaining_minor=0,
                                                                    closed_at=now))
        _apply(conn, wallet, -amount, "expiry", now, lot_id=lot.id,
               memo=f"expired {lot.expires_at.isoformat()}")
        entries.append(ledger.entry("store_credit.expired", lot.id, [
            ledger.debit(ledger.STORE_CREDIT, cur, amount),
            ledger.credit(ledger.BREAKAGE, cur, amount),
        ], memo=f"{lot.kind.capitalize()} store credit {lot.id} expired"))
        item = {"lot_id": lot.id, "wallet_id": wallet["id"], "customer_id": wallet["customer_id"],
                "kind": lot.kind, "amount_minor": amount, "currency": cur,
                "expires_at": lot.expires_at.isoformat()}
        events.append(outbox_row("store_credit.expired", lot.id, item, now, seller))
        out.append(item)
    post_many(conn, entries, now, seller)
    emit_many(conn, events)
    return out


# ----------------------------------------------------------------------------------- reads


def get_lot(conn: Connection, lot_id: str, seller_id: str | None = None) -> dict:
    q = (select(lots, wallets.c.customer_id, wallets.c.currency, wallets.c.seller_id)
         .join(wallets, wallets.c.id == lots.c.wallet_id).where(lots.c.id == lot_id))
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"store credit lot {lot_id} not found")
    return dict(row._mapping)


def list_lots(conn: Connection, wallet_id: str) -> list[dict]:
    """A wallet's lots, oldest first."""
    q = select(lots).where(lots.c.wallet_id == wallet_id).order_by(lots.c.created_at, lots.c.id)
    return [dict(r._mapping) for r in conn.execute(q)]


def get_wallets(conn: Connection, customer_id: str, seller_id: str | None = None) -> list[dict]:
    q = select(wallets).where(wallets.c.customer_id == customer_id).order_by(wallets.c.currency)
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def _wallet_row(conn: Connection, customer_id: str, currency: str,
                seller_id: str | None) -> dict:
    currency = normalise_currency(currency)
    q = select(wallets).where(wallets.c.customer_id == customer_id, wallets.c.currency == currency)
    if seller_id:
        q = q.where(wallets.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"customer {customer_id} has no {currency} store credit")
    return dict(row._mapping)


def get_wallet(conn: Connection, customer_id: str, currency: str,
               seller_id: str | None = None) -> dict:
    """The wallet with its whole history (oldest first) and its lots."""
    wallet = _wallet_row(conn, customer_id, currency, seller_id)
    wallet["transactions"] = [
        dict(r._mapping) for r in conn.execute(
            select(wallet_transactions).where(wallet_transactions.c.wallet_id == wallet["id"])
            .order_by(wallet_transactions.c.id))]
    wallet["lots"] = list_lots(conn, wallet["id"])
    return wallet


def statement(conn: Connection, customer_id: str, currency: str, *,
              date_from: date | datetime | None = None, date_to: date | datetime | None = None,
              seller_id: str | None = None) -> dict:
    """Opening balance, every transaction of [from, to) with its kind, lot and running balance,
    and the closing balance. Without ``from`` the statement starts at the wallet's first day."""
    lo, hi = _instant(date_from), _instant(date_to)
    domain.check_period(lo, hi)
    wallet = _wallet_row(conn, customer_id, currency, seller_id)
    t = wallet_transactions
    opening = 0
    if lo is not None:
        opening = int(conn.execute(select(func.coalesce(func.sum(t.c.amount_minor), 0))
                                   .where(t.c.wallet_id == wallet["id"], t.c.created_at < lo))
                      .scalar_one())
    q = (select(t, lots.c.kind.label("lot_kind")).outerjoin(lots, lots.c.id == t.c.lot_id)
         .where(t.c.wallet_id == wallet["id"]).order_by(t.c.id))
    if lo is not None:
        q = q.where(t.c.created_at >= lo)
    if hi is not None:
        q = q.where(t.c.created_at < hi)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    lines = domain.running_balance(opening, rows)
    by_kind: dict[str, int] = defaultdict(int)
    for r in rows:
        by_kind[r["kind"]] += r["amount_minor"]
    return {"customer_id": customer_id, "currency": wallet["currency"],
            "wallet_id": wallet["id"], "from": lo, "to": hi,
            "opening_balance_minor": opening,
            "closing_balance_minor": lines[-1].balance_minor if lines else opening,
            "totals_by_kind": dict(sorted(by_kind.items())),
            "transactions": [{**{k: r[k] for k in ("id", "created_at", "kind", "lot_id",
                                                   "lot_kind", "amount_minor", "refund_id",
                                                   "payment_id", "memo")},
                              "balance_minor": line.balance_minor}
                             for r, line in zip(rows, lines)]}


def _instant(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), timezone.utc)
