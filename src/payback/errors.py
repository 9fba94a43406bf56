"""The domain error tree. Every rule that refuses something raises one of these.

Each class carries a stable machine ``code`` (the ``code`` member of the RFC 9457 problem body and
the CLI's message prefix) and the HTTP status the API maps it to. Codes never change once shipped.

    DomainError                      400 bad_request
    ├── ValidationFailed             422 validation_failed
    │   ├── InvalidAmount            422 invalid_amount
    │   ├── UnknownCurrency          422 unknown_currency
    │   ├── InvalidQuantity          422 invalid_quantity
    │   └── InvalidInvoice           422 invalid_invoice
    ├── NotFound                     404 not_found
    ├── Conflict                     409 conflict
    │   ├── CurrencyMismatch         409 currency_mismatch   (also a TypeError-like programming
    │   │                                                     error when raised by Money itself)
    │   ├── AmountExceedsRefundable  409 amount_exceeds_refundable
    │   ├── QuantityExceedsRemaining 409 quantity_exceeds_remaining
    │   ├── InvoiceNotRefundable     409 invoice_not_refundable
    │   ├── Overpayment              409 overpayment
    │   ├── InsufficientStoreCredit  409 insufficient_store_credit
    │   └── InvalidTransition        409 invalid_transition
    └── IdempotencyError             (see api.idempotency)
        ├── IdempotencyKeyReused     422 idempotency_key_reused
        └── IdempotencyInFlight      409 idempotency_in_flight
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "bad_request"
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailed(DomainError):
    code, status, title = "validation_failed", 422, "The request is not valid"


class InvalidAmount(ValidationFailed):
    code, title = "invalid_amount", "Invalid amount"


class UnknownCurrency(ValidationFailed):
    code, title = "unknown_currency", "Unknown currency"


class InvalidQuantity(ValidationFailed):
    code, title = "invalid_quantity", "Invalid quantity"


class InvalidInvoice(ValidationFailed):
    code, title = "invalid_invoice", "Invalid invoice"


class NotFound(DomainError):
    code, status, title = "not_found", 404, "Not found"


class Conflict(DomainError):
    code, status, title = "conflict", 409, "Conflict"


class CurrencyMismatch(Conflict):
    code, title = "currency_mismatch", "Currency does not match"


class AmountExceedsRefundable(Conflict):
    code, title = "amount_exceeds_refundable", "Amount exceeds the refundable amount"


class QuantityExceedsRemaining(Conflict):
    code, title = "quantity_exceeds_remaining", "Quantity exceeds what remains on the line"


class InvoiceNotRefundable(Conflict):
    code, title = "invoice_not_refundable", "Invoice cannot be refunded"


class Overpayment(Conflict):
    code, title = "overpayment", "Payment exceeds the amount due"


class InsufficientStoreCredit(Conflict):
    code, title = "insufficient_store_credit", "Not enough store credit"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Transition not allowed"


class IdempotencyKeyReused(DomainError):
    code, status, title = "idempotency_key_reused", 422, "Idempotency key reused with another body"


class IdempotencyInFlight(DomainError):
    code, status, title = "idempotency_in_flight", 409, "A request with this key is in progress"
