"""Crashes and unknown outcomes on the way to the gateway, on SQLite and PostgreSQL.

- A real ``payback worker --once`` process is SIGKILLed (``PAYBACK_CRASH_AT``, see
  ``payback.faults``) after the intent commit, after sending, after the gateway's answer and
  before the status commit. After the lease expires a second worker process recovers: the
  sandbox holds exactly one refund for the key, and the refund ends with the same status
  history, intents, journal entries, credit note, outbox events and trial-balance movement as
  the same refund of an identical invoice processed by the same handlers without a crash.
- The gateway applies a refund and then times out (``timeout_after_apply``): the refund stays
  ``processing`` with the intent ``submitted`` and the timeout noted; the retry finds the
  gateway's refund by its key instead of sending another, and the refund succeeds only once the
  gateway reports it succeeded.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime

import pytest

from payback.clock import FixedClock
from payback.faults import POINTS
from payback.gateways import registry
from payback.ledger import domain as ledger
from payback.outbox.worker import drain
from tests.gateway import helpers as h

AMOUNT = 25000


@pytest.fixture
def now_clock() -> FixedClock:
    """Real time, held still: the worker processes run on the system clock, so the refunds
    they handle are created 'now' too."""
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def sync_sandbox(tmp_path, now_clock):
    """The sandbox (another system: its own SQLite file) answering good cards ``succeeded`` at
    once, as the worker processes' sandbox does (same file, same behaviour)."""
    gw = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", now_clock,
                        async_completion=False)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()


def _worker(env: dict[str, str], **extra: str):
    return h.run_cli({**env, **extra}, "worker", "--once", "--lease", "1")


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_worker_killed_at_any_step_pays_once_and_ends_as_if_it_had_not_crashed(
        point, db_url, engine, now_clock, sync_sandbox):
    clock, sandbox = now_clock, sync_sandbox
    env = h.cli_env(db_url, sandbox.database_url,
                    PAYBACK_SANDBOX_BEHAVIOUR="async_completion=false")
    ref_inv, _ = h.paid_invoice(engine, clock, sandbox, email=None)
    inv, pay = h.paid_invoice(engine, clock, sandbox, email=None)

    # The reference: the same refund, processed by a worker (the same handlers, in this
    # process) that does not crash.
    start = h.ledger_totals(engine)
    reference = h.refund(engine, clock, ref_inv, AMOUNT)
    h.run_worker(engine, clock, h.worker_registry(everything=True))
    assert h.status(engine, reference["id"]) == "succeeded"
    middle = h.ledger_totals(engine)

    refund = h.refund(engine, clock, inv, AMOUNT)
    killed = _worker(env, PAYBACK_CRASH_AT=point)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    # What the crash left: the intent marked sent (or about to be), the refund not settled.
    [intent] = h.intents(engine, refund["id"])
    assert (intent["status"], intent["calls"], intent["gateway_refund_id"]) == \
        ("submitted", 1, None)
    assert h.status(engine, refund["id"]) == "processing"
    sent = 0 if point == "after_intent_commit" else 1
    assert sandbox.count_refunds(idempotency_key=refund["id"]) == sent
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == AMOUNT  # owed, not paid

    time.sleep(1.2)  # the dead worker's lease (1 s) expires; the next worker takes over
    recovered = _worker(env)
    assert recovered.returncode == 0, recovered.stderr

    assert sandbox.count_refunds(idempotency_key=refund["id"]) == 1
    assert sandbox.count_refunds(payment_reference=pay["reference"]) == 1
    [intent] = h.intents(engine, refund["id"])
    assert (intent["status"], intent["calls"]) == ("succeeded", 2)
    assert intent["gateway_refund_id"] == \
        sandbox.find_refund_by_key(refund["id"]).gateway_refund_id
    assert h.status(engine, refund["id"]) == "succeeded"
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0
    assert h.ledger_delta(middle, h.ledger_totals(engine)) == h.ledger_delta(start, middle)
    expected = h.refund_summary(engine, reference["id"])
    assert h.refund_summary(engine, refund["id"]) == expected
    counts = h.outbox_counts(engine)
    assert (counts["pending"], counts["processing"], counts["dead"]) == (0, 0, 0), counts

    # The gateway's webhooks (queued on the workers' system clock), arriving late, change
    # nothing.
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds() + 1)
    outcomes = h.deliver_webhooks(engine, clock, sandbox)
    assert [o["outcome"] for o in outcomes] == ["stale", "stale"]
    assert h.refund_summary(engine, refund["id"]) == expected
    assert sandbox.count_refunds() == 2


