"""Wire format of customers and their store credit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from payback.api.types import In, ListOut, Out


class CustomerCreate(In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[str | None, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")] = "en_US"
    country: Annotated[str | None, Field(pattern=r"^[A-Za-z]{2}$")] = None
    #: Postal address as printed on documents (lines separated by newlines).
    address: Annotated[str | None, Field(max_length=1000)] = None
    #: Validated with python-stdnum (EU, GB, and countries it knows); 422 invalid_vat_number.
    vat_number: Annotated[str | None, Field(max_length=40)] = None


class CustomerOut(Out):
    id: str
    name: str
    email: str | None
    locale: str
    country: str | None
    address: str | None = None
    vat_number: str | None = None
    created_at: datetime


class CustomerList(ListOut):
    data: list[CustomerOut]

