"""HTTP routes for refunds: preview (writes nothing), create, get, list, overdue, and the
approval steps (approve, reject, cancel)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.approvals import service as approvals
from payback.refunds import schemas, service

router = APIRouter(tags=["refunds"])
RefundId = Path(max_length=40)


@router.post("/invoices/{invoice_id}/refunds/preview", status_code=200,
             response_model=schemas.RefundPreviewOut)
async def preview_refund(body: schemas.RefundCreate, invoice_id: str = Path(max_length=40),
                         ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.preview_refund(
        conn, invoice_id, body.to_domain(), currency=body.currency, actor=ctx.actor,
        seller_id=ctx.seller_id, now=ctx.clock.now()),
        schemas.RefundPreviewOut.model_validate)


@router.post("/invoices/{invoice_id}/refunds", status_code=201, response_model=schemas.RefundOut)
async def create_refund(body: schemas.RefundCreate, invoice_id: str = Path(max_length=40),
                        ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: service.create_refund(
        conn, ctx.clock, invoice_id, body.to_domain(), currency=body.currency, actor=ctx.actor,
        seller_id=ctx.seller_id), schemas.RefundOut.model_validate)


@router.get("/refunds", response_model=schemas.RefundList)
async def list_refunds(page: Page = Depends(page_params),
                       invoice_id: str | None = Query(None, max_length=40),
                       status: str | None = Query(None, max_length=20),
                       ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_refunds(conn, invoice_id=invoice_id, status=status,
                                    seller_id=ctx.seller_id, **kw)
    return await ctx.read(paginate(page, fetch, schemas.RefundSummaryOut.model_validate),
                          lambda x: x)


@router.get("/refunds/overdue", response_model=schemas.OverdueList)
async def list_overdue(due_within_days: int = Query(0, ge=0, le=365),
                       ctx: Context = Depends(context)):
    """Unfinished refunds past their due date, or due within ``due_within_days``."""
    return await ctx.read(lambda conn: {"data": service.list_overdue(
        conn, ctx.clock.now(), due_within_days=due_within_days, seller_id=ctx.seller_id)},
        schemas.OverdueList.model_validate)


@router.get("/refunds/{refund_id}", response_model=schemas.RefundOut)
async def get_refund(refund_id: str = RefundId, ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_refund(conn, refund_id, ctx.seller_id),
                          schemas.RefundOut.model_validate)


@router.post("/refunds/{refund_id}/approve", status_code=200, response_model=schemas.RefundOut)
async def approve_refund(body: schemas.RefundCommentIn | None = None, refund_id: str = RefundId,
                         ctx: Context = Depends(context)):
    comment = body.comment if body else None
    return await ctx.write(lambda conn: approvals.approve_refund(
        conn, ctx.clock, refund_id, actor=ctx.actor, comment=comment,
        seller_id=ctx.seller_id), schemas.RefundOut.model_validate, status=200)


@router.post("/refunds/{refund_id}/reject", status_code=200, response_model=schemas.RefundOut)
async def reject_refund(body: schemas.RefundRejectIn, refund_id: str = RefundId,
                        ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: approvals.reject_refund(
        conn, ctx.clock, refund_id, actor=ctx.actor, comment=body.comment,
        seller_id=ctx.seller_id), schemas.RefundOut.model_validate, status=200)


@router.post("/refunds/{refund_id}/cancel", status_code=200, response_model=schemas.RefundOut)
async def cancel_refund(body: schemas.RefundCommentIn | None = None, refund_id: str = RefundId,
                        ctx: Context = Depends(context)):
    comment = body.comment if body else None
    return await ctx.write(lambda conn: approvals.cancel_refund(
        conn, ctx.clock, refund_id, actor=ctx.actor, comment=comment,
        seller_id=ctx.seller_id), schemas.RefundOut.model_validate, status=200)
