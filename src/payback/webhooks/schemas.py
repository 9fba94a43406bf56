"""Wire format of outbound webhooks: endpoints (the secret only in the answer that creates or
rotates it), their changes, and the delivery log with every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from payback.api.types import In, ListOut, Out

Url = Annotated[str, Field(min_length=1, max_length=2000,
                           description="Where deliveries are POSTed: http(s), no user name or "
                                       "password.")]
EventTypes = Annotated[list[Annotated[str, Field(min_length=1, max_length=60)]], Field(
    min_length=1, max_length=50,
    description="Exact event types (refund.succeeded), families (refund.*) or * for all.")]
Description = Annotated[str, Field(max_length=200)]


class EndpointCreate(In):
    url: Url
    event_types: EventTypes
    description: Description | None = None


class EndpointUpdate(In):
    """Only the fields sent change; ``"description": null`` clears the description."""

    url: Url | None = None
    event_types: EventTypes | None = None
    enabled: bool | None = None
    description: Description | None = None

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class RotateSecret(In):
    overlap_hours: Annotated[int, Field(
        strict=True, ge=0, le=168,
        description="How long the previous secret still signs deliveries beside the new one "
                    "(0: stop at once).")] = 24


class EndpointOut(Out):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    secret_hint: str = Field(description="whsec_… and the secret's last four characters.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret before the last rotation also signs deliveries.")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="The signing secret: shown in this answer only.")


class EndpointList(ListOut):
    data: list[EndpointOut]


class AttemptOut(Out):
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    signature: str = Field(description="The Payback-Signature header sent.")
    response_excerpt: str | None
    error: str | None


class DeliveryOut(Out):
    id: str
    endpoint_id: str
    event_id: str = Field(description="The event's id: the same at every attempt.")
    event_type: str
    status: str = Field(description="pending, delivered or failed.")
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None
    data: dict[str, Any]
    attempts: list[AttemptOut]


class DeliveryList(ListOut):
    data: list[DeliveryOut]
