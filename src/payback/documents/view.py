"""The human-readable face of a ``Document``: every string the PDF and the HTML print.

Both renderings read this one view, so they show the same words and the same amounts. Amounts
are formatted with ``payback.money.format_money`` in the document's locale (the customer's) and
currency, with the ISO 4217 number of decimals; a void note shows them negated. Labels are in
English; only numbers follow the locale. An unknown locale falls back to ``en_US`` rather than
refusing to print a legal document.
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

from payback.documents.model import Document, percent, reason_label
from payback.money import format_money

FALLBACK_LOCALE = "en_US"


def usable_locale(locale: str | None) -> str:
    try:
        Locale.parse(locale or FALLBACK_LOCALE)
    except (UnknownLocaleError, ValueError, TypeError):
        return FALLBACK_LOCALE
    return locale or FALLBACK_LOCALE


def present(doc: Document) -> dict:
    """A plain dict of strings and lists (what the template and the PDF lay out)."""
    loc = usable_locale(doc.locale)

    def money(minor: int) -> str:
        return format_money(doc.sign * minor, doc.currency, loc)

    return {
        "title": _title(doc), "number": doc.number, "date": doc.issued_on.isoformat(),
        "references": _references(doc), "seller": _party(doc.seller),
        "buyer": _party(doc.buyer), "currency": doc.currency,
        "tax_mode": "Prices include tax" if doc.tax_mode == "inclusive"
        else "Prices exclude tax",
        "lines": [{"position": str(ln.position), "description": ln.description,
                   "quantity": str(doc.sign * ln.quantity) if ln.quantity else "—",
                   "unit_price": money(ln.unit_price_minor) if ln.unit_price_minor is not None
                   else "", "discount": money(ln.discount_minor) if ln.discount_minor else "",
                   "rate": percent(ln.tax_rate) + " %", "net": money(ln.net_minor),
                   "tax": money(ln.tax_minor), "gross": money(ln.gross_minor)}
                  for ln in doc.lines],
        "tax_breakdown": [{"rate": percent(t.rate) + " %", "net": money(t.net_minor),
                           "tax": money(t.tax_minor)} for t in doc.tax_breakdown()],
        "totals": _totals(doc, money), "split": _split(doc, money),
        "reason": reason_label(doc.reason) if doc.reason else "",
        "memo": doc.memo or "", "sha256": doc.document_sha256 or "",
    }


def _title(doc: Document) -> str:
    if doc.type == "invoice":
        return "Invoice"
    return "Credit note (void)" if doc.kind == "void" else "Credit note"


def _references(doc: Document) -> list[str]:
    out = []
    if doc.invoice_ref is not None:
        out.append(f"Credits invoice {doc.invoice_ref.number} of "
                   f"{doc.invoice_ref.issued_on.isoformat()}")
    if doc.voids_ref is not None:
        out.append(f"Voids credit note {doc.voids_ref.number} of "
                   f"{doc.voids_ref.issued_on.isoformat()}; amounts are reversed")
    return out


def _party(p) -> dict:
    return {"name": p.name, "address_lines": p.address_lines, "country": p.country or "",
            "vat_number": p.vat_number or "", "email": p.email or ""}


def _totals(doc: Document, money) -> list[tuple[str, str]]:
    rows = []
    if doc.discount_minor:
        rows.append(("Discount included above", money(doc.discount_minor)))
    rows += [("Net", money(doc.net_minor)), ("Tax", money(doc.tax_minor)),
             ("Total", money(doc.total_minor))]
    return rows


def _split(doc: Document, money) -> list[tuple[str, str]]:
    s = doc.split
    if s is None:
        return []
    return [("Refunded to the original payment method", money(s.refunded_minor)),
            ("Credited to store credit", money(s.credited_minor)),
            (s.outside_label, money(s.outside_minor))]
