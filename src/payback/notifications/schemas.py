"""Wire format of customer notifications as the refund's timeline shows them (no bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from payback.api.types import Out


class NotificationOut(Out):
    id: str
    kind: Literal["refund_received", "refund_approved", "refund_rejected", "refund_paid",
                  "refund_failed"]
    locale: str
    to_address: str
    subject: str
    status: Literal["queued", "sent", "failed"]
    created_at: datetime
    sent_at: datetime | None
    error: str | None


class NotificationList(Out):
    object: str = "list"
    data: list[NotificationOut]
