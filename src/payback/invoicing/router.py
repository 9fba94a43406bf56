"""HTTP routes for invoices."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.invoicing import schemas, service

router = APIRouter(tags=["invoices"])


@router.post("/invoices", status_code=201, response_model=schemas.InvoiceOut)
async def create_invoice(body: schemas.InvoiceCreate, ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: service.create_invoice(
        conn, ctx.clock, customer_id=body.customer_id, currency=body.currency,
        tax_mode=body.tax_mode, lines=body.domain_lines(), discount_minor=body.discount_minor,
        memo=body.memo, rounding=ctx.settings.tax_rounding, prefix=ctx.settings.invoice_prefix,
        seller_id=ctx.seller_id, contract_type=body.contract_type,
        delivered_at=body.delivered_at),
        schemas.InvoiceOut.model_validate)


@router.get("/invoices", response_model=schemas.InvoiceList)
async def list_invoices(page: Page = Depends(page_params),
                        customer_id: str | None = Query(None, max_length=40),
                        ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_invoices(conn, customer_id=customer_id, seller_id=ctx.seller_id,
                                     **kw)
    return await ctx.read(paginate(page, fetch, schemas.InvoiceSummaryOut.model_validate),
                          lambda x: x)


@router.get("/invoices/{invoice_id}", response_model=schemas.InvoiceOut)
async def get_invoice(invoice_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_invoice(conn, invoice_id, ctx.seller_id),
                          schemas.InvoiceOut.model_validate)


@router.post("/invoices/{invoice_id}/void", status_code=200, response_model=schemas.InvoiceOut)
async def void_invoice(invoice_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: service.void_invoice(conn, ctx.clock, invoice_id,
                                                                ctx.seller_id),
                           schemas.InvoiceOut.model_validate, status=200)
