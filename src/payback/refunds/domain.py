"""The refund calculator: which lines, how much net, tax and discount, from which tenders.

Pure functions over immutable values; the service loads the state, calls ``calculate`` and
persists the result. The preview runs exactly the same function and writes nothing.

Cumulative method (why no cent ever drifts)
-------------------------------------------
For every invoice line we know how much gross has been refunded so far (``refunded_gross``) and
how much tax (``refunded_tax``). A refund decides the gross it takes from each line; the tax it
reverses is computed on the *cumulative* gross::

    tax_after  = round(line.tax × (refunded_gross + gross) / line.gross)
    tax_now    = tax_after − refunded_tax

so the tax refunded on a line after any sequence of refunds is a function of the cumulative gross
only, and equals the line's tax exactly when the whole line has been refunded. Net is
``gross − tax``; the discount share reversed follows the same cumulative rule.

How the gross is taken from lines
---------------------------------
- ``full``: everything that remains on every line; on an invoice paid only in part, all the money
  captured and not yet refunded, spread over the lines like an amount refund.
- ``lines``: named lines and quantities. ``q`` of the ``r`` units still unrefunded on a line take
  ``remaining_gross × q / r`` (rounded half up); the last unit takes exactly the remainder.
- ``amount``: the amount is spread over the lines in proportion to what remains on each line,
  by largest remainder, so the parts sum exactly to the amount.

Tender allocation (an invoice paid with several methods)
--------------------------------------------------------
With method ``original_payment`` the refund is spread over the invoice's payments in proportion
to what each can still give back (largest remainder, ties to the earliest payment): a card and a
store-credit payment are each refunded to themselves. With method ``store_credit`` the whole
amount goes to the customer's wallet but is still charged against the payments' refundable
amounts, so the total returned can never exceed what was captured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from payback.errors import (
    AmountExceedsRefundable,
    InvalidAmount,
    InvalidQuantity,
    InvoiceNotRefundable,
    NotFound,
    QuantityExceedsRemaining,
    ValidationFailed,
)
from payback.money import allocate, check_minor, mul_div

REASONS = ("duplicate", "fraudulent", "requested_by_customer", "product_defective",
           "not_as_described", "billing_error", "goodwill", "other")
METHODS = ("original_payment", "store_credit")
KINDS = ("full", "amount", "lines")


@dataclass(frozen=True, slots=True)
class LineState:
    """An invoice line with what has already been taken by active refunds."""

    id: str
    kind: str
    description: str
    quantity: int
    gross_minor: int
    tax_minor: int
    discount_minor: int
    refunded_quantity: int = 0
    refunded_gross_minor: int = 0
    refunded_tax_minor: int = 0

    @property
    def remaining_gross(self) -> int:
        return self.gross_minor - self.refunded_gross_minor

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.refunded_quantity


@dataclass(frozen=True, slots=True)
class TenderState:
    """A payment that may give money back."""

    payment_id: str
    method: str
    amount_minor: int
    refunded_minor: int = 0

    @property
    def refundable(self) -> int:
        return self.amount_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class LineRequest:
    line_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class RefundRequest:
    kind: str
    method: str
    reason: str
    amount_minor: int | None = None
    lines: tuple[LineRequest, ...] = ()
    note: str | None = None
    #: The customer expressly agreed to a method other than the original payment (EU/UK law
    #: requires it for store credit instead of money).
    consent_to_other_method: bool = False


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_id: str
    quantity: int
    gross_minor: int
    net_minor: int
    tax_minor: int
    discount_minor: int


@dataclass(frozen=True, slots=True)
class Tender:
    payment_id: str
    payment_method: str
    destination: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class RefundCalculation:
    currency: str
    kind: str
    method: str
    amount_minor: int
    net_minor: int
    tax_minor: int
    lines: tuple[RefundLine, ...]
    tenders: tuple[Tender, ...]
    refundable_before_minor: int
    refundable_after_minor: int
    fee_minor: int = 0

    @property
    def gross_minor(self) -> int:
        """What the lines give back before any fee (= net + tax)."""
        return self.net_minor + self.tax_minor


def validate_request(req: RefundRequest) -> None:
    if req.kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}")
    if req.method not in METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(METHODS)}")
    if req.reason not in REASONS:
        raise ValidationFailed(f"reason must be one of {', '.join(REASONS)}")
    if req.kind == "amount":
        if req.amount_minor is None:
            raise InvalidAmount("a refund by amount needs amount")
        check_minor(req.amount_minor, allow_zero=False)
    elif req.amount_minor is not None:
        raise ValidationFailed(f"amount is only allowed with kind 'amount', not '{req.kind}'")
    if req.kind == "lines":
        _validate_line_requests(req.lines)
    elif req.lines:
        raise ValidationFailed(f"lines are only allowed with kind 'lines', not '{req.kind}'")


def _validate_line_requests(lines: Sequence[LineRequest]) -> None:
    if not lines:
        raise ValidationFailed("a refund by lines needs at least one line")
    seen = set()
    for lr in lines:
        if isinstance(lr.quantity, bool) or not isinstance(lr.quantity, int) or lr.quantity <= 0:
            raise InvalidQuantity(f"quantity for line {lr.line_id} must be a positive integer")
        if lr.line_id in seen:
            raise ValidationFailed(f"line {lr.line_id} is named twice")
        seen.add(lr.line_id)


def calculate(currency: str, lines: Sequence[LineState], tenders: Sequence[TenderState],
              req: RefundRequest) -> RefundCalculation:
    """Compute a refund against the current state, or raise the rule it breaks."""
    validate_request(req)
    refundable = sum(t.refundable for t in tenders)
    if refundable <= 0:
        raise InvoiceNotRefundable(
            "everything paid on this invoice has already been refunded" if tenders
            else "nothing has been paid on this invoice yet, so there is nothing to refund")
    takes = _take_gross(lines, req, refundable)
    refund_lines = tuple(_reverse_line(ln, gross, qty) for ln, gross, qty in takes if gross or qty)
    amount = sum(rl.gross_minor for rl in refund_lines)
    if amount <= 0:
        raise InvoiceNotRefundable("nothing remains to refund on the chosen lines")
    if amount > refundable:
        raise AmountExceedsRefundable(
            f"refund of {amount} exceeds the refundable amount of {refundable}",
            requested_minor=amount, refundable_minor=refundable)
    return RefundCalculation(
        currency=currency, kind=req.kind, method=req.method, amount_minor=amount,
        net_minor=sum(rl.net_minor for rl in refund_lines),
        tax_minor=sum(rl.tax_minor for rl in refund_lines),
        lines=refund_lines, tenders=allocate_tenders(tenders, amount, req.method),
        refundable_before_minor=refundable, refundable_after_minor=refundable - amount)


def _take_gross(lines: Sequence[LineState], req: RefundRequest,
                refundable: int) -> list[tuple[LineState, int, int]]:
    """Per line: (line, gross taken, quantity returned)."""
    if req.kind == "full":
        if sum(ln.remaining_gross for ln in lines) > refundable:
            # Partly paid invoice: "full" gives back all the money captured, spread pro rata.
            parts = allocate(refundable, [ln.remaining_gross for ln in lines])
            return [(ln, part, 0) for ln, part in zip(lines, parts)]
        return [(ln, ln.remaining_gross, ln.remaining_quantity) for ln in lines]
    if req.kind == "amount":
        total_remaining = sum(ln.remaining_gross for ln in lines)
        if req.amount_minor > total_remaining:
            raise AmountExceedsRefundable(
                f"refund of {req.amount_minor} exceeds what remains on the invoice lines "
                f"({total_remaining})", requested_minor=req.amount_minor,
                refundable_minor=total_remaining)
        parts = allocate(req.amount_minor, [ln.remaining_gross for ln in lines])
        return [(ln, part, 0) for ln, part in zip(lines, parts)]
    return _take_by_quantity(lines, req.lines)


def _take_by_quantity(lines: Sequence[LineState],
                      wanted: Sequence[LineRequest]) -> list[tuple[LineState, int, int]]:
    by_id = {ln.id: ln for ln in lines}
    out = []
    for lr in wanted:
        ln = by_id.get(lr.line_id)
        if ln is None:
            raise NotFound(f"invoice line {lr.line_id} is not on this invoice")
        if lr.quantity > ln.remaining_quantity:
            raise QuantityExceedsRemaining(
                f"line {ln.id} has {ln.remaining_quantity} unit(s) left to refund, "
                f"{lr.quantity} requested", line_id=ln.id, remaining=ln.remaining_quantity)
        out.append((ln, gross_for_quantity(ln, lr.quantity), lr.quantity))
    return out


def gross_for_quantity(ln: LineState, quantity: int) -> int:
    """Gross returned for ``quantity`` of the units still unrefunded on a line."""
    if quantity == ln.remaining_quantity:
        return ln.remaining_gross
    return mul_div(ln.remaining_gross, quantity, ln.remaining_quantity, rounding="half_up")


def _reverse_line(ln: LineState, gross: int, quantity: int) -> RefundLine:
    """Net, tax and discount for taking ``gross`` from a line, by the cumulative method."""
    cumulative = ln.refunded_gross_minor + gross
    # Never negative: after a refund was released (rejected, canceled, failed) the stored tax may
    # exceed the proportional share by a minor unit; the last refund of the line settles it.
    tax = max(0, cumulative_share(ln.tax_minor, cumulative, ln.gross_minor)
              - ln.refunded_tax_minor)
    discount = (cumulative_share(ln.discount_minor, cumulative, ln.gross_minor)
                - cumulative_share(ln.discount_minor, ln.refunded_gross_minor, ln.gross_minor))
    return RefundLine(ln.id, quantity, gross, gross - tax, tax, discount)


def apply_fee(calc: RefundCalculation, fee_minor: int,
              tenders: Sequence[TenderState]) -> RefundCalculation:
    """Keep a restocking fee: the customer gets ``amount − fee``; the lines (net and tax) are
    still reversed in full, as California requires for tax. Tenders are re-spread."""
    if fee_minor <= 0:
        return calc
    if fee_minor >= calc.amount_minor:
        raise ValidationFailed("the restocking fee would take the whole refund")
    paid_back = calc.amount_minor - fee_minor
    return replace(calc, amount_minor=paid_back, fee_minor=fee_minor,
                   tenders=allocate_tenders(tenders, paid_back, calc.method),
                   refundable_after_minor=calc.refundable_before_minor - paid_back)


def cumulative_share(part: int, cumulative_gross: int, line_gross: int) -> int:
    """The share of ``part`` (tax or discount) that belongs to ``cumulative_gross`` of a line."""
    if line_gross == 0:
        return 0
    if cumulative_gross == line_gross:
        return part
    return mul_div(part, cumulative_gross, line_gross, rounding="half_up")


def allocate_tenders(tenders: Sequence[TenderState], amount: int, method: str) -> tuple[Tender, ...]:
    """Spread ``amount`` over the payments in proportion to what each can still give back."""
    open_tenders = [t for t in tenders if t.refundable > 0]
    parts = allocate(amount, [t.refundable for t in open_tenders])
    out = []
    for t, part in zip(open_tenders, parts):
        if part == 0:
            continue
        destination = "store_credit" if method == "store_credit" or t.method == "store_credit" \
            else "original_payment"
        out.append(Tender(t.payment_id, t.method, destination, part))
    return tuple(out)
