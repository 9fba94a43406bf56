"""Revenue report, read from the ledger so that it agrees with the books by construction.

Per currency and period (``[date_from, date_to)``, by the entries' posting time, UTC):

- ``gross_sales``       Revenue credits − Revenue debits (voids reverse sales)
- ``returns``           Sales returns and allowances debits − credits (net of tax)
- ``net_revenue``       gross_sales − returns
- ``tax_collected``     Tax payable credits − debits from invoice entries (issue, void)
- ``tax_refunded``      Tax payable debits − credits from refund and credit-note entries
- ``net_tax``           tax_collected − tax_refunded
- ``refunds_paid_out``  cash and gateway clearing credited by refunds (money that left)
- ``refunds_to_store_credit`` store credit liability credited by refunds (a store-credit tender
  refunded to itself, or a refund taken as store credit); the two never overlap, so together
  they are everything refunded in the period
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timezone

from sqlalchemy import Connection, case, func, select

from payback.errors import ValidationFailed
from payback.ledger import domain as ledger
from payback.ledger.tables import journal_entries, postings

FIELDS = ("gross_sales", "returns", "net_revenue", "tax_collected", "tax_refunded", "net_tax",
          "refunds_paid_out", "refunds_to_store_credit")


def _bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    if date_to <= date_from:
        raise ValidationFailed("date_to must be after date_from (the range is [from, to))")
    return (datetime.combine(date_from, time(), timezone.utc),
            datetime.combine(date_to, time(), timezone.utc))


def _month_starts(date_from: date, date_to: date) -> list[date]:
    starts, cur = [date_from], date(date_from.year, date_from.month, 1)
    while True:
        cur = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
        if cur >= date_to:
            return starts + [date_to]
        starts.append(cur)


def revenue(conn: Connection, date_from: date, date_to: date, currency: str | None = None,
            group_by: str = "none", seller_id: str | None = None) -> dict:
    """The revenue report; ``group_by='month'`` splits the range at month starts."""
    if group_by not in ("none", "month"):
        raise ValidationFailed("group_by must be 'none' or 'month'")
    _bounds(date_from, date_to)
    edges = _month_starts(date_from, date_to) if group_by == "month" else [date_from, date_to]
    periods = []
    for start, end in zip(edges, edges[1:]):
        periods.append({"from": start.isoformat(), "to": end.isoformat(),
                        "currencies": _period(conn, start, end, currency, seller_id)})
    return {"from": date_from.isoformat(), "to": date_to.isoformat(), "group_by": group_by,
            "periods": periods}


def _period(conn: Connection, start: date, end: date, currency: str | None,
            seller_id: str | None) -> list[dict]:
    lo, hi = _bounds(start, end)
    # Credit-note adjustments reverse sales like refunds do (without money moving).
    kind = case((journal_entries.c.event_type.like("invoice.%"), "invoice"),
                (journal_entries.c.event_type.like("refund.%"), "refund"),
                (journal_entries.c.event_type.like("credit_note.%"), "refund"), else_="other")
    q = (select(postings.c.currency, postings.c.account_code, kind.label("kind"),
                func.sum(postings.c.debit_minor), func.sum(postings.c.credit_minor))
         .join(journal_entries, journal_entries.c.id == postings.c.entry_id)
         .where(journal_entries.c.posted_at >= lo, journal_entries.c.posted_at < hi)
         .group_by(postings.c.currency, postings.c.account_code, kind))
    if currency:
        q = q.where(postings.c.currency == currency.upper())
    if seller_id:
        q = q.where(journal_entries.c.seller_id == seller_id)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for cur, code, k, debits, credits in conn.execute(q):
        _accumulate(sums[cur], code, k, int(debits), int(credits))
    out = []
    for cur in sorted(sums):
        row = sums[cur]
        row["net_revenue"] = row["gross_sales"] - row["returns"]
        row["net_tax"] = row["tax_collected"] - row["tax_refunded"]
        out.append({"currency": cur, **{f"{k}_minor": row[k] for k in FIELDS}})
    return out


def _accumulate(row: dict, code: str, kind: str, debits: int, credits: int) -> None:
    if code == ledger.REVENUE.code:
        row["gross_sales"] += credits - debits
    elif code == ledger.SALES_RETURNS.code:
        row["returns"] += debits - credits
    elif code == ledger.TAX_PAYABLE.code and kind == "invoice":
        row["tax_collected"] += credits - debits
    elif code == ledger.TAX_PAYABLE.code and kind == "refund":
        row["tax_refunded"] += debits - credits
    elif code in (ledger.GATEWAY_CLEARING.code, ledger.CASH.code) and kind == "refund":
        row["refunds_paid_out"] += credits - debits
    elif code == ledger.STORE_CREDIT.code and kind == "refund":
        row["refunds_to_store_credit"] += credits - debits
