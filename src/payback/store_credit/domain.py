"""Store-credit rules as pure functions: lot kinds, the order spending draws from lots, expiry,
revocation, restoring a refunded store-credit payment, and the statement's running balance.

A wallet (one per customer and currency) holds *lots*: one per grant, each with a kind, the
amount granted, what remains and an optional expiry. Invariants kept here (the service persists
them under the wallet's row lock):

- the wallet balance = Σ lots' remaining = Σ the wallet's transactions, and never below zero;
- spending draws from lots in ``spend_order``: earliest expiry first, lots without expiry last,
  then oldest first; a lot whose expiry has passed is never spent;
- only goodwill and promotional lots can be revoked (refund and bonus credit is the customer's
  money or was promised with it), and only what remains of them;
- a statement's running balance starts at the opening balance and adds every transaction.

No I/O and no ``now()``: times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from payback.errors import Conflict, InsufficientStoreCredit, ValidationFailed
from payback.money import check_minor

#: Kinds of lot: refund credit (a refund taken as store credit), the bonus offered for taking
#: it, and credit staff give away (goodwill after a complaint, promotional campaigns).
KINDS = ("refund", "bonus", "goodwill", "promotional")
#: Kinds staff may grant (POST .../store-credit/grants): a cost to the seller, not a reversal.
STAFF_KINDS = ("goodwill", "promotional")
#: Kinds that can be revoked. Refund credit is the customer's money; the bonus was part of the
#: deal under which the customer gave up a cash refund.
REVOCABLE_KINDS = STAFF_KINDS
MAX_MEMO = 500


class LotNotRevocable(Conflict):
    code, title = "store_credit_not_revocable", "This store credit cannot be revoked"


class NothingToRevoke(Conflict):
    code, title = "store_credit_nothing_left", "Nothing is left of this store credit"


@dataclass(frozen=True, slots=True)
class Lot:
    """One grant of store credit and what is left of it."""

    id: str
    kind: str
    amount_minor: int
    remaining_minor: int
    created_at: datetime
    expires_at: datetime | None = None
    closed_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def lot_from_row(row: dict) -> Lot:
    return Lot(id=row["id"], kind=row["kind"], amount_minor=row["amount_minor"],
               remaining_minor=row["remaining_minor"], created_at=row["created_at"],
               expires_at=row.get("expires_at"), closed_at=row.get("closed_at"))


# ------------------------------------------------------------------------------ granting


def expiry_after(at: datetime, expiry_days: int | None) -> datetime | None:
    """The expiry of credit granted at ``at`` under a policy's ``store_credit.expiry_days``:
    none when the policy gives none (never invent an expiry the policy does not state)."""
    return None if expiry_days is None else at + timedelta(days=expiry_days)


def check_staff_grant(kind: str, amount_minor: int, expires_at: datetime | None, memo: str,
                      now: datetime) -> None:
    """Refuse a staff grant that is not goodwill/promotional, not positive, already expired or
    without a reason."""
    if kind not in STAFF_KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(STAFF_KINDS)} (refund and bonus "
                               "credit come from refunds)")
    check_minor(amount_minor, allow_zero=False)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationFailed("expires_at must carry a time zone (e.g. 2027-01-31T23:59:59Z)")
        if expires_at <= now:
            raise ValidationFailed("expires_at must be in the future")
    if not memo or not memo.strip():
        raise ValidationFailed("memo is required: say why the credit is given")
    if len(memo) > MAX_MEMO:
        raise ValidationFailed(f"memo is longer than {MAX_MEMO} characters")


# ------------------------------------------------------------------------------ spending


def _order_key(lot: Lot) -> tuple:
    # No expiry sorts after every date; then oldest first; the id settles exact ties.
    return (lot.expires_at is None, lot.expires_at or lot.created_at, lot.created_at, lot.id)


def spend_order(lots: Iterable[Lot]) -> list[Lot]:
    """The lots in the order spending draws from them."""
    return sorted(lots, key=_order_key)


def spendable(lots: Iterable[Lot], now: datetime) -> list[Lot]:
    return [lot for lot in lots if lot.remaining_minor > 0 and not lot.expired(now)]


def plan_spend(lots: Sequence[Lot], amount_minor: int, now: datetime) -> list[tuple[Lot, int]]:
    """Which lots pay ``amount_minor`` and how much each: (lot, amount taken), in draw order.

    Raises ``InsufficientStoreCredit`` when the spendable lots hold less (nothing is taken)."""
    check_minor(amount_minor, allow_zero=False)
    usable = spend_order(spendable(lots, now))
    available = sum(lot.remaining_minor for lot in usable)
    if amount_minor > available:
        raise InsufficientStoreCredit(
            f"store credit balance is {available}, {amount_minor} requested",
            balance_minor=available)
    plan, left = [], amount_minor
    for lot in usable:
        if left == 0:
            break
        take = min(left, lot.remaining_minor)
        plan.append((lot, take))
        left -= take
    return plan


def due_for_expiry(lots: Iterable[Lot], now: datetime) -> list[Lot]:
    """Lots whose expiry has come (``expires_at <= now``) with something left, oldest first."""
    return spend_order(lot for lot in lots if lot.remaining_minor > 0 and lot.expired(now))


# ---------------------------------------------------------------------------- revocation


def check_revocable(lot: Lot) -> int:
    """What a revocation takes back (all that remains); refuses refund and bonus lots."""
    if lot.kind not in REVOCABLE_KINDS:
        raise LotNotRevocable(
            f"lot {lot.id} is {lot.kind} credit: it is the customer's money and cannot be "
            "revoked (only goodwill and promotional credit can)", kind=lot.kind)
    if lot.remaining_minor == 0:
        raise NothingToRevoke(f"nothing is left of lot {lot.id} to revoke",
                              remaining_minor=0)
    return lot.remaining_minor


# ---------------------------------------------------------------- refund of a spent payment


@dataclass(frozen=True, slots=True)
class Draw:
    """What one payment took from one lot, and how much of it refunds have already put back."""

    lot_id: str
    drawn_minor: int
    restored_minor: int = 0


def plan_restore(draws: Sequence[Draw], amount_minor: int) -> tuple[list[tuple[str, int]], int]:
    """Put a refunded store-credit payment back into the lots it was drawn from, last drawn
    first (the longest-lived credit comes back first), never more than was drawn from each.

    Returns ([(lot_id, amount)], the part no lot can take back). The remainder is not zero only
    for payments made before lots existed; the caller grants it as a new refund lot."""
    plan, left = [], amount_minor
    for d in reversed(draws):
        room = d.drawn_minor - d.restored_minor
        if left == 0 or room <= 0:
            continue
        back = min(left, room)
        plan.append((d.lot_id, back))
        left -= back
    return plan, left


# ----------------------------------------------------------------------------- statement


@dataclass(frozen=True, slots=True)
class StatementLine:
    id: str
    created_at: datetime
    kind: str
    lot_id: str | None
    amount_minor: int
    balance_minor: int


def running_balance(opening_minor: int, txns: Iterable[dict]) -> list[StatementLine]:
    """Each transaction with the balance after it, starting from ``opening_minor``."""
    out, balance = [], opening_minor
    for t in txns:
        balance += t["amount_minor"]
        out.append(StatementLine(t["id"], t["created_at"], t["kind"], t.get("lot_id"),
                                 t["amount_minor"], balance))
    return out


def check_period(date_from: datetime | None, date_to: datetime | None) -> None:
    if date_from is not None and date_to is not None and date_to <= date_from:
        raise ValidationFailed("to must be after from (the period is [from, to))")
