"""HTTP routes for staff access: ``/me``, staff accounts and API keys.

Everything is scoped to the caller's seller; another seller's key id is 404 like a missing one.
``POST /api-keys`` and ``POST /users`` refuse an ``Idempotency-Key``: a stored response would
keep the new key's secret in clear, and a stored request fingerprint is a fast hash of a body
holding a password. Creating a user twice is refused anyway (``email_taken``), and a key whose
response was lost is simply revoked and created again.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from payback.access import schemas, service
from payback.access.domain import Principal
from payback.api.deps import Context, context, current_principal
from payback.api.pagination import Page, page_params, paginate
from payback.errors import ValidationFailed

router = APIRouter(tags=["access"])


def _no_idempotency_key(ctx: Context) -> None:
    if ctx.request.headers.get("idempotency-key") is not None:
        raise ValidationFailed("this endpoint does not take an Idempotency-Key: its response "
                               "holds a secret that is never stored")


@router.get("/me", response_model=schemas.MeOut)
async def me(principal: Principal = Depends(current_principal)):
    return schemas.MeOut(id=principal.id, kind=principal.kind, seller_id=principal.seller_id,
                         role=principal.role, name=principal.name,
                         scopes=sorted(principal.scopes) if principal.scopes is not None
                         else None, permissions=sorted(principal.permissions))


@router.get("/api-keys", response_model=schemas.KeyList)
async def list_keys(page: Page = Depends(page_params), ctx: Context = Depends(context)):
    seller = ctx.principal.seller_id
    return await ctx.read(paginate(page, lambda conn, **kw: service.list_keys(
        conn, seller_id=seller, **kw), schemas.KeyOut.model_validate), lambda x: x)


@router.post("/api-keys", status_code=201, response_model=schemas.KeyCreated)
async def create_key(body: schemas.KeyCreate, ctx: Context = Depends(context)):
    _no_idempotency_key(ctx)
    p = ctx.principal

    def call(conn):
        key, token = service.create_key(conn, ctx.clock, seller_id=p.seller_id, name=body.name,
                                        role=body.role, scopes=body.scopes,
                                        expires_at=body.expires_at, created_by=p.id, grantor=p)
        return {**key, "token": token}
    return await ctx.write(call, schemas.KeyCreated.model_validate)


@router.post("/api-keys/{key_id}/revoke", status_code=200, response_model=schemas.KeyOut)
async def revoke_key(key_id: str = Path(max_length=40), ctx: Context = Depends(context)):
    seller = ctx.principal.seller_id
    return await ctx.write(lambda conn: service.revoke_key(conn, ctx.clock, seller_id=seller,
                                                           key_id=key_id),
                           schemas.KeyOut.model_validate, status=200)


@router.get("/users", response_model=schemas.UserList)
async def list_users(page: Page = Depends(page_params), ctx: Context = Depends(context)):
    seller = ctx.principal.seller_id
    return await ctx.read(paginate(page, lambda conn, **kw: service.list_users(
        conn, seller_id=seller, **kw), schemas.UserOut.model_validate), lambda x: x)


@router.post("/users", status_code=201, response_model=schemas.UserOut)
async def create_user(body: schemas.UserCreate, ctx: Context = Depends(context)):
    _no_idempotency_key(ctx)
    p = ctx.principal
    return await ctx.write(lambda conn: service.create_user(
        conn, ctx.clock, seller_id=p.seller_id, grantor=p, **body.model_dump()),
        schemas.UserOut.model_validate)
