"""Wire format of invoices. Rates are decimal strings ("0.20" = 20 %); amounts are integers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from payback.api.types import Currency, Id, In, ListOut, Minor, Out, PositiveMinor, Quantity
from payback.invoicing.domain import LineInput

TaxRate = Annotated[Decimal, Field(ge=0, le=1, max_digits=9, decimal_places=6,
                                   description="0.20 means 20 %")]


class LineIn(In):
    description: Annotated[str, Field(min_length=1, max_length=500)]
    quantity: Quantity
    unit_price_minor: Minor
    tax_rate: TaxRate
    discount_minor: Minor = 0
    sku: Annotated[str | None, Field(max_length=100)] = None
    category: Annotated[str | None, Field(max_length=100)] = None

    def to_domain(self, kind: str = "item") -> LineInput:
        return LineInput(self.description, self.quantity, self.unit_price_minor, self.tax_rate,
                         self.discount_minor, kind, self.sku, self.category)


class ShippingIn(In):
    description: Annotated[str, Field(min_length=1, max_length=500)] = "Shipping"
    amount_minor: PositiveMinor
    tax_rate: TaxRate

    def to_domain(self) -> LineInput:
        return LineInput(self.description, 1, self.amount_minor, self.tax_rate, 0, "shipping")


class InvoiceCreate(In):
    customer_id: Id
    currency: Currency
    tax_mode: Literal["exclusive", "inclusive"] = "exclusive"
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=500)]
    shipping: ShippingIn | None = None
    discount_minor: Minor = 0
    memo: Annotated[str | None, Field(max_length=2000)] = None
    contract_type: Literal["goods", "subscription", "services", "digital_content"] = Field(
        "goods", description="What the statutory refund clock counts from (EU/UK): goods from "
                             "delivery, services and digital content from the contract")
    delivered_at: datetime | None = Field(
        None, description="When the (last) goods arrived; refund windows start here")

    def domain_lines(self) -> list[LineInput]:
        out = [ln.to_domain() for ln in self.lines]
        return out + ([self.shipping.to_domain()] if self.shipping else [])


class LineOut(Out):
    id: str
    position: int
    kind: str
    description: str
    sku: str | None
    category: str | None
    quantity: int
    unit_price_minor: int
    line_discount_minor: int
    invoice_discount_minor: int
    tax_rate: str
    net_minor: int
    tax_minor: int
    gross_minor: int
    refunded_quantity: int
    refunded_gross_minor: int
    refunded_tax_minor: int
    refundable_quantity: int
    refundable_gross_minor: int


class InvoiceSummaryOut(Out):
    id: str
    number: str
    customer_id: str
    currency: str
    tax_mode: str
    status: str
    subtotal_minor: int
    discount_minor: int
    net_minor: int
    tax_minor: int
    total_minor: int
    amount_paid_minor: int
    amount_due_minor: int
    amount_refunded_minor: int
    amount_pending_refund_minor: int
    amount_refundable_minor: int
    memo: str | None
    contract_type: str = "goods"
    delivered_at: datetime | None = None
    issued_at: datetime
    voided_at: datetime | None


class InvoiceOut(InvoiceSummaryOut):
    lines: list[LineOut]


class InvoiceList(ListOut):
    data: list[InvoiceSummaryOut]
