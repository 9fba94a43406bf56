"""HTTP routes for the seller's refund policy: the active one, its versions, the presets, and
storing a new version (validated against the statutory floor of the preset it extends)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path

from payback.api.deps import Context, context
from payback.policies import list_presets
from payback.policies import service

router = APIRouter(tags=["policies"])


@router.get("/policies")
async def list_policies(ctx: Context = Depends(context)):
    """Every stored version of the seller's policy, newest first, and the presets."""
    return await ctx.read(lambda conn: {"object": "list",
                                        "data": service.list_versions(conn, ctx.seller_id),
                                        "presets": list(list_presets())}, lambda x: x)


@router.get("/policies/active")
async def active_policy(ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_active(conn, ctx.seller_id), lambda x: x)


@router.get("/policies/presets/{preset_id}")
async def get_preset(preset_id: str = Path(max_length=20), ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.preset(preset_id), lambda x: x)


@router.post("/policies", status_code=201)
async def set_policy(body: dict[str, Any] = Body(..., description="A policy document, e.g. "
                                                 "{'extends': 'EU-CRD', 'id': ..., 'version': ...}"),
                     ctx: Context = Depends(context)):
    """Store a new version of the seller's policy and make it active. Unknown keys, wrong types,
    negative windows and anything below the statutory floor are refused, naming the field."""
    return await ctx.write(lambda conn: service.set_policy(
        conn, ctx.clock, seller_id=ctx.seller_id, data=body, actor=ctx.actor), lambda x: x)
