"""The staff console's dashboard figures: what happened to refunds today and this month, what is
overdue, the month's refund rate, and the last 30 days by day and by reason.

Definitions (all days are UTC calendar days; ``now`` is given, never read):
- **requested**: refunds created in the period, whatever became of them;
- **approved**: refunds that entered ``approved`` in the period (by a person, or by the policy
  at once);
- **paid**: refunds that entered ``succeeded`` in the period (money back, or store credit
  granted);
- **overdue**: refunds not finished (requested, pending approval, approved or processing) whose
  due date is before ``now``;
- **refund rate** (per currency, this month): paid this month ÷ invoiced this month (the totals
  of the month's invoices that are not void), as a percentage with one decimal, rounded half up;
  ``None`` when nothing was invoiced;
- **daily**: refunds requested on each of the last 30 days (today included), oldest first;
- **by reason**: refunds requested in those 30 days, per reason, most frequent first.

Amounts are never added across currencies: each figure is a count and an amount per currency.
Read-only: run it in a read transaction.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Connection, func, select

from payback.invoicing.tables import invoices
from payback.refunds.tables import refund_events, refunds

DAYS = 30
OPEN_STATES = ("requested", "pending_approval", "approved", "processing")


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), timezone.utc)


def periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Today and this month as [start, end) in UTC."""
    today = now.astimezone(timezone.utc).date()
    month = today.replace(day=1)
    next_month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return {"today": (day_start(today), day_start(today + timedelta(days=1))),
            "month": (day_start(month), day_start(next_month))}


def dashboard(conn: Connection, *, now: datetime, seller_id: str | None = None) -> dict:
    spans = periods(now)
    month_lo, month_hi = spans["month"]
    return {
        "as_of": now,
        "periods": {name: {"from": lo, "to": hi,
                           "requested": requested(conn, lo, hi, seller_id),
                           "approved": entered(conn, "approved", lo, hi, seller_id),
                           "paid": entered(conn, "succeeded", lo, hi, seller_id)}
                    for name, (lo, hi) in spans.items()},
        "overdue": overdue(conn, now, seller_id),
        "refund_rate": refund_rate(conn, month_lo, month_hi, seller_id),
        "daily": daily(conn, now, seller_id),
        "by_reason": by_reason(conn, now, seller_id),
    }


def _scoped(q, seller_id: str | None):
    return q.where(refunds.c.seller_id == seller_id) if seller_id else q


def _per_currency(rows) -> dict[str, dict[str, int]]:
    """{currency: {"count": n, "amount_minor": sum}} from (currency, count, sum) rows."""
    return {cur: {"count": int(n), "amount_minor": int(total or 0)}
            for cur, n, total in sorted(rows, key=lambda r: r[0])}


def requested(conn: Connection, lo: datetime, hi: datetime,
              seller_id: str | None) -> dict[str, dict[str, int]]:
    q = (select(refunds.c.currency, func.count(), func.sum(refunds.c.amount_minor))
         .where(refunds.c.created_at >= lo, refunds.c.created_at < hi)
         .group_by(refunds.c.currency))
    return _per_currency(conn.execute(_scoped(q, seller_id)).all())


def entered(conn: Connection, status: str, lo: datetime, hi: datetime,
            seller_id: str | None) -> dict[str, dict[str, int]]:
    """Refunds whose history shows a move to ``status`` within [lo, hi)."""
    moved = (select(refund_events.c.refund_id).where(
        refund_events.c.to_status == status, refund_events.c.at >= lo,
        refund_events.c.at < hi).distinct().subquery())
    q = (select(refunds.c.currency, func.count(), func.sum(refunds.c.amount_minor))
         .join(moved, moved.c.refund_id == refunds.c.id).group_by(refunds.c.currency))
    return _per_currency(conn.execute(_scoped(q, seller_id)).all())


def overdue(conn: Connection, now: datetime, seller_id: str | None) -> dict[str, dict[str, int]]:
    q = (select(refunds.c.currency, func.count(), func.sum(refunds.c.amount_minor))
         .where(refunds.c.status.in_(OPEN_STATES), refunds.c.due_at.is_not(None),
                refunds.c.due_at < now)
         .group_by(refunds.c.currency))
    return _per_currency(conn.execute(_scoped(q, seller_id)).all())


def percent(part: int, whole: int) -> Decimal | None:
    """``part`` as a percentage of ``whole`` with one decimal (half up); None for 0 / 0."""
    if whole <= 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def refund_rate(conn: Connection, lo: datetime, hi: datetime,
                seller_id: str | None) -> list[dict]:
    paid = entered(conn, "succeeded", lo, hi, seller_id)
    q = (select(invoices.c.currency, func.sum(invoices.c.total_minor))
         .where(invoices.c.issued_at >= lo, invoices.c.issued_at < hi,
                invoices.c.voided_at.is_(None)).group_by(invoices.c.currency))
    if seller_id:
        q = q.where(invoices.c.seller_id == seller_id)
    invoiced = {cur: int(total or 0) for cur, total in conn.execute(q)}
    out = []
    for cur in sorted(set(paid) | set(invoiced)):
        refunded = paid.get(cur, {}).get("amount_minor", 0)
        out.append({"currency": cur, "refunded_minor": refunded,
                    "invoiced_minor": invoiced.get(cur, 0),
                    "percent": percent(refunded, invoiced.get(cur, 0))})
    return out


def _window(now: datetime) -> tuple[date, datetime, datetime]:
    """The last ``DAYS`` UTC days, today included: (first day, start, end)."""
    today = now.astimezone(timezone.utc).date()
    first = today - timedelta(days=DAYS - 1)
    return first, day_start(first), day_start(today + timedelta(days=1))


def daily(conn: Connection, now: datetime, seller_id: str | None) -> list[dict]:
    """Refunds requested per UTC day over the last ``DAYS`` days, with amounts per currency."""
    first, lo, hi = _window(now)
    q = (select(refunds.c.created_at, refunds.c.currency, refunds.c.amount_minor)
         .where(refunds.c.created_at >= lo, refunds.c.created_at < hi))
    counts: Counter[date] = Counter()
    amounts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for at, cur, amount in conn.execute(_scoped(q, seller_id)):
        day = at.astimezone(timezone.utc).date()
        counts[day] += 1
        amounts[day][cur] += int(amount)
    days = [first + timedelta(days=i) for i in range(DAYS)]
    return [{"day": d, "count": counts[d], "amounts": dict(sorted(amounts[d].items()))}
            for d in days]


def by_reason(conn: Connection, now: datetime, seller_id: str | None) -> list[dict]:
    _first, lo, hi = _window(now)
    q = (select(refunds.c.reason, func.count())
         .where(refunds.c.created_at >= lo, refunds.c.created_at < hi)
         .group_by(refunds.c.reason))
    rows = [(reason, int(n)) for reason, n in conn.execute(_scoped(q, seller_id))]
    return [{"reason": reason, "count": n}
            for reason, n in sorted(rows, key=lambda r: (-r[1], r[0]))]
