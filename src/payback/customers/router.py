"""HTTP routes for customers (their store credit: ``payback.store_credit.router``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.customers import schemas, service

router = APIRouter(tags=["customers"])


@router.post("/customers", status_code=201, response_model=schemas.CustomerOut)
async def create_customer(body: schemas.CustomerCreate, ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: service.create_customer(
        conn, ctx.clock, seller_id=ctx.seller_id, **body.model_dump()),
                           schemas.CustomerOut.model_validate)


@router.get("/customers", response_model=schemas.CustomerList)
async def list_customers(page: Page = Depends(page_params), ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_customers(conn, seller_id=ctx.seller_id, **kw)
    return await ctx.read(paginate(page, fetch, schemas.CustomerOut.model_validate), lambda x: x)


@router.get("/customers/{customer_id}", response_model=schemas.CustomerOut)
async def get_customer(customer_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_customer(conn, customer_id, ctx.seller_id),
                          schemas.CustomerOut.model_validate)
