"""Customer notifications about refunds: queued with the change they report, sent by the worker.

Two steps, both driven by the outbox (see docs/notifications.md):

1. ``queue_for_event`` subscribes to refund.created / approved / rejected / succeeded / failed
   and runs in the event's own transaction: it decides which e-mail the event deserves
   (``domain.kind_for``: one e-mail per moment, "approved" only after a person approved),
   renders it in the customer's language and writes one ``notifications`` row plus a
   ``notification.send`` outbox event. The row's ``event_id`` is unique, so an event processed
   twice queues one e-mail. A customer without an e-mail address gets nothing (no row); one
   whose address cannot be used gets a row marked ``failed`` (visible on the timeline) and no
   send job.
2. ``send_notification`` handles ``notification.send`` outside any transaction (it talks to the
   SMTP server): a row already ``sent`` is left alone; otherwise the message is built
   (deterministic Message-ID, so a resend after a crash is recognisably the same message) and
   sent, then the row is marked ``sent`` in a short transaction. A failure adds to ``attempts``,
   keeps the (masked) error and raises, so the outbox retries with backoff; on the attempt at
   which the outbox dead-letters the event (``outbox_max_attempts``) the row is marked
   ``failed``. ``payback outbox retry`` revives the event, and a later success marks it sent.
   A recipient the server refuses permanently (5xx) is marked ``failed`` at once, no retry.

``list_for_refund`` is what the refund's timeline (console, API) shows.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from datetime import datetime
from email.headerregistry import Address

from sqlalchemy import Connection, Engine, insert, select, update

from payback.access.tables import sellers
from payback.customers.tables import customers
from payback.db import read, write
from payback.errors import NotFound
from payback.ids import new_id
from payback.invoicing.tables import invoices
from payback.notifications import domain, smtp
from payback.notifications.tables import notifications
from payback.outbox.service import emit
from payback.outbox.worker import describe_error
from payback.payments.tables import payments
from payback.refunds.expectations import expected_arrival
from payback.refunds.tables import refund_events, refund_tenders, refunds
from payback.settings import Settings
from payback.web.links import portal_url

log = logging.getLogger("payback.notifications")

#: The business events customers hear about.
TOPICS = ("refund.created", "refund.approved", "refund.rejected", "refund.succeeded",
          "refund.failed")
SEND_TOPIC = "notification.send"
#: What the timeline shows of a notification.
TIMELINE_FIELDS = ("id", "kind", "locale", "to_address", "subject", "status", "created_at",
                   "sent_at", "error")

_N = notifications.c
_insert = insert(notifications)


# --------------------------------------------------------------------------------- wiring


def install(registry, subscribers, settings: Settings | None = None) -> None:
    """Subscribe to the refund events and register the ``notification.send`` job. Without
    ``settings`` they are read from the environment when first needed (the worker's case)."""
    conf = _lazy(settings)

    def on_refund_event(conn: Connection, event: dict) -> None:
        queue_for_event(conn, event, conf())

    def on_send(engine: Engine, event: dict, clock) -> None:
        send_notification(engine, event, clock, conf())

    for topic in TOPICS:
        subscribers.subscribe(topic, on_refund_event)
    registry.register(SEND_TOPIC, on_send, transactional=False)


def _lazy(settings: Settings | None) -> Callable[[], Settings]:
    cache: list[Settings] = [settings] if settings is not None else []

    def get() -> Settings:
        if not cache:
            cache.append(Settings())
        return cache[0]
    return get


# ------------------------------------------------------------------------ step 1: queue


def queue_for_event(conn: Connection, event: dict, settings: Settings) -> str | None:
    """Queue the e-mail a refund event deserves, in the event's transaction; return the
    notification id, or None when there is nothing to send (or it was queued already)."""
    if event["topic"] not in TOPICS:
        return None
    # First the cheapest question: does the refund's customer have an address at all?
    found = conn.execute(select(refunds, customers.c.email.label("customer_email"))
                         .join(customers, customers.c.id == refunds.c.customer_id)
                         .where(refunds.c.id == event["object_id"])).first()
    if found is None or not (found.customer_email or "").strip() \
            or _already_queued(conn, event["id"]):
        return None
    refund = {c.name: found._mapping[c.name] for c in refunds.columns}
    steps = _steps(conn, refund["id"])
    kind = domain.kind_for(event["topic"], steps)
    customer = _row(conn, customers, refund["customer_id"])
    if kind is None or customer is None:
        return None
    inv = _row(conn, invoices, refund["invoice_id"])
    at = event["created_at"]
    context = _context(conn, kind, refund, inv, customer, steps, event, settings, at)
    rendered = domain.render(kind, context, customer["locale"])
    return _store(conn, kind, rendered, refund, customer, event, at)


def _already_queued(conn: Connection, event_id: str) -> bool:
    return conn.execute(select(_N.id).where(_N.event_id == event_id)).first() is not None


def _row(conn: Connection, table, object_id: str) -> dict | None:
    row = conn.execute(select(table).where(table.c.id == object_id)).first()
    return dict(row._mapping) if row is not None else None


def _steps(conn: Connection, refund_id: str) -> list[domain.Step]:
    q = (select(refund_events.c.to_status, refund_events.c.from_status, refund_events.c.at,
                refund_events.c.comment)
         .where(refund_events.c.refund_id == refund_id).order_by(refund_events.c.id))
    return [domain.Step(*r) for r in conn.execute(q)]


def _context(conn: Connection, kind: str, refund: dict, inv: dict, customer: dict,
             steps: list[domain.Step], event: dict, settings: Settings, at: datetime) -> dict:
    """The plain values ``domain.render`` needs for this refund and kind."""
    shop = conn.execute(select(sellers.c.name).where(sellers.c.id == refund["seller_id"])
                        ).scalar()
    context = {"customer_name": customer["name"], "shop_name": shop or "",
               "invoice_number": inv["number"], "amount_minor": refund["amount_minor"],
               "currency": refund["currency"],
               "portal_url": portal_url(settings, inv["id"], now=at)}
    # What the refund looked like when the event happened (the worker may run later).
    status = (event.get("payload") or {}).get("status") or refund["status"]
    if kind in (domain.RECEIVED, domain.APPROVED):
        due = expected_arrival({**refund, "status": status})
        context["due_at"] = due.latest if due.state == "due_by" else None
    elif kind == domain.REJECTED:
        context["reason"] = domain.rejection_reason(steps)
    elif kind == domain.PAID:
        tenders = _tenders(conn, refund["id"])
        context["tenders"] = tenders
        context["arrival"] = expected_arrival(refund, _payout_method(tenders))
    elif kind == domain.FAILED:
        context["fallback"] = (event.get("payload") or {}).get("fallback")
    return context


def _tenders(conn: Connection, refund_id: str) -> list[dict]:
    q = (select(refund_tenders.c.destination, refund_tenders.c.amount_minor,
                payments.c.method.label("payment_method"), payments.c.card_brand,
                payments.c.card_last4)
         .join(payments, payments.c.id == refund_tenders.c.payment_id)
         .where(refund_tenders.c.refund_id == refund_id).order_by(refund_tenders.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def _payout_method(tenders: list[dict]) -> str | None:
    """Where most of the money goes: the payment method of the largest tender paid back to
    its payment, or the tender's destination (manual payout, store credit)."""
    if not tenders:
        return None
    main = max(tenders, key=lambda t: t["amount_minor"])
    return main["payment_method"] if main["destination"] == "original_payment" \
        else main["destination"]


def _store(conn: Connection, kind: str, rendered: domain.Rendered, refund: dict,
           customer: dict, event: dict, at: datetime) -> str:
    """Write the notification row and, when it can be sent, its send job."""
    notification_id = new_id("notification")
    address = customer["email"].strip()
    usable = usable_address(address)
    conn.execute(_insert, {
        "id": notification_id, "seller_id": refund["seller_id"], "refund_id": refund["id"],
        "customer_id": customer["id"], "kind": kind, "event_id": event["id"],
        "locale": rendered.locale, "to_address": address, "subject": rendered.subject,
        "body_text": rendered.text, "body_html": rendered.html,
        "status": "queued" if usable else "failed", "attempts": 0,
        "error": None if usable else "the customer's e-mail address cannot be used",
        "created_at": at})
    if usable:
        emit(conn, SEND_TOPIC, notification_id,
             {"notification_id": notification_id, "refund_id": refund["id"], "kind": kind},
             at, refund["seller_id"])
    return notification_id


def usable_address(address: str) -> bool:
    """One plain ``local@domain`` address (no display name, no list, no line breaks)."""
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, TypeError):
        return False
    return bool(parsed.username and "." in parsed.domain)


# ------------------------------------------------------------------------- step 2: send


def send_notification(engine: Engine, event: dict, clock, settings: Settings) -> None:
    """The ``notification.send`` job (outside any transaction; idempotent as a whole)."""
    notification_id = event["object_id"]
    with read(engine) as conn:
        row = _row(conn, notifications, notification_id)
        reply_to = None if row is None else conn.execute(
            select(sellers.c.email).where(sellers.c.id == row["seller_id"])).scalar()
    if row is None or row["status"] == "sent":
        return
    language = domain.language_of(domain.resolve_locale(row["locale"]))
    try:
        message = smtp.build_message(row, settings, language=language, reply_to=reply_to)
        smtp.send(settings, message)
    except Exception as exc:  # recorded, then retried by the outbox (or failed for good)
        last = event.get("attempts", 0) + 1 >= settings.outbox_max_attempts
        permanent = _permanent(exc)
        _record_failure(engine, notification_id, exc, failed=last or permanent)
        if permanent:
            log.warning("notification %s not sent, permanently: %s", notification_id, exc)
            return
        raise
    _mark_sent(engine, notification_id, smtp.message_id(notification_id, settings.mail_from),
               clock.now())


def _permanent(exc: Exception) -> bool:
    """Failures that no retry can fix: the message cannot be built, or the server refused the
    recipient for good (5xx). Connection, TLS, login and 4xx failures are retried."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, ValueError)


def _record_failure(engine: Engine, notification_id: str, exc: Exception, *,
                    failed: bool) -> None:
    values = {"attempts": _N.attempts + 1, "error": describe_error(exc)}
    if failed:
        values["status"] = "failed"
    with write(engine) as conn:
        conn.execute(update(notifications).where(
            _N.id == notification_id, _N.status != "sent").values(**values))


def _mark_sent(engine: Engine, notification_id: str, message_id: str, now: datetime) -> None:
    with write(engine) as conn:
        conn.execute(update(notifications).where(_N.id == notification_id).values(
            status="sent", sent_at=now, message_id=message_id, attempts=_N.attempts + 1,
            error=None))


# ------------------------------------------------------------------------------ timeline


def list_for_refund(conn: Connection, refund_id: str, seller_id: str | None = None
                    ) -> list[dict]:
    """The refund's notifications, oldest first, for its timeline. With ``seller_id``, a
    refund of another seller is reported like a missing one (NotFound)."""
    if seller_id is not None:
        owner = conn.execute(select(refunds.c.seller_id).where(refunds.c.id == refund_id)
                             ).scalar()
        if owner != seller_id:
            raise NotFound(f"refund {refund_id} not found")
    q = (select(*(_N[f] for f in TIMELINE_FIELDS)).where(_N.refund_id == refund_id)
         .order_by(_N.created_at, _N.id))
    return [dict(r._mapping) for r in conn.execute(q)]
