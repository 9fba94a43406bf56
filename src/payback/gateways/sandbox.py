"""The built-in ``sandbox`` payment gateway: a fake gateway that behaves like a real one.

It is for the demo, local development and the fault tests — NOT a way to move real money. It
keeps its own state in its own database (``payback.gateways.sandbox_state``; a SQLite file in WAL
mode with a busy timeout, or PostgreSQL), so several OS processes (two ``payback worker``\\ s, a
test driver) can share one sandbox and every operation stays safe under concurrency.

What it does, like Stripe in test mode (``docs/sandbox.md`` for users):

- refunds of payments made with test cards (``tok_visa``, ``tok_expired``, ``tok_lost`` …), each
  card deciding how the refund ends; refunds start ``pending`` and move on in :meth:`advance`;
- idempotency: one refund per key, also across processes (unique key; the loser of a race reads
  the winner's row); the same key with other parameters is refused (``idempotency_key_reuse``);
- synchronous declines (unknown payment, currency mismatch, amount beyond what remains);
- faults, random (:class:`SandboxBehaviour`) or injected and persisted (:meth:`inject`):
  timeouts before and AFTER the refund was stored, 503s and latency;
- Stripe-shaped webhooks for every status change, queued in its database, signed
  (``Sandbox-Signature``) when sent, retried with backoff, optionally duplicated and shuffled.

Time comes from the injected clock, latency goes through the injected ``sleep`` and randomness
from ``random.Random(seed)``, so tests are reproducible.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from payback.clock import Clock, SystemClock
from payback.db import make_engine, read, write
from payback.gateways import sandbox_state as state
from payback.gateways.port import (
    FailureReason,
    GatewayDeclined,
    GatewayEvent,
    GatewayRefund,
    GatewayTimeout,
    GatewayUnavailable,
)
from payback.gateways.signatures import sign_payload, verify_signature
from payback.gateways.stripe_mapping import REFUND_EVENT_TYPES, UnsupportedEvent

FAULTS = ("timeout_before", "timeout_after_apply", "error_5xx")
LATENCY_FAULT = "latency:"
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
_PERCENTS = ("timeout_percent", "error_percent", "duplicate_webhook_percent")


@dataclass(frozen=True)
class SandboxBehaviour:
    """How the sandbox misbehaves; ``PAYBACK_SANDBOX_BEHAVIOUR`` holds it as ``key=value,…``."""

    latency_ms: int = 0
    timeout_percent: int = 0
    error_percent: int = 0
    async_completion: bool = True
    completion_delay_seconds: int = 0
    duplicate_webhook_percent: int = 0
    shuffle_webhooks: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            wanted = bool if f.type in ("bool", bool) else int
            if type(value) is not wanted:
                raise ValueError(f"sandbox behaviour {f.name} must be {wanted.__name__}")
            if wanted is int and value < 0:
                raise ValueError(f"sandbox behaviour {f.name} must not be negative")
        for name in _PERCENTS:
            if getattr(self, name) > 100:
                raise ValueError(f"sandbox behaviour {name} is a percentage (0–100)")
        if self.timeout_percent + self.error_percent > 100:
            raise ValueError("sandbox behaviour timeout_percent + error_percent exceed 100")

    @classmethod
    def parse(cls, text: str) -> SandboxBehaviour:
        """``"latency_ms=50,timeout_percent=5,async_completion=false"`` → a behaviour; ``""`` →
        the defaults. An unknown key or a bad value raises ValueError naming it."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            key, sep, raw = (part.strip() for part in item.partition("="))
            if key not in known:
                raise ValueError(f"unknown sandbox behaviour {key!r} (known: {', '.join(known)})")
            if not sep or not raw:
                raise ValueError(f"sandbox behaviour {key!r} needs a value ({key}=…)")
            values[key] = _parse_value(key, raw, known[key].type in ("bool", bool))
        return cls(**values)


