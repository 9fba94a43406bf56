"""Wire format of store credit: wallets, lots, staff grants, revocations and statements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from payback.api.types import Currency, In, Out, PositiveMinor


class WalletTransactionOut(Out):
    id: str
    kind: str
    amount_minor: int
    balance_after_minor: int
    lot_id: str | None = None
    refund_id: str | None
    payment_id: str | None
    memo: str | None = None
    created_at: datetime


class LotOut(Out):
    id: str
    kind: str
    amount_minor: int
    remaining_minor: int
    expires_at: datetime | None
    refund_id: str | None
    created_at: datetime
    closed_at: datetime | None


class LotDetailOut(LotOut):
    wallet_id: str
    customer_id: str
    currency: str


class WalletOut(Out):
    id: str
    customer_id: str
    currency: str
    balance_minor: int
    transactions: list[WalletTransactionOut] | None = None
    lots: list[LotOut] | None = None


class WalletList(Out):
    object: str = "list"
    data: list[WalletOut]


class GrantIn(In):
    """Goodwill or promotional credit given by staff (refund credit comes from refunds)."""

    kind: Literal["goodwill", "promotional"]
    amount_minor: PositiveMinor
    currency: Currency
    expires_at: AwareDatetime | None = None
    memo: Annotated[str, Field(min_length=1, max_length=500,
                               description="Why the credit is given (kept on the wallet).")]


class RevokeIn(In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class StatementLineOut(Out):
    id: str
    created_at: datetime
    kind: str
    lot_id: str | None
    lot_kind: str | None
    amount_minor: int
    balance_minor: int = Field(description="Running balance after this transaction.")
    refund_id: str | None
    payment_id: str | None
    memo: str | None


class StatementOut(Out):
    customer_id: str
    currency: str
    wallet_id: str
    from_: datetime | None = Field(None, alias="from", serialization_alias="from")
    to: datetime | None
    opening_balance_minor: int
    closing_balance_minor: int
    totals_by_kind: dict[str, int]
    transactions: list[StatementLineOut]
