"""The built-in sandbox gateway (payback.gateways.sandbox) on its own real database.

Each test gets a fresh sandbox database on SQLite (a file under ``tmp_path``, WAL) and on
PostgreSQL (a database this module creates and drops itself, at ``PAYBACK_TEST_POSTGRES_URL``
like tests/conftest.py; skipped with the reason when unreachable, failed under ``CI=true``).

Covered: behaviour parsing; idempotency (same key → the same refund, other parameters refused);
same-key and different-key races from threads and from two OS processes (exactly one refund per
key, never more than the payment); every test card's outcome and reason, with and without
asynchronous completion; injected and random faults (timeout before / after the refund was
stored, 503, latency) persisted across instances; synchronous declines; Stripe-shaped signed
webhooks that ``parse_webhook`` accepts and whose forgeries it rejects; redelivery with backoff,
duplicates and shuffling; ``list_refunds`` period boundaries; dashboard refunds; the amount-drift
test hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from payback.clock import FixedClock
from payback.db import make_engine
from payback.gateways import sandbox_state
from payback.gateways.port import (
    FailureReason,
    Gateway,
    GatewayDeclined,
    GatewayTimeout,
    GatewayUnavailable,
    RefundStatus,
    WebhookRejected,
)
from payback.gateways.sandbox import SandboxBehaviour, SandboxGateway
from payback.gateways.signatures import REASONS, compute_signature
from tests.ci import skip_or_fail

SECRET = "whsec_sandbox_test"
START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- databases




@pytest.fixture(scope="module")
def _postgres_sandbox():
    """(url, None) of a PostgreSQL database for this module's sandboxes, or (None, error)."""
    base = make_url(os.environ.get("PAYBACK_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"payback_sandbox_test_{worker}_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        admin.dispose()
        yield None, f"PostgreSQL not reachable at {base.host}:{base.port}: {exc}".splitlines()[0]
        return
    yield base.set(database=name).render_as_string(hide_password=False), None
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sandbox_url(request, tmp_path):
    """An empty sandbox database: a fresh SQLite file, or PostgreSQL with the tables dropped."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sandbox.db'}"
        return
    url, error = request.getfixturevalue("_postgres_sandbox")
    if error:
        skip_or_fail(error)
    yield url
    engine = make_engine(url)
    sandbox_state.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sandbox.db'}"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def sleeps() -> list:
    return []


@pytest.fixture
def make(sandbox_url, clock, sleeps):
    """``make(**behaviour)`` → a SandboxGateway on this test's database (disposed afterwards)."""
    built: list[SandboxGateway] = []

    def build(*, secret: str = SECRET, seed: int = 7, url: str | None = None, **behaviour):
        gateway = SandboxGateway(url or sandbox_url, webhook_secret=secret, clock=clock,
                                 seed=seed, sleep=sleeps.append,
                                 behaviour=SandboxBehaviour(**behaviour))
        built.append(gateway)
        return gateway

    yield build
    for gateway in built:
        gateway.dispose()


@pytest.fixture
def gw(make) -> SandboxGateway:
    return make()


class Inbox:
    """A webhook receiver: records (headers, body) and answers the status it is told to."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, headers: dict[str, str], body: bytes) -> int:
        self.received.append((dict(headers), body))
        return self.status

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


def refund(gateway: SandboxGateway, payment: str, amount: int = 500, key: str = "rf_1",
           currency: str = "EUR"):
    return gateway.refund(payment, amount, currency, key, {"payback_refund_id": key})


# ------------------------------------------------------------------------- behaviour parse


def test_behaviour_parse_reads_every_key_and_defaults_when_empty() -> None:
    assert SandboxBehaviour.parse("") == SandboxBehaviour()
    assert SandboxBehaviour.parse("  ") == SandboxBehaviour()
    parsed = SandboxBehaviour.parse(
        "latency_ms=50, timeout_percent=5,error_percent=7,async_completion=false,"
        "completion_delay_seconds=30,duplicate_webhook_percent=10,shuffle_webhooks=yes")
    assert parsed == SandboxBehaviour(latency_ms=50, timeout_percent=5, error_percent=7,
                                      async_completion=False, completion_delay_seconds=30,
                                      duplicate_webhook_percent=10, shuffle_webhooks=True)


@pytest.mark.parametrize(("text_", "named"), [
    ("latency=5", "latency"),
    ("timeout_percent=5,bogus_key=1", "bogus_key"),
    ("latency_ms=fast", "latency_ms"),
    ("latency_ms=-5", "latency_ms"),
    ("async_completion=maybe", "async_completion"),
    ("error_percent=101", "error_percent"),
    ("timeout_percent", "timeout_percent"),
])
def test_behaviour_parse_refuses_unknown_keys_and_bad_values(text_: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SandboxBehaviour.parse(text_)


def test_behaviour_refuses_percentages_adding_up_beyond_100() -> None:
    with pytest.raises(ValueError, match="exceed 100"):
        SandboxBehaviour(timeout_percent=60, error_percent=50)


# --------------------------------------------------------------------------- idempotency


def test_sandbox_implements_the_gateway_port(gw) -> None:
    assert isinstance(gw, Gateway)
    assert gw.name == "sandbox"


def test_same_key_returns_the_same_refund_and_makes_only_one(gw) -> None:
    payment = gw.create_payment(2000, "EUR")
    assert payment.startswith("pi_sbx_")
    first = refund(gw, payment, 500, key="rf_a")
    again = refund(gw, payment, 500, key="rf_a")
    assert first.gateway_refund_id.startswith("re_sbx_")
    assert again.gateway_refund_id == first.gateway_refund_id
    assert gw.count_refunds(idempotency_key="rf_a") == 1
    assert gw.count_refunds(payment_reference=payment) == 1
    assert first.status is RefundStatus.PENDING
    assert (first.amount_minor, first.currency, first.payment_reference) == (500, "EUR", payment)
    assert first.idempotency_key == "rf_a"
    assert dict(first.metadata) == {"payback_refund_id": "rf_a"}
    assert first.created_at == START
    assert gw.find_refund_by_key("rf_a") == first
    assert gw.find_refund_by_key("rf_unknown") is None
    assert gw.fetch_refund(first.gateway_refund_id) == first


@pytest.mark.parametrize("change", ["amount", "payment", "currency"])
def test_same_key_with_other_parameters_is_refused(gw, change: str) -> None:
    payment = gw.create_payment(2000, "EUR")
    other = gw.create_payment(2000, "USD" if change == "currency" else "EUR")
    refund(gw, payment, 500, key="rf_a")
    args = {"amount": (payment, 400, "EUR"), "payment": (other, 500, "EUR"),
            "currency": (payment, 500, "USD")}[change]
    with pytest.raises(GatewayDeclined) as declined:
        gw.refund(*args, "rf_a", {})
    assert declined.value.gateway_code == "idempotency_key_reuse"
    assert gw.count_refunds() == 1


def _race(calls: int, fn) -> list:
    """Run ``fn(i)`` for i in range(calls) on as many threads, released together."""
    barrier = threading.Barrier(calls)

    def run(i: int):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(run, range(calls)))


def test_concurrent_calls_with_one_key_make_one_refund(make) -> None:
    # Two gateway instances (two engines, as two processes would have) and 10 threads; several
    # rounds, so that later rounds race on connections already open.
    gateways = [make(), make()]
    for round_ in range(4):
        payment = gateways[0].create_payment(1000, "EUR")
        key = f"rf_race_{round_}"
        ids = _race(10, lambda i, p=payment, k=key: refund(gateways[i % 2], p, 1000,
                                                          key=k).gateway_refund_id)
        assert len(set(ids)) == 1
        assert gateways[0].count_refunds(idempotency_key=key) == 1
    assert gateways[0].count_refunds() == 4


def test_concurrent_refunds_with_different_keys_never_exceed_the_payment(make) -> None:
    gateways = [make(), make()]

    def call(payment: str, i: int) -> str:
        try:
            refund(gateways[i % 2], payment, 300, key=f"rf_{payment}_{i}")
            return "ok"
        except GatewayDeclined as exc:
            return exc.gateway_code

    for _ in range(4):
        payment = gateways[0].create_payment(1000, "EUR")
        outcomes = Counter(_race(10, lambda i, p=payment: call(p, i)))
        assert outcomes == Counter({"ok": 3, "amount_too_large": 7})
        assert gateways[0].count_refunds(payment_reference=payment) == 3


REFUND_IN_PROCESS = """
import pathlib, sys, time
from payback.gateways.sandbox import SandboxGateway
url, payment, ready, go = sys.argv[1:5]
gateway = SandboxGateway(url, webhook_secret="whsec_sandbox_test")
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.005)
ids = [gateway.refund(payment, 10, "EUR", f"rf_{i}", {}).gateway_refund_id for i in range(10)]
print(",".join(ids))
"""


def test_two_os_processes_with_the_same_keys_make_one_refund_per_key(gw, sandbox_url,
                                                                     tmp_path) -> None:
    payment = gw.create_payment(1000, "EUR")
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", REFUND_IN_PROCESS, sandbox_url, payment,
                               str(r), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline, "the two processes did not start in time"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    go.touch()  # both call at once
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    first, second = (out.strip().split(",") for out, _ in outputs)
    assert first == second
    assert len(set(first)) == 10
    assert gw.count_refunds() == 10
    assert all(gw.count_refunds(idempotency_key=f"rf_{i}") == 1 for i in range(10))


# ------------------------------------------------------------------------------ the cards


CARD_CASES = [
    ("tok_visa", RefundStatus.PENDING, RefundStatus.SUCCEEDED, None, "refund.updated"),
    ("tok_mastercard", RefundStatus.PENDING, RefundStatus.SUCCEEDED, None, "refund.updated"),
    ("tok_expired", RefundStatus.PENDING, RefundStatus.FAILED,
     FailureReason.EXPIRED_OR_CANCELED_CARD, "refund.failed"),
    ("tok_closed", RefundStatus.PENDING, RefundStatus.FAILED,
     FailureReason.EXPIRED_OR_CANCELED_CARD, "refund.failed"),
    ("tok_insufficient_balance", RefundStatus.PENDING, RefundStatus.FAILED,
     FailureReason.INSUFFICIENT_FUNDS, "refund.failed"),
    ("tok_lost", RefundStatus.PENDING, RefundStatus.FAILED, FailureReason.LOST_OR_STOLEN_CARD,
     "refund.failed"),
    ("tok_requires_action", RefundStatus.REQUIRES_ACTION, RefundStatus.CANCELED,
     FailureReason.EXPIRED, "refund.updated"),
]


@pytest.mark.parametrize(("card", "first", "final", "reason", "event"), CARD_CASES)
def test_each_card_ends_in_its_status_and_reason(make, clock, card, first, final, reason,
                                                 event) -> None:
    gw = make(completion_delay_seconds=60)
    payment = gw.create_payment(1000, "EUR", card=card)
    made = refund(gw, payment)
    assert (made.status, made.failure_reason) == (first, None)
    assert gw.advance() == 0  # not due before the delay
    clock.advance(seconds=59)
    assert gw.advance() == 0
    clock.advance(seconds=1)
    assert gw.advance() == 1
    assert gw.advance() == 0  # final: nothing moves twice
    done = gw.fetch_refund(made.gateway_refund_id)
    assert (done.status, done.failure_reason) == (final, reason)
    inbox = Inbox()
    gw.deliver_webhooks(inbox)
    assert [e["type"] for e in inbox.events()] == ["refund.created", event]
    assert [e["data"]["object"]["status"] for e in inbox.events()] == [first.value, final.value]


def test_without_async_completion_a_good_card_succeeds_in_the_answer(make) -> None:
    gw = make(async_completion=False)
    made = refund(gw, gw.create_payment(1000, "EUR", card="tok_visa"))
    assert made.status is RefundStatus.SUCCEEDED
    assert gw.advance() == 0
    inbox = Inbox()
    gw.deliver_webhooks(inbox)
    assert [(e["type"], e["data"]["object"]["status"]) for e in inbox.events()] == [
        ("refund.created", "succeeded")]


@pytest.mark.parametrize("card", ["tok_expired", "tok_lost", "tok_insufficient_balance"])
def test_without_async_completion_a_failing_card_still_answers_pending(make, card) -> None:
    gw = make(async_completion=False)
    made = refund(gw, gw.create_payment(1000, "EUR", card=card))
    assert made.status is RefundStatus.PENDING
    assert gw.advance() == 1
    assert gw.fetch_refund(made.gateway_refund_id).status is RefundStatus.FAILED


def test_failed_refunds_give_their_amount_back_to_the_payment(gw) -> None:
    payment = gw.create_payment(1000, "EUR", card="tok_lost")
    refund(gw, payment, 1000, key="rf_1")
    with pytest.raises(GatewayDeclined) as declined:
        refund(gw, payment, 1, key="rf_2")  # pending refunds count against the payment
    assert declined.value.reason is FailureReason.ALREADY_REFUNDED
    gw.advance()
    assert refund(gw, payment, 1000, key="rf_3").status is RefundStatus.PENDING


def test_advance_from_two_instances_at_once_moves_each_refund_once(make) -> None:
    gateways = [make(), make()]
    payment = gateways[0].create_payment(10_000, "EUR")
    for i in range(20):
        refund(gateways[0], payment, 100, key=f"rf_{i}")
    barrier = threading.Barrier(2)

    def run(gateway: SandboxGateway) -> int:
        barrier.wait()
        return gateway.advance()

    with ThreadPoolExecutor(2) as pool:
        assert sum(pool.map(run, gateways)) == 20
    inbox = Inbox()
    gateways[0].deliver_webhooks(inbox)
    assert Counter(e["type"] for e in inbox.events()) == {"refund.created": 20,
                                                          "refund.updated": 20}


# ------------------------------------------------------------------------------- faults


def test_timeout_before_apply_stores_nothing_and_a_retry_refunds(gw) -> None:
    payment = gw.create_payment(1000, "EUR")
    gw.inject("timeout_before")
    with pytest.raises(GatewayTimeout):
        refund(gw, payment, key="rf_t")
    assert gw.count_refunds() == 0
    assert gw.find_refund_by_key("rf_t") is None
    assert refund(gw, payment, key="rf_t").status is RefundStatus.PENDING
    assert gw.count_refunds(idempotency_key="rf_t") == 1


def test_timeout_after_apply_stores_the_refund_and_a_retry_returns_it(gw) -> None:
    payment = gw.create_payment(1000, "EUR")
    gw.inject("timeout_after_apply")
    with pytest.raises(GatewayTimeout):
        refund(gw, payment, key="rf_t")
    assert gw.count_refunds(idempotency_key="rf_t") == 1
    stored = gw.find_refund_by_key("rf_t")
    assert stored is not None and stored.amount_minor == 500
    assert refund(gw, payment, key="rf_t").gateway_refund_id == stored.gateway_refund_id
    assert gw.count_refunds() == 1


def test_error_5xx_is_unavailable_and_changes_nothing(gw) -> None:
    payment = gw.create_payment(1000, "EUR")
    gw.inject("error_5xx", count=2)
    for _ in range(2):
        with pytest.raises(GatewayUnavailable) as unavailable:
            refund(gw, payment)
        assert unavailable.value.status_code == 503
    assert gw.count_refunds() == 0
    assert refund(gw, payment).status is RefundStatus.PENDING  # the faults are used up
    assert gw.pending_webhooks() == 1


def test_injected_faults_are_shared_by_every_instance_in_order(make) -> None:
    injector, worker = make(), make()
    payment = injector.create_payment(1000, "EUR")
    injector.inject("error_5xx")
    injector.inject("timeout_before")
    with pytest.raises(GatewayUnavailable):
        refund(worker, payment)
    with pytest.raises(GatewayTimeout):
        refund(worker, payment)
    assert refund(worker, payment).status is RefundStatus.PENDING


def test_inject_refuses_unknown_faults(gw) -> None:
    for bad in ("timeout", "latency:", "latency:fast", ""):
        with pytest.raises(ValueError, match="fault"):
            gw.inject(bad)
    with pytest.raises(ValueError, match="count"):
        gw.inject("error_5xx", count=0)


def test_random_faults_follow_the_percentages(make) -> None:
    gw = make(timeout_percent=30, error_percent=20, seed=11)
    payment = gw.create_payment(1_000_000, "EUR")
    outcomes = Counter()
    for i in range(200):
        before = gw.count_refunds()
        try:
            refund(gw, payment, 1, key=f"rf_{i}")
            outcomes["ok"] += 1
        except GatewayUnavailable:
            outcomes["5xx"] += 1
        except GatewayTimeout:
            outcomes["after" if gw.count_refunds() > before else "before"] += 1
    assert 20 <= outcomes["5xx"] <= 60, outcomes
    assert 40 <= outcomes["before"] + outcomes["after"] <= 80, outcomes
    assert outcomes["before"] >= 15 and outcomes["after"] >= 15, outcomes
    assert gw.count_refunds() == outcomes["ok"] + outcomes["after"]


def test_latency_goes_through_the_injected_sleep(make, sleeps) -> None:
    gw = make(latency_ms=50)
    payment = gw.create_payment(1000, "EUR")
    assert sleeps == []
    made = refund(gw, payment)
    gw.fetch_refund(made.gateway_refund_id)
    gw.find_refund_by_key("rf_1")
    gw.list_refunds(START, START + timedelta(days=1))
    assert sleeps == [50 / 1000] * 4
    gw.inject("latency:200")
    refund(gw, payment, key="rf_2")
    assert sleeps[4:] == [50 / 1000, 200 / 1000]


# ------------------------------------------------------------------------------ declines


def test_synchronous_declines(gw) -> None:
    payment = gw.create_payment(1000, "EUR")
    cases = [
        (("pi_sbx_missing", 100, "EUR"), "resource_missing", FailureReason.UNKNOWN),
        ((payment, 100, "USD"), "currency_mismatch", FailureReason.DECLINED),
        ((payment, 1001, "EUR"), "amount_too_large", FailureReason.DECLINED),
        ((payment, 0, "EUR"), "parameter_invalid_integer", FailureReason.DECLINED),
    ]
    for i, (args, code, reason) in enumerate(cases):
        with pytest.raises(GatewayDeclined) as declined:
            gw.refund(*args, f"rf_{i}", {})
        assert (declined.value.gateway_code, declined.value.reason) == (code, reason)
    assert gw.count_refunds() == 0
    refund(gw, payment, 600, key="rf_a")
    with pytest.raises(GatewayDeclined) as declined:
        refund(gw, payment, 401, key="rf_b")
    assert declined.value.reason is FailureReason.DECLINED
    assert declined.value.gateway_code == "amount_too_large"
    refund(gw, payment, 400, key="rf_c")
    with pytest.raises(GatewayDeclined) as declined:
        refund(gw, payment, 1, key="rf_d")
    assert declined.value.reason is FailureReason.ALREADY_REFUNDED
    assert gw.count_refunds() == 2
    with pytest.raises(GatewayDeclined) as missing:
        gw.fetch_refund("re_sbx_missing")
    assert missing.value.gateway_code == "resource_missing"


# ------------------------------------------------------------------------------ webhooks


def test_webhooks_are_stripe_shaped_signed_and_parsed(gw, clock) -> None:
    payment = gw.create_payment(1000, "EUR")
    made = refund(gw, payment, 300, key="rf_w")
    clock.advance(seconds=5)
    gw.advance()
    clock.advance(seconds=5)
    inbox = Inbox()
    assert gw.pending_webhooks() == 2
    assert gw.deliver_webhooks(inbox) == 2
    assert gw.pending_webhooks() == 0
    created, updated = inbox.events()
    assert created["object"] == "event" and created["id"].startswith("evt_sbx_")
    assert created["created"] == int(START.timestamp())
    assert updated["created"] == int(START.timestamp()) + 5
    obj = created["data"]["object"]
    assert {k: obj[k] for k in ("id", "object", "amount", "currency", "status",
                                "payment_intent", "metadata", "failure_reason", "created")} == {
        "id": made.gateway_refund_id, "object": "refund", "amount": 300, "currency": "eur",
        "status": "pending", "payment_intent": payment,
        "metadata": {"payback_refund_id": "rf_w"}, "failure_reason": None,
        "created": int(START.timestamp())}
    headers, body = inbox.received[0]
    timestamp = int((START + timedelta(seconds=10)).timestamp())
    assert headers["Sandbox-Signature"] == (
        f"t={timestamp},v1={compute_signature(SECRET, timestamp, body)}")
    events = [gw.parse_webhook(h, b) for h, b in inbox.received]
    assert [e.type for e in events] == ["refund.created", "refund.updated"]
    assert events[0].event_id == created["id"]
    assert events[1].created_at == START + timedelta(seconds=5)
    assert events[1].refund.status is RefundStatus.SUCCEEDED
    assert events[0].refund == made  # payment_reference, created_at, idempotency_key …
    assert dict(events[0].refund.metadata) == {"payback_refund_id": "rf_w"}
    lowered = {k.lower(): v for k, v in headers.items()}
    assert gw.parse_webhook(lowered, body).event_id == created["id"]


def test_failure_reasons_survive_the_webhook(make, clock) -> None:
    gw = make()
    made = refund(gw, gw.create_payment(1000, "EUR", card="tok_requires_action"))
    gw.advance()
    inbox = Inbox()
    gw.deliver_webhooks(inbox)
    event = gw.parse_webhook(*inbox.received[-1])
    assert event.refund.gateway_refund_id == made.gateway_refund_id
    assert (event.refund.status, event.refund.failure_reason) == (
        RefundStatus.CANCELED, FailureReason.EXPIRED)


def _one_signed_webhook(gw) -> tuple[dict[str, str], bytes]:
    refund(gw, gw.create_payment(1000, "EUR"))
    inbox = Inbox()
    gw.deliver_webhooks(inbox)
    return inbox.received[0]


def test_parse_webhook_rejects_what_is_not_authentic(make, clock) -> None:
    gw = make()
    headers, body = _one_signed_webhook(gw)
    header = headers["Sandbox-Signature"]

    def reason(hdrs, raw, gateway=gw) -> str:
        with pytest.raises(WebhookRejected) as rejected:
            gateway.parse_webhook(hdrs, raw)
        assert rejected.value.reason in REASONS
        return rejected.value.reason

    tampered = body.replace(b'"amount":500', b'"amount":50000')
    assert tampered != body
    assert reason(headers, tampered) == "signature_mismatch"
    assert reason(headers, body, make(secret="whsec_other")) == "signature_mismatch"
    assert reason({}, body) == "missing_header"
    assert reason({"Sandbox-Signature": "garbage"}, body) == "malformed_header"
    assert reason({"Stripe-Signature": header}, body) == "missing_header"
    clock.advance(seconds=300)
    assert gw.parse_webhook(headers, body).type == "refund.created"  # exactly 300 s: accepted
    clock.advance(seconds=1)
    assert reason(headers, body) == "timestamp_too_old"
    clock.advance(seconds=-602)
    assert reason(headers, body) == "timestamp_in_future"


def test_several_v1_signatures_are_accepted_when_one_matches(gw) -> None:
    _, body = _one_signed_webhook(gw)
    timestamp = int(START.timestamp())
    forged = compute_signature("whsec_old", timestamp, body)
    good = compute_signature(SECRET, timestamp, body)
    assert gw.parse_webhook({"Sandbox-Signature": f"t={timestamp},v1={forged},v1={good}"},
                            body).type == "refund.created"


def test_failed_deliveries_are_retried_with_backoff(gw, clock) -> None:
    refund(gw, gw.create_payment(1000, "EUR"))
    down = Inbox(status=503)
    assert gw.deliver_webhooks(down) == 1
    assert gw.pending_webhooks() == 1
    assert gw.deliver_webhooks(down) == 0  # not due yet
    clock.advance(seconds=9)
    assert gw.deliver_webhooks(down) == 0
    clock.advance(seconds=1)  # 10 s after the first failure

    def broken(headers, body) -> int:
        raise ConnectionError("connection refused")

    assert gw.deliver_webhooks(broken) == 1
    clock.advance(seconds=19)
    assert gw.deliver_webhooks(down) == 0  # the second wait is 20 s
    clock.advance(seconds=1)
    up = Inbox(status=204)
    assert gw.deliver_webhooks(up) == 1
    assert gw.pending_webhooks() == 0
    clock.advance(days=1)
    assert gw.deliver_webhooks(up) == 0
    assert down.received[0][1] == up.received[0][1]  # the same event, re-signed at send time
    assert down.received[0][0]["Sandbox-Signature"] != up.received[0][0]["Sandbox-Signature"]


def test_duplicated_deliveries_resend_the_same_event_id(make) -> None:
    gw = make(duplicate_webhook_percent=100)
    payment = gw.create_payment(1000, "EUR")
    refund(gw, payment)
    gw.advance()
    assert gw.pending_webhooks() == 4
    inbox = Inbox()
    assert gw.deliver_webhooks(inbox) == 4
    ids = Counter(gw.parse_webhook(h, b).event_id for h, b in inbox.received)
    assert len(ids) == 2 and set(ids.values()) == {2}


def test_duplicate_percentage_duplicates_some_deliveries(make) -> None:
    gw = make(duplicate_webhook_percent=50, seed=3)
    payment = gw.create_payment(100_000, "EUR")
    for i in range(40):
        refund(gw, payment, 1, key=f"rf_{i}")
    inbox = Inbox()
    sent = gw.deliver_webhooks(inbox)
    copies = Counter(e["id"] for e in inbox.events())
    assert len(copies) == 40
    assert 8 <= sent - 40 <= 32, sent
    assert set(copies.values()) == {1, 2}


def test_webhooks_are_delivered_in_order_unless_shuffled(make) -> None:
    ordered, shuffled = make(), make(shuffle_webhooks=True, seed=5)
    for gateway in (ordered, shuffled):
        payment = gateway.create_payment(100_000, "EUR")
        for i in range(15):
            refund(gateway, payment, 1, key=f"rf_{gateway is shuffled}_{i}")
    inbox = Inbox()
    ordered.deliver_webhooks(inbox, limit=15)
    keys = [e["data"]["object"]["idempotency_key"] for e in inbox.events()]
    assert keys == [f"rf_False_{i}" for i in range(15)]
    inbox = Inbox()
    shuffled.deliver_webhooks(inbox)
    keys = [e["data"]["object"]["idempotency_key"] for e in inbox.events()]
    assert sorted(keys) == sorted(f"rf_True_{i}" for i in range(15))
    assert keys != [f"rf_True_{i}" for i in range(15)]


# --------------------------------------------------------------- listing and dashboard


def test_list_refunds_covers_the_half_open_period_in_created_order(gw, clock) -> None:
    payment = gw.create_payment(10_000, "EUR")
    made = []
    for i in range(3):
        made.append(refund(gw, payment, 100, key=f"rf_{i}").gateway_refund_id)
        clock.advance(hours=1)
    hour = timedelta(hours=1)

    def listed(start, end) -> list[str]:
        return [r.gateway_refund_id for r in gw.list_refunds(start, end)]

    assert listed(START, START + 2 * hour) == made[:2]
    assert listed(START + hour, START + 2 * hour + timedelta(seconds=1)) == made[1:]
    assert listed(START + timedelta(seconds=1), START + hour) == []
    assert listed(START - hour, START + 3 * hour) == made
    assert [r.created_at for r in gw.list_refunds(START, START + 3 * hour)] == [
        START, START + hour, START + 2 * hour]


def test_dashboard_refund_has_no_key_and_is_announced_by_webhook(gw, clock) -> None:
    payment = gw.create_payment(1000, "GBP")
    made = gw.dashboard_refund(payment, 700, reason="duplicate")
    assert made.idempotency_key is None and dict(made.metadata) == {}
    assert (made.amount_minor, made.currency, made.status) == (700, "GBP", RefundStatus.PENDING)
    assert made.raw["reason"] == "duplicate"
    gw.inject("error_5xx")
    assert gw.dashboard_refund(payment, 100).status is RefundStatus.PENDING  # no faults there
    with pytest.raises(GatewayUnavailable):  # the injected fault waits for an API call
        refund(gw, payment, 200, currency="GBP", key="rf_api")
    refund(gw, payment, 200, currency="GBP", key="rf_api")
    with pytest.raises(GatewayDeclined) as declined:
        gw.dashboard_refund(payment, 1)  # dashboard refunds count against the payment too
    assert declined.value.reason is FailureReason.ALREADY_REFUNDED
    assert gw.count_refunds(payment_reference=payment) == 3
    inbox = Inbox()
    gw.deliver_webhooks(inbox)
    first = gw.parse_webhook(*inbox.received[0])
    assert first.type == "refund.created"
    assert first.refund.gateway_refund_id == made.gateway_refund_id
    assert first.refund.idempotency_key is None
    assert first.refund.payment_reference == payment


def test_set_refund_amount_is_a_silent_drift_for_reconciliation_tests(gw) -> None:
    made = refund(gw, gw.create_payment(1000, "EUR"), 500)
    queued = gw.pending_webhooks()
    gw.set_refund_amount(made.gateway_refund_id, 450)
    assert gw.fetch_refund(made.gateway_refund_id).amount_minor == 450
    assert gw.list_refunds(START, START + timedelta(seconds=1))[0].amount_minor == 450
    assert gw.pending_webhooks() == queued
    with pytest.raises(GatewayDeclined):
        gw.set_refund_amount("re_sbx_missing", 1)


def test_state_lives_in_the_sandbox_database_across_instances(make, sandbox_url) -> None:
    first = make()
    payment = first.create_payment(1000, "EUR")
    made = refund(first, payment)
    first.dispose()
    second = make()
    assert second.fetch_refund(made.gateway_refund_id) == made
    assert second.pending_webhooks() == 1
    engine = make_engine(sandbox_url)
    try:
        with engine.connect() as conn:
            tables = set(sandbox_state.metadata.tables)
            assert {"sandbox_refunds", "sandbox_payments", "sandbox_events"} <= tables
            assert conn.execute(text("SELECT count(*) FROM sandbox_refunds")).scalar_one() == 1
    finally:
        engine.dispose()
