"""Outbound webhooks end to end, on SQLite and PostgreSQL, against real HTTP receivers (a
``ThreadingHTTPServer`` on 127.0.0.1 that records raw bodies and headers and answers scripted
statuses) and the real outbox worker (``drain``) on a fixed clock.

Covers: a real refund story fans out to the endpoints whose event types match, and to no other
(another family, a disabled endpoint, another seller's endpoint); a delivery is signed over the
raw body with the endpoint's secret and carries the documented headers and body; 500 then 200
gives two attempts in the log and ``delivered``; the retry schedule (1 min, 5 min, 30 min, 2 h,
5 h, 10 h, then 12 h) ends ``failed`` after 3 days, and a manual retry sends once more; running
the fan-out again, or re-running a spent ``webhook.deliver`` event, sends nothing twice; an
endpoint disabled before the event gets nothing, one disabled after it gets its delivery failed
unsent; a receiver slower than the timeout, a redirect, a refused connection and a huge answer
are failed attempts with their error or status, kept short; secret rotation signs with both
secrets during the overlap; the demo receiver (the app served by uvicorn) accepts a genuine
delivery and refuses a tampered one; ``payback webhooks add|list|log``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from payback import __version__, db
from payback.access.tables import DEFAULT_SELLER_ID, sellers
from payback.actor import Actor
from payback.customers.service import create_customer
from payback.errors import Conflict
from payback.gateways.port import WebhookRejected
from payback.gateways.signatures import verify_payback_signature
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.outbox.fanout import Subscribers
from payback.outbox.service import emit
from payback.outbox.tables import outbox_events
from payback.outbox.worker import Registry, drain
from payback.payments.service import record_payment
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.webhooks import domain, service
from payback.webhooks.delivery import fan_out, install
from payback.webhooks.tables import webhook_attempts, webhook_deliveries

ADMIN = Actor("usr_admin", "staff", "admin")
PAYLOAD = {"id": "re_1", "invoice_id": "inv_1", "amount_minor": 4250, "currency": "EUR",
           "method": "card", "status": "succeeded"}


# ------------------------------------------------------------------------------ receivers


class Receiver:
    """A real HTTP server on 127.0.0.1: records every request (path, lower-cased headers, raw
    body) and answers from a script of (status, delay in seconds, body, extra headers); once
    the script is spent it answers ``default``."""

    def __init__(self, script=(), default=(200, 0, b"ok", {})) -> None:
        self.requests: list[dict] = []
        self.script = list(script)
        self.default = default
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append({
                        "path": self.path, "body": raw,
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                    step = receiver.script.pop(0) if receiver.script else receiver.default
                status, delay, body, headers = step
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, *args) -> None:
                pass
        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*script, default=(200, 0, b"ok", {})) -> Receiver:
        made.append(Receiver(script, default))
        return made[-1]
    yield make
    for r in made:
        r.close()


def answer(status: int, body: bytes = b"", delay: float = 0, headers=None):
    return (status, delay, body, headers or {})


# -------------------------------------------------------------------------------- helpers


def worker(timeout_seconds: int = 10) -> Registry:
    """What ``payback.jobs.install`` does, with only this feature installed."""
    reg, subs = Registry(), Subscribers()
    install(reg, subs, timeout_seconds=timeout_seconds)
    reg.register("*", subs)
    return reg


def endpoint(engine, clock, url: str, event_types=("*",), seller_id=DEFAULT_SELLER_ID) -> dict:
    with db.write(engine) as conn:
        return service.create_endpoint(conn, clock, seller_id=seller_id, url=url,
                                       event_types=list(event_types))


def event(engine, clock, topic="refund.succeeded", payload=PAYLOAD,
          seller_id=DEFAULT_SELLER_ID) -> str:
    with db.write(engine) as conn:
        return emit(conn, topic, payload["id"], payload, clock.now(), seller_id)


def deliveries(engine, endpoint_id: str) -> list[dict]:
    """The endpoint's log, oldest delivery first."""
    with db.read(engine) as conn:
        return list(reversed(service.list_deliveries(conn, endpoint_id, DEFAULT_SELLER_ID)))


def only_delivery(engine, endpoint_id: str) -> dict:
    (d,) = deliveries(engine, endpoint_id)
    return d


def add_seller(engine, seller_id: str = "sel_b") -> None:
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id=seller_id, name=seller_id,
                                             created_at=datetime(2026, 1, 1, tzinfo=UTC)))


