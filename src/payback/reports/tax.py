"""Tax report per period, customer country and tax rate, per currency, read from the documents
(invoice lines and credit-note lines) and reconciled with the ledger.

For ``[date_from, date_to)`` (UTC), one row per (currency, country, rate):

- ``taxable_net`` / ``tax_collected``: net and tax of the lines of invoices issued in the period,
  minus those of invoices voided in the period (a void reverses its invoice in the period of the
  void, as its ledger entry does);
- ``refunded_net`` / ``tax_refunded``: net and tax of the lines of credit notes issued in the
  period, for refunds and for adjustments; a voiding credit note (``kind = 'void'``, which repeats
  the amounts of the note it voids) counts negative, as its ledger entry credits Tax payable;
- ``net_taxable`` = taxable_net − refunded_net; ``net_tax_due`` = tax_collected − tax_refunded.

``country`` is the customer's country (ISO 3166 alpha-2), ``"unknown"`` when the customer has
none. ``tax_rate`` is the rate as a decimal string (``"0.19"`` = 19 %).

Invariant, checked by the ``totals`` of the report itself and by the test suite: per currency,
Σ tax_collected − Σ tax_refunded over every country and rate equals the change of Tax payable
(2100) over the period, credits − debits, to the minor unit (``ledger_tax_change_minor``,
``difference_minor`` = 0, ``reconciled``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, case, func, select

from payback.credit_notes.tables import credit_note_lines, credit_notes
from payback.customers.tables import customers
from payback.exports.service import check_range
from payback.invoicing.tables import invoice_lines, invoices
from payback.ledger import domain as ledger
from payback.ledger.tables import journal_entries, postings
from payback.money import normalise_currency

FIGURES = ("taxable_net", "tax_collected", "refunded_net", "tax_refunded")
UNKNOWN_COUNTRY = "unknown"


def rate_text(rate: object) -> str:
    """``Decimal('0.190000')`` → ``'0.19'``; 0 → ``'0'`` (never an exponent)."""
    return format(Decimal(str(rate)).quantize(Decimal("0.000001")).normalize(), "f")


def tax_report(conn: Connection, date_from: date, date_to: date, *,
               seller_id: str | None = None, currency: str | None = None) -> dict:
    lo, hi = check_range(date_from, date_to)
    cur = normalise_currency(currency) if currency else None
    sums: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(FIGURES, 0))
    for sign, at in ((1, invoices.c.issued_at), (-1, invoices.c.voided_at)):
        for key, net, tax in _invoice_lines(conn, at, lo, hi, seller_id, cur):
            sums[key]["taxable_net"] += sign * net
            sums[key]["tax_collected"] += sign * tax
    for key, net, tax in _credit_note_lines(conn, lo, hi, seller_id, cur):
        sums[key]["refunded_net"] += net
        sums[key]["tax_refunded"] += tax
    rows = [_row(key, sums[key]) for key in sorted(sums)]
    return {"from": date_from.isoformat(), "to": date_to.isoformat(), "rows": rows,
            "totals": _totals(rows, _ledger_change(conn, lo, hi, seller_id, cur))}


def _row(key: tuple[str, str, str], s: dict[str, int]) -> dict:
    cur, country, rate = key
    return {"currency": cur, "country": country, "tax_rate": rate,
            **{f"{k}_minor": s[k] for k in FIGURES},
            "net_taxable_minor": s["taxable_net"] - s["refunded_net"],
            "net_tax_due_minor": s["tax_collected"] - s["tax_refunded"]}


def _totals(rows: list[dict], ledger_change: dict[str, int]) -> list[dict]:
    out = []
    for cur in sorted({r["currency"] for r in rows} | set(ledger_change)):
        mine = [r for r in rows if r["currency"] == cur]
        total = {f"{k}_minor": sum(r[f"{k}_minor"] for r in mine)
                 for k in (*FIGURES, "net_taxable", "net_tax_due")}
        change = ledger_change.get(cur, 0)
        diff = total["net_tax_due_minor"] - change
        out.append({"currency": cur, **total, "ledger_tax_change_minor": change,
                    "difference_minor": diff, "reconciled": diff == 0})
    return out


def _key(currency: str, country: str | None, rate: object) -> tuple[str, str, str]:
    return currency, country.upper() if country else UNKNOWN_COUNTRY, rate_text(rate)


def _invoice_lines(conn: Connection, at, lo: datetime, hi: datetime, seller_id: str | None,
                   cur: str | None):
    q = (select(invoices.c.currency, customers.c.country, invoice_lines.c.tax_rate,
                func.sum(invoice_lines.c.net_minor), func.sum(invoice_lines.c.tax_minor))
         .select_from(invoice_lines.join(invoices, invoices.c.id == invoice_lines.c.invoice_id)
                      .join(customers, customers.c.id == invoices.c.customer_id))
         .where(at >= lo, at < hi)
         .group_by(invoices.c.currency, customers.c.country, invoice_lines.c.tax_rate))
    if seller_id:
        q = q.where(invoices.c.seller_id == seller_id)
    if cur:
        q = q.where(invoices.c.currency == cur)
    return [(_key(c, country, rate), int(net), int(tax))
            for c, country, rate, net, tax in conn.execute(q)]


def _credit_note_lines(conn: Connection, lo: datetime, hi: datetime, seller_id: str | None,
                       cur: str | None):
    # A void note repeats the amounts of the note it voids (positive): it gives them back.
    sign = case((credit_notes.c.kind == "void", -1), else_=1)
    q = (select(credit_notes.c.currency, customers.c.country, credit_note_lines.c.tax_rate,
                func.sum(sign * credit_note_lines.c.net_minor),
                func.sum(sign * credit_note_lines.c.tax_minor))
         .select_from(credit_note_lines
                      .join(credit_notes, credit_notes.c.id == credit_note_lines.c.credit_note_id)
                      .join(invoices, invoices.c.id == credit_notes.c.invoice_id)
                      .join(customers, customers.c.id == invoices.c.customer_id))
         .where(credit_notes.c.issued_at >= lo, credit_notes.c.issued_at < hi)
         .group_by(credit_notes.c.currency, customers.c.country, credit_note_lines.c.tax_rate))
    if seller_id:
        q = q.where(credit_notes.c.seller_id == seller_id)
    if cur:
        q = q.where(credit_notes.c.currency == cur)
    return [(_key(c, country, rate), int(net), int(tax))
            for c, country, rate, net, tax in conn.execute(q)]


def _ledger_change(conn: Connection, lo: datetime, hi: datetime, seller_id: str | None,
                   cur: str | None) -> dict[str, int]:
    """Tax payable (2100) credits − debits per currency over the period."""
    q = (select(postings.c.currency,
                func.sum(postings.c.credit_minor) - func.sum(postings.c.debit_minor))
         .join(journal_entries, journal_entries.c.id == postings.c.entry_id)
         .where(postings.c.account_code == ledger.TAX_PAYABLE.code,
                journal_entries.c.posted_at >= lo, journal_entries.c.posted_at < hi)
         .group_by(postings.c.currency))
    if seller_id:
        q = q.where(journal_entries.c.seller_id == seller_id)
    if cur:
        q = q.where(postings.c.currency == cur)
    return {c: int(v) for c, v in conn.execute(q)}
