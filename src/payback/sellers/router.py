"""HTTP routes for the caller's seller: read its document details, set them."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from payback.api.deps import Context, context
from payback.sellers import schemas, service

router = APIRouter(tags=["seller"])


@router.get("/seller", response_model=schemas.SellerOut)
async def get_seller(ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_seller(conn, ctx.seller_id),
                          schemas.SellerOut.model_validate)


@router.post("/seller", status_code=200, response_model=schemas.SellerOut)
async def update_seller(body: schemas.SellerUpdate, ctx: Context = Depends(context)):
    """Set the name, address, country, VAT number and e-mail printed on documents."""
    return await ctx.write(lambda conn: service.update_seller(
        conn, ctx.clock, ctx.seller_id, body.changes(), actor=ctx.actor),
        schemas.SellerOut.model_validate, status=200)
