"""Invoice arithmetic: lines, discounts, tax and totals. Pure functions, no I/O.

How an invoice is computed (and documented for users in docs/money-and-tax.md):

1. ``base = quantity × unit_price`` per line, minus the line's own discount.
2. The invoice-level discount is apportioned to the item lines (not shipping) in proportion to
   their amount after line discount, by largest remainder, so the shares sum to the discount.
3. The result is the line's *taxable amount*. With **tax-exclusive** pricing it is the net and
   ``tax = round(net × rate)``; with **tax-inclusive** pricing it is the gross and
   ``tax = round(gross × rate / (1 + rate))``, ``net = gross − tax``.
4. Tax is rounded **per line** with the configured mode (``half_up`` by default). Invoice totals
   are sums of line values, so the invoice always equals the sum of its lines to the minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from payback.errors import InvalidInvoice
from payback.money import allocate, check_minor, round_minor

TAX_MODES = ("exclusive", "inclusive")
LINE_KINDS = ("item", "shipping")
MAX_TAX_RATE = Decimal("1")  # 100 %: anything higher is a typo (25 instead of 0.25)


@dataclass(frozen=True, slots=True)
class LineInput:
    description: str
    quantity: int
    unit_price_minor: int
    tax_rate: Decimal
    discount_minor: int = 0
    kind: str = "item"
    sku: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class ComputedLine:
    position: int
    kind: str
    description: str
    sku: str | None
    category: str | None
    quantity: int
    unit_price_minor: int
    line_discount_minor: int
    invoice_discount_minor: int
    tax_rate: Decimal
    net_minor: int
    tax_minor: int
    gross_minor: int

    @property
    def discount_minor(self) -> int:
        return self.line_discount_minor + self.invoice_discount_minor


@dataclass(frozen=True, slots=True)
class ComputedInvoice:
    currency: str
    tax_mode: str
    lines: tuple[ComputedLine, ...]
    discount_minor: int
    subtotal_minor: int
    net_minor: int
    tax_minor: int
    total_minor: int

    def tax_by_rate(self) -> dict[Decimal, dict[str, int]]:
        """Taxable net and tax per rate: the breakdown a tax document shows."""
        out: dict[Decimal, dict[str, int]] = {}
        for line in self.lines:
            bucket = out.setdefault(line.tax_rate, {"net_minor": 0, "tax_minor": 0})
            bucket["net_minor"] += line.net_minor
            bucket["tax_minor"] += line.tax_minor
        return out


def compute_invoice(currency: str, tax_mode: str, lines: Sequence[LineInput],
                    discount_minor: int = 0, *, rounding: str = "half_up") -> ComputedInvoice:
    """Validate the inputs and compute every line and total (see the module docstring)."""
    _validate(tax_mode, lines, discount_minor)
    after_line_discount = [ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in lines]
    shares = _apportion_discount(lines, after_line_discount, discount_minor)
    computed = tuple(
        _compute_line(i, ln, after_line_discount[i] - shares[i], shares[i], tax_mode, rounding)
        for i, ln in enumerate(lines))
    net = sum(c.net_minor for c in computed)
    tax = sum(c.tax_minor for c in computed)
    subtotal = sum(ln.quantity * ln.unit_price_minor for ln in lines)
    discounts = sum(c.discount_minor for c in computed)
    return ComputedInvoice(currency, tax_mode, computed, discounts, subtotal, net, tax, net + tax)


def _validate(tax_mode: str, lines: Sequence[LineInput], discount_minor: int) -> None:
    if tax_mode not in TAX_MODES:
        raise InvalidInvoice(f"tax_mode must be one of {', '.join(TAX_MODES)}")
    if not lines:
        raise InvalidInvoice("an invoice needs at least one line")
    check_minor(discount_minor)
    for i, ln in enumerate(lines):
        _validate_line(i, ln)
    if discount_minor and not any(ln.kind == "item" for ln in lines):
        raise InvalidInvoice("an invoice discount needs at least one item line")


def _validate_line(i: int, ln: LineInput) -> None:
    where = f"lines[{i}]"
    if ln.kind not in LINE_KINDS:
        raise InvalidInvoice(f"{where}.kind must be one of {', '.join(LINE_KINDS)}")
    if isinstance(ln.quantity, bool) or not isinstance(ln.quantity, int) or ln.quantity <= 0:
        raise InvalidInvoice(f"{where}.quantity must be a positive integer")
    check_minor(ln.unit_price_minor)
    check_minor(ln.discount_minor)
    if not isinstance(ln.tax_rate, Decimal) or not (0 <= ln.tax_rate <= MAX_TAX_RATE):
        raise InvalidInvoice(f"{where}.tax_rate must be a decimal between 0 and 1 (0.2 = 20%)")
    if ln.discount_minor > ln.quantity * ln.unit_price_minor:
        raise InvalidInvoice(f"{where}.discount exceeds the line amount")
    check_minor(ln.quantity * ln.unit_price_minor)


def _apportion_discount(lines: Sequence[LineInput], amounts: list[int], discount: int) -> list[int]:
    weights = [amt if ln.kind == "item" else 0 for ln, amt in zip(lines, amounts)]
    if discount > sum(weights):
        raise InvalidInvoice("the invoice discount exceeds the item lines' amount")
    if discount == 0:
        return [0] * len(lines)
    return allocate(discount, weights)


def _compute_line(position: int, ln: LineInput, taxable: int, share: int, tax_mode: str,
                  rounding: str) -> ComputedLine:
    if tax_mode == "exclusive":
        net = taxable
        tax = round_minor(Decimal(net) * ln.tax_rate, rounding=rounding)
        gross = net + tax
    else:
        gross = taxable
        tax = round_minor(Decimal(gross) * ln.tax_rate / (1 + ln.tax_rate), rounding=rounding)
        net = gross - tax
    return ComputedLine(position, ln.kind, ln.description, ln.sku, ln.category, ln.quantity,
                        ln.unit_price_minor, ln.discount_minor, share, ln.tax_rate, net, tax,
                        gross)


def derive_status(total: int, paid: int, refunded: int, voided: bool) -> str:
    """Invoice status from its payments and settled refunds (never stored, always derived)."""
    if voided:
        return "void"
    if refunded > 0 and refunded >= paid and paid >= total:
        return "refunded"
    if refunded > 0:
        return "partially_refunded"
    if total == 0 or paid >= total:
        return "paid"
    return "open"
