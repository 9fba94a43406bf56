"""Wire format of the access endpoints: who am I, staff accounts, API keys.

No password hash or key digest is ever in a response model; the token appears only in
``KeyCreated``, the answer to the request that created the key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from payback.api.types import In, ListOut, Out

Role = Literal["viewer", "agent", "approver", "admin", "auditor"]


class MeOut(Out):
    id: str
    kind: str
    seller_id: str
    role: str
    name: str
    scopes: list[str] | None
    permissions: list[str]


class UserCreate(In):
    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserOut(Out):
    id: str
    seller_id: str
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(ListOut):
    data: list[UserOut]


class KeyCreate(In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    scopes: Annotated[list[Annotated[str, Field(max_length=40)]] | None, Field(
        max_length=50,
        description="Permissions this key may use (a subset of its role's); omit for all")] = None
    expires_at: datetime | None = None


class KeyOut(Out):
    id: str
    seller_id: str
    name: str
    prefix: str
    role: str
    scopes: list[str] | None
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    token: str = Field(description="The secret token, shown this once: store it now")


class KeyList(ListOut):
    data: list[KeyOut]
