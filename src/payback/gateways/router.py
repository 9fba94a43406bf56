"""HTTP routes of the gateway feature.

- ``POST /gateways/{gateway}/webhooks`` — the gateways' inbound webhooks. Outside ``/v1`` and
  without an API key: a gateway authenticates by signing the raw body (``Stripe-Signature``,
  ``Sandbox-Signature``), verified before anything is read or written. 200 with the outcome
  (applied, stale, duplicate, recorded, unmatched); 400 ``webhook_rejected`` when not authentic;
  409 ``webhook_not_ready`` when it names a refund not committed yet (the gateway retries).
- ``GET /v1/refunds/{refund_id}/gateway-intents`` — what was asked of which gateway, and its
  status.
- ``POST /v1/refunds/{refund_id}/fallback`` — after a gateway refund failed, pay the customer by
  store credit or a manual payout.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from payback.api.deps import Context, context
from payback.db import get_scoped
from payback.gateways import flow
from payback.refunds.schemas import RefundOut
from payback.refunds.tables import refunds

webhook_router = APIRouter(tags=["gateways"])
router = APIRouter(tags=["gateways"])
RefundId = Path(max_length=40)


@webhook_router.post("/gateways/{gateway}/webhooks")
async def receive_gateway_webhook(request: Request, gateway: str = Path(max_length=20)):
    body = await request.body()
    app = request.app
    return await run_in_threadpool(flow.receive_webhook, app.state.engine, app.state.clock,
                                   gateway, dict(request.headers), body)


class GatewayIntentOut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    gateway: str
    status: str
    origin: str
    amount_minor: int
    currency: str
    idempotency_key: str
    gateway_refund_id: str | None
    failure_reason: str | None
    calls: int
    last_error: str | None


class FallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["store_credit", "manual_payout"]


@router.get("/refunds/{refund_id}/gateway-intents", response_model=list[GatewayIntentOut])
async def list_gateway_intents(refund_id: str = RefundId, ctx: Context = Depends(context)):
    def fetch(conn):
        get_scoped(conn, refunds, refund_id, ctx.seller_id, "refund")
        return flow.intents_of(conn, refund_id)
    return await ctx.read(fetch, lambda rows: [GatewayIntentOut.model_validate(r) for r in rows])


@router.post("/refunds/{refund_id}/fallback", status_code=201, response_model=RefundOut)
async def fallback_refund(body: FallbackIn, refund_id: str = RefundId,
                          ctx: Context = Depends(context)):
    return await ctx.write(lambda conn: flow.fallback_refund(
        conn, ctx.clock, refund_id, method=body.method, actor=ctx.actor,
        seller_id=ctx.seller_id), RefundOut.model_validate)
