"""Wire format of payments. Card data: a gateway token, brand, last four and expiry only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from payback.api.types import Currency, In, ListOut, Out, PositiveMinor


class CardIn(In):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    brand: Literal["visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay", "other"]
    last4: Annotated[str, Field(pattern=r"^\d{4}$")]
    exp_month: Annotated[int | None, Field(strict=True, ge=1, le=12)] = None
    exp_year: Annotated[int | None, Field(strict=True, ge=2000, le=2100)] = None


class PaymentCreate(In):
    method: Literal["card", "bank_transfer", "store_credit", "cash", "other"]
    amount_minor: PositiveMinor
    currency: Currency
    card: CardIn | None = None
    reference: Annotated[str | None, Field(max_length=200)] = None
    #: The gateway that captured the payment; ``reference`` is then its payment id and
    #: refunds of this payment are paid back through that gateway.
    gateway: Literal["sandbox", "stripe"] | None = None


class PaymentOut(Out):
    id: str
    invoice_id: str
    method: str
    amount_minor: int
    refunded_minor: int
    currency: str
    card_brand: str | None
    card_last4: str | None
    card_exp_month: int | None
    card_exp_year: int | None
    reference: str | None
    gateway: str | None = None
    captured_at: datetime


class PaymentList(ListOut):
    data: list[PaymentOut]
