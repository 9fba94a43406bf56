"""Wire format of refunds and refund previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from payback.api.types import Currency, Id, In, ListOut, Out, PositiveMinor, Quantity
from payback.refunds.domain import REASONS, LineRequest, RefundRequest

Reason = Literal[REASONS]  # type: ignore[valid-type]


class RefundLineIn(In):
    line_id: Id
    quantity: Quantity


class RefundCreate(In):
    """``kind``: ``full`` (everything left), ``amount`` (spread pro rata over the lines) or
    ``lines`` (named lines and quantities, shipping included)."""

    kind: Literal["full", "amount", "lines"]
    method: Literal["original_payment", "store_credit"] = "original_payment"
    reason: Reason
    amount_minor: PositiveMinor | None = None
    currency: Currency | None = None
    lines: Annotated[list[RefundLineIn] | None, Field(max_length=500)] = None
    note: Annotated[str | None, Field(max_length=2000)] = None
    consent_to_other_method: bool = Field(
        False, description="The customer expressly agreed to be refunded by another method "
                           "than the original payment (e.g. store credit)")

    @model_validator(mode="after")
    def _shape(self):
        if self.kind == "amount" and self.amount_minor is None:
            raise ValueError("amount_minor is required when kind is 'amount'")
        if self.kind == "lines" and not self.lines:
            raise ValueError("lines is required when kind is 'lines'")
        return self

    def to_domain(self) -> RefundRequest:
        lines = tuple(LineRequest(ln.line_id, ln.quantity) for ln in self.lines or ())
        return RefundRequest(kind=self.kind, method=self.method, reason=self.reason,
                             amount_minor=self.amount_minor, lines=lines, note=self.note,
                             consent_to_other_method=self.consent_to_other_method)


class RefundLineOut(Out):
    invoice_line_id: str
    quantity: int
    gross_minor: int
    net_minor: int
    tax_minor: int
    discount_minor: int


class TenderOut(Out):
    payment_id: str
    destination: str
    amount_minor: int


class PreviewTenderOut(TenderOut):
    payment_method: str


class ExplanationOut(Out):
    rule: str
    text: str
    values: dict = {}


class DecisionOut(Out):
    """What the refund policy decided, and why, in plain language."""

    outcome: str
    due_at: datetime | None
    fee_minor: int
    bonus_minor: int
    four_eyes: bool
    policy_id: str
    policy_version: str
    allowed_methods: list[str]
    explanations: list[ExplanationOut]
    deadlines: dict = {}


class RefundPreviewOut(Out):
    object: str = "refund_preview"
    invoice_id: str
    currency: str
    kind: str
    method: str
    reason: str
    amount_minor: int
    net_minor: int
    tax_minor: int
    fee_minor: int
    refundable_before_minor: int
    refundable_after_minor: int
    lines: list[RefundLineOut]
    tenders: list[PreviewTenderOut]
    decision: DecisionOut


class RefundSummaryOut(Out):
    id: str
    invoice_id: str
    customer_id: str
    status: str
    kind: str
    method: str
    reason: str
    note: str | None
    currency: str
    amount_minor: int
    net_minor: int
    tax_minor: int
    fee_minor: int
    bonus_minor: int
    requested_by: str | None
    approved_by: str | None
    policy_id: str | None
    policy_version: str | None
    due_at: datetime | None
    created_at: datetime
    settled_at: datetime | None
    #: The refund this one replaces after its gateway refund failed (a fallback).
    fallback_of: str | None = None


class RefundEventOut(Out):
    from_status: str | None
    to_status: str
    actor_id: str
    actor_role: str | None
    comment: str | None
    at: datetime


class RefundOut(RefundSummaryOut):
    decision: DecisionOut | None = None
    lines: list[RefundLineOut]
    tenders: list[TenderOut]
    events: list[RefundEventOut] = []


class RefundCommentIn(In):
    comment: Annotated[str | None, Field(max_length=2000)] = None


class RefundRejectIn(In):
    comment: Annotated[str, Field(min_length=1, max_length=2000,
                                  description="Why: shown to the requester and the customer")]


class OverdueRefundOut(RefundSummaryOut):
    overdue: bool


class OverdueList(Out):
    object: str = "list"
    data: list[OverdueRefundOut]


class RefundList(ListOut):
    data: list[RefundSummaryOut]
