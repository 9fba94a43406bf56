"""The ``stripe`` gateway adapter: Payback's gateway port over Stripe's refunds API.

It talks to Stripe only through the official ``stripe`` package (``StripeClient``), set up so that
Payback, not the SDK, owns retries and time limits:

* ``max_network_retries=0`` — the SDK never resends on its own; Payback's worker retries with the
  same Idempotency-Key (Payback's refund id) and its own backoff;
* an explicit ``stripe.RequestsClient(timeout=timeout_seconds)`` — a slow Stripe cannot hold a
  worker for the SDK's default 80 s.

What goes out (all checked against Stripe's published OpenAPI spec by
``tests/integration/test_stripe_adapter.py``): ``POST /v1/refunds`` with ``payment_intent`` or
``charge``, ``amount``, ``metadata`` and — only when Payback's metadata carries one of Stripe's own
values — ``reason``; ``GET /v1/refunds/{id}``; ``GET /v1/refunds`` with ``created[gte]`` /
``created[lt]``. Nothing card-like: a card number anywhere in the request is refused
(``CardDataRefused``) before anything is sent.

How Stripe's answers become the port's errors (``translate_error``):

* no answer in time, or the connection broke after the request may have been sent
  → ``GatewayTimeout`` (outcome unknown);
* the connection could not even be opened (refused, DNS, connect timeout) → ``GatewayUnavailable``;
* HTTP 5xx, 429, 409 (a concurrent request holds the same idempotency key or object lock),
  401/403 (the API key is wrong or lacks rights: configuration, not a refusal of the refund), or
  a ``Stripe-Should-Retry: true`` header → ``GatewayUnavailable(status_code=…)``;
* any other 4xx → ``GatewayDeclined`` with a canonical ``FailureReason`` and Stripe's error code
  (or ``idempotency_error``) as ``gateway_code``;
* a 2xx whose refund does not match the request (other currency or amount) →
  :class:`StripeAnswerMismatch`: the refund exists at Stripe, so it is neither failed nor safe to
  repeat; it needs a person.

Error messages never contain the API key (Stripe's own messages are scrubbed too).

Limitation: Stripe cannot look a refund up by idempotency key, so ``find_refund_by_key`` scans the
refunds of the last 30 days (newest first) for the key in metadata: ``payback_refund_id`` (the key
IS Payback's refund id; ``refund`` always sends it), or ``payback_idempotency_key``, which ``refund``
adds when the key differs (one key per payment of a split refund). See ``docs/stripe.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from urllib3.exceptions import ConnectTimeoutError

from payback.cards import find_pans
from payback.clock import Clock, SystemClock
from payback.gateways.port import (
    FailureReason,
    GatewayDeclined,
    GatewayError,
    GatewayEvent,
    GatewayRefund,
    GatewayTimeout,
    GatewayUnavailable,
    WebhookRejected,
)
from payback.gateways.signatures import verify_stripe_signature
from payback.gateways.stripe_mapping import (
    METADATA_IDEMPOTENCY_KEY,
    METADATA_REFUND_ID,
    UnsupportedEvent,
    event_from_stripe,
    idempotency_key_of,
    refund_from_stripe,
)
from payback.money import normalise_currency
from payback.payments.service import CardDataRefused, refuse_card_numbers

#: A metadata value under this key that is one of STRIPE_REQUEST_REASONS is also sent as ``reason``.
METADATA_REASON = "reason"
#: The ``reason`` enum of POST /v1/refunds (``expired_uncaptured_charge`` exists only on refunds
#: Stripe makes itself; the integration test compares this set with the real schema).
STRIPE_REQUEST_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

#: Payment reference prefix → the POST /v1/refunds field it goes in.
REFERENCE_FIELDS: Mapping[str, str] = {"pi_": "payment_intent", "ch_": "charge", "py_": "charge"}
_REFERENCE = re.compile(r"(pi|ch|py)_[A-Za-z0-9_]{1,4000}")
_REFUND_ID = re.compile(r"[a-z]{1,8}_[A-Za-z0-9_]{1,4000}")

#: How far back ``find_refund_by_key`` looks, and the page size it and ``list_refunds`` ask for.
KEY_LOOKUP_WINDOW = timedelta(days=30)
PAGE_SIZE = 100

#: Stripe's metadata limits (https://docs.stripe.com/api/metadata) and idempotency key length.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 255

#: Stripe error code (or error type) of a 4xx → canonical reason. Codes not listed → ``unknown``.
DECLINE_REASONS: Mapping[str, FailureReason] = {
    "charge_already_refunded": FailureReason.ALREADY_REFUNDED,
    "charge_disputed": FailureReason.DISPUTED,
    "refund_disputed_payment": FailureReason.DISPUTED,
    "insufficient_funds": FailureReason.INSUFFICIENT_FUNDS,
    "balance_insufficient": FailureReason.INSUFFICIENT_FUNDS,
    "expired_card": FailureReason.EXPIRED_OR_CANCELED_CARD,
    "payment_intent_unexpected_state": FailureReason.NOT_SETTLED,
    "amount_too_large": FailureReason.DECLINED,
    "amount_too_small": FailureReason.DECLINED,
    "charge_not_refundable": FailureReason.DECLINED,
    "card_declined": FailureReason.DECLINED,
    "idempotency_error": FailureReason.DECLINED,
    "resource_missing": FailureReason.UNKNOWN,
}
#: Codes that mean "not now, try again" whatever the HTTP status.
RETRYABLE_CODES = frozenset({"rate_limit", "lock_timeout", "idempotency_key_in_use"})
#: HTTP statuses that mean the same. 409: a concurrent request with the same key is in flight —
#: declining would fail a refund that may still go through. 401/403: Stripe refused Payback's API
#: key (wrong, revoked, or a restricted key without refund rights) — a configuration fault, not a
#: refusal of this refund: it must not fail refunds (or send them down a fallback route); they
#: wait, and go through once the key is fixed.
RETRYABLE_STATUSES = frozenset({401, 403, 409, 429})

_SECRET_KEY = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StripeAnswerMismatch(GatewayError):
    """Stripe made a refund that is not the one asked for (another currency or amount).

    Not a decline (money may have moved) and not a timeout (repeating cannot fix it): the worker
    lets it fail loudly so a person reconciles it. ``refund`` is what Stripe reported."""

    def __init__(self, message: str, *, refund: GatewayRefund) -> None:
        super().__init__(message)
        self.refund = refund


class StripeGateway:
    """The ``stripe`` adapter of :class:`payback.gateways.port.Gateway`."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        webhook_secrets: Sequence[str],
        api_base: str | None = None,
        timeout_seconds: int = 30,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("a Stripe secret API key is required")
        if type(timeout_seconds) is not int or timeout_seconds < 1:
            raise ValueError("timeout_seconds must be a positive whole number of seconds")
        self._api_key = api_key
        self._webhook_secrets = parse_secrets(webhook_secrets)
        self._clock: Clock = clock or SystemClock()
        self.api_base = _checked_api_base(api_base)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.api_base},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def __repr__(self) -> str:  # never the key
        return f"StripeGateway(api_base={self.api_base!r})"

    # ------------------------------------------------------------------------------ the port

    def refund(
        self,
        payment_reference: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> GatewayRefund:
        """POST /v1/refunds with ``Idempotency-Key: idempotency_key``. The same key replays
        Stripe's first answer (for 24 hours; after that use ``find_refund_by_key``)."""
        currency = normalise_currency(currency)
        params = refund_params(payment_reference, amount_minor, idempotency_key, metadata)
        refund = self._call(
            lambda: self._client.v1.refunds.create(
                params,
                {"idempotency_key": idempotency_key},
            )
        )
        _check_answer(refund, amount_minor, currency)
        return refund

    def fetch_refund(self, gateway_refund_id: str) -> GatewayRefund:
        """GET /v1/refunds/{id}: Stripe's current view of one refund."""
        # Card refunds are re_…, other payment methods' pyr_…: only the shape is checked.
        if not isinstance(gateway_refund_id, str) or not _REFUND_ID.fullmatch(gateway_refund_id):
            raise ValueError(f"not a Stripe refund id: {gateway_refund_id!r}")
        return self._call(lambda: self._client.v1.refunds.retrieve(gateway_refund_id))

    def list_refunds(self, created_from: datetime, created_to: datetime) -> list[GatewayRefund]:
        """Every refund Stripe created in [created_from, created_to), newest first (all pages)."""
        start, end = unix_ceil(created_from), unix_ceil(created_to)
        if start >= end:
            return []
        return list(self._iter_refunds({"created": {"gte": start, "lt": end}}))

    def find_refund_by_key(self, idempotency_key: str) -> GatewayRefund | None:
        """The refund made with ``idempotency_key`` (as recorded in its metadata, see
        ``stripe_mapping.idempotency_key_of``) among those created in the last 30 days, newest
        first (the newest wins), or None."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty string")
        since = unix_ceil(self._clock.now() - KEY_LOOKUP_WINDOW)
        for refund in self._iter_refunds({"created": {"gte": since}}):
            if idempotency_key_of(refund.metadata) == idempotency_key:
                return refund
        return None

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Verify ``Stripe-Signature`` over the raw bytes (any configured secret, any ``v1``,
        300 s tolerance), then map the event. Raises WebhookRejected; an authentic event that is
        not about a refund raises ``stripe_mapping.UnsupportedEvent`` (acknowledge and ignore it).
        """
        verify_stripe_signature(headers, raw_body, self._webhook_secrets, now=self._clock.now())
        try:
            event = json.loads(raw_body)
        except ValueError:
            raise _malformed("the body is not JSON") from None
        if not isinstance(event, dict):
            raise _malformed("the body is not a JSON object")
        try:
            return event_from_stripe(event)
        except UnsupportedEvent:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed(f"not a well-formed refund event ({type(exc).__name__})") from None

    # ------------------------------------------------------------------------------ plumbing

    def _call(self, request: Callable[[], Any]) -> GatewayRefund:
        try:
            obj = request()
        except stripe.StripeError as exc:
            raise translate_error(exc, secret=self._api_key) from None
        return _mapped(obj)

    def _iter_refunds(self, filters: Mapping[str, Any]) -> Iterator[GatewayRefund]:
        """GET /v1/refunds with ``filters``, following ``has_more`` / ``starting_after``."""
        params = {**filters, "limit": PAGE_SIZE}
        try:
            first = self._client.v1.refunds.list(params)
            for obj in first.auto_paging_iter():
                yield _mapped(obj)
        except stripe.StripeError as exc:
            raise translate_error(exc, secret=self._api_key) from None


# ---------------------------------------------------------------------------- pure helpers


def refund_params(
    payment_reference: str,
    amount_minor: int,
    idempotency_key: str,
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    """The form parameters of POST /v1/refunds. Refuses card numbers and values Stripe would
    reject; adds ``payback_refund_id`` (= the idempotency key) when the caller left it out."""
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata must be a mapping of strings")
    _refuse_card_data(payment_reference, idempotency_key, metadata)
    if not isinstance(payment_reference, str) or not _REFERENCE.fullmatch(payment_reference):
        raise GatewayDeclined(
            "the payment reference is not a Stripe PaymentIntent (pi_), charge (ch_) or "
            "payment (py_) id",
            reason=FailureReason.UNKNOWN,
        )
    if type(amount_minor) is not int or amount_minor <= 0:
        raise ValueError(f"amount_minor must be a positive int, got {amount_minor!r}")
    if not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= (
        MAX_IDEMPOTENCY_KEY_LENGTH
    ):
        raise ValueError("idempotency_key must be a string of 1 to 255 characters")
    sent = _checked_metadata(metadata)
    sent.setdefault(METADATA_REFUND_ID, idempotency_key)
    if sent[METADATA_REFUND_ID] != idempotency_key:
        # One key per payment of a split refund: record it, so find_refund_by_key can match it.
        sent[METADATA_IDEMPOTENCY_KEY] = idempotency_key
    params: dict[str, Any] = {
        REFERENCE_FIELDS[payment_reference[:3]]: payment_reference,
        "amount": amount_minor,
        "metadata": sent,
    }
    if sent.get(METADATA_REASON) in STRIPE_REQUEST_REASONS:
        params["reason"] = sent[METADATA_REASON]
    return params


def translate_error(exc: stripe.StripeError, *, secret: str) -> GatewayError:
    """A ``stripe`` SDK error → the port's error (see the module docstring for the rules)."""
    if isinstance(exc, stripe.APIConnectionError):
        cause = _network_cause(exc)
        if _never_sent(exc):
            return GatewayUnavailable(_scrub(f"Stripe could not be reached ({cause})", secret))
        return GatewayTimeout(
            _scrub(f"no complete answer from Stripe ({cause}): the outcome is unknown", secret)
        )
    status = exc.http_status
    body = _error_body(exc)
    code = exc.code or body.get("code")
    kind = body.get("type")
    if isinstance(exc, stripe.IdempotencyError) or kind == "idempotency_error":
        kind = "idempotency_error"
        code = code or kind
    text = _scrub(_describe(status, code or kind, body.get("message"), exc.request_id), secret)
    if status is None or 200 <= status < 300:
        # An answer we cannot read: Stripe may well have made the refund.
        return GatewayTimeout(f"{text}: the outcome is unknown")
    if (
        status >= 500
        or status in RETRYABLE_STATUSES
        or code in RETRYABLE_CODES
        or _should_retry(exc)
    ):
        return GatewayUnavailable(text, status_code=status)
    gateway_code = code or kind
    reason = DECLINE_REASONS.get(gateway_code or "", FailureReason.UNKNOWN)
    return GatewayDeclined(text, reason=reason, gateway_code=gateway_code)


def parse_secrets(secrets: str | Sequence[str] | None) -> tuple[str, ...]:
    """Webhook signing secrets: a sequence, or one comma-separated string (the settings' form)."""
    if secrets is None:
        return ()
    if isinstance(secrets, str):
        secrets = secrets.split(",")
    return tuple(s.strip() for s in secrets if isinstance(s, str) and s.strip())


def unix_ceil(moment: datetime) -> int:
    """The first whole Unix second at or after ``moment`` (Stripe's ``created`` is in seconds, so
    ``created >= unix_ceil(a)`` ⇔ ``created >= a`` and ``created < unix_ceil(b)`` ⇔ ``created < b``)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError("times must be timezone-aware datetimes")
    return -((_EPOCH - moment) // timedelta(seconds=1))


def _mapped(obj: Any) -> GatewayRefund:
    data = obj.to_dict() if isinstance(obj, stripe.StripeObject) else dict(obj)
    try:
        return refund_from_stripe(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayTimeout(
            f"Stripe's answer is not a readable refund ({type(exc).__name__}): the outcome is "
            "unknown"
        ) from None


def _check_answer(refund: GatewayRefund, amount_minor: int, currency: str) -> None:
    # Stripe refunds in the payment's currency whatever Payback believes it to be.
    if refund.currency != currency or refund.amount_minor != amount_minor:
        raise StripeAnswerMismatch(
            f"Stripe refund {refund.gateway_refund_id} is {refund.amount_minor} "
            f"{refund.currency}, but {amount_minor} {currency} was asked for",
            refund=refund,
        )


def _refuse_card_data(
    payment_reference: object, idempotency_key: object, metadata: Mapping[str, str]
) -> None:
    texts = [payment_reference, idempotency_key, *metadata.keys()]
    if any(isinstance(t, str) and find_pans(t) for t in texts):
        # Name the place, never the text: it may be a card number.
        raise CardDataRefused(
            "a payment reference, idempotency key or metadata key looks like a full card number"
        )
    refuse_card_numbers(
        **{
            f"metadata value {i + 1}": v
            for i, v in enumerate(metadata.values())
            if isinstance(v, str)
        }
    )


def _checked_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_KEYS - 2:  # slots kept for the refund id and the key
        raise ValueError(f"Stripe accepts at most {MAX_METADATA_KEYS} metadata keys")
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_LENGTH:
            raise ValueError(
                f"metadata keys must be strings of 1 to {MAX_METADATA_KEY_LENGTH} characters"
            )
        if "[" in key or "]" in key:
            raise ValueError("metadata keys cannot contain square brackets")
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_LENGTH:
            raise ValueError(
                f"metadata[{key}] must be a string of at most {MAX_METADATA_VALUE_LENGTH} characters"
            )
        checked[key] = value
    return checked


def _checked_api_base(api_base: str | None) -> str:
    base = (api_base or stripe.DEFAULT_API_BASE).rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+", base):
        raise ValueError(f"the Stripe API base must be scheme://host[:port], got {base!r}")
    return base


def _exception_graph(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or wraps (requests/urllib3 nest them in
    ``args`` and ``reason``)."""
    seen: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        stack += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def _never_sent(exc: BaseException) -> bool:
    """True only when the connection itself could not be made (refused, DNS, connect timeout),
    so Stripe cannot have seen the request. Anything else counts as "may have been sent"."""
    return any(isinstance(e, ConnectTimeoutError) for e in _exception_graph(exc))


def _network_cause(exc: BaseException) -> str:
    names = [type(e).__name__ for e in _exception_graph(exc)[1:]]
    return ", ".join(dict.fromkeys(names)) or type(exc).__name__


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _should_retry(exc: stripe.StripeError) -> bool:
    headers = exc.headers or {}
    for name, value in headers.items():
        if str(name).lower() == "stripe-should-retry":
            return str(value).strip().lower() == "true"
    return False


def _describe(status: int | None, code: str | None, message: object, request_id: object) -> str:
    parts = [f"Stripe answered HTTP {status}" if status is not None else "Stripe answered"]
    if code:
        parts.append(str(code))
    text = " ".join(parts)
    if isinstance(message, str) and message:
        text += f": {message}"
    if isinstance(request_id, str) and request_id:
        text += f" (request {request_id})"
    return text


def _scrub(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, "[redacted]")
    return _SECRET_KEY.sub("[redacted]", text)


def _malformed(detail: str) -> WebhookRejected:
    # Authentic (the signature matched) but unusable: refuse it, so Stripe sends it again.
    return WebhookRejected(f"Stripe webhook rejected: {detail}", reason="malformed_payload")