@pytest.mark.parametrize("variant", ["async", "sync", "webhook_before_retry"])
def test_a_refund_applied_then_timed_out_is_found_by_key_and_succeeds_only_when_confirmed(
        variant, engine, clock, tmp_path):
    sandbox = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", clock,
                             async_completion=variant != "sync")
    try:
        inv, pay = h.paid_invoice(engine, clock, sandbox)
        refund = h.refund(engine, clock, inv, AMOUNT)
        reg = h.worker_registry()
        sandbox.inject("timeout_after_apply")

        counts = drain(engine, clock, registry=reg, rng=random.Random(3))
        assert (counts.retried, counts.dead) == (1, 0)
        assert sandbox.count_refunds(idempotency_key=refund["id"]) == 1  # applied, unanswered
        at_gateway = sandbox.find_refund_by_key(refund["id"])
        [intent] = h.intents(engine, refund["id"])
        assert (intent["status"], intent["gateway_refund_id"], intent["calls"]) == \
            ("submitted", None, 1)
        assert intent["last_error"].startswith("GatewayTimeout: ")
        assert "did not answer in time" in intent["last_error"]
        assert h.status(engine, refund["id"]) == "processing"
        assert h.balance(engine, ledger.REFUNDS_PAYABLE) == AMOUNT
        assert drain(engine, clock, registry=reg).claimed == 0  # the retry waits its backoff

        if variant == "webhook_before_retry":
            # The gateway's "created" webhook tells Payback about the refund first.
            outcomes = h.deliver_webhooks(engine, clock, sandbox)
            assert [o["outcome"] for o in outcomes] == ["applied"]
            [intent] = h.intents(engine, refund["id"])
            assert (intent["status"], intent["gateway_refund_id"]) == \
                ("pending", at_gateway.gateway_refund_id)

        clock.advance(seconds=3)  # past the first backoff (at most 2 s)
        counts = drain(engine, clock, registry=reg, rng=random.Random(3))
        assert (counts.done, counts.retried, counts.dead) == (1, 0, 0)
        assert sandbox.count_refunds(idempotency_key=refund["id"]) == 1
        assert sandbox.count_refunds(payment_reference=pay["reference"]) == 1
        [intent] = h.intents(engine, refund["id"])
        assert intent["gateway_refund_id"] == at_gateway.gateway_refund_id
        assert intent["calls"] == (1 if variant == "webhook_before_retry" else 2)

        if variant == "sync":
            # The gateway had already completed it: the lookup by key says so.
            assert (intent["status"], h.status(engine, refund["id"])) == \
                ("succeeded", "succeeded")
        else:
            assert (intent["status"], h.status(engine, refund["id"])) == \
                ("pending", "processing")
            assert h.balance(engine, ledger.REFUNDS_PAYABLE) == AMOUNT
            h.deliver_webhooks(engine, clock, sandbox)  # only the stale "created" news
            assert h.status(engine, refund["id"]) == "processing"
            clock.advance(seconds=5)
            assert sandbox.advance() == 1
            outcomes = h.deliver_webhooks(engine, clock, sandbox)
            assert [o["outcome"] for o in outcomes] == ["applied"]
            assert h.status(engine, refund["id"]) == "succeeded"
        assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0
        drain(engine, clock, registry=reg)
        assert sandbox.count_refunds() == 1
    finally:
        registry.uninstall("sandbox")
        sandbox.dispose()
