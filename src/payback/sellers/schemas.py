"""Wire format of the seller's document details."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from payback.api.types import In, Out


class SellerUpdate(In):
    """Only the fields sent are changed; ``null`` clears an optional one."""

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    address: Annotated[str | None, Field(max_length=1000)] = None
    country: Annotated[str | None, Field(pattern=r"^[A-Za-z]{2}$")] = None
    vat_number: Annotated[str | None, Field(max_length=40)] = None
    email: Annotated[str | None, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] = None

    def changes(self) -> dict:
        return self.model_dump(exclude_unset=True)


class SellerOut(Out):
    id: str
    name: str
    address: str | None
    country: str | None
    vat_number: str | None
    email: str | None
    created_at: datetime
