"""Render a ``Journal`` as a CSV journal for spreadsheets and accounting software.

One row per posting, entries in posting order. Columns (``COLUMNS``)::

    date, entry_id, account_code, account_name, debit, credit, currency, memo,
    event_type, object_id

- ``date``: the UTC posting day, ``YYYY-MM-DD``;
- ``account_code`` / ``account_name``: Payback's chart (``1100`` / ``Gateway clearing``), two
  columns so a spreadsheet can filter on the code and a reader sees the name;
- ``debit`` / ``credit``: exact decimal strings in major units with the currency's ISO 4217
  exponent (``123.45`` EUR, ``500`` JPY, ``1.250`` KWD); a posting is one-sided, so exactly one
  of the two is filled and the other is empty;
- ``memo``: the entry's memo (the same on every row of the entry).

RFC 4180: comma-separated, CRLF line ends, fields quoted when they hold a comma, a quote or a
line break (quotes doubled), a header row, UTF-8 without a byte-order mark. Only the entries of
the period are listed (no opening balances): the trial balance gives balances. Pure: no I/O.
"""

from __future__ import annotations

import csv
import io

from payback.exports.domain import Journal, major

COLUMNS = ("date", "entry_id", "account_code", "account_name", "debit", "credit", "currency",
           "memo", "event_type", "object_id")


def render(journal: Journal) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for e in journal.entries:
        for ln in e.lines:
            writer.writerow((
                e.day.isoformat(), e.id, ln.account.code, ln.account.name,
                major(ln.debit, ln.currency) if ln.debit else "",
                major(ln.credit, ln.currency) if ln.credit else "",
                ln.currency, e.memo or "", e.event_type, e.object_id))
    return buf.getvalue()
