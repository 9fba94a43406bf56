"""What a tax document says, as one immutable value that every rendering reads.

An invoice and a credit note are both a ``Document``: parties, number and date, lines, a tax
breakdown per rate and totals; a credit note also names the invoice it amends (EU VAT Directive
Art 219 / 226b; UBL ``BillingReference``) and how its total was settled (``Split``). A void note
names the credit note it reverses and is rendered with its amounts negated (``sign = -1``); the
stored amounts stay non-negative.

Invariants: pure data, no I/O; the tax breakdown is computed from the lines, so it always sums
to the document's net and tax; everything a rendering needs is here, so PDF, HTML and UBL of one
document cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

DOCUMENT_TYPES = ("invoice", "credit_note")

#: What the part of a credit note's total that was neither paid back nor credited to store
#: credit means, by kind of note.
OUTSIDE_LABELS = {"refund": "Kept as restocking fee",
                  "adjustment": "Settled against the invoice balance"}


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address: str | None = None
    country: str | None = None
    vat_number: str | None = None
    email: str | None = None

    @property
    def address_lines(self) -> list[str]:
        return [ln.strip() for ln in (self.address or "").splitlines() if ln.strip()]


@dataclass(frozen=True, slots=True)
class DocLine:
    position: int
    description: str
    quantity: int
    tax_rate: Decimal
    net_minor: int
    tax_minor: int
    gross_minor: int
    #: The invoice line's unit price (before discounts); for credit notes, the credited line's.
    unit_price_minor: int | None = None
    discount_minor: int = 0


@dataclass(frozen=True, slots=True)
class Reference:
    """Another document this one refers to: its number and issue date."""

    number: str
    issued_on: date


@dataclass(frozen=True, slots=True)
class Split:
    """How a credit note's total was settled; the parts sum to the total."""

    refunded_minor: int
    credited_minor: int
    outside_minor: int
    outside_label: str


@dataclass(frozen=True, slots=True)
class TaxSubtotal:
    rate: Decimal
    net_minor: int
    tax_minor: int


@dataclass(frozen=True, slots=True)
class Document:
    type: str  # invoice | credit_note
    kind: str  # invoice: "invoice"; credit note: refund | adjustment | void
    number: str
    issued_on: date
    currency: str
    locale: str
    tax_mode: str
    seller: Party
    buyer: Party
    lines: tuple[DocLine, ...]
    net_minor: int
    tax_minor: int
    total_minor: int
    invoice_ref: Reference | None = None
    voids_ref: Reference | None = None
    split: Split | None = None
    reason: str | None = None
    memo: str | None = None
    discount_minor: int = 0
    #: The stored hash of the UBL rendering (shown on PDF/HTML; never part of the UBL itself).
    document_sha256: str | None = field(default=None, compare=False)

    @property
    def sign(self) -> int:
        """-1 for a void note (it reverses a credit note), else 1."""
        return -1 if self.kind == "void" else 1

    def tax_breakdown(self) -> list[TaxSubtotal]:
        """Taxable amount and tax per rate, lowest rate first."""
        buckets: dict[Decimal, list[int]] = {}
        for ln in self.lines:
            bucket = buckets.setdefault(Decimal(ln.tax_rate).normalize(), [0, 0])
            bucket[0] += ln.net_minor
            bucket[1] += ln.tax_minor
        return [TaxSubtotal(rate, net, tax) for rate, (net, tax) in sorted(buckets.items())]


def percent(rate: Decimal) -> str:
    """0.2 → '20', 0.055 → '5.5' (no float, no trailing zeros)."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}"


def reason_label(reason: str | None) -> str:
    return (reason or "").replace("_", " ").capitalize()
