"""The gateway port: what Payback asks of a payment gateway, in Payback's own words.

Every adapter (``sandbox``, ``stripe``, …) implements :class:`Gateway` and translates the
gateway's vocabulary into the canonical one here (reliability notes §2.2):

    requested → submitted → (pending | requires_action) → succeeded
                                                        ↘ failed (reason)
                                                        ↘ canceled

``requested`` and ``submitted`` are Payback's own states (before and while calling the gateway);
the gateway only ever reports one of :class:`RefundStatus`. The one rule every adapter keeps:
**only a gateway that has itself marked a refund succeeded is reported as succeeded** — "request
received" is ``pending``, an unknown status is ``pending``, never ``succeeded``.

Errors, and what the caller (the worker) does with them:

* :class:`GatewayTimeout` — the request may or may not have been applied: the outcome is unknown.
  The refund stays processing; retry with the *same* idempotency key, or ``fetch_refund``.
* :class:`GatewayUnavailable` — the gateway answered 5xx / refused the connection before doing
  anything: retry later (backoff) with the same key.
* :class:`GatewayDeclined` — the gateway refused the request synchronously (4xx): final for this
  attempt; carries a canonical :class:`FailureReason`.
* :class:`WebhookRejected` — an inbound webhook failed authentication (a ``DomainError``, so the
  API answers 400 ``webhook_rejected`` and changes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from payback.errors import DomainError


class RefundStatus(StrEnum):
    """The canonical refund status a gateway reports."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


#: Statuses after which the gateway will not move the refund again (short of a processor
#: reversal, which Payback models as its own ``reversed_by_processor`` transition).
TERMINAL_STATUSES = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED})


class FailureReason(StrEnum):
    """Why a refund failed or was canceled, in Payback's words (one set for every gateway)."""

    #: The card was reported lost or stolen (Stripe ``lost_or_stolen_card``).
    LOST_OR_STOLEN_CARD = "lost_or_stolen_card"
    #: The card is closed or expired (Stripe ``expired_or_canceled_card``; Adyen
    #: ``REFUNDED_REVERSED`` on a closed account). The fallback route applies.
    EXPIRED_OR_CANCELED_CARD = "expired_or_canceled_card"
    #: The charge is disputed while the refund was pending (Stripe
    #: ``charge_for_pending_refund_disputed``): the case moves to dispute handling.
    DISPUTED = "disputed"
    #: The merchant's gateway balance cannot fund the refund (Stripe ``insufficient_funds``).
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: The processor or issuer declined the refund (Stripe ``declined``, Braintree 4001).
    DECLINED = "declined"
    #: The merchant canceled it (Stripe ``merchant_request``).
    MERCHANT_REQUEST = "merchant_request"
    #: A required customer action was not taken in time (``requires_action`` that expired).
    EXPIRED = "expired"
    #: The payment was already refunded in full at the gateway (Braintree 4004).
    ALREADY_REFUNDED = "already_refunded"
    #: The payment is not yet captured or settled, so it cannot be refunded (Braintree 91506;
    #: Adyen before capture) — cancel or void instead.
    NOT_SETTLED = "not_settled"
    #: The gateway gave no reason, or one Payback does not know.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class GatewayRefund:
    """A refund as the gateway reports it, already mapped to canonical values.

    ``raw`` keeps the gateway's object for audit and debugging; it takes no part in equality.
    """

    gateway_refund_id: str
    status: RefundStatus
    amount_minor: int
    currency: str
    idempotency_key: str | None = None
    failure_reason: FailureReason | None = None
    #: The gateway's id of the payment refunded (Stripe payment_intent or charge).
    payment_reference: str | None = None
    #: When the gateway created the refund (reconciliation periods are by this time).
    created_at: datetime | None = None
    #: The metadata sent with the request; Payback puts its refund id under ``payback_refund_id``
    #: and its intent id under ``payback_intent_id``, so a webhook that arrives before Payback
    #: has stored the gateway's refund id can still be matched.
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.gateway_refund_id, str) or not self.gateway_refund_id:
            raise ValueError("gateway_refund_id must be a non-empty string")
        # Coerce plain strings to the enums; an unknown value is a bug in the adapter.
        object.__setattr__(self, "status", RefundStatus(self.status))
        if self.failure_reason is not None:
            object.__setattr__(self, "failure_reason", FailureReason(self.failure_reason))
        if type(self.amount_minor) is not int or self.amount_minor < 0:
            raise ValueError(f"amount_minor must be a non-negative int, got {self.amount_minor!r}")
        if not (
            isinstance(self.currency, str)
            and len(self.currency) == 3
            and self.currency.isascii()
            and self.currency.isalpha()
            and self.currency.isupper()
        ):
            raise ValueError(f"currency must be an upper-case ISO 4217 code, got {self.currency!r}")
        if self.status is RefundStatus.SUCCEEDED and self.failure_reason is not None:
            raise ValueError("a succeeded refund has no failure reason")

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


@dataclass(frozen=True)
class GatewayEvent:
    """An authenticated inbound webhook about one refund. ``event_id`` is the deduplication key."""

    event_id: str
    type: str
    created_at: datetime
    refund: GatewayRefund

    def __post_init__(self) -> None:
        if not isinstance(self.event_id, str) or not self.event_id:
            raise ValueError("event_id must be a non-empty string")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")


@runtime_checkable
class Gateway(Protocol):
    """The port. Amounts are integer minor units; currencies upper-case ISO 4217 codes."""

    #: Stable adapter name ("sandbox", "stripe", …), stored with each gateway intent.
    name: str

    def refund(
        self,
        payment_reference: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> GatewayRefund:
        """Ask the gateway to refund ``amount_minor`` of the payment ``payment_reference``.

        The same ``idempotency_key`` (Payback's refund id) must never make a second gateway
        refund. Raises GatewayTimeout, GatewayUnavailable or GatewayDeclined."""
        ...

    def fetch_refund(self, gateway_refund_id: str) -> GatewayRefund:
        """The gateway's current view of one refund."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Verify the webhook's signature over the raw bytes, then parse it.

        Raises WebhookRejected when it is not authentic (nothing may change then)."""
        ...

    def list_refunds(self, created_from: datetime, created_to: datetime) -> list[GatewayRefund]:
        """Every refund the gateway created in [created_from, created_to) — for reconciliation."""
        ...

    def find_refund_by_key(self, idempotency_key: str) -> GatewayRefund | None:
        """The refund made with this idempotency key, or None if the gateway made none: how the
        worker asks the gateway after a timeout once the key may have expired."""
        ...


class GatewayError(Exception):
    """Base of the errors an adapter raises (infrastructure, not domain rules)."""


class GatewayTimeout(GatewayError):
    """No answer in time: the gateway may or may not have applied the request (outcome unknown).
    Never treat as failed: retry with the same idempotency key or fetch the refund."""


class GatewayUnavailable(GatewayError):
    """The gateway answered 5xx (or could not be reached before sending): safe to retry later."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class GatewayDeclined(GatewayError):
    """The gateway refused the refund request synchronously."""

    def __init__(
        self,
        message: str,
        *,
        reason: FailureReason = FailureReason.UNKNOWN,
        gateway_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = FailureReason(reason)
        self.gateway_code = gateway_code


class WebhookRejected(DomainError):
    """An inbound webhook is not authentic (or not acceptable now). ``reason`` says which check
    failed: see ``payback.gateways.signatures.REASONS``."""

    code, status, title = "webhook_rejected", 400, "Webhook rejected"

    def __init__(self, detail: str, *, reason: str, **extra: Any) -> None:
        super().__init__(detail, reason=reason, **extra)
        self.reason = reason
