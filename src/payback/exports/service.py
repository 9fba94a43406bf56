"""Accounting exports: load the journal of one seller over ``[date_from, date_to)`` (UTC posting
time) and render it as Beancount text or a CSV journal.

Read-only: these functions run in the caller's (read) transaction, so the entries, the opening
balances and the closing balances are one consistent snapshot on PostgreSQL. A reversed or empty
range is refused (``ValidationFailed``, 422) before anything is read or written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import Connection, func, select

from payback.errors import ValidationFailed
from payback.exports import beancount, csv_journal
from payback.exports.domain import Balances, Journal, JournalEntry, Line
from payback.ledger.domain import BY_CODE
from payback.ledger.tables import journal_entries, postings

FORMATS = ("beancount", "csv")


def check_range(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The UTC bounds of ``[date_from, date_to)``, or ``ValidationFailed`` when it is empty."""
    if date_to <= date_from:
        raise ValidationFailed(
            f"the date range is {'empty' if date_to == date_from else 'reversed'}: "
            f"'to' ({date_to}) must be after 'from' ({date_from}); the range is [from, to)",
            date_from=date_from.isoformat(), date_to=date_to.isoformat())
    return (datetime.combine(date_from, time(), UTC),
            datetime.combine(date_to, time(), UTC))


def load_journal(conn: Connection, date_from: date, date_to: date, *,
                 seller_id: str | None = None) -> Journal:
    lo, hi = check_range(date_from, date_to)
    return Journal(seller_id=seller_id, date_from=date_from, date_to=date_to,
                   entries=_entries(conn, lo, hi, seller_id),
                   opening=balances_before(conn, lo, seller_id),
                   closing=balances_before(conn, hi, seller_id))


def export_beancount(conn: Connection, date_from: date, date_to: date, *,
                     seller_id: str | None = None) -> str:
    return beancount.render(load_journal(conn, date_from, date_to, seller_id=seller_id))


def export_csv(conn: Connection, date_from: date, date_to: date, *,
               seller_id: str | None = None) -> str:
    return csv_journal.render(load_journal(conn, date_from, date_to, seller_id=seller_id))


def export(conn: Connection, fmt: str, date_from: date, date_to: date, *,
           seller_id: str | None = None) -> str:
    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}")
    render = export_beancount if fmt == "beancount" else export_csv
    return render(conn, date_from, date_to, seller_id=seller_id)


def balances_before(conn: Connection, at: datetime, seller_id: str | None) -> Balances:
    """Debits − credits per (account code, currency) of everything posted before ``at``."""
    q = (select(postings.c.account_code, postings.c.currency,
                func.sum(postings.c.debit_minor), func.sum(postings.c.credit_minor))
         .join(journal_entries, journal_entries.c.id == postings.c.entry_id)
         .where(journal_entries.c.posted_at < at)
         .group_by(postings.c.account_code, postings.c.currency))
    if seller_id:
        q = q.where(journal_entries.c.seller_id == seller_id)
    return {(code, cur): int(d) - int(c) for code, cur, d, c in conn.execute(q)}


def _entries(conn: Connection, lo: datetime, hi: datetime,
             seller_id: str | None) -> tuple[JournalEntry, ...]:
    q = (select(journal_entries.c.id, journal_entries.c.posted_at, journal_entries.c.event_type,
                journal_entries.c.object_id, journal_entries.c.memo, postings.c.account_code,
                postings.c.currency, postings.c.debit_minor, postings.c.credit_minor)
         .join(postings, postings.c.entry_id == journal_entries.c.id)
         .where(journal_entries.c.posted_at >= lo, journal_entries.c.posted_at < hi)
         # Posting time, then id (ids sort by creation), then the postings in written order.
         .order_by(journal_entries.c.posted_at, journal_entries.c.id, postings.c.id))
    if seller_id:
        q = q.where(journal_entries.c.seller_id == seller_id)
    out: list[JournalEntry] = []
    head, lines = None, []
    for r in conn.execute(q):
        if head is None or r.id != head.id:
            if head is not None:
                out.append(_entry(head, lines))
            head, lines = r, []
        lines.append(Line(BY_CODE[r.account_code], r.currency, int(r.debit_minor),
                          int(r.credit_minor)))
    if head is not None:
        out.append(_entry(head, lines))
    return tuple(out)


def _entry(head, lines: list[Line]) -> JournalEntry:
    return JournalEntry(id=head.id, posted_at=head.posted_at.astimezone(UTC),
                        event_type=head.event_type, object_id=head.object_id, memo=head.memo,
                        lines=tuple(lines))