def _parse_value(key: str, raw: str, is_bool: bool) -> int | bool:
    if is_bool:
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(f"sandbox behaviour {key!r} must be true or false, got {raw!r}")
    if not raw.isdigit():
        raise ValueError(f"sandbox behaviour {key!r} must be a whole number, got {raw!r}")
    return int(raw)


class SandboxGateway:
    """The sandbox, implementing :class:`payback.gateways.port.Gateway` plus test controls."""

    name = "sandbox"
    SIGNATURE_HEADER = "Sandbox-Signature"

    def __init__(self, database_url: str, *, webhook_secret: str,
                 behaviour: SandboxBehaviour = SandboxBehaviour(), clock: Clock | None = None,
                 seed: int | None = None, sleep: Callable[[Any], Any] = time.sleep) -> None:
        if not webhook_secret:
            raise ValueError("the sandbox needs a webhook secret to sign its webhooks")
        self.database_url = database_url
        self.behaviour = behaviour
        self._secret = webhook_secret
        self._clock = clock or SystemClock()
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._engine = make_engine(database_url)
        state.create_schema(self._engine)

    def dispose(self) -> None:
        """Close the sandbox's database connections."""
        self._engine.dispose()

    # ---------------------------------------------------------------- payments (test setup)

    def create_payment(self, amount_minor: int, currency: str, *, card: str = "tok_visa") -> str:
        """A captured card payment to refund later; returns its id ``pi_sbx_…``."""
        _check_amount(amount_minor)
        payment_id = state.new_sandbox_id("pi")
        with write(self._engine) as conn:
            conn.execute(state.sandbox_payments.insert().values(
                id=payment_id, amount_minor=amount_minor, currency=_currency(currency),
                card=card, created_at=self._now()))
        return payment_id

    # ------------------------------------------------------------------------ the port

    def refund(self, payment_reference: str, amount_minor: int, currency: str,
               idempotency_key: str, metadata: Mapping[str, str]) -> GatewayRefund:
        """Refund through the API: latency and faults apply, then the refund is stored once."""
        if not idempotency_key or len(idempotency_key) > 255:
            raise ValueError("an idempotency key of 1 to 255 characters is required")
        self._pause(self.behaviour.latency_ms)
        fault = self._next_fault()
        if fault == "error_5xx":
            raise GatewayUnavailable("sandbox answered 503 (simulated)", status_code=503)
        if fault == "timeout_before":
            raise GatewayTimeout("sandbox did not answer in time (simulated, nothing applied)")
        refund = self._apply(payment_reference, amount_minor, currency, key=idempotency_key,
                             metadata=dict(metadata or {}), reason=None, origin="api")
        if fault == "timeout_after_apply":
            raise GatewayTimeout("sandbox did not answer in time (simulated, refund applied)")
        return refund

    def fetch_refund(self, gateway_refund_id: str) -> GatewayRefund:
        self._pause(self.behaviour.latency_ms)
        with read(self._engine) as conn:
            row = state.refund_row(conn, gateway_refund_id)
        if row is None:
            raise _declined(f"no such refund: {gateway_refund_id}", "resource_missing")
        return _to_refund(row)

    def find_refund_by_key(self, idempotency_key: str) -> GatewayRefund | None:
        self._pause(self.behaviour.latency_ms)
        with read(self._engine) as conn:
            row = state.refund_row_by_key(conn, idempotency_key)
        return _to_refund(row) if row else None

    def list_refunds(self, created_from: datetime, created_to: datetime) -> list[GatewayRefund]:
        """Every refund created in [created_from, created_to), oldest first."""
        self._pause(self.behaviour.latency_ms)
        with read(self._engine) as conn:
            rows = state.refund_rows_created(conn, created_from, created_to)
        return [_to_refund(row) for row in rows]

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Verify ``Sandbox-Signature`` against the sandbox clock (WebhookRejected if not
        authentic), then parse; an authentic event that is not about a refund raises
        :class:`~payback.gateways.stripe_mapping.UnsupportedEvent`."""
        verify_signature(headers, raw_body, self._secret, now=self._now(),
                         header_name=self.SIGNATURE_HEADER)
        try:
            event = json.loads(raw_body)
            if event.get("type") not in REFUND_EVENT_TYPES:
                raise UnsupportedEvent(f"not a refund event: {event.get('type')!r}")
            return GatewayEvent(
                event_id=event["id"], type=event["type"],
                created_at=datetime.fromtimestamp(int(event["created"]), tz=UTC),
                refund=state.refund_from_object(event["data"]["object"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, UnsupportedEvent):
                raise
            raise UnsupportedEvent(f"malformed sandbox event: {exc}") from exc

    # ------------------------------------------------------------- the gateway's own side

    def dashboard_refund(self, payment_reference: str, amount_minor: int, *,
                         reason: str = "requested_by_customer") -> GatewayRefund:
        """A refund made by a person in the gateway's dashboard: no key, no metadata, no
        faults; Payback learns of it from its webhooks or from reconciliation."""
        return self._apply(payment_reference, amount_minor, None, key=None, metadata={},
                           reason=reason, origin="dashboard")

    def advance(self, now: datetime | None = None) -> int:
        """Move every due pending / requires_action refund to its card's outcome, queue a
        webhook per change; return how many changed."""
        now = state.whole_seconds(now or self._now())
        changed = 0
        with write(self._engine) as conn:
            for row in state.due_open_refunds(conn, now):
                status, reason = state.final_outcome(row["card"])
                if state.move_refund(conn, row, status, reason, now):
                    state.queue_event(conn, row["id"], created=False, now=now,
                                      copies=self._copies())
                    changed += 1
        return changed

    def deliver_webhooks(self, send: Callable[[dict[str, str], bytes], int],
                         now: datetime | None = None, limit: int = 100) -> int:
        """Send each due queued webhook once: ``send(headers, body)`` returns an HTTP status or
        raises. 2xx delivers it; anything else retries later with backoff. Returns the number
        of attempts made."""
        now = now or self._now()
        with write(self._engine) as conn:
            batch = state.claim_deliveries(conn, now, limit)
        if self.behaviour.shuffle_webhooks:
            self._rng.shuffle(batch)
        for delivery in batch:
            status_code, error = self._send_one(send, delivery["body"].encode("utf-8"), now)
            with write(self._engine) as conn:
                state.record_attempt(conn, delivery["id"], delivery["attempts"] + 1,
                                     status_code, error, now)
        return len(batch)

    def pending_webhooks(self) -> int:
        """Deliveries still queued (not yet acknowledged with a 2xx, not given up)."""
        deliveries = state.sandbox_deliveries
        with read(self._engine) as conn:
            return conn.execute(select(func.count()).select_from(deliveries)
                                .where(deliveries.c.status == "queued")).scalar_one()

    # ------------------------------------------------------------------- test controls

    def inject(self, fault: str, count: int = 1) -> None:
        """Make the next ``count`` refund calls (from any process) hit ``fault``:
        ``timeout_before``, ``timeout_after_apply``, ``error_5xx`` or ``latency:<ms>``."""
        if fault not in FAULTS and _latency_of(fault) is None:
            raise ValueError(f"unknown sandbox fault {fault!r} (known: {', '.join(FAULTS)}, "
                             f"latency:<ms>)")
        if type(count) is not int or count < 1:
            raise ValueError("count must be a positive whole number")
        with write(self._engine) as conn:
            conn.execute(state.sandbox_faults.insert().values(
                fault=fault, remaining=count, created_at=self._now()))

    def count_refunds(self, *, idempotency_key: str | None = None,
                      payment_reference: str | None = None) -> int:
        """How many refunds the sandbox holds (optionally for one key or one payment)."""
        refunds = state.sandbox_refunds
        query = select(func.count()).select_from(refunds)
        if idempotency_key is not None:
            query = query.where(refunds.c.idempotency_key == idempotency_key)
        if payment_reference is not None:
            query = query.where(refunds.c.payment_id == payment_reference)
        with read(self._engine) as conn:
            return conn.execute(query).scalar_one()

    def set_refund_amount(self, gateway_refund_id: str, amount_minor: int) -> None:
        """TEST HOOK: silently change a refund's amount (no webhook), to make the gateway's
        records drift from Payback's for reconciliation tests. Never part of normal use."""
        refunds = state.sandbox_refunds
        with write(self._engine) as conn:
            result = conn.execute(update(refunds).where(refunds.c.id == gateway_refund_id)
                                  .values(amount_minor=amount_minor))
        if result.rowcount != 1:
            raise _declined(f"no such refund: {gateway_refund_id}", "resource_missing")

    # ------------------------------------------------------------------------- internals

    def _now(self) -> datetime:
        return self._clock.now()

    def _pause(self, milliseconds: int) -> None:
        if milliseconds > 0:
            self._sleep(milliseconds / 1000)

    def _next_fault(self) -> str | None:
        """An injected fault first (persisted, shared by processes), else the behaviour's dice."""
        fault = self._take_injected()
        latency = _latency_of(fault) if fault else None
        if latency is not None:
            self._pause(latency)
            return None
        return fault or self._roll_fault()

    def _take_injected(self) -> str | None:
        faults = state.sandbox_faults
        with read(self._engine) as conn:  # the common case (nothing injected) takes no lock
            if conn.execute(select(faults.c.id).where(faults.c.remaining > 0)).first() is None:
                return None
        with write(self._engine) as conn:
            return state.take_fault(conn)

    def _roll_fault(self) -> str | None:
        b = self.behaviour
        if not (b.error_percent or b.timeout_percent):
            return None
        roll = self._rng.randrange(100)
        if roll < b.error_percent:
            return "error_5xx"
        if roll < b.error_percent + b.timeout_percent:
            return "timeout_after_apply" if self._rng.randrange(2) else "timeout_before"
        return None

    def _copies(self) -> int:
        """Deliveries per event: two for the ``duplicate_webhook_percent`` of them."""
        percent = self.behaviour.duplicate_webhook_percent
        return 2 if percent and self._rng.randrange(100) < percent else 1

    def _apply(self, payment_reference: str, amount_minor: int, currency: str | None, *,
               key: str | None, metadata: dict, reason: str | None, origin: str) -> GatewayRefund:
        """Store the refund once. A race on the key loses at the unique constraint and then
        replays the winner's refund (read in a fresh transaction)."""
        try:
            return self._apply_once(payment_reference, amount_minor, currency, key=key,
                                    metadata=metadata, reason=reason, origin=origin)
        except IntegrityError:
            if key is None:
                raise
            return self._apply_once(payment_reference, amount_minor, currency, key=key,
                                    metadata=metadata, reason=reason, origin=origin)

    def _apply_once(self, payment_reference: str, amount_minor: int, currency: str | None, *,
                    key: str | None, metadata: dict, reason: str | None,
                    origin: str) -> GatewayRefund:
        """One transaction. ``currency`` None (the dashboard): the payment's own currency."""
        currency = currency.upper() if isinstance(currency, str) else currency
        wanted = state.fingerprint(payment_reference, amount_minor, currency)
        with write(self._engine) as conn:
            # Lock the payment BEFORE looking the key up: on PostgreSQL a concurrent request
            # with the same key has then committed, and we replay it instead of declining
            # for lack of remaining amount.
            payment = state.lock_payment(conn, payment_reference)
            if key is not None and (known := state.refund_row_by_key(conn, key)) is not None:
                if known["request_fingerprint"] != wanted:
                    raise _declined("idempotency key already used with other parameters",
                                    "idempotency_key_reuse")
                return _to_refund(known)
            self._check_refundable(conn, payment, payment_reference, amount_minor, currency)
            refund_id = self._insert(conn, payment, amount_minor, key=key, fingerprint=wanted,
                                     metadata=metadata, reason=reason, origin=origin)
            return _to_refund(state.refund_row(conn, refund_id))

    @staticmethod
    def _check_refundable(conn, payment: dict | None, payment_reference: str,
                          amount_minor: int, currency: str | None) -> None:
        """Raise GatewayDeclined unless this refund may be taken from the (locked) payment."""
        _check_amount(amount_minor, declined=True)
        if payment is None:
            raise _declined(f"no such payment: {payment_reference}", "resource_missing")
        if currency is not None and payment["currency"] != currency:
            raise _declined(f"the payment is in {payment['currency']}, not {currency}",
                            "currency_mismatch", FailureReason.DECLINED)
        remaining = state.remaining_minor(conn, payment)
        if remaining <= 0:
            raise _declined("the payment is already fully refunded", "charge_already_refunded",
                            FailureReason.ALREADY_REFUNDED)
        if amount_minor > remaining:
            raise _declined(f"only {remaining} remains refundable on this payment",
                            "amount_too_large", FailureReason.DECLINED)

    def _insert(self, conn, payment: dict, amount_minor: int, *, key: str | None,
                fingerprint: str, metadata: dict, reason: str | None, origin: str) -> str:
        now = state.whole_seconds(self._now())
        refund_id = state.new_sandbox_id("re")
        status = state.initial_status(payment["card"],
                                      async_completion=self.behaviour.async_completion)
        due = now + timedelta(seconds=self.behaviour.completion_delay_seconds)
        state.insert_refund(conn, {
            "id": refund_id, "payment_id": payment["id"], "amount_minor": amount_minor,
            "currency": payment["currency"], "status": status, "failure_reason": None,
            "idempotency_key": key, "request_fingerprint": fingerprint if key else None,
            "metadata": metadata, "reason": reason, "origin": origin, "created_at": now,
            "updated_at": now, "due_at": due if status in state.OPEN_STATUSES else None})
        state.queue_event(conn, refund_id, created=True, now=now, copies=self._copies())
        return refund_id

    def _send_one(self, send: Callable[[dict[str, str], bytes], int], body: bytes,
                  now: datetime) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json", "User-Agent": "payback-sandbox/1",
                   self.SIGNATURE_HEADER: sign_payload(self._secret, body, state.unix(now))}
        try:
            return int(send(headers, body)), None
        except Exception as exc:  # noqa: BLE001 - any failure to deliver means "retry later"
            return None, f"{type(exc).__name__}: {exc}"[:500]


# --------------------------------------------------------------------------------- helpers


def _to_refund(row: Mapping[str, Any]) -> GatewayRefund:
    return state.refund_from_object(state.refund_object(row))


def _declined(message: str, code: str,
              reason: FailureReason = FailureReason.UNKNOWN) -> GatewayDeclined:
    return GatewayDeclined(f"sandbox declined: {message}", reason=reason, gateway_code=code)


def _check_amount(amount_minor: int, *, declined: bool = False) -> None:
    if type(amount_minor) is not int or amount_minor <= 0:
        if declined:
            raise _declined(f"amount must be a positive integer, got {amount_minor!r}",
                            "parameter_invalid_integer", FailureReason.DECLINED)
        raise ValueError(f"amount_minor must be a positive int, got {amount_minor!r}")


def _currency(code: str) -> str:
    if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha()):
        raise ValueError(f"not an ISO 4217 currency code: {code!r}")
    return code.upper()


def _latency_of(fault: str) -> int | None:
    """``latency:<ms>`` → ms; anything else None."""
    if not fault.startswith(LATENCY_FAULT):
        return None
    value = fault[len(LATENCY_FAULT):]
    return int(value) if value.isdigit() else None
