"""Inbound gateway webhooks under faults, on SQLite and PostgreSQL.

- A webhook that arrives before the transaction creating its refund has committed: the receiver
  either waits and applies it (SQLite: the writer lock) or cannot see the refund yet and answers
  409 ``webhook_not_ready`` with nothing recorded (PostgreSQL), and the gateway's redelivery
  applies it. A webhook that arrives while the worker's answer-recording transaction is open waits for
  it (the invoice lock, or SQLite's writer lock) and then applies. Never a second gateway refund,
  never a refund recorded as made in the dashboard.
- The events of a Payback refund and of a dashboard refund sent by four threads at once: each
  takes effect once; a delivery that lost a race is a 200 duplicate or a 409 whose redelivery
  applies — never a 500.
- Every event delivered 1–5 times in a random order (seeded) ends in the same state as each
  event delivered once, in order: refund and intent statuses, journal entries, credit notes,
  ledger movement and the number of Payback refunds — for good, expired, underfunded and
  requires-action cards and a dashboard refund.
- Authenticity end to end, through ``POST /gateways/{gateway}/webhooks``: only the valid and the
  rotated-secret deliveries are accepted; a tampered byte, a wrong secret, a missing header and
  timestamps 301 s old or ahead are 400 ``webhook_rejected`` and change nothing; a replayed event
  is 200 ``duplicate`` and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import warnings
from collections import Counter

import pytest
from sqlalchemy import func, select

from payback import db, faults
from payback.api.app import create_app
from payback.audit.tables import audit_records
from payback.errors import DomainError
from payback.gateways import flow, registry
from payback.gateways.stripe_adapter import StripeGateway
from payback.gateways.tables import gateway_intents, gateway_webhook_events
from payback.ledger import domain as ledger
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.tables import refunds as refunds_t
from payback.settings import Settings
from tests.gateway import helpers as h

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

AMOUNT = 25000
CARDS = ("tok_visa", "tok_expired", "tok_insufficient_balance", "tok_requires_action")


@pytest.fixture
def sandbox(tmp_path, clock):
    gw = h.make_sandbox(f"sqlite:///{tmp_path / 'sandbox.db'}", clock)
    yield gw
    registry.uninstall("sandbox")
    gw.dispose()


def _receiver(engine, clock, gateway: str = "sandbox"):
    """A ``send`` into ``receive_webhook`` answering like the HTTP route (a DomainError is its
    status), and the list of (status, outcome or error code) it answered."""
    answers: list[tuple[int, str]] = []

    def send(headers, body):
        try:
            result = flow.receive_webhook(engine, clock, gateway, headers, body)
        except DomainError as exc:
            answers.append((exc.status, exc.code))
            return exc.status
        answers.append((200, result["outcome"]))
        return 200
    return answers, send


def _count(engine, table, *where) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _is_postgres(engine) -> bool:
    return engine.dialect.name == "postgresql"


# ------------------------------------------------------------ before the creating commit


def test_a_webhook_before_the_creating_transaction_commits_is_refused_or_waits_then_applies(
        engine, clock, sandbox):
    inv, pay = h.paid_invoice(engine, clock, sandbox)
    answers, send = _receiver(engine, clock)
    delivery = threading.Thread(target=sandbox.deliver_webhooks, args=(send,))
    with db.write(engine) as conn:  # the transaction creating the refund, still open
        refund = refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=AMOUNT))
        [intent] = flow.intents_of(conn, refund["id"])
        # The gateway already has the refund (made with the intent's key and metadata) and
        # sends its "created" webhook before Payback has committed.
        sandbox.refund(pay["reference"], AMOUNT, "EUR", intent["idempotency_key"],
                       {flow.METADATA_REFUND_ID: refund["id"],
                        flow.METADATA_INTENT_ID: intent["id"]})
        delivery.start()
        delivery.join(0.5)
        if not _is_postgres(engine):
            assert delivery.is_alive() and answers == []  # waiting for the writer lock
    delivery.join(30)
    assert not delivery.is_alive()

    # The receiver either waited for the commit and applied the event, or refused it for now
    # (PostgreSQL, which does not make readers wait) and the gateway's redelivery applies it.
    assert answers in ([(200, "applied")], [(409, "webhook_not_ready")]), answers
    if answers[0][0] == 409:
        # Nothing was recorded: the event is not marked seen, the intent untouched.
        assert _count(engine, gateway_webhook_events) == 0
        assert h.intents(engine, refund["id"])[0]["status"] == "requested"
        assert sandbox.pending_webhooks() == 1
        clock.advance(seconds=11)  # the sandbox redelivers after 10 s
        sandbox.deliver_webhooks(send)
    assert answers[-1] == (200, "applied")
    assert sandbox.pending_webhooks() == 0
    [intent] = h.intents(engine, refund["id"])
    at_gateway = sandbox.find_refund_by_key(refund["id"])
    assert (intent["status"], intent["gateway_refund_id"]) == \
        ("pending", at_gateway.gateway_refund_id)

    # The worker's job then finds the gateway has answered: nothing is sent again.
    h.run_worker(engine, clock, h.worker_registry())
    assert h.intents(engine, refund["id"])[0]["calls"] == 0
    clock.advance(seconds=5)
    sandbox.advance()
    sandbox.deliver_webhooks(send)
    assert answers[-1] == (200, "applied")
    assert h.status(engine, refund["id"]) == "succeeded"
    assert sandbox.count_refunds() == sandbox.count_refunds(idempotency_key=refund["id"]) == 1
    assert _count(engine, refunds_t) == 1  # no refund recorded as made in the dashboard
    assert _count(engine, gateway_intents, gateway_intents.c.origin == "gateway") == 0
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0


def test_a_webhook_during_the_answer_recording_transaction_waits_then_applies(
        engine, clock, sandbox, monkeypatch):
    inv, _pay = h.paid_invoice(engine, clock, sandbox)
    refund = h.refund(engine, clock, inv, AMOUNT)
    reached, release = threading.Event(), threading.Event()
    real_crash_point = faults.crash_point

    def hold(name: str) -> None:
        if name == "before_status_commit" and threading.current_thread().name == "worker":
            reached.set()  # the answer is applied, its transaction not yet committed
            assert release.wait(30)
        real_crash_point(name)

    monkeypatch.setattr(faults, "crash_point", hold)
    worker = threading.Thread(target=h.run_worker, name="worker",
                              args=(engine, clock, h.worker_registry()))
    worker.start()
    try:
        assert reached.wait(30)
        clock.advance(seconds=5)
        assert sandbox.advance() == 1  # the gateway completes it and sends both webhooks
        answers, send = _receiver(engine, clock)
        delivery = threading.Thread(target=sandbox.deliver_webhooks, args=(send,))
        delivery.start()
        delivery.join(0.5)
        assert delivery.is_alive() and answers == []  # waiting for the answer's commit
    finally:
        release.set()
        worker.join(30)
    delivery.join(30)
    assert not worker.is_alive() and not delivery.is_alive()
    assert answers == [(200, "applied"), (200, "applied")]
    assert h.status(engine, refund["id"]) == "succeeded"
    [intent] = h.intents(engine, refund["id"])
    assert (intent["status"], intent["calls"]) == ("succeeded", 1)
    assert sandbox.count_refunds() == 1
    assert _count(engine, refunds_t) == 1
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0


def test_events_sent_at_once_by_several_senders_apply_once(engine, clock, sandbox):
    """A gateway with many senders: every event about a Payback refund and a dashboard refund,
    sent by four threads at once, each in its own order. Each is applied once; a delivery that
    lost a race is answered 200 duplicate, or 409 (sent again, it applies) — never an error."""
    inv, _pay = h.paid_invoice(engine, clock, sandbox)
    refund = h.refund(engine, clock, inv, AMOUNT)
    h.run_worker(engine, clock, h.worker_registry())
    dash_inv, dash_pay = h.paid_invoice(engine, clock, sandbox)
    clock.advance(seconds=5)
    sandbox.advance()
    sandbox.dashboard_refund(dash_pay["reference"], 30000)
    clock.advance(seconds=5)
    sandbox.advance()
    recorded, record = h.recorder()
    sandbox.deliver_webhooks(record)
    assert len(recorded) == 4
    answers, send = _receiver(engine, clock)
    start, failures = threading.Barrier(4), []

    def sender(n: int) -> None:
        order = list(recorded)
        random.Random(n).shuffle(order)
        start.wait()
        for headers, body in order:
            try:
                if send(headers, body) != 200:
                    failures.append((headers, body))
            except Exception as exc:  # noqa: BLE001 - an answer the HTTP route makes a 500
                answers.append((500, repr(exc)[:300]))
    senders = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(30)
    assert {status for status, _ in answers} <= {200, 409}, answers
    assert all(outcome == "webhook_not_ready" for status, outcome in answers if status == 409)
    for headers, body in failures:  # the gateway sends the refused ones again
        assert send(headers, body) == 200, answers[-1]

    outcomes = Counter(outcome for status, outcome in answers if status == 200)
    # One delivery of each event took effect (4 events recorded as seen); all others were
    # recognised as duplicates.
    assert sum(outcomes.values()) == 16 and outcomes["duplicate"] == 12, outcomes
    assert outcomes["recorded"] == 1
    assert _count(engine, gateway_webhook_events) == 4
    assert h.status(engine, refund["id"]) == "succeeded"
    [dashboard] = _refunds_of(engine, dash_inv["id"])
    assert h.refund_summary(engine, dashboard)["status"] == "succeeded"
    assert _count(engine, refunds_t) == 2
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0


# ------------------------------------------------------ duplicated, shuffled deliveries


def _one_set(engine, clock, sandbox, amounts: dict[str, int]) -> dict[str, dict]:
    """A refund on an invoice paid with each test card; card → {invoice, payment, refund}."""
    out = {}
    for card in CARDS:
        inv, pay = h.paid_invoice(engine, clock, sandbox, card=card, email=None)
        out[card] = {"invoice": inv, "payment": pay,
                     "refund": h.refund(engine, clock, inv, amounts[card])}
    return out


def _refunds_of(engine, invoice_id: str) -> list[str]:
    with db.read(engine) as conn:
        return list(conn.execute(select(refunds_t.c.id).where(refunds_t.c.invoice_id ==
                                                              invoice_id)).scalars())


def _final_view(engine, one: dict[str, dict]) -> dict:
    """The state of a set, ids and times left out (the gateway's retry jobs are not news)."""
    view = {}
    for card, slot in one.items():
        summary = h.refund_summary(engine, slot["refund"]["id"])
        summary["outbox_topics"] = [t for t in summary["outbox_topics"]
                                    if not t.startswith("gateway.")]
        view[card] = summary
    visa = one["tok_visa"]
    [dashboard] = [r for r in _refunds_of(engine, visa["invoice"]["id"])
                   if r != visa["refund"]["id"]]
    view["dashboard"] = h.refund_summary(engine, dashboard)
    view["refunds"] = sum(len(_refunds_of(engine, s["invoice"]["id"])) for s in one.values())
    return view


def _deliver(engine, clock, deliveries) -> Counter:
    answers, send = _receiver(engine, clock)
    for headers, body in deliveries:
        assert send(headers, body) == 200, answers[-1]
    return Counter(outcome for _status, outcome in answers)


def _scenario(engine, clock, sandbox, seed: int) -> None:
    rng = random.Random(seed)
    amounts = {card: rng.randint(1, 800) * 100 for card in CARDS}
    dashboard_amount = rng.randint(1, 100) * 100
    in_order, shuffled = (_one_set(engine, clock, sandbox, amounts) for _ in range(2))
    timeouts = rng.randint(0, 2)  # some answers lost: the webhooks alone tell Payback
    if timeouts:
        sandbox.inject("timeout_after_apply", timeouts)
    reg = h.worker_registry()
    h.run_worker(engine, clock, reg)
    clock.advance(seconds=5)
    sandbox.advance()
    for one in (in_order, shuffled):
        sandbox.dashboard_refund(one["tok_visa"]["payment"]["reference"], dashboard_amount)
    clock.advance(seconds=5)
    sandbox.advance()
    recorded, record = h.recorder()
    while sandbox.deliver_webhooks(record):
        pass
    set_of = {s["payment"]["reference"]: name
              for name, one in (("in_order", in_order), ("shuffled", shuffled))
              for s in one.values()}
    events = {"in_order": [], "shuffled": []}
    for headers, body in recorded:
        events[set_of[json.loads(body)["data"]["object"]["payment_intent"]]].append(
            (headers, body))
    assert len(events["in_order"]) == len(events["shuffled"]) == 2 * (len(CARDS) + 1)

    start = h.ledger_totals(engine)
    first = _deliver(engine, clock, events["in_order"])
    assert first["recorded"] == 1 and first["duplicate"] == 0
    middle = h.ledger_totals(engine)
    storm = [d for d in events["shuffled"] for _ in range(rng.randint(1, 5))]
    rng.shuffle(storm)
    second = _deliver(engine, clock, storm)
    assert second["duplicate"] == len(storm) - len(events["shuffled"])
    end = h.ledger_totals(engine)
    clock.advance(seconds=10)  # the timed-out jobs' retries find the intents final
    h.run_worker(engine, clock, reg)
    assert h.ledger_totals(engine) == end

    expected = _final_view(engine, in_order)
    assert {card: expected[card]["status"] for card in CARDS} == {
        "tok_visa": "succeeded", "tok_expired": "failed", "tok_insufficient_balance": "failed",
        "tok_requires_action": "failed"}
    assert expected["dashboard"]["status"] == "succeeded"
    assert expected["dashboard"]["amounts"][0] == dashboard_amount
    assert expected["refunds"] == len(CARDS) + 1
    assert _final_view(engine, shuffled) == expected
    assert h.ledger_delta(middle, end) == h.ledger_delta(start, middle)
    assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0
    assert sandbox.count_refunds() == 2 * (len(CARDS) + 1)


@pytest.mark.parametrize("db_url", [pytest.param("sqlite", id="sqlite")], indirect=True)
@pytest.mark.parametrize("seed", range(30))
def test_shuffled_duplicated_webhooks_end_as_one_in_order_delivery_sqlite(seed, engine, clock,
                                                                          sandbox):
    _scenario(engine, clock, sandbox, seed)


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", id="postgresql")], indirect=True)
@pytest.mark.parametrize("seed", range(3))
def test_shuffled_duplicated_webhooks_end_as_one_in_order_delivery_postgres(seed, engine, clock,
                                                                            sandbox):
    _scenario(engine, clock, sandbox, 1000 + seed)


# ------------------------------------------------------------------- authenticity, HTTP


def _sign(body: bytes, t: int, *secrets: str, header: str = "Sandbox-Signature") -> dict:
    """The scheme (t=…,v1=…), computed here independently of payback.gateways.signatures."""
    v1 = [hmac.new(s.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
          for s in secrets]
    return {"Content-Type": "application/json", header: ",".join([f"t={t}"] +
                                                                  [f"v1={v}" for v in v1])}


AUDIT = ("audit_records",)


def _audit_seq(engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.coalesce(func.max(audit_records.c.seq), 0))).scalar_one()


def _refusals_after(engine, seq: int) -> list[str]:
    """The error codes of the refused attempts audited after ``seq`` (and nothing else)."""
    with db.read(engine) as conn:
        rows = conn.execute(select(audit_records.c.outcome, audit_records.c.summary)
                            .where(audit_records.c.seq > seq)
                            .order_by(audit_records.c.seq)).all()
    assert {outcome for outcome, _ in rows} <= {"refused"}, rows
    return [summary["code"] for _, summary in rows]


@pytest.fixture
def http(engine, clock):
    app = create_app(Settings(database_url="sqlite://", secret_key="test"), engine=engine,
                     clock=clock)
    with TestClient(app) as client:
        yield client


def test_only_authentic_sandbox_webhooks_change_anything(engine, clock, sandbox, http):
    inv, _pay = h.paid_invoice(engine, clock, sandbox)
    refund = h.refund(engine, clock, inv, AMOUNT)
    h.run_worker(engine, clock, h.worker_registry())
    clock.advance(seconds=5)
    sandbox.advance()
    recorded, record = h.recorder()
    sandbox.deliver_webhooks(record)
    [(created_headers, created), (headers, body)] = recorded
    assert json.loads(body)["data"]["object"]["status"] == "succeeded"
    url = "/gateways/sandbox/webhooks"
    ok = http.post(url, content=created, headers=created_headers)
    assert (ok.status_code, ok.json()["outcome"]) == (200, "applied")

    now = int(clock.now().timestamp())
    digit = body.index(b'"amount":') + len(b'"amount":')
    tampered = body[:digit] + (b"3" if body[digit:digit + 1] != b"3" else b"4") + \
        body[digit + 1:]
    assert len(tampered) == len(body) and sum(a != b for a, b in zip(tampered, body)) == 1
    forgeries = {
        "tampered": (headers, tampered, "signature_mismatch"),
        "wrong_secret": (_sign(body, now, "whsec_not_the_sandbox"), body, "signature_mismatch"),
        "missing_header": ({"Content-Type": "application/json"}, body, "missing_header"),
        "301s_old": (_sign(body, now - 301, h.SECRET), body, "timestamp_too_old"),
        "301s_ahead": (_sign(body, now + 301, h.SECRET), body, "timestamp_in_future"),
    }
    before, audited = h.snapshot(engine, exclude=AUDIT), _audit_seq(engine)
    for name, (forged_headers, forged_body, reason) in forgeries.items():
        resp = http.post(url, content=forged_body, headers=forged_headers)
        assert resp.status_code == 400, (name, resp.text)
        problem = resp.json()
        assert (problem["code"], problem["reason"]) == ("webhook_rejected", reason), name
    assert h.snapshot(engine, exclude=AUDIT) == before
    # The only trace of a refusal: the audit trail's record of the refused attempt.
    assert _refusals_after(engine, audited) == ["webhook_rejected"] * len(forgeries)
    assert h.status(engine, refund["id"]) == "processing"

    valid = http.post(url, content=body, headers=headers)
    assert valid.status_code == 200, valid.text
    assert valid.json() == {"event_id": json.loads(body)["id"], "outcome": "applied",
                            "refund_id": refund["id"]}
    assert h.status(engine, refund["id"]) == "succeeded"

    after = h.snapshot(engine)
    for replay_headers in (headers, _sign(body, now - 300, h.SECRET)):  # as sent; re-signed
        again = http.post(url, content=body, headers=replay_headers)
        assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    assert h.snapshot(engine) == after  # not even an audit record


def test_webhooks_signed_with_a_rotated_secret_are_accepted_end_to_end(engine, clock, http):
    stripe = registry.install(StripeGateway("sk_test_never_called", clock=clock,
                                            webhook_secrets=["whsec_new", "whsec_old"]))
    try:
        slots = []
        for n in range(2):
            inv, pay = h.invoice_paid_through(engine, clock, "stripe", f"pi_rotation_{n}")
            refund = h.refund(engine, clock, inv, AMOUNT)
            [intent] = h.intents(engine, refund["id"])
            assert intent["gateway"] == "stripe"
            slots.append((refund, intent, pay))
        now = int(clock.now().timestamp())

        def event(n: int) -> bytes:
            refund, intent, pay = slots[n]
            return json.dumps({
                "id": f"evt_rotation_{n}", "object": "event", "type": "refund.updated",
                "created": now, "data": {"object": {
                    "id": f"re_rotation_{n}", "object": "refund", "amount": AMOUNT,
                    "currency": "eur", "status": "succeeded",
                    "payment_intent": pay["reference"], "created": now,
                    "metadata": {"payback_refund_id": refund["id"],
                                 "payback_intent_id": intent["id"]}}}}).encode()

        url = "/gateways/stripe/webhooks"
        before, audited = h.snapshot(engine, exclude=AUDIT), _audit_seq(engine)
        stranger = http.post(url, content=event(0),
                             headers=_sign(event(0), now, "whsec_gone", header="Stripe-Signature"))
        assert (stranger.status_code, stranger.json()["reason"]) == (400, "signature_mismatch")
        assert h.snapshot(engine, exclude=AUDIT) == before
        assert _refusals_after(engine, audited) == ["webhook_rejected"]

        for n, secrets in ((0, ("whsec_old",)), (1, ("whsec_gone", "whsec_new"))):
            resp = http.post(url, content=event(n),
                             headers=_sign(event(n), now, *secrets, header="Stripe-Signature"))
            assert (resp.status_code, resp.json()["outcome"]) == (200, "applied"), resp.text
            refund, intent, _pay = slots[n]
            assert h.status(engine, refund["id"]) == "succeeded"
            assert h.intents(engine, refund["id"])[0]["gateway_refund_id"] == f"re_rotation_{n}"
        assert h.balance(engine, ledger.REFUNDS_PAYABLE) == 0
    finally:
        registry.uninstall(stripe.name)
