"""The gateway port's value types and the Stripe → canonical mapping (issue 4; reliability tests
12/13: "no adapter reports succeeded on request received").

Covers: every Stripe refund status and failure reason maps to a canonical one, read from the real
Stripe OpenAPI schema in ``../shared/data/stripe_refund_schema.json`` (Stripe documents both lists
in the field descriptions, not as ``enum``s, so they are extracted from there); nothing but
Stripe's ``succeeded`` maps to succeeded (missing/unknown status → pending); reasons only on failed
or canceled refunds; full refund objects and events (incl. the real fixture object) map with exact
amounts; ``GatewayRefund``/``GatewayEvent`` validation; the error types.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from payback.errors import DomainError
from payback.gateways import (
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
from payback.gateways import stripe_mapping as sm

DOCUMENTED_STATUSES = {"pending", "requires_action", "succeeded", "failed", "canceled"}
DOCUMENTED_REASONS = {
    "lost_or_stolen_card",
    "expired_or_canceled_card",
    "charge_for_pending_refund_disputed",
    "insufficient_funds",
    "declined",
    "merchant_request",
    "unknown",
}


def _schema_values(prop: dict) -> set[str]:
    """Allowed values of a schema property: its ``enum`` if it has one, else the back-quoted
    values in its description (how Stripe's spec documents refund status and failure_reason)."""
    if "enum" in prop:
        return set(prop["enum"])
    return set(re.findall(r"`([a-z_]+)`", prop["description"]))


@pytest.fixture
def refund_schema(shared_data):
    data = json.loads((shared_data / "stripe_refund_schema.json").read_text(encoding="utf-8"))
    return data


def test_every_status_and_failure_reason_of_the_real_schema_is_mapped(refund_schema):
    props = refund_schema["openapi_2023_08_16"]["schemas"]["refund"]["properties"]
    statuses = _schema_values(props["status"])
    reasons = _schema_values(props["failure_reason"])
    # The extraction itself found the documented lists (so an empty set cannot pass vacuously).
    assert statuses == DOCUMENTED_STATUSES
    assert reasons == DOCUMENTED_REASONS
    assert statuses <= set(sm.STATUS_MAP)
    assert reasons <= set(sm.FAILURE_REASON_MAP)
    # The newer SDK keeps both fields.
    sdk = refund_schema["sdk_16_1_0"]["fields"]["Refund"]
    assert {"status", "failure_reason"} <= set(sdk)


def test_real_fixture_refund_object_maps(refund_schema):
    obj = refund_schema["fixtures_2026_07"]["refund"]
    refund = sm.refund_from_stripe(obj)
    assert refund == GatewayRefund(
        gateway_refund_id="re_1Pgc72B7WZ01zgkWqPvrRrPE",
        status=RefundStatus.SUCCEEDED,
        amount_minor=100,
        currency="USD",
        idempotency_key=None,
        failure_reason=None,
        payment_reference="ch_1PgafuB7WZ01zgkWXYmPNZs8",
        created_at=datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC),
    )
    assert refund.raw["charge"] == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert refund.metadata == {}


@pytest.mark.parametrize(
    ("stripe_status", "canonical"),
    [
        ("pending", RefundStatus.PENDING),
        ("requires_action", RefundStatus.REQUIRES_ACTION),
        ("succeeded", RefundStatus.SUCCEEDED),
        ("failed", RefundStatus.FAILED),
        ("canceled", RefundStatus.CANCELED),
        (None, RefundStatus.PENDING),
        ("processing", RefundStatus.PENDING),
        ("SUCCEEDED", RefundStatus.PENDING),
        ("success", RefundStatus.PENDING),
        ("", RefundStatus.PENDING),
    ],
)
def test_map_status(stripe_status, canonical):
    assert sm.map_status(stripe_status) is canonical


def test_only_stripe_succeeded_maps_to_succeeded():
    succeeded = [k for k, v in sm.STATUS_MAP.items() if v is RefundStatus.SUCCEEDED]
    assert succeeded == ["succeeded"]
    assert set(sm.STATUS_MAP.values()) == set(RefundStatus)


