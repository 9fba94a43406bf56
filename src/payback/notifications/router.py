"""HTTP route for the e-mails a customer was sent about a refund (its timeline)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from payback.api.deps import Context, context
from payback.notifications import schemas, service

router = APIRouter(tags=["notifications"])


@router.get("/refunds/{refund_id}/notifications", response_model=schemas.NotificationList)
async def list_refund_notifications(refund_id: str = Path(max_length=40),
                                    ctx: Context = Depends(context)):
    """The customer e-mails about this refund, oldest first: kind, language, subject, status
    (queued, sent, failed), when sent and the last error."""
    return await ctx.read(lambda conn: {"data": service.list_for_refund(
        conn, refund_id, seller_id=ctx.seller_id)}, schemas.NotificationList.model_validate)
