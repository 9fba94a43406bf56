"""HTTP routes for reports."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Query

from payback.api.deps import Context, context
from payback.reports import service, tax

router = APIRouter(tags=["reports"])


@router.get("/reports/revenue")
async def revenue(date_from: date = Query(alias="from"), date_to: date = Query(alias="to"),
                  currency: str | None = Query(None, min_length=3, max_length=3),
                  group_by: Literal["none", "month"] = "none",
                  ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.revenue(conn, date_from, date_to, currency,
                                                       group_by, seller_id=ctx.seller_id), lambda x: x)


@router.get("/reports/tax")
async def tax_report(date_from: date = Query(alias="from"), date_to: date = Query(alias="to"),
                     currency: str | None = Query(None, min_length=3, max_length=3),
                     ctx: Context = Depends(context)):
    """Tax collected, refunded through credit notes and due, per country and rate, per currency,
    with each currency's reconciliation against Tax payable in the ledger."""
    return await ctx.read(lambda conn: tax.tax_report(conn, date_from, date_to,
                                                      seller_id=ctx.seller_id,
                                                      currency=currency), lambda x: x)