@pytest.mark.parametrize(
    ("stripe_reason", "canonical"),
    [
        ("lost_or_stolen_card", FailureReason.LOST_OR_STOLEN_CARD),
        ("expired_or_canceled_card", FailureReason.EXPIRED_OR_CANCELED_CARD),
        ("charge_for_pending_refund_disputed", FailureReason.DISPUTED),
        ("insufficient_funds", FailureReason.INSUFFICIENT_FUNDS),
        ("declined", FailureReason.DECLINED),
        ("merchant_request", FailureReason.MERCHANT_REQUEST),
        ("unknown", FailureReason.UNKNOWN),
        ("a_reason_stripe_adds_later", FailureReason.UNKNOWN),
        (None, FailureReason.UNKNOWN),
    ],
)
def test_map_failure_reason_on_failed_and_canceled(stripe_reason, canonical):
    assert sm.map_failure_reason(stripe_reason, RefundStatus.FAILED) is canonical
    assert sm.map_failure_reason(stripe_reason, RefundStatus.CANCELED) is canonical


@pytest.mark.parametrize(
    "status", [RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION, RefundStatus.SUCCEEDED]
)
def test_no_failure_reason_unless_failed_or_canceled(status):
    assert sm.map_failure_reason("declined", status) is None


def _stripe_refund(**over):
    obj = {
        "id": "re_123",
        "object": "refund",
        "amount": 4999,
        "currency": "eur",
        "status": "pending",
        "failure_reason": None,
        "metadata": {"payback_refund_id": "rf_01J0000000000000000000000"},
        "payment_intent": "pi_1",
    }
    obj.update(over)
    return obj


def test_refund_from_stripe_failed_card_closed():
    refund = sm.refund_from_stripe(
        _stripe_refund(status="failed", failure_reason="expired_or_canceled_card")
    )
    assert (refund.gateway_refund_id, refund.status, refund.amount_minor, refund.currency) == (
        "re_123",
        RefundStatus.FAILED,
        4999,
        "EUR",
    )
    assert refund.failure_reason is FailureReason.EXPIRED_OR_CANCELED_CARD
    assert refund.idempotency_key == "rf_01J0000000000000000000000"
    assert refund.is_terminal


def test_refund_from_stripe_payment_reference_created_and_metadata():
    by_intent = sm.refund_from_stripe(_stripe_refund(charge="ch_9", created=1768471200))
    assert by_intent.payment_reference == "pi_1"  # the PaymentIntent wins over its charge
    assert by_intent.created_at == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert by_intent.metadata == {"payback_refund_id": "rf_01J0000000000000000000000"}
    by_charge = sm.refund_from_stripe(_stripe_refund(payment_intent=None, charge="py_7"))
    assert (by_charge.payment_reference, by_charge.created_at) == ("py_7", None)
    expanded = sm.refund_from_stripe(_stripe_refund(payment_intent={"id": "pi_x", "object": "x"}))
    assert expanded.payment_reference == "pi_x"
    neither = sm.refund_from_stripe(_stripe_refund(payment_intent=None, metadata=None))
    assert (neither.payment_reference, neither.metadata, neither.idempotency_key) == (None, {}, None)


def test_refund_from_stripe_pending_insufficient_funds_is_not_terminal():
    # Card refunds stay pending when the merchant's balance is short: not failed, not succeeded.
    refund = sm.refund_from_stripe(_stripe_refund(pending_reason="insufficient_funds"))
    assert refund.status is RefundStatus.PENDING
    assert refund.failure_reason is None
    assert not refund.is_terminal


def test_requires_action_then_canceled():
    first = sm.refund_from_stripe(_stripe_refund(status="requires_action"))
    later = sm.refund_from_stripe(_stripe_refund(status="canceled"))
    assert (first.status, first.is_terminal) == (RefundStatus.REQUIRES_ACTION, False)
    assert (later.status, later.failure_reason) == (RefundStatus.CANCELED, FailureReason.UNKNOWN)


