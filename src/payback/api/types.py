"""Wire types shared by the feature schemas: strict integer minor units, currency codes, ids."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from payback.money import MAX_MINOR

#: A positive amount in minor units: JSON integer only (no strings, no fractions), 64-bit.
PositiveMinor = Annotated[int, Field(strict=True, ge=1, le=MAX_MINOR)]
#: A non-negative amount in minor units.
Minor = Annotated[int, Field(strict=True, ge=0, le=MAX_MINOR)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=10**9)]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$",
                                description="ISO 4217 code, e.g. EUR")]
Id = Annotated[str, Field(min_length=1, max_length=40)]


class In(BaseModel):
    """Request bodies: unknown fields are refused (no mass assignment)."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore", from_attributes=True)


class ListOut(BaseModel):
    object: str = "list"
    has_more: bool
    next_cursor: str | None


__all__ = ["PositiveMinor", "Minor", "Quantity", "Currency", "Id", "In", "Out", "ListOut",
           "datetime"]
