"""Credit notes as pure values: what a refund's note says, what an adjustment may credit, how a
note's total splits, and the refusals. No I/O; the service loads, locks and persists.

Kinds:
- ``refund``: issued for every succeeded refund. Lines mirror the refund lines; the total is the
  refund's net + tax; the split is what went back to the payment method (``refunded``), to store
  credit (``credited``; a bonus on top is an incentive, not a reversal, and is not part of the
  note) and the restocking fee the merchant kept (``outside``).
- ``adjustment``: a credit without money movement (a price reduction, a billing error on an
  invoice not yet fully paid). It reduces what the customer owes, so it may never exceed the
  amount still due, and never what remains uncredited on a line. Its whole total is ``outside``:
  "settled against the invoice balance".
- ``void``: reverses an adjustment with a new note of the same amounts (rendered negated).

Per line, the tax credited follows the refunds' cumulative rule (``refunds.domain``): after any
sequence of refunds and adjustments the tax credited on a line is a function of the gross
credited so far, and equals the line's tax exactly once the whole line is credited.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from payback.errors import (Conflict, InvalidQuantity, NotFound,
                            QuantityExceedsRemaining, ValidationFailed)
from payback.money import check_minor
from payback.refunds.domain import REASONS, LineState, cumulative_share, gross_for_quantity

KINDS = ("refund", "adjustment", "void")
NUMBER_PREFIX = "CN"


class CreditExceedsRemaining(Conflict):
    code, title = "credit_exceeds_remaining", "Credit exceeds what remains on the invoice line"


class CreditExceedsAmountDue(Conflict):
    code, title = "credit_exceeds_amount_due", "Credit exceeds the amount still due"


class CreditNoteAlreadyVoided(Conflict):
    code, title = "credit_note_already_voided", "Credit note already voided"


class CreditNoteNotVoidable(Conflict):
    code, title = "credit_note_not_voidable", "This credit note cannot be voided"


@dataclass(frozen=True, slots=True)
class AdjustmentLine:
    """Credit one invoice line: either a gross amount (tax included) or a quantity of units."""

    line_id: str
    amount_minor: int | None = None
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentRequest:
    reason: str
    lines: tuple[AdjustmentLine, ...]
    currency: str | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class NoteLine:
    invoice_line_id: str
    description: str
    quantity: int
    tax_rate: Decimal
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True, slots=True)
class Split:
    refunded_minor: int
    credited_minor: int
    outside_minor: int


def number(n: int) -> str:
    return f"{NUMBER_PREFIX}-{n:06d}"


def series(seller_id: str) -> str:
    """One gapless series per seller."""
    return f"credit_note:{seller_id}"


def check_reason(reason: str) -> None:
    if reason not in REASONS:
        raise ValidationFailed(f"reason must be one of {', '.join(REASONS)}")


def refund_split(tenders: Sequence[dict], amount_minor: int, fee_minor: int) -> Split:
    """Paid back to the original method, to store credit, and the fee kept (sum = net + tax)."""
    refunded = sum(t["amount_minor"] for t in tenders
                   if t["destination"] in ("original_payment", "manual_payout"))
    return Split(refunded, amount_minor - refunded, fee_minor)


def adjustment_split(total_minor: int) -> Split:
    return Split(0, 0, total_minor)


def validate_adjustment(req: AdjustmentRequest) -> None:
    check_reason(req.reason)
    if not req.lines:
        raise ValidationFailed("an adjustment credit note needs at least one line")
    seen = set()
    for al in req.lines:
        if (al.amount_minor is None) == (al.quantity is None):
            raise ValidationFailed(f"line {al.line_id}: give either amount_minor or quantity")
        if al.amount_minor is not None:
            check_minor(al.amount_minor, allow_zero=False)
        elif isinstance(al.quantity, bool) or not isinstance(al.quantity, int) \
                or al.quantity <= 0:
            raise InvalidQuantity(f"quantity for line {al.line_id} must be a positive integer")
        if al.line_id in seen:
            raise ValidationFailed(f"line {al.line_id} is named twice")
        seen.add(al.line_id)


def adjustment_lines(lines: Sequence[LineState], rates: dict[str, Decimal],
                     req: AdjustmentRequest) -> tuple[tuple[NoteLine, int], ...]:
    """The note lines of an adjustment, each with the quantity it reserves; raises when a line
    would be credited beyond what remains on it."""
    by_id = {ln.id: ln for ln in lines}
    out = []
    for al in req.lines:
        ln = by_id.get(al.line_id)
        if ln is None:
            raise NotFound(f"invoice line {al.line_id} is not on this invoice")
        gross, qty = _take(ln, al)
        tax = max(0, cumulative_share(ln.tax_minor, ln.refunded_gross_minor + gross,
                                      ln.gross_minor) - ln.refunded_tax_minor)
        out.append((NoteLine(ln.id, ln.description, qty, rates[ln.id], gross - tax, tax, gross),
                    qty))
    return tuple(out)


def _take(ln: LineState, al: AdjustmentLine) -> tuple[int, int]:
    if al.quantity is not None:
        if al.quantity > ln.remaining_quantity:
            raise QuantityExceedsRemaining(
                f"line {ln.id} has {ln.remaining_quantity} unit(s) left to credit, "
                f"{al.quantity} requested", line_id=ln.id, remaining=ln.remaining_quantity)
        gross = gross_for_quantity(ln, al.quantity)
        if gross <= 0:
            raise CreditExceedsRemaining(f"nothing remains to credit on line {ln.id}",
                                         line_id=ln.id, remaining_minor=0)
        return gross, al.quantity
    if al.amount_minor > ln.remaining_gross:
        raise CreditExceedsRemaining(
            f"line {ln.id} has {ln.remaining_gross} left to credit, {al.amount_minor} requested",
            line_id=ln.id, remaining_minor=ln.remaining_gross, requested_minor=al.amount_minor)
    return al.amount_minor, 0


def check_due(total_minor: int, due_minor: int, invoice_number: str) -> None:
    if total_minor > due_minor:
        raise CreditExceedsAmountDue(
            f"an adjustment of {total_minor} exceeds the {due_minor} still due on invoice "
            f"{invoice_number}; what the customer has paid is given back with a refund (to the "
            "payment method or to store credit), which issues its own credit note",
            requested_minor=total_minor, due_minor=due_minor)


def check_voidable(note: dict, already_voided: bool) -> None:
    if note["kind"] == "refund":
        raise CreditNoteNotVoidable(
            f"credit note {note['number']} records a refund whose money has already moved; it "
            "cannot be voided. To credit more, issue an adjustment; to charge again, issue a new "
            "invoice")
    if note["kind"] == "void":
        raise CreditNoteNotVoidable(f"credit note {note['number']} is itself a void and cannot "
                                    "be voided")
    if already_voided:
        raise CreditNoteAlreadyVoided(f"credit note {note['number']} is already voided")
