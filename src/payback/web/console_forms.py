"""Parsing the console's forms and filters into the values the services take.

This is the console's wire format, as ``schemas.py`` is the API's: shapes, types and lengths
only (a quantity is a whole number, an amount has the currency's decimals, a reason is one of the
catalogue's), never a business rule. Errors are ``ValidationFailed`` subclasses naming the field,
shown on the page with status 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation

from payback.errors import InvalidAmount, InvalidQuantity, ValidationFailed
from payback.money import to_minor
from payback.refunds.domain import KINDS, METHODS, REASONS, LineRequest, RefundRequest

MAX_NOTE = 2000
MAX_COMMENT = 2000
QTY_PREFIX = "qty_"
_AMOUNT = re.compile(r"^\d{1,15}([.,]\d{1,4})?$")


@dataclass(frozen=True)
class RefundForm:
    """What the refund form holds, as submitted (to show it again) and as a request."""

    values: dict
    request: RefundRequest


def blank_refund_values(lines: list[dict]) -> dict:
    return {"kind": "lines", "method": "original_payment", "reason": "requested_by_customer",
            "amount": "", "note": "", "consent": False,
            "qty": {ln["id"]: "" for ln in lines}}


def refund_values(form: dict[str, str], lines: list[dict]) -> dict:
    """The refund form as submitted, to show it again (also when it is not valid)."""
    return {
        "kind": form.get("kind", ""), "method": form.get("method", "original_payment"),
        "reason": form.get("reason", ""), "amount": form.get("amount", "").strip()[:40],
        "note": form.get("note", "")[:MAX_NOTE + 1], "consent": form.get("consent") == "yes",
        "qty": {ln["id"]: form.get(QTY_PREFIX + ln["id"], "").strip()[:12] for ln in lines},
    }


def parse_refund(form: dict[str, str], currency: str, lines: list[dict]) -> RefundForm:
    """The refund form → a ``RefundRequest`` (raises ValidationFailed naming the field)."""
    values = refund_values(form, lines)
    return RefundForm(values, _request(values, currency))


def _request(values: dict, currency: str) -> RefundRequest:
    kind, method, reason = values["kind"], values["method"], values["reason"]
    if kind not in KINDS:
        raise ValidationFailed("refund: choose what to refund (lines, an amount or everything)")
    if method not in METHODS:
        raise ValidationFailed("method: choose the original payment or store credit")
    if reason not in REASONS:
        raise ValidationFailed("reason: choose a reason from the list")
    note = values["note"].strip() or None
    if note and len(note) > MAX_NOTE:
        raise ValidationFailed(f"note: at most {MAX_NOTE} characters")
    common = {"kind": kind, "method": method, "reason": reason, "note": note,
              "consent_to_other_method": values["consent"]}
    if kind == "lines":
        return RefundRequest(lines=_line_picks(values["qty"]), **common)
    if kind == "amount":
        return RefundRequest(amount_minor=parse_amount(values["amount"], currency), **common)
    return RefundRequest(**common)


def _line_picks(quantities: dict[str, str]) -> tuple[LineRequest, ...]:
    picks = []
    for line_id, raw in quantities.items():
        if not raw:
            continue
        if not raw.isdigit() or len(raw) > 9:
            raise InvalidQuantity("quantity: give a whole number of units for each line")
        if int(raw) > 0:
            picks.append(LineRequest(line_id, int(raw)))
    if not picks:
        raise InvalidQuantity("quantity: give a quantity for at least one line")
    return tuple(picks)


def parse_amount(raw: str, currency: str) -> int:
    """``"12.50"`` (or ``"12,50"``) in major units → minor units; more decimals than the
    currency has are refused."""
    text = (raw or "").strip()
    if not _AMOUNT.match(text):
        raise InvalidAmount(f"amount: give an amount in {currency}, such as 12.50")
    try:
        minor = to_minor(Decimal(text.replace(",", ".")), currency)
    except InvalidOperation:
        raise InvalidAmount(f"amount: give an amount in {currency}, such as 12.50") from None
    except InvalidAmount as err:
        raise InvalidAmount(f"amount: {err.detail}") from None
    if minor <= 0:
        raise InvalidAmount("amount: must be more than zero")
    return minor


def parse_comment(form: dict[str, str], *, required: bool) -> str | None:
    comment = (form.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed(f"comment: at most {MAX_COMMENT} characters")
    if required and not comment:
        raise ValidationFailed("comment: say why the refund is rejected; the requester and the "
                               "customer will read it")
    return comment or None


# ---------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None
    action: str | None
    object: str | None
    outcome: str | None
    date_from: datetime | None
    date_to: datetime | None
    values: dict


def _day(raw: str, name: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: give a date as YYYY-MM-DD") from None


def parse_audit_filters(query: dict[str, str]) -> AuditFilters:
    """Filters of the audit log viewer; the ``to`` day is included (the range ends at the
    next midnight, UTC)."""
    values = {k: (query.get(k) or "").strip()[:200]
              for k in ("actor", "action", "object", "outcome", "from", "to")}
    lo, hi = _day(values["from"], "from"), _day(values["to"], "to")
    if values["outcome"] and values["outcome"] not in ("allowed", "refused", "error"):
        raise ValidationFailed("outcome: allowed, refused or error")
    start = datetime.combine(lo, time(), timezone.utc) if lo else None
    end = datetime.combine(hi + timedelta(days=1), time(), timezone.utc) if hi else None
    if start and end and end <= start:
        raise ValidationFailed("to: must not be before from")
    return AuditFilters(actor=values["actor"] or None, action=values["action"] or None,
                        object=values["object"] or None, outcome=values["outcome"] or None,
                        date_from=start, date_to=end, values=values)


def cursor(raw: str | None) -> str | None:
    """A pagination cursor from the URL: an id, or nothing."""
    value = (raw or "").strip()
    return value[:40] if value else None