def test_refund_from_stripe_refuses_non_refund_objects_and_float_amounts():
    with pytest.raises(sm.UnsupportedEvent):
        sm.refund_from_stripe(_stripe_refund(object="charge"))
    with pytest.raises(ValueError):
        sm.refund_from_stripe(_stripe_refund(amount=49.99))


def test_event_from_stripe():
    event = sm.event_from_stripe(
        {
            "id": "evt_9",
            "object": "event",
            "type": "refund.updated",
            "created": 1768471200,
            "data": {"object": _stripe_refund(status="succeeded")},
        }
    )
    assert event == GatewayEvent(
        event_id="evt_9",
        type="refund.updated",
        created_at=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
        refund=GatewayRefund(
            "re_123",
            RefundStatus.SUCCEEDED,
            4999,
            "EUR",
            "rf_01J0000000000000000000000",
            payment_reference="pi_1",
        ),
    )
    assert event.refund.metadata == {"payback_refund_id": "rf_01J0000000000000000000000"}
    with pytest.raises(sm.UnsupportedEvent):
        sm.event_from_stripe(
            {"id": "evt_1", "type": "charge.succeeded", "created": 1, "data": {"object": {}}}
        )


def test_gateway_refund_validation():
    ok = GatewayRefund("re_1", "failed", 0, "GBP", failure_reason="declined")
    assert (ok.status, ok.failure_reason) == (RefundStatus.FAILED, FailureReason.DECLINED)
    with pytest.raises(ValueError):
        GatewayRefund("re_1", "refunded", 100, "GBP")  # not a canonical status
    with pytest.raises(ValueError):
        GatewayRefund("re_1", "succeeded", -1, "GBP")
    with pytest.raises(ValueError):
        GatewayRefund("re_1", "succeeded", True, "GBP")
    with pytest.raises(ValueError):
        GatewayRefund("re_1", "succeeded", 100, "gbp")
    with pytest.raises(ValueError):
        GatewayRefund("", "succeeded", 100, "GBP")
    with pytest.raises(ValueError):
        GatewayRefund("re_1", "succeeded", 100, "GBP", failure_reason="declined")
    with pytest.raises(ValueError):
        GatewayEvent("evt", "refund.updated", datetime(2026, 1, 1), ok)
    # frozen, and raw takes no part in equality or hashing
    with pytest.raises(AttributeError):
        ok.amount_minor = 5  # type: ignore[misc]
    same = GatewayRefund("re_1", "failed", 0, "GBP", failure_reason="declined", raw={"x": 1})
    assert same == ok and hash(same) == hash(ok)


def test_terminal_statuses():
    assert {s for s in RefundStatus if s.is_terminal} == {
        RefundStatus.SUCCEEDED,
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
    }


def test_errors():
    assert issubclass(GatewayTimeout, GatewayError) and issubclass(GatewayUnavailable, GatewayError)
    assert not issubclass(GatewayTimeout, DomainError)
    assert GatewayUnavailable("503", status_code=503).status_code == 503
    declined = GatewayDeclined("no", reason="not_settled", gateway_code="91506")
    assert (declined.reason, declined.gateway_code) == (FailureReason.NOT_SETTLED, "91506")
    rejected = WebhookRejected("bad", reason="signature_mismatch")
    assert (rejected.code, rejected.status, rejected.reason) == (
        "webhook_rejected",
        400,
        "signature_mismatch",
    )


def test_gateway_protocol_is_structural():
    class Fake:
        name = "fake"

        def refund(self, payment_reference, amount_minor, currency, idempotency_key, metadata):
            return GatewayRefund("re_f", "pending", amount_minor, currency, idempotency_key)

        def fetch_refund(self, gateway_refund_id):
            raise NotImplementedError

        def parse_webhook(self, headers, raw_body):
            raise NotImplementedError

        def list_refunds(self, created_from, created_to):
            return []

        def find_refund_by_key(self, idempotency_key):
            return None

    class Incomplete:
        name = "half"

        def refund(self, *a):
            raise NotImplementedError

    assert isinstance(Fake(), Gateway)
    assert not isinstance(Incomplete(), Gateway)