def refund_story(engine, clock) -> None:
    """A real customer, invoice (invoice.created), card payment (payment.captured) and a
    refund to store credit (refund.* events, store_credit.granted, credit_note.issued)."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada", country="DE", locale="de_DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Shoes", 1, 5000, Decimal("0.20"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=inv["total_minor"],
                       currency="EUR", card={"token": "tok_visa", "brand": "visa",
                                             "last4": "4242"})
        refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="amount", method="store_credit", reason="goodwill", amount_minor=1000,
            consent_to_other_method=True), actor=ADMIN)


def topics(engine, prefix: str) -> list[str]:
    with db.read(engine) as conn:
        return list(conn.execute(select(outbox_events.c.topic).where(
            outbox_events.c.topic.startswith(prefix)).order_by(outbox_events.c.id)).scalars())


def received_types(r: Receiver) -> list[str]:
    return [req["headers"]["payback-event-type"] for req in r.requests]


# -------------------------------------------------------------------------------- fan-out


def test_events_fan_out_to_matching_enabled_endpoints_of_the_seller_only(engine, clock,
                                                                        receiver):
    refunds_rx, payments_rx, voids_rx, disabled_rx, other_rx = (receiver() for _ in range(5))
    on_refunds = endpoint(engine, clock, refunds_rx.url, ["refund.*"])
    on_payments = endpoint(engine, clock, payments_rx.url, ["payment.captured", "invoice.*"])
    on_voids = endpoint(engine, clock, voids_rx.url, ["invoice.voided"])
    off = endpoint(engine, clock, disabled_rx.url, ["*"])
    with db.write(engine) as conn:
        service.delete_endpoint(conn, clock, off["id"], DEFAULT_SELLER_ID)
    add_seller(engine)
    endpoint(engine, clock, other_rx.url, ["*"], seller_id="sel_b")

    refund_story(engine, clock)
    drain(engine, clock, registry=worker())

    refund_topics = topics(engine, "refund.")
    assert refund_topics[0] == "refund.created" and refund_topics[-1] == "refund.succeeded"
    assert received_types(refunds_rx) == refund_topics
    assert received_types(payments_rx) == ["invoice.created", "payment.captured"]
    assert voids_rx.requests == disabled_rx.requests == other_rx.requests == []
    assert [d["event_type"] for d in deliveries(engine, on_refunds["id"])] == refund_topics
    assert {d["status"] for d in deliveries(engine, on_refunds["id"])} == {"delivered"}
    assert len(deliveries(engine, on_payments["id"])) == 2
    assert deliveries(engine, on_voids["id"]) == deliveries(engine, off["id"]) == []


def test_a_delivery_is_signed_over_the_raw_body_with_the_endpoint_secret(engine, clock,
                                                                         receiver):
    rx = receiver()
    ep = endpoint(engine, clock, rx.url, ["refund.succeeded"])
    event_id = event(engine, clock)

    drain(engine, clock, registry=worker())

    (req,) = rx.requests
    headers, raw = req["headers"], req["body"]
    assert req["path"] == "/hooks"
    assert headers["content-type"] == "application/json"
    assert headers["payback-event-id"] == event_id
    assert headers["payback-event-type"] == "refund.succeeded"
    assert headers["user-agent"] == f"Payback/{__version__}"
    signature = headers["payback-signature"]
    assert signature.startswith(f"t={domain.unix(clock.now())},v1=")
    verify_payback_signature(signature, raw, ep["secret"], now=clock.now())
    with pytest.raises(WebhookRejected) as refused:
        verify_payback_signature(signature, raw.replace(b"4250", b"4251"), ep["secret"],
                                 now=clock.now())
    assert refused.value.reason == "signature_mismatch"
    with pytest.raises(WebhookRejected):
        verify_payback_signature(signature, raw, "whsec_someone_else", now=clock.now())
    assert json.loads(raw) == {"id": event_id, "type": "refund.succeeded",
                               "created": "2026-01-15T10:00:00Z", "data": PAYLOAD}

    d = only_delivery(engine, ep["id"])
    assert (d["status"], d["attempt_count"], d["last_status_code"], d["delivered_at"],
            d["next_attempt_at"]) == ("delivered", 1, 200, clock.now(), None)
    (attempt,) = d["attempts"]
    assert (attempt["status_code"], attempt["signature"], attempt["response_excerpt"],
            attempt["error"], attempt["attempted_at"]) == (200, signature, "ok", None,
                                                           clock.now())


def test_500_then_200_is_two_attempts_in_the_log_and_delivered(engine, clock, receiver):
    rx = receiver(answer(500, b"boom"), answer(204))
    ep = endpoint(engine, clock, rx.url)
    event(engine, clock)
    reg = worker()

    drain(engine, clock, registry=reg)
    d = only_delivery(engine, ep["id"])
    assert (d["status"], d["attempt_count"], d["last_status_code"], d["next_attempt_at"]) == (
        "pending", 1, 500, clock.now() + timedelta(minutes=1))
    drain(engine, clock, registry=reg)
    assert len(rx.requests) == 1  # the retry is not due yet

    clock.advance(minutes=1)
    drain(engine, clock, registry=reg)

    d = only_delivery(engine, ep["id"])
    assert (d["status"], d["attempt_count"], d["last_status_code"], d["delivered_at"]) == (
        "delivered", 2, 204, clock.now())
    assert [(a["status_code"], a["response_excerpt"]) for a in d["attempts"]] == [
        (500, "boom"), (204, "")]
    first, second = rx.requests
    assert first["body"] == second["body"]  # the same event, byte for byte
    assert first["headers"]["payback-event-id"] == second["headers"]["payback-event-id"]
    assert first["headers"]["payback-signature"] != second["headers"]["payback-signature"]
    for req in rx.requests:
        verify_payback_signature(req["headers"]["payback-signature"], req["body"],
                                 ep["secret"], now=clock.now())


def test_the_retry_schedule_ends_failed_after_three_days(engine, clock, receiver):
    rx = receiver(default=answer(503, b"down"))
    ep = endpoint(engine, clock, rx.url)
    event(engine, clock)
    start, reg = clock.now(), worker()

    drain(engine, clock, registry=reg)
    while (d := only_delivery(engine, ep["id"]))["status"] == "pending":
        clock.advance(seconds=(d["next_attempt_at"] - clock.now()).total_seconds())
        drain(engine, clock, registry=reg)

    offsets = [a["attempted_at"] - start for a in d["attempts"]]
    minutes = [int(o.total_seconds()) // 60 for o in offsets]
    assert minutes == [0, 1, 6, 36, 156, 456, 1056, 1776, 2496, 3216, 3936]  # then 4656 > 3 days
    assert (d["status"], d["attempt_count"], d["next_attempt_at"]) == ("failed", 11, None)
    assert len(rx.requests) == 11
    clock.advance(days=2)
    drain(engine, clock, registry=reg)
    assert len(rx.requests) == 11
    with db.read(engine) as conn:
        jobs = conn.execute(select(outbox_events.c.status).where(
            outbox_events.c.topic == "webhook.deliver")).scalars().all()
    assert jobs == ["done"] * 11

    # A manual retry sends once more: failing again ends failed at once (the window is over)...
    with db.write(engine) as conn:
        again = service.retry_delivery(conn, clock, ep["id"], d["id"], DEFAULT_SELLER_ID)
    assert again["status"] == "pending"
    drain(engine, clock, registry=reg)
    assert only_delivery(engine, ep["id"])["status"] == "failed"
    assert len(rx.requests) == 12
    # ...and succeeding delivers it.
    rx.default = answer(200)
    with db.write(engine) as conn:
        service.retry_delivery(conn, clock, ep["id"], d["id"], DEFAULT_SELLER_ID)
    drain(engine, clock, registry=reg)
    d = only_delivery(engine, ep["id"])
    assert (d["status"], d["attempt_count"], len(rx.requests)) == ("delivered", 13, 13)


def test_running_the_fan_out_or_a_spent_job_again_sends_nothing_twice(engine, clock, receiver):
    rx = receiver()
    ep = endpoint(engine, clock, rx.url, ["refund.*"])
    event_id = event(engine, clock)
    reg = worker()
    drain(engine, clock, registry=reg)
    assert len(rx.requests) == 1

    # The business event runs again (as after a crash before its "done" committed)...
    with db.write(engine) as conn:
        conn.execute(update(outbox_events).where(outbox_events.c.id == event_id).values(
            status="pending", available_at=clock.now()))
        stored = dict(conn.execute(select(outbox_events).where(
            outbox_events.c.id == event_id)).one()._mapping)
        fan_out(conn, stored)  # and the subscriber is called directly, once more
    drain(engine, clock, registry=reg)
    # ...and so does the spent webhook.deliver job.
    with db.write(engine) as conn:
        conn.execute(update(outbox_events).where(
            outbox_events.c.topic == "webhook.deliver").values(status="pending",
                                                              available_at=clock.now()))
    drain(engine, clock, registry=reg)

    assert len(rx.requests) == 1
    d = only_delivery(engine, ep["id"])
    assert (d["status"], d["attempt_count"], len(d["attempts"])) == ("delivered", 1, 1)
    with db.read(engine) as conn:
        assert len(conn.execute(select(webhook_deliveries)).all()) == 1


def test_a_disabled_endpoint_gets_nothing(engine, clock, receiver):
    rx = receiver()
    before = endpoint(engine, clock, rx.url)
    after = endpoint(engine, clock, rx.url)
    with db.write(engine) as conn:
        service.update_endpoint(conn, clock, before["id"], DEFAULT_SELLER_ID, {"enabled": False})
    event(engine, clock)
    with db.write(engine) as conn:  # fan out, then disable the second one before it is sent
        fan_out(conn, dict(conn.execute(select(outbox_events)).one()._mapping))
        conn.execute(update(outbox_events).where(outbox_events.c.topic == "refund.succeeded")
                     .values(status="done"))
        service.delete_endpoint(conn, clock, after["id"], DEFAULT_SELLER_ID)
    reg = worker()
    drain(engine, clock, registry=reg)

    assert rx.requests == []
    assert deliveries(engine, before["id"]) == []
    d = only_delivery(engine, after["id"])
    assert (d["status"], d["attempt_count"], d["attempts"]) == ("failed", 0, [])
    with db.write(engine) as conn, pytest.raises(Conflict, match="disabled"):
        service.retry_delivery(conn, clock, after["id"], d["id"], DEFAULT_SELLER_ID)
    # Enabled again, the failed delivery can be retried and arrives.
    with db.write(engine) as conn:
        service.update_endpoint(conn, clock, after["id"], DEFAULT_SELLER_ID, {"enabled": True})
        service.retry_delivery(conn, clock, after["id"], d["id"], DEFAULT_SELLER_ID)
    drain(engine, clock, registry=reg)
    assert len(rx.requests) == 1
    assert only_delivery(engine, after["id"])["status"] == "delivered"


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(engine, clock, receiver):
    rx = receiver(answer(200, b"too late", delay=2), answer(200, b"in time"))
    ep = endpoint(engine, clock, rx.url)
    event(engine, clock)
    reg = worker(timeout_seconds=1)

    started = time.monotonic()
    drain(engine, clock, registry=reg)
    assert time.monotonic() - started < 1.9  # the worker did not wait for the slow answer

    d = only_delivery(engine, ep["id"])
    (attempt,) = d["attempts"]
    assert attempt["status_code"] is None and "Timeout" in attempt["error"]
    assert 1000 <= attempt["duration_ms"] < 1900
    assert (d["status"], d["next_attempt_at"]) == ("pending", clock.now() + timedelta(minutes=1))
    clock.advance(minutes=1)
    drain(engine, clock, registry=reg)
    d = only_delivery(engine, ep["id"])
    assert d["status"] == "delivered"
    assert d["attempts"][-1]["response_excerpt"] == "in time"


def test_redirects_refused_connections_and_huge_answers_are_failed_attempts(engine, clock,
                                                                           receiver):
    target = receiver()
    rx = receiver(answer(302, b"", headers={"Location": target.url}),
                  answer(500, b"x" * 50_000))
    ep = endpoint(engine, clock, rx.url)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks"
    nobody = endpoint(engine, clock, dead_url)
    event(engine, clock)
    reg = worker()

    drain(engine, clock, registry=reg)
    clock.advance(minutes=1)
    drain(engine, clock, registry=reg)

    assert target.requests == []  # the redirect was not followed
    d = only_delivery(engine, ep["id"])
    assert [a["status_code"] for a in d["attempts"]] == [302, 500]
    assert d["attempts"][1]["response_excerpt"] == "x" * 1000
    assert d["status"] == "pending"
    refused = only_delivery(engine, nobody["id"])
    assert [a["status_code"] for a in refused["attempts"]] == [None, None]
    assert all("ConnectError" in a["error"] for a in refused["attempts"])


def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(engine, clock, receiver):
    rx = receiver()
    ep = endpoint(engine, clock, rx.url)
    with db.write(engine) as conn:
        rotated = service.rotate_secret(conn, clock, ep["id"], DEFAULT_SELLER_ID,
                                        overlap_hours=24)
    old, new = ep["secret"], rotated["secret"]
    assert new != old and new.startswith("whsec_")
    assert rotated["previous_secret_expires_at"] == clock.now() + timedelta(hours=24)
    event(engine, clock)
    reg = worker()
    drain(engine, clock, registry=reg)
    clock.advance(hours=25)
    event(engine, clock)
    drain(engine, clock, registry=reg)

    during, after = rx.requests
    assert during["headers"]["payback-signature"].count("v1=") == 2
    for secret in (old, new):
        verify_payback_signature(during["headers"]["payback-signature"], during["body"],
                                 secret, now=clock.now() - timedelta(hours=25))
    assert after["headers"]["payback-signature"].count("v1=") == 1
    verify_payback_signature(after["headers"]["payback-signature"], after["body"], new,
                             now=clock.now())
    with pytest.raises(WebhookRejected):
        verify_payback_signature(after["headers"]["payback-signature"], after["body"], old,
                                 now=clock.now())


# -------------------------------------------------------------------------- demo receiver


@pytest.fixture
def served_app(engine, db_url, clock):
    """The real app (on this test's database and clock) served by uvicorn on 127.0.0.1."""
    import uvicorn

    from payback.api.app import create_app
    from payback.settings import Settings

    app = create_app(Settings(database_url=db_url), engine=engine, clock=clock)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_the_demo_receiver_accepts_a_genuine_delivery_and_refuses_a_tampered_one(
        engine, clock, served_app, receiver):
    with db.write(engine) as conn:
        demo = service.create_demo_endpoint(conn, clock, DEFAULT_SELLER_ID, served_app + "/")
    assert demo["url"] == f"{served_app}/demo/webhook-receiver/{demo['id']}"
    assert demo["event_types"] == ["*"]
    event_id = event(engine, clock)

    drain(engine, clock, registry=worker())

    d = only_delivery(engine, demo["id"])
    (attempt,) = d["attempts"]
    assert d["status"] == "delivered" and attempt["status_code"] == 200
    assert json.loads(attempt["response_excerpt"]) == {"verified": True, "event_id": event_id}

    body = domain.event_body(d["event_id"], d["event_type"], d["created_at"], d["data"])
    headers = {"Payback-Signature": attempt["signature"], "Content-Type": "application/json"}
    genuine = httpx.post(demo["url"], content=body, headers=headers)
    assert genuine.status_code == 200 and genuine.json()["verified"] is True
    tampered = httpx.post(demo["url"], content=body.replace(b"4250", b"42500"), headers=headers)
    assert (tampered.status_code, tampered.json()) == (
        400, {"verified": False, "reason": "signature_mismatch"})
    unsigned = httpx.post(demo["url"], content=body,
                          headers={"Content-Type": "application/json"})
    assert (unsigned.status_code, unsigned.json()["reason"]) == (400, "missing_header")
    # An endpoint pointing elsewhere has no demo receiver (no signature oracle for it).
    elsewhere = endpoint(engine, clock, receiver().url)
    other = httpx.post(f"{served_app}/demo/webhook-receiver/{elsewhere['id']}", content=body,
                       headers=headers)
    assert (other.status_code, other.json()["reason"]) == (404, "unknown_endpoint")


# -------------------------------------------------------------------------------- the CLI


def cli(db_url: str, *args: str):
    result = CliRunner().invoke(
        __import__("payback.cli", fromlist=["app"]).app, list(args),
        env={"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "220"})
    return result


def test_cli_adds_lists_and_shows_the_log(db_url, engine, clock, receiver):
    rx = receiver(answer(500, b"nope"))
    added = cli(db_url, "webhooks", "add", "--url", rx.url, "--events", "refund.*, payment.*")
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and "shown ONCE" in added.stdout
    endpoint_id = added.stdout.split()[3]
    assert endpoint_id.startswith("we_")

    listed = cli(db_url, "webhooks", "list")
    assert listed.exit_code == 0, listed.output
    assert endpoint_id in listed.stdout and f"whsec_…{secret[-4:]}" in listed.stdout
    assert secret not in listed.stdout
    as_json = json.loads(cli(db_url, "webhooks", "list", "--json").stdout)
    assert [e["event_types"] for e in as_json] == [["refund.*", "payment.*"]]
    assert "secret" not in as_json[0]

    event(engine, clock)
    drain(engine, clock, registry=worker())
    log = cli(db_url, "webhooks", "log", endpoint_id)
    assert log.exit_code == 0, log.output
    assert "refund.succeeded" in log.stdout and "500" in log.stdout and "pending" in log.stdout
    verify_payback_signature(rx.requests[0]["headers"]["payback-signature"],
                             rx.requests[0]["body"], secret, now=clock.now())

    bad = cli(db_url, "webhooks", "add", "--url", "ftp://x.example", "--events", "refund.*")
    assert bad.exit_code == 2 and "error[validation_failed]" in bad.stderr
    missing = cli(db_url, "webhooks", "log", "we_00000000000000000000000000")
    assert missing.exit_code == 2 and "error[not_found]" in missing.stderr
    with db.read(engine) as conn:
        assert conn.execute(select(webhook_attempts)).all()
