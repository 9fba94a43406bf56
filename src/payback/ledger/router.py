"""HTTP routes for the ledger: trial balance and journal entries."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.ledger import service

router = APIRouter(tags=["ledger"])


@router.get("/ledger/trial-balance")
async def trial_balance(currency: str | None = Query(None, min_length=3, max_length=3),
                        ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.trial_balance(
        conn, currency.upper() if currency else None, seller_id=ctx.seller_id), lambda x: x)


@router.get("/ledger/entries")
async def list_entries(page: Page = Depends(page_params),
                       object_id: str | None = Query(None, max_length=40),
                       ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_entries(conn, object_id=object_id, seller_id=ctx.seller_id, **kw)
    return await ctx.read(paginate(page, fetch, lambda e: e), lambda x: x)
