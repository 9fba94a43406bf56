"""Outbound webhooks, the worker side: business events fan out to deliveries, and each
``webhook.deliver`` job POSTs one signed delivery and records the attempt.

- ``fan_out`` subscribes to every business event (``*``). In the event's own transaction it
  writes ONE ``webhook_deliveries`` row per enabled endpoint of the event's seller whose event
  types match, and a ``webhook.deliver`` outbox event for it. The (endpoint, event) pair is
  unique, and rows already there are skipped: running the fan-out again duplicates nothing.
- ``deliver`` (registered non-transactional) reads the delivery in a short transaction, POSTs
  with NO transaction open (a slow receiver must not block the database), then records the
  attempt and what follows in one short transaction: ``delivered`` on a 2xx; otherwise the next
  attempt is a NEW ``webhook.deliver`` event due at the next time of the schedule
  (``domain.next_attempt_at``), or ``failed`` once that would be past the 3-day window.
- Each ``webhook.deliver`` event names the number of attempts made when it was queued; when the
  delivery has moved on since (the event ran already and is re-run after a crash), the event is
  stale and does nothing. A crash between the POST and the bookkeeping makes the same attempt
  again: receivers deduplicate on the event id (docs/webhooks.md).

Redirects are not followed (a 3xx is a failed attempt: register the final URL), and only the
first few kilobytes of a response are read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import Connection, Engine, insert, select, update

from payback import __version__
from payback.clock import Clock
from payback.db import read, write
from payback.gateways.signatures import PAYBACK_SIGNATURE_HEADER, sign_payload
from payback.ids import new_id
from payback.outbox.fanout import Subscribers
from payback.outbox.service import emit_many, outbox_row
from payback.outbox.worker import Registry, describe_error
from payback.webhooks import domain
from payback.webhooks.service import DELIVER_TOPIC, queue_attempt
from payback.webhooks.tables import webhook_attempts, webhook_deliveries, webhook_endpoints

DEFAULT_TIMEOUT_SECONDS = 10
#: The response body kept in the log: at most this many characters, from at most
#: ``_READ_LIMIT`` bytes read (a huge or endless answer is not read to its end).
EXCERPT_CHARS = 1000
_READ_LIMIT = 4096
USER_AGENT = f"Payback/{__version__}"

_E = webhook_endpoints.c
_D = webhook_deliveries.c


def install(registry: Registry, subscribers: Subscribers, *,
            timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> None:
    """Subscribe the fan-out to every business event and register the delivery job.
    ``timeout_seconds`` bounds each phase of the HTTP call (connect, send, each read)."""
    subscribers.subscribe("*", fan_out)
    registry.register(DELIVER_TOPIC, delivery_handler(timeout_seconds), transactional=False)


def delivery_handler(timeout_seconds: int) -> Callable[[Engine, dict, Clock], None]:
    def handler(engine: Engine, event: dict, clock: Clock) -> None:
        deliver(engine, event, clock, timeout_seconds=timeout_seconds)
    return handler


# -------------------------------------------------------------------------------- fan-out


def fan_out(conn: Connection, event: dict) -> None:
    """One delivery (and its first ``webhook.deliver`` job) per matching enabled endpoint of
    the event's seller; endpoints that have this event already are skipped."""
    topic, seller_id = event["topic"], event["seller_id"]
    endpoints = conn.execute(select(_E.id, _E.event_types).where(
        _E.seller_id == seller_id, _E.enabled.is_(True)).order_by(_E.id)).all()
    targets = [e.id for e in endpoints if domain.subscribed(e.event_types, topic)]
    if not targets:
        return
    have = set(conn.execute(select(_D.endpoint_id).where(
        _D.event_id == event["id"], _D.endpoint_id.in_(targets))).scalars())
    # The retry window counts from the event: a delivery is about something that happened then.
    at: datetime = event["created_at"]
    rows, jobs = [], []
    for endpoint_id in (t for t in targets if t not in have):
        delivery_id = new_id("webhook_delivery")
        rows.append({"id": delivery_id, "endpoint_id": endpoint_id, "seller_id": seller_id,
                     "event_id": event["id"], "event_type": topic, "payload": event["payload"],
                     "status": "pending", "attempts": 0, "next_attempt_at": at,
                     "created_at": at})
        jobs.append(outbox_row(DELIVER_TOPIC, delivery_id,
                               {"delivery_id": delivery_id, "attempts_made": 0}, at, seller_id))
    if rows:
        conn.execute(insert(webhook_deliveries), rows)
        emit_many(conn, jobs)


# ------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Job:
    """A delivery due for an attempt, with what the attempt needs from its endpoint."""

    delivery: dict
    url: str
    enabled: bool
    secrets: domain.Secrets

    @property
    def attempts_made(self) -> int:
        return self.delivery["attempts"]


@dataclass(frozen=True)
class Answer:
    """What one POST gave: a status code and a body excerpt, or an error."""

    status_code: int | None
    duration_ms: int
    excerpt: str | None = None
    error: str | None = None


