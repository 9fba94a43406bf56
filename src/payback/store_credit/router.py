"""HTTP routes for store credit: a customer's wallets, one wallet with its history and lots, the
statement of a period, staff grants (goodwill, promotional) and revocation of such grants.

Every call is scoped to the caller's seller: another seller's customer or lot answers 404."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.customers.service import get_customer
from payback.store_credit import schemas, service

router = APIRouter(tags=["store credit"])
CustomerId = Path(max_length=40)
CurrencyCode = Path(min_length=3, max_length=3)


@router.get("/customers/{customer_id}/store-credit", response_model=schemas.WalletList)
async def list_wallets(customer_id: str = CustomerId, ctx: Context = Depends(context)):
    def call(conn):
        get_customer(conn, customer_id, ctx.seller_id)
        return {"data": service.get_wallets(conn, customer_id, ctx.seller_id)}
    return await ctx.read(call, schemas.WalletList.model_validate)


@router.post("/customers/{customer_id}/store-credit/grants", status_code=201,
             response_model=schemas.LotDetailOut)
async def grant_credit(body: schemas.GrantIn, customer_id: str = CustomerId,
                       ctx: Context = Depends(context)):
    """Give goodwill or promotional credit (Dr store credit incentives / Cr store credit
    liability)."""
    return await ctx.write(lambda conn: service.grant_credit(
        conn, ctx.clock, customer_id=customer_id, kind=body.kind,
        amount_minor=body.amount_minor, currency=body.currency, memo=body.memo,
        expires_at=body.expires_at, actor=ctx.actor, seller_id=ctx.seller_id),
        schemas.LotDetailOut.model_validate)


@router.get("/customers/{customer_id}/store-credit/{currency}", response_model=schemas.WalletOut)
async def get_wallet(customer_id: str = CustomerId, currency: str = CurrencyCode,
                     ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_wallet(
        conn, customer_id, currency, ctx.seller_id), schemas.WalletOut.model_validate)


@router.get("/customers/{customer_id}/store-credit/{currency}/statement",
            response_model=schemas.StatementOut)
async def get_statement(customer_id: str = CustomerId, currency: str = CurrencyCode,
                        date_from: date | None = Query(None, alias="from"),
                        date_to: date | None = Query(None, alias="to"),
                        ctx: Context = Depends(context)):
    """Opening balance, the transactions of [from, to) with their running balance, closing
    balance. ``from`` and ``to`` are days (UTC); ``to`` is exclusive."""
    return await ctx.read(lambda conn: service.statement(
        conn, customer_id, currency, date_from=date_from, date_to=date_to,
        seller_id=ctx.seller_id), schemas.StatementOut.model_validate)


@router.post("/store-credit/lots/{lot_id}/revoke", status_code=200,
             response_model=schemas.LotDetailOut)
async def revoke_lot(body: schemas.RevokeIn, lot_id: str = Path(max_length=40),
                     ctx: Context = Depends(context)):
    """Take back what remains of a goodwill or promotional lot; refund credit: 409."""
    return await ctx.write(lambda conn: service.revoke_lot(
        conn, ctx.clock, lot_id, reason=body.reason, actor=ctx.actor, seller_id=ctx.seller_id),
        schemas.LotDetailOut.model_validate, status=200)
