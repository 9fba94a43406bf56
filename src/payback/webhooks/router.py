"""HTTP routes for outbound webhooks, and the demo receiver.

``router`` (under ``/v1``): register, list, read, change and disable endpoints, rotate an
endpoint's signing secret, read its delivery log and retry a failed delivery. Every call is
scoped to the caller's seller: another seller's endpoint or delivery answers 404. The secret is
in the answers of ``POST /webhook-endpoints`` and ``POST …/rotate-secret`` only.

``receiver_router`` (outside ``/v1``, no API credentials, not in the OpenAPI document):
``POST /demo/webhook-receiver/{endpoint_id}`` plays a merchant's receiver for endpoints made by
``service.create_demo_endpoint``, so the demo shows verified deliveries without an outside
server. It checks the ``Payback-Signature`` over the raw body and answers
``{"verified": true, "event_id": …}`` (200) or ``{"verified": false, "reason": …}`` (400).
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from payback import db
from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.errors import NotFound
from payback.gateways.port import WebhookRejected
from payback.gateways.signatures import verify_payback_signature
from payback.webhooks import schemas, service

router = APIRouter(tags=["webhooks"])
receiver_router = APIRouter(include_in_schema=False)
EndpointId = Path(max_length=40)


@router.post("/webhook-endpoints", status_code=201, response_model=schemas.EndpointWithSecret)
async def create_webhook_endpoint(body: schemas.EndpointCreate, ctx: Context = Depends(context)):
    """Register an endpoint; the answer holds its signing ``secret``, shown this once."""
    return await ctx.write(lambda conn: service.create_endpoint(
        conn, ctx.clock, seller_id=ctx.seller_id, url=body.url, event_types=body.event_types,
        description=body.description), schemas.EndpointWithSecret.model_validate)


@router.get("/webhook-endpoints", response_model=schemas.EndpointList)
async def list_webhook_endpoints(page: Page = Depends(page_params),
                                 enabled: bool | None = None, ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_endpoints(conn, seller_id=ctx.seller_id, enabled=enabled, **kw)
    return await ctx.read(paginate(page, fetch, schemas.EndpointOut.model_validate),
                          lambda x: x)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=schemas.EndpointOut)
async def get_webhook_endpoint(endpoint_id: str = EndpointId, ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_endpoint(conn, endpoint_id, ctx.seller_id),
                          schemas.EndpointOut.model_validate)


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=schemas.EndpointOut)
async def update_webhook_endpoint(body: schemas.EndpointUpdate, endpoint_id: str = EndpointId,
                                  ctx: Context = Depends(context)):
    """Change the URL, event types, description, or enable/disable the endpoint."""
    return await ctx.write(lambda conn: service.update_endpoint(
        conn, ctx.clock, endpoint_id, ctx.seller_id, body.changes()),
        schemas.EndpointOut.model_validate, status=200)


@router.delete("/webhook-endpoints/{endpoint_id}", response_model=schemas.EndpointOut)
async def delete_webhook_endpoint(endpoint_id: str = EndpointId,
                                  ctx: Context = Depends(context)):
    """Disable the endpoint for good; it and its delivery log are kept."""
    return await ctx.write(lambda conn: service.delete_endpoint(
        conn, ctx.clock, endpoint_id, ctx.seller_id), schemas.EndpointOut.model_validate,
        status=200)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", status_code=200,
             response_model=schemas.EndpointWithSecret)
async def rotate_webhook_secret(body: schemas.RotateSecret | None = None,
                                endpoint_id: str = EndpointId, ctx: Context = Depends(context)):
    """A new signing secret, shown this once; the old one signs beside it for
    ``overlap_hours`` (default 24)."""
    overlap = (body or schemas.RotateSecret()).overlap_hours
    return await ctx.write(lambda conn: service.rotate_secret(
        conn, ctx.clock, endpoint_id, ctx.seller_id, overlap_hours=overlap),
        schemas.EndpointWithSecret.model_validate, status=200)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=schemas.DeliveryList)
async def list_webhook_deliveries(
        endpoint_id: str = EndpointId, page: Page = Depends(page_params),
        status: Literal["pending", "delivered", "failed"] | None = Query(None),
        ctx: Context = Depends(context)):
    """The delivery log, newest first, each delivery with its attempts."""
    def fetch(conn, **kw):
        return service.list_deliveries(conn, endpoint_id, ctx.seller_id, status=status, **kw)
    return await ctx.read(paginate(page, fetch, schemas.DeliveryOut.model_validate),
                          lambda x: x)


@router.post("/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
             status_code=200, response_model=schemas.DeliveryOut)
async def retry_webhook_delivery(endpoint_id: str = EndpointId,
                                 delivery_id: str = Path(max_length=40),
                                 ctx: Context = Depends(context)):
    """Queue one more attempt of a failed delivery, now."""
    return await ctx.write(lambda conn: service.retry_delivery(
        conn, ctx.clock, endpoint_id, delivery_id, ctx.seller_id),
        schemas.DeliveryOut.model_validate, status=200)


# --------------------------------------------------------------------------- demo receiver


@receiver_router.post(service.DEMO_RECEIVER_PATH, include_in_schema=False)
async def demo_webhook_receiver(request: Request, endpoint_id: str = EndpointId):
    raw = await request.body()  # the raw bytes: re-serialised JSON would not verify
    app = request.app
    now = app.state.clock.now()

    def secrets() -> tuple[str, ...]:
        with db.read(app.state.engine) as conn:
            return service.demo_receiver_secrets(conn, endpoint_id, now)
    try:
        keys = await run_in_threadpool(secrets)
    except NotFound:
        return _refused(404, "unknown_endpoint")
    try:
        verify_payback_signature(request.headers, raw, keys, now=now)
    except WebhookRejected as exc:
        return _refused(400, exc.reason)
    try:
        event_id = json.loads(raw)["id"]
    except (ValueError, KeyError, TypeError):
        return _refused(400, "malformed_body")
    return JSONResponse({"verified": True, "event_id": event_id})


def _refused(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"verified": False, "reason": reason}, status_code=status)
