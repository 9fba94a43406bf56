"""HTTP routes for payments."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.payments import schemas, service

router = APIRouter(tags=["payments"])


@router.post("/invoices/{invoice_id}/payments", status_code=201,
             response_model=schemas.PaymentOut)
async def record_payment(body: schemas.PaymentCreate, invoice_id: str = Path(max_length=40),
                         ctx: Context = Depends(context)):
    card = body.card.model_dump() if body.card else None
    return await ctx.write(lambda conn: service.record_payment(
        conn, ctx.clock, invoice_id, method=body.method, amount_minor=body.amount_minor,
        currency=body.currency, card=card, reference=body.reference, gateway=body.gateway,
        seller_id=ctx.seller_id),
        schemas.PaymentOut.model_validate)


@router.get("/payments", response_model=schemas.PaymentList)
async def list_payments(page: Page = Depends(page_params),
                        invoice_id: str | None = Query(None, max_length=40),
                        ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_payments(conn, invoice_id=invoice_id, seller_id=ctx.seller_id,
                                     **kw)
    return await ctx.read(paginate(page, fetch, schemas.PaymentOut.model_validate), lambda x: x)


@router.get("/payments/{payment_id}", response_model=schemas.PaymentOut)
async def get_payment(payment_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_payment(conn, payment_id, ctx.seller_id),
                          schemas.PaymentOut.model_validate)
