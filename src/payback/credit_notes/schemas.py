"""Wire format of credit notes: the adjustment and void requests, and the note as returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from payback.api.types import Currency, Id, In, ListOut, Out, PositiveMinor, Quantity
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.refunds.domain import REASONS

Reason = Literal[REASONS]  # type: ignore[valid-type]
Memo = Annotated[str | None, Field(max_length=2000)]


class AdjustmentLineIn(In):
    """Credit one invoice line by a gross amount (tax included) or by a number of units."""

    invoice_line_id: Id
    amount_minor: PositiveMinor | None = None
    quantity: Quantity | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.amount_minor is None) == (self.quantity is None):
            raise ValueError("give either amount_minor or quantity for each line")
        return self


class AdjustmentCreate(In):
    reason: Reason
    lines: Annotated[list[AdjustmentLineIn], Field(min_length=1, max_length=500)]
    currency: Currency | None = None
    memo: Memo = None

    def to_domain(self) -> AdjustmentRequest:
        return AdjustmentRequest(
            reason=self.reason, currency=self.currency, memo=self.memo,
            lines=tuple(AdjustmentLine(ln.invoice_line_id, ln.amount_minor, ln.quantity)
                        for ln in self.lines))


class VoidCreate(In):
    reason: Reason
    memo: Memo = None


class CreditNoteLineOut(Out):
    invoice_line_id: str
    description: str
    quantity: int
    tax_rate: str
    net_minor: int
    tax_minor: int
    gross_minor: int


class CreditNoteSummaryOut(Out):
    id: str
    number: str
    kind: str
    invoice_id: str
    invoice_number: str
    refund_id: str | None
    voids_id: str | None
    reason: str
    memo: str | None
    currency: str
    net_minor: int
    tax_minor: int
    total_minor: int
    refunded_minor: int
    credited_minor: int
    outside_minor: int
    locale: str
    issued_at: datetime
    document_sha256: str | None


class CreditNoteOut(CreditNoteSummaryOut):
    invoice_issued_at: datetime
    voided_by_id: str | None
    lines: list[CreditNoteLineOut]


class CreditNoteList(ListOut):
    data: list[CreditNoteSummaryOut]