def deliver(engine: Engine, event: dict, clock: Clock, *,
            timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> None:
    """The ``webhook.deliver`` handler: one attempt of one delivery (see the module docstring)."""
    job = _load(engine, event)
    if job is None:
        return
    if not job.enabled:
        _give_up(engine, job)
        return
    attempted_at = clock.now()
    d = job.delivery
    body = domain.event_body(d["event_id"], d["event_type"], d["created_at"], d["payload"])
    signature = sign_payload(job.secrets.active(attempted_at), body, domain.unix(attempted_at))
    headers = {"Content-Type": "application/json", PAYBACK_SIGNATURE_HEADER: signature,
               "Payback-Event-Id": d["event_id"], "Payback-Event-Type": d["event_type"],
               "User-Agent": USER_AGENT}
    answer = post(job.url, body, headers, timeout_seconds)
    _record(engine, clock, job, attempted_at, signature, answer)


def _load(engine: Engine, event: dict) -> Job | None:
    """The pending delivery this event is for, or None when there is nothing to do (delivered,
    failed, or this event's attempt was made already)."""
    payload = event["payload"] or {}
    delivery_id = payload.get("delivery_id") or event["object_id"]
    with read(engine) as conn:
        row = conn.execute(
            select(webhook_deliveries, _E.url, _E.enabled, _E.secret, _E.previous_secret,
                   _E.previous_secret_until)
            .join(webhook_endpoints, _E.id == _D.endpoint_id)
            .where(_D.id == delivery_id)).first()
    if row is None:
        return None
    m = dict(row._mapping)
    if m["status"] != "pending" or m["attempts"] != payload.get("attempts_made", m["attempts"]):
        return None
    delivery = {c.name: m[c.name] for c in webhook_deliveries.columns}
    return Job(delivery, m["url"], bool(m["enabled"]), domain.Secrets.of(m))


def post(url: str, body: bytes, headers: dict[str, str], timeout_seconds: int) -> Answer:
    """POST ``body`` once: never follows a redirect, reads at most ``_READ_LIMIT`` bytes of the
    answer. Any failure to get an answer (timeout, refused connection, TLS) is an ``error``."""
    started = time.monotonic_ns()
    try:
        with _client().stream("POST", url, content=body, headers=headers,
                              timeout=timeout_seconds) as resp:
            return Answer(resp.status_code, _elapsed_ms(started), _excerpt(resp))
    except Exception as exc:  # noqa: BLE001 - every way a POST can fail is a failed attempt
        return Answer(None, _elapsed_ms(started), error=describe_error(exc))


_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    """One client per process, shared by the worker's threads (httpx clients are thread-safe):
    building one loads the CA bundle, which cost more than the delivery itself. Keyed by pid so
    a forked process never reuses its parent's connections."""
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid) or httpx.Client(follow_redirects=False)
            _clients[pid] = client
    return client


def _excerpt(resp: httpx.Response) -> str:
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _READ_LIMIT:
            break
    return b"".join(chunks)[:_READ_LIMIT].decode("utf-8", "replace")[:EXCERPT_CHARS]


def _elapsed_ms(started_ns: int) -> int:
    return (time.monotonic_ns() - started_ns) // 1_000_000


def _record(engine: Engine, clock: Clock, job: Job, attempted_at: datetime, signature: str,
            answer: Answer) -> None:
    """The attempt, the delivery's new state and the next attempt's job, in one transaction."""
    d = job.delivery
    attempt = job.attempts_made + 1
    outcome = domain.after_attempt(d["created_at"], attempt, attempted_at, answer.status_code)
    with write(engine) as conn:
        conn.execute(insert(webhook_attempts), {
            "delivery_id": d["id"], "attempted_at": attempted_at,
            "status_code": answer.status_code, "duration_ms": answer.duration_ms,
            "signature": signature, "response_excerpt": answer.excerpt, "error": answer.error})
        moved = conn.execute(update(webhook_deliveries).where(
            _D.id == d["id"], _D.status == "pending", _D.attempts == job.attempts_made).values(
            attempts=attempt, last_status_code=answer.status_code, status=outcome.status,
            next_attempt_at=outcome.next_attempt_at,
            delivered_at=attempted_at if outcome.status == "delivered" else None)).rowcount
        # Another run made this attempt's bookkeeping first: it has queued what follows.
        if moved and outcome.next_attempt_at is not None:
            queue_attempt(conn, d["id"], d["seller_id"], attempt, clock.now(),
                          outcome.next_attempt_at)


def _give_up(engine: Engine, job: Job) -> None:
    """The endpoint was disabled after the delivery was queued: nothing is sent, and the
    delivery ends ``failed`` (it can be retried once the endpoint is enabled again)."""
    with write(engine) as conn:
        conn.execute(update(webhook_deliveries).where(
            _D.id == job.delivery["id"], _D.status == "pending",
            _D.attempts == job.attempts_made).values(status="failed", next_attempt_at=None))
