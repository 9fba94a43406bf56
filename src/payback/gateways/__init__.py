"""Payment gateways (issue 4): the port every adapter implements, and the pieces that need no
database — the canonical refund statuses and failure reasons, the Stripe status mapping and
webhook signatures (inbound verification and Payback's own outbound signing).

See ``port`` for the interface, ``stripe_mapping`` and ``signatures`` for the rest.
"""

from payback.gateways.port import (
    FailureReason,
    Gateway,
    GatewayDeclined,
    GatewayError,
    GatewayEvent,
    GatewayRefund,
    GatewayTimeout,
    GatewayUnavailable,
    RefundStatus,
    WebhookRejected,
)

__all__ = [
    "FailureReason",
    "Gateway",
    "GatewayDeclined",
    "GatewayError",
    "GatewayEvent",
    "GatewayRefund",
    "GatewayTimeout",
    "GatewayUnavailable",
    "RefundStatus",
    "WebhookRejected",
]
