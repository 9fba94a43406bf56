"""The ``stripe`` gateway adapter against a local server that plays Stripe (issue 4).

The official ``stripe`` package sends real HTTP to ``tests/integration/stripe_fake_server.py``,
which checks EVERY request against Stripe's published OpenAPI description in
``../shared/data/stripe_refund_schema.json`` (the fixture ``stripe_api`` fails the test if any
request departed from it) and answers with refund objects built from the schema's own example.

Covers: refunds by PaymentIntent and by charge (what is sent, and what is not: no currency, a
``reason`` only from Stripe's enum); the same idempotency key twice → one refund, replayed; the
same key with other parameters → declined; every Stripe refund status → canonical; 5xx / 429 /
409 → unavailable, a slow answer or a dropped connection → timeout (outcome unknown, and the retry
with the same key replays the refund made), a refused connection → unavailable; 4xx → declined
with canonical reasons; the API key never in an error; card numbers refused before sending; an
answer in another currency flagged; list_refunds across pages within [from, to);
find_refund_by_key within 30 days (also a split refund's per-payment key); webhooks: valid,
rotated secrets, tampered, expired, not a refund, not JSON. No database is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.stripe_fake_server import FakeStripe, SchemaChecker

from payback.gateways.port import (
    FailureReason,
    GatewayDeclined,
    GatewayRefund,
    GatewayTimeout,
    GatewayUnavailable,
    RefundStatus,
    WebhookRejected,
)
from payback.gateways.stripe_adapter import (
    STRIPE_REQUEST_REASONS,
    StripeAnswerMismatch,
    StripeGateway,
    unix_ceil,
)
from payback.gateways.stripe_mapping import UnsupportedEvent
from payback.payments.service import CardDataRefused

API_KEY = "sk_test_51PaybackFakeKey0123456789abcdef"
WEBHOOK_SECRET = "whsec_current_0123456789abcdef"
OLD_WEBHOOK_SECRET = "whsec_previous_fedcba9876543210"
PI = "pi_3PaybackIntent0000000001"


@pytest.fixture
def schema(shared_data):
    return json.loads((shared_data / "stripe_refund_schema.json").read_text(encoding="utf-8"))


@pytest.fixture
def stripe_api(schema, clock):
    fake = FakeStripe(schema, api_key=API_KEY, clock=clock)
    fake.start()
    yield fake
    fake.stop()
    # Every request the stripe package sent conformed to Stripe's published spec.
    assert fake.violations == []


@pytest.fixture
def gateway(stripe_api, clock):
    return StripeGateway(
        API_KEY,
        webhook_secrets=[WEBHOOK_SECRET],
        api_base=stripe_api.url,
        timeout_seconds=5,
        clock=clock,
    )


def meta(refund_id: str, **extra: str) -> dict[str, str]:
    return {"payback_refund_id": refund_id, "payback_intent_id": f"gwi_of_{refund_id}", **extra}


# --------------------------------------------------------------------------------- refunds


def test_refund_by_payment_intent_sends_exactly_the_declared_fields(gateway, stripe_api, clock):
    stripe_api.add_payment(PI, 10_000, "eur", refund_status="pending")

    result = gateway.refund(PI, 2_500, "EUR", "re_01jpayback0001", meta("re_01jpayback0001"))

    (made,) = stripe_api.refunds.values()
    assert result == GatewayRefund(
        gateway_refund_id=made["id"],
        status=RefundStatus.PENDING,
        amount_minor=2_500,
        currency="EUR",
        idempotency_key="re_01jpayback0001",
        payment_reference=PI,
        created_at=clock.now(),
    )
    assert result.metadata == meta("re_01jpayback0001")
    (sent,) = stripe_api.requests
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/refunds", {})
    # No currency (Stripe refunds in the payment's), no charge, no reason.
    assert sent.form == {
        "payment_intent": PI,
        "amount": "2500",
        "metadata": meta("re_01jpayback0001"),
    }
    assert sent.headers["idempotency-key"] == "re_01jpayback0001"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("reference", ["ch_3PaybackCharge000001", "py_3PaybackPayment00001"])
def test_refund_by_charge(gateway, stripe_api, reference):
    stripe_api.add_payment(reference, 4_000, "gbp")
    metadata = meta("re_01jpayback0002", reason="requested_by_customer")

    result = gateway.refund(reference, 4_000, "GBP", "re_01jpayback0002", metadata)

    (sent,) = stripe_api.requests
    assert sent.form == {
        "charge": reference,
        "amount": "4000",
        "metadata": metadata,
        "reason": "requested_by_customer",
    }
    assert (result.status, result.amount_minor, result.currency) == (
        RefundStatus.SUCCEEDED,
        4_000,
        "GBP",
    )
    assert result.payment_reference == reference
    assert stripe_api.refunds[result.gateway_refund_id]["reason"] == "requested_by_customer"


@pytest.mark.parametrize(
    ("reason", "sent_as_reason"),
    [
        ("duplicate", True),
        ("fraudulent", True),
        ("requested_by_customer", True),
        ("expired_uncaptured_charge", False),  # Stripe's own, not accepted on create
        ("damaged in transit", False),
    ],
)
def test_reason_is_sent_only_when_stripe_accepts_it(gateway, stripe_api, reason, sent_as_reason):
    stripe_api.add_payment(PI, 1_000, "eur")
    gateway.refund(PI, 1_000, "EUR", "re_r", meta("re_r", reason=reason))
    (sent,) = stripe_api.requests
    assert sent.form["metadata"]["reason"] == reason
    assert ("reason" in sent.form) is sent_as_reason


def test_request_reasons_are_the_schema_enum(schema):
    body = schema["openapi_2023_08_16"]["paths"]["/v1/refunds"]["post"]["requestBody"]
    props = body["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert STRIPE_REQUEST_REASONS == set(props["reason"]["enum"])


def test_the_same_key_twice_makes_one_refund_and_replays_it(gateway, stripe_api):
    stripe_api.add_payment(PI, 10_000, "eur")
    first = gateway.refund(PI, 3_000, "EUR", "re_twice", meta("re_twice"))
    second = gateway.refund(PI, 3_000, "EUR", "re_twice", meta("re_twice"))

    assert second == first
    posts = stripe_api.requests_to("POST", "/v1/refunds")
    assert [p.headers["idempotency-key"] for p in posts] == ["re_twice", "re_twice"]
    assert [p.replayed for p in posts] == [False, True]
    assert len(stripe_api.refunds) == 1
    assert stripe_api.payments[PI].refunded == 3_000


def test_the_same_key_with_another_amount_is_declined(gateway, stripe_api):
    stripe_api.add_payment(PI, 10_000, "eur")
    gateway.refund(PI, 3_000, "EUR", "re_reused", meta("re_reused"))
    with pytest.raises(GatewayDeclined) as caught:
        gateway.refund(PI, 3_001, "EUR", "re_reused", meta("re_reused"))
    assert (caught.value.reason, caught.value.gateway_code) == (
        FailureReason.DECLINED,
        "idempotency_error",
    )
    assert len(stripe_api.refunds) == 1


@pytest.mark.parametrize(
    ("stripe_status", "stripe_reason", "status", "reason"),
    [
        ("pending", None, RefundStatus.PENDING, None),
        ("requires_action", None, RefundStatus.REQUIRES_ACTION, None),
        ("succeeded", None, RefundStatus.SUCCEEDED, None),
        (
            "failed",
            "expired_or_canceled_card",
            RefundStatus.FAILED,
            FailureReason.EXPIRED_OR_CANCELED_CARD,
        ),
        ("failed", "lost_or_stolen_card", RefundStatus.FAILED, FailureReason.LOST_OR_STOLEN_CARD),
        ("canceled", "merchant_request", RefundStatus.CANCELED, FailureReason.MERCHANT_REQUEST),
    ],
)
def test_stripe_statuses_map_on_refund_and_fetch(
    gateway, stripe_api, stripe_status, stripe_reason, status, reason
):
    stripe_api.add_payment(
        PI, 5_000, "usd", refund_status=stripe_status, failure_reason=stripe_reason
    )
    made = gateway.refund(PI, 5_000, "USD", "re_status", meta("re_status"))
    fetched = gateway.fetch_refund(made.gateway_refund_id)

    for refund in (made, fetched):
        assert (refund.status, refund.failure_reason) == (status, reason)
    assert fetched == made
    assert stripe_api.requests[-1].method == "GET"
    assert stripe_api.requests[-1].path == f"/v1/refunds/{made.gateway_refund_id}"


def test_fetching_a_refund_stripe_does_not_know_is_declined_unknown(gateway, stripe_api):
    with pytest.raises(GatewayDeclined) as caught:
        gateway.fetch_refund("re_nothere")
    assert (caught.value.reason, caught.value.gateway_code) == (
        FailureReason.UNKNOWN,
        "resource_missing",
    )


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, None), (503, None), (429, "rate_limit"), (409, "idempotency_key_in_use")],
)
def test_server_errors_rate_limits_and_conflicts_are_unavailable_then_retry_works(
    gateway, stripe_api, status, code
):
    stripe_api.add_payment(PI, 10_000, "eur")
    stripe_api.fail_next(status, code=code)

    with pytest.raises(GatewayUnavailable) as caught:
        gateway.refund(PI, 1_000, "EUR", "re_retry", meta("re_retry"))
    assert caught.value.status_code == status
    assert len(stripe_api.requests) == 1  # max_network_retries=0: the SDK did not resend
    assert stripe_api.refunds == {}

    again = gateway.refund(PI, 1_000, "EUR", "re_retry", meta("re_retry"))
    assert again.status is RefundStatus.SUCCEEDED
    assert len(stripe_api.refunds) == 1


def test_a_400_that_stripe_marks_retryable_is_unavailable(gateway, stripe_api):
    stripe_api.add_payment(PI, 10_000, "eur")
    stripe_api.fail_next(400, kind="invalid_request_error", code="lock_timeout")
    with pytest.raises(GatewayUnavailable) as caught:
        gateway.refund(PI, 1_000, "EUR", "re_lock", meta("re_lock"))
    assert caught.value.status_code == 400


def test_an_answer_slower_than_the_timeout_is_a_timeout_and_the_retry_replays(stripe_api, clock):
    gateway = StripeGateway(
        API_KEY,
        webhook_secrets=[WEBHOOK_SECRET],
        api_base=stripe_api.url,
        timeout_seconds=1,
        clock=clock,
    )
    stripe_api.add_payment(PI, 10_000, "eur")
    stripe_api.delay_next(2)

    with pytest.raises(GatewayTimeout) as caught:
        gateway.refund(PI, 2_000, "EUR", "re_slow", meta("re_slow"))
    assert "outcome is unknown" in str(caught.value)
    (made,) = stripe_api.refunds  # Stripe did make it: the outcome really was unknown

    again = gateway.refund(PI, 2_000, "EUR", "re_slow", meta("re_slow"))
    assert again.gateway_refund_id == made
    assert len(stripe_api.refunds) == 1
    assert stripe_api.requests[-1].replayed


def test_a_connection_dropped_after_sending_is_a_timeout(gateway, stripe_api):
    stripe_api.add_payment(PI, 10_000, "eur")
    stripe_api.drop_next()

    with pytest.raises(GatewayTimeout):
        gateway.refund(PI, 2_000, "EUR", "re_dropped", meta("re_dropped"))
    found = gateway.find_refund_by_key("re_dropped")
    assert found is not None and found.gateway_refund_id in stripe_api.refunds


def test_a_refused_connection_is_unavailable(clock):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = StripeGateway(
        API_KEY,
        webhook_secrets=[WEBHOOK_SECRET],
        api_base=f"http://127.0.0.1:{port}",
        timeout_seconds=2,
        clock=clock,
    )
    with pytest.raises(GatewayUnavailable) as caught:
        gateway.refund(PI, 100, "EUR", "re_refused", meta("re_refused"))
    assert caught.value.status_code is None
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("refunded_first", "amount", "reference", "reason", "code"),
    [
        (5_000, 1, PI, FailureReason.ALREADY_REFUNDED, "charge_already_refunded"),
        (4_000, 1_001, PI, FailureReason.DECLINED, "amount_too_large"),
        (4_000, 100, "pi_3PaybackUnknown000001", FailureReason.UNKNOWN, "resource_missing"),
    ],
)
def test_stripe_refusals_are_declined_with_a_canonical_reason(
    gateway, stripe_api, refunded_first, amount, reference, reason, code
):
    stripe_api.add_payment(PI, 5_000, "eur")
    gateway.refund(PI, refunded_first, "EUR", "re_first", meta("re_first"))

    with pytest.raises(GatewayDeclined) as caught:
        gateway.refund(reference, amount, "EUR", "re_more", meta("re_more"))
    assert (caught.value.reason, caught.value.gateway_code) == (reason, code)
    assert len(stripe_api.refunds) == 1


def test_the_api_key_never_appears_in_an_error(stripe_api, clock):
    wrong_key = "sk_test_51WrongKeyWrongKey0123456789"
    gateway = StripeGateway(
        wrong_key, webhook_secrets=[WEBHOOK_SECRET], api_base=stripe_api.url, clock=clock
    )
    stripe_api.add_payment(PI, 5_000, "eur")
    # A refused key is configuration, not a refusal of the refund: retry later, never fail it.
    with pytest.raises(GatewayUnavailable) as caught:
        gateway.refund(PI, 100, "EUR", "re_key", meta("re_key"))
    assert caught.value.status_code == 401
    # The fake echoes the whole key it got (Stripe masks it); the adapter must not pass it on.
    assert stripe_api.requests[0].status == 401
    error = caught.value
    for text in (str(error), repr(error), repr(gateway)):
        assert wrong_key not in text
    assert "[redacted]" in str(error)
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize(
    "metadata",
    [
        meta("re_card", note="card 4242 4242 4242 4242"),
        meta("re_card", note="4000-0566-5566-5556"),
        {**meta("re_card"), "4242424242424242": "x"},
    ],
)
def test_card_numbers_are_refused_before_anything_is_sent(gateway, stripe_api, metadata):
    stripe_api.add_payment(PI, 5_000, "eur")
    with pytest.raises(CardDataRefused) as caught:
        gateway.refund(PI, 100, "EUR", "re_card", metadata)
    assert "4242" not in str(caught.value) and "5556" not in str(caught.value)
    assert stripe_api.requests == []


def test_a_refund_in_another_currency_than_asked_is_flagged(gateway, stripe_api):
    stripe_api.add_payment(PI, 5_000, "usd")
    with pytest.raises(StripeAnswerMismatch) as caught:
        gateway.refund(PI, 100, "EUR", "re_fx", meta("re_fx"))
    assert caught.value.refund.currency == "USD"
    assert "100 USD" in str(caught.value) and "100 EUR" in str(caught.value)


# ------------------------------------------------------------------------ listing, finding


def test_list_refunds_follows_every_page_within_the_half_open_period(gateway, stripe_api, clock):
    stripe_api.page_size = 2
    stripe_api.add_payment(PI, 100_000, "gbp")
    start = clock.now()
    t0 = int(start.timestamp())
    stripe_api.add_refund(PI, 10, created=t0 - 1)  # just before
    inside = [stripe_api.add_refund(PI, 100 + i, created=t0 + 60 * i) for i in range(5)]
    stripe_api.add_refund(PI, 20, created=t0 + 300)  # at the end: excluded

    found = gateway.list_refunds(start, start + timedelta(seconds=300))

    assert [r.gateway_refund_id for r in found] == [r["id"] for r in reversed(inside)]
    assert [r.amount_minor for r in found] == [104, 103, 102, 101, 100]
    gets = stripe_api.requests_to("GET", "/v1/refunds")
    assert [g.query.get("starting_after") for g in gets] == [
        None,
        found[1].gateway_refund_id,
        found[3].gateway_refund_id,
    ]
    for get in gets:
        assert get.query["created"] == {"gte": str(t0), "lt": str(t0 + 300)}
        assert get.query["limit"] == "100"


def test_unix_ceil_keeps_the_period_half_open():
    moment = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    t = 1768471200
    assert unix_ceil(moment) == t
    assert unix_ceil(moment + timedelta(microseconds=1)) == t + 1
    assert unix_ceil(moment - timedelta(microseconds=1)) == t
    with pytest.raises(ValueError):
        unix_ceil(datetime(2026, 1, 15))


def test_find_refund_by_key_scans_the_last_30_days(gateway, stripe_api, clock):
    stripe_api.page_size = 2
    stripe_api.add_payment(PI, 100_000, "usd")
    now = int(clock.now().timestamp())
    stripe_api.add_refund(PI, 100, created=now - 31 * 86_400, metadata=meta("re_too_old"))
    target = gateway.refund(PI, 200, "USD", "re_target", meta("re_target"))
    for i in range(4):  # newer refunds of other keys, so the match is on a later page
        stripe_api.add_refund(PI, 300 + i, created=now + 10 + i, metadata=meta(f"re_other{i}"))

    assert gateway.find_refund_by_key("re_target") == target
    assert gateway.find_refund_by_key("re_too_old") is None
    assert gateway.find_refund_by_key("re_never") is None
    gets = stripe_api.requests_to("GET", "/v1/refunds")
    assert {g.query["created"]["gte"] for g in gets} == {str(now - 30 * 86_400)}
    assert all("lt" not in g.query["created"] for g in gets)


def test_a_split_refunds_per_payment_key_is_recorded_and_found(gateway, stripe_api):
    stripe_api.add_payment(PI, 10_000, "eur")
    made = gateway.refund(PI, 500, "EUR", "re_split-2", meta("re_split"))

    (sent,) = stripe_api.requests
    assert sent.form["metadata"] == {**meta("re_split"), "payback_idempotency_key": "re_split-2"}
    assert made.idempotency_key == "re_split-2"
    assert gateway.find_refund_by_key("re_split-2") == made
    assert gateway.find_refund_by_key("re_split") is None


# -------------------------------------------------------------------------------- webhooks


def _refund_event(event_type: str = "refund.updated", **refund: object) -> dict:
    obj = {
        "id": "re_hook1",
        "object": "refund",
        "amount": 2_500,
        "currency": "eur",
        "status": "succeeded",
        "payment_intent": PI,
        "charge": "ch_hook1",
        "metadata": meta("re_01jpayback0001"),
        "created": 1768471100,
        **refund,
    }
    return {
        "id": "evt_1PaybackHook",
        "object": "event",
        "type": event_type,
        "created": 1768471200,
        "data": {"object": obj},
    }


def _signed(body: bytes, *secrets: str, t: int) -> dict[str, str]:
    """Stripe's scheme, computed here independently of payback.gateways.signatures."""
    v1 = [
        hmac.new(s.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest() for s in secrets
    ]
    return {"Stripe-Signature": ",".join([f"t={t}", *(f"v1={v}" for v in v1)])}


@pytest.fixture
def hooks(clock):
    """A Stripe gateway in the middle of a webhook secret rotation (no API calls made)."""
    return StripeGateway(API_KEY, webhook_secrets=[WEBHOOK_SECRET, OLD_WEBHOOK_SECRET], clock=clock)


def _now(clock) -> int:
    return int(clock.now().timestamp())


def test_a_valid_stripe_event_is_parsed(hooks, clock):
    body = json.dumps(_refund_event()).encode()
    event = hooks.parse_webhook(_signed(body, WEBHOOK_SECRET, t=_now(clock)), body)

    assert (event.event_id, event.type) == ("evt_1PaybackHook", "refund.updated")
    assert event.created_at == datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert event.refund == GatewayRefund(
        "re_hook1",
        RefundStatus.SUCCEEDED,
        2_500,
        "EUR",
        "re_01jpayback0001",
        payment_reference=PI,
        created_at=datetime(2026, 1, 15, 9, 58, 20, tzinfo=UTC),
    )
    assert event.refund.metadata["payback_intent_id"] == "gwi_of_re_01jpayback0001"


@pytest.mark.parametrize(
    "signers",
    [
        (OLD_WEBHOOK_SECRET,),  # still signed with the secret being retired
        ("whsec_someone_elses", WEBHOOK_SECRET),  # one v1 of several matches
        (OLD_WEBHOOK_SECRET, WEBHOOK_SECRET),
    ],
)
def test_rotated_secrets_are_accepted(hooks, clock, signers):
    body = json.dumps(
        _refund_event("refund.failed", status="failed", failure_reason="declined")
    ).encode()
    event = hooks.parse_webhook(_signed(body, *signers, t=_now(clock)), body)
    assert (event.refund.status, event.refund.failure_reason) == (
        RefundStatus.FAILED,
        FailureReason.DECLINED,
    )


def test_secrets_from_one_comma_separated_setting(clock):
    gateway = StripeGateway(
        API_KEY, webhook_secrets=f" {WEBHOOK_SECRET}, {OLD_WEBHOOK_SECRET},", clock=clock
    )
    body = json.dumps(_refund_event()).encode()
    assert gateway.parse_webhook(_signed(body, OLD_WEBHOOK_SECRET, t=_now(clock)), body)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("body", "signature_mismatch"),
        ("unknown_secret", "signature_mismatch"),
        ("too_old", "timestamp_too_old"),
        ("future", "timestamp_in_future"),
        ("no_header", "missing_header"),
    ],
)
def test_tampered_or_expired_webhooks_are_rejected(hooks, clock, tamper, reason):
    body = json.dumps(_refund_event()).encode()
    now = _now(clock)
    headers = {
        "body": _signed(body, WEBHOOK_SECRET, t=now),
        "unknown_secret": _signed(body, "whsec_not_ours", t=now),
        "too_old": _signed(body, WEBHOOK_SECRET, t=now - 301),
        "future": _signed(body, WEBHOOK_SECRET, t=now + 301),
        "no_header": {},
    }[tamper]
    if tamper == "body":
        body = body.replace(b"2500", b"9500")
    with pytest.raises(WebhookRejected) as caught:
        hooks.parse_webhook(headers, body)
    assert caught.value.reason == reason


