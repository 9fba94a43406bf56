"""HTTP routes for refunds: preview (writes nothing), create, get, list."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.refunds import schemas, service

router = APIRouter(tags=["refunds"])


@router.post("/invoices/{invoice_id}/refunds/preview", status_code=200,
             response_model=schemas.RefundPreviewOut)
async def preview_refund(body: schemas.RefundCreate, invoice_id: str = Path(max_length=40),
                         ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.preview_refund(
        conn, invoice_id, body.to_domain(), currency=body.currency),
        schemas.RefundPreviewOut.model_validate)


@router.post("/invoices/{invoice_id}/refunds", status_code=201, response_model=schemas.RefundOut)
async def create_refund(body: schemas.RefundCreate, invoice_id: str = Path(max_length=40),
                        ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: service.create_refund(
        conn, ctx.clock, invoice_id, body.to_domain(), currency=body.currency),
        schemas.RefundOut.model_validate)


@router.get("/refunds", response_model=schemas.RefundList)
async def list_refunds(page: Page = Depends(page_params),
                       invoice_id: str | None = Query(None, max_length=40),
                       status: str | None = Query(None, max_length=20),
                       ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_refunds(conn, invoice_id=invoice_id, status=status, **kw)
    return await ctx.read(paginate(page, fetch, schemas.RefundSummaryOut.model_validate),
                          lambda x: x)


@router.get("/refunds/{refund_id}", response_model=schemas.RefundOut)
async def get_refund(refund_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_refund(conn, refund_id),
                          schemas.RefundOut.model_validate)
