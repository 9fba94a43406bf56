"""HTTP routes for the audit trail: list records (filtered, cursor-paginated by ``seq``) and verify
the hash chain.

A caller bound to a seller (``ctx.principal.seller_id``) only ever sees that seller's records.
Verification covers the whole chain (it is one chain for the installation), and answers only
whether it holds, how many records it has and where it first breaks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from payback.api.deps import Context, context
from payback.audit import service

router = APIRouter(tags=["audit"])


class AuditRecordOut(BaseModel):
    seq: int
    at: datetime
    seller_id: str | None
    actor_id: str
    actor_kind: str
    actor_role: str | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: Literal["allowed", "refused", "error"]
    summary: dict[str, Any]
    origin: str
    request_id: str | None
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditRecordOut]
    has_more: bool
    next_cursor: str | None


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None
    last_hash: str


def _utc(value: datetime | None) -> datetime | None:
    """A timestamp without a zone is read as UTC (every time in Payback is UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@router.get("/audit", response_model=AuditList)
async def list_audit_records(
        object_id: str | None = Query(None, max_length=40),
        actor_id: str | None = Query(None, max_length=60),
        action: str | None = Query(None, max_length=60),
        outcome: Literal["allowed", "refused", "error"] | None = Query(None),
        date_from: datetime | None = Query(None, alias="from",
                                           description="ISO 8601; inclusive"),
        date_to: datetime | None = Query(None, alias="to", description="ISO 8601; exclusive"),
        limit: int = Query(50, ge=1, le=200),
        starting_after: int | None = Query(None, ge=0, description="a record's seq"),
        ctx: Context = Depends(context)):
    seller_id = getattr(ctx.principal, "seller_id", None)

    def call(conn) -> dict:
        rows = service.query(conn, seller_id=seller_id, object_id=object_id, actor_id=actor_id,
                             action=action, outcome=outcome, date_from=_utc(date_from),
                             date_to=_utc(date_to), after_seq=starting_after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"object": "list", "data": [AuditRecordOut.model_validate(r) for r in rows],
                "has_more": more, "next_cursor": str(rows[-1]["seq"]) if more else None}
    return await ctx.read(call, lambda x: x)


@router.get("/audit/verify", response_model=AuditVerifyOut)
async def verify_audit_trail(ctx: Context = Depends(context)):
    return await ctx.read(service.verify, lambda r: AuditVerifyOut(
        ok=r.ok, checked=r.checked, first_broken_seq=r.first_broken_seq, reason=r.reason,
        last_hash=r.last_hash))