def test_a_webhook_exactly_at_the_tolerance_is_accepted(hooks, clock):
    body = json.dumps(_refund_event()).encode()
    assert hooks.parse_webhook(_signed(body, WEBHOOK_SECRET, t=_now(clock) - 300), body)


def test_an_authentic_event_about_something_else_is_unsupported(hooks, clock):
    body = json.dumps(
        {
            "id": "evt_2",
            "object": "event",
            "type": "charge.succeeded",
            "created": 1768471200,
            "data": {"object": {"object": "charge"}},
        }
    ).encode()
    with pytest.raises(UnsupportedEvent):
        hooks.parse_webhook(_signed(body, WEBHOOK_SECRET, t=_now(clock)), body)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"type": "refund.updated"}'])
def test_an_authentic_but_malformed_event_is_rejected(hooks, clock, body):
    with pytest.raises(WebhookRejected) as caught:
        hooks.parse_webhook(_signed(body, WEBHOOK_SECRET, t=_now(clock)), body)
    assert caught.value.reason == "malformed_payload"


# ------------------------------------------------------------- the schema check can fail


def test_the_schema_checker_refuses_what_stripe_would(schema):
    checker = SchemaChecker(schema)
    good = {
        "authorization": f"Bearer {API_KEY}",
        "idempotency-key": "k",
        "stripe-version": "2026-10-28.endive",
        "content-type": "application/x-www-form-urlencoded",
    }

    def post(body: str, headers=good):
        return checker.check("POST", "/v1/refunds", headers, body.encode())

    assert post(f"payment_intent={PI}&amount=100&metadata[a]=b&reason=duplicate") == []
    assert (
        checker.check("GET", "/v1/refunds?created[gte]=1&limit=100&starting_after=re_1", good, b"")
        == []
    )
    cases = {
        "amount=12.5": "not an integer",
        "amount=100&card_number=4242": "not a declared property",
        "amount=100&reason=because": "is not one of",
        "amount=100&metadata[a][b]=c": "fits none",
        "amount=100&amount=200": "more than once",
    }
    for body, expected in cases.items():
        problems = post(body)
        assert any(expected in p for p in problems), (body, problems)
    without_key = {k: v for k, v in good.items() if k != "idempotency-key"}
    assert any("Idempotency-Key" in p for p in post("amount=1", without_key))
    without_auth = {k: v for k, v in good.items() if k != "authorization"}
    assert any("Authorization" in p for p in post("amount=1", without_auth))
    assert any(
        "not an integer" in p
        for p in checker.check("GET", "/v1/refunds?created[gte]=soon", good, b"")
    )
    assert any(
        "not declared" in p for p in checker.check("GET", "/v1/refunds?currency=eur", good, b"")
    )
    assert any(
        "no such operation" in p for p in checker.check("POST", "/v1/charges", good, b"amount=1")
    )
    assert any(
        "no such operation" in p for p in checker.check("DELETE", "/v1/refunds/re_1", good, b"")
    )
