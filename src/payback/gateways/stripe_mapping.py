"""Stripe refund objects and events → Payback's canonical gateway values.

Stripe's refund ``status`` is one of ``pending``, ``requires_action``, ``succeeded``, ``failed``,
``canceled`` and its ``failure_reason`` one of ``lost_or_stolen_card``,
``expired_or_canceled_card``, ``charge_for_pending_refund_disputed``, ``insufficient_funds``,
``declined``, ``merchant_request``, ``unknown`` (Stripe's OpenAPI spec lists both in the field
descriptions, not as enums; ``tests/unit/test_gateway_mapping.py`` reads them from the real schema
in ``../shared/data/stripe_refund_schema.json`` and checks each one is mapped here).

Rules: ``succeeded`` only when Stripe says ``succeeded``; a missing (the field is nullable) or
unknown status is ``pending`` — the outcome is not known yet, so the worker asks again; a failure
reason Stripe adds later is ``unknown``; a failed or canceled refund without a reason is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from payback.gateways.port import FailureReason, GatewayEvent, GatewayRefund, RefundStatus

STATUS_MAP: Mapping[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.REQUIRES_ACTION,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

FAILURE_REASON_MAP: Mapping[str, FailureReason] = {
    "lost_or_stolen_card": FailureReason.LOST_OR_STOLEN_CARD,
    "expired_or_canceled_card": FailureReason.EXPIRED_OR_CANCELED_CARD,
    "charge_for_pending_refund_disputed": FailureReason.DISPUTED,
    "insufficient_funds": FailureReason.INSUFFICIENT_FUNDS,
    "declined": FailureReason.DECLINED,
    "merchant_request": FailureReason.MERCHANT_REQUEST,
    "unknown": FailureReason.UNKNOWN,
}

#: Stripe events that carry a refund object in ``data.object``.
REFUND_EVENT_TYPES = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)

#: The metadata key under which the Stripe adapter stores Payback's refund id (which is also the
#: Idempotency-Key it sends; Stripe does not echo that header back on the object).
METADATA_REFUND_ID = "payback_refund_id"
#: Where the adapter puts the Idempotency-Key when it is NOT the refund id (a refund split over
#: several payments sends one key per payment, ``<refund id>-<n>``).
METADATA_IDEMPOTENCY_KEY = "payback_idempotency_key"


class UnsupportedEvent(ValueError):
    """An authentic Stripe event that is not about a refund: acknowledge it and ignore it."""


def map_status(stripe_status: str | None) -> RefundStatus:
    """Stripe's refund status → canonical; missing or unknown → ``pending`` (never succeeded)."""
    if stripe_status is None:
        return RefundStatus.PENDING
    return STATUS_MAP.get(stripe_status, RefundStatus.PENDING)


def map_failure_reason(stripe_reason: str | None, status: RefundStatus) -> FailureReason | None:
    """Stripe's failure_reason → canonical. Only failed and canceled refunds carry a reason."""
    if status not in (RefundStatus.FAILED, RefundStatus.CANCELED):
        return None
    if stripe_reason is None:
        return FailureReason.UNKNOWN
    return FAILURE_REASON_MAP.get(stripe_reason, FailureReason.UNKNOWN)


def refund_from_stripe(obj: Mapping[str, Any]) -> GatewayRefund:
    """A Stripe ``refund`` object (a dict or a StripeObject) → :class:`GatewayRefund`."""
    if obj.get("object", "refund") != "refund":
        raise UnsupportedEvent(f"expected a refund object, got {obj.get('object')!r}")
    status = map_status(obj.get("status"))
    metadata = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
    created = obj.get("created")
    return GatewayRefund(
        gateway_refund_id=obj["id"],
        status=status,
        amount_minor=obj["amount"],
        currency=str(obj["currency"]).upper(),
        idempotency_key=idempotency_key_of(metadata),
        failure_reason=map_failure_reason(obj.get("failure_reason"), status),
        payment_reference=payment_reference(obj),
        created_at=None if created is None else datetime.fromtimestamp(int(created), tz=UTC),
        metadata=metadata,
        raw=dict(obj),
    )


def idempotency_key_of(metadata: Mapping[str, str]) -> str | None:
    """The Idempotency-Key a refund was created with, as the adapter recorded it in metadata."""
    return metadata.get(METADATA_IDEMPOTENCY_KEY) or metadata.get(METADATA_REFUND_ID)


def payment_reference(obj: Mapping[str, Any]) -> str | None:
    """The payment a Stripe refund belongs to: its PaymentIntent if it has one, else its charge
    (either may be expanded into an object, or null)."""
    for name in ("payment_intent", "charge"):
        value = obj.get(name)
        if isinstance(value, Mapping):
            value = value.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def event_from_stripe(event: Mapping[str, Any]) -> GatewayEvent:
    """A (verified, parsed) Stripe event → :class:`GatewayEvent`. Raises UnsupportedEvent for
    events that do not carry a refund."""
    event_type = event.get("type")
    if event_type not in REFUND_EVENT_TYPES:
        raise UnsupportedEvent(f"not a refund event: {event_type!r}")
    return GatewayEvent(
        event_id=event["id"],
        type=event_type,
        created_at=datetime.fromtimestamp(int(event["created"]), tz=UTC),
        refund=refund_from_stripe(event["data"]["object"]),
    )
