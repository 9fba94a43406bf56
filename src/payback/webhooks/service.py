"""Outbound webhooks, the use cases: register, read, change and disable endpoints, rotate their
signing secrets, read an endpoint's delivery log, and retry a delivery that failed.

Every function takes the caller's connection (one transaction) and the caller's seller: another
seller's endpoint or delivery is reported exactly like a missing one. The secret is returned
whole only by ``create_endpoint`` and ``rotate_secret`` (shown once); every other read shows a
masked hint. Disabling ("deleting") an endpoint keeps it and its delivery log.

The worker side (the fan-out of business events to deliveries, and the HTTP delivery itself) is
``payback.webhooks.delivery``; ``queue_attempt`` here is what both use to schedule an attempt.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, insert, select, update

from payback.access.tables import sellers
from payback.clock import Clock
from payback.db import get_scoped
from payback.errors import Conflict, NotFound, ValidationFailed
from payback.ids import new_id
from payback.outbox.service import emit_many, outbox_row
from payback.webhooks import domain
from payback.webhooks.tables import (
    DELIVERY_STATUSES,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

#: The outbox topic of one delivery attempt (payload: delivery id and the attempt it is for).
DELIVER_TOPIC = "webhook.deliver"
#: Where the demo receiver listens (``payback.webhooks.router.receiver_router``).
DEMO_RECEIVER_PATH = "/demo/webhook-receiver/{endpoint_id}"
#: Fields of an endpoint that ``update_endpoint`` may change.
UPDATABLE = ("url", "event_types", "enabled", "description")

_E = webhook_endpoints.c
_D = webhook_deliveries.c
_A = webhook_attempts.c


# ------------------------------------------------------------------------------ endpoints


def create_endpoint(conn: Connection, clock: Clock, *, seller_id: str, url: str,
                    event_types: list[str], description: str | None = None) -> dict:
    """Register an endpoint. The result holds the signing ``secret``: the only time it is
    shown (later reads show ``secret_hint``)."""
    return _insert_endpoint(conn, clock, new_id("webhook_endpoint"), seller_id=seller_id,
                            url=url, event_types=event_types, description=description)


def create_demo_endpoint(conn: Connection, clock: Clock, seller_id: str, base_url: str) -> dict:
    """An endpoint for every event that points at this server's own demo receiver
    (``base_url`` + ``/demo/webhook-receiver/<id>``), which verifies each delivery's signature:
    the demo shows signed deliveries without any outside server."""
    endpoint_id = new_id("webhook_endpoint")
    url = base_url.rstrip("/") + DEMO_RECEIVER_PATH.format(endpoint_id=endpoint_id)
    return _insert_endpoint(conn, clock, endpoint_id, seller_id=seller_id, url=url,
                            event_types=[domain.ALL_EVENTS],
                            description="Demo receiver: verifies every delivery's signature")


def _insert_endpoint(conn: Connection, clock: Clock, endpoint_id: str, *, seller_id: str,
                     url: str, event_types: list[str], description: str | None) -> dict:
    if conn.execute(select(sellers.c.id).where(sellers.c.id == seller_id)).first() is None:
        raise NotFound(f"seller {seller_id} not found")
    secret = new_secret()
    now = clock.now()
    row = {"id": endpoint_id, "seller_id": seller_id, "url": domain.validate_url(url),
           "description": _description(description),
           "event_types": domain.validate_event_types(event_types),
           **domain.Secrets(secret).columns(), "enabled": True, "created_at": now,
           "updated_at": now}
    conn.execute(insert(webhook_endpoints), row)
    return {**view(row), "secret": secret}


def new_secret() -> str:
    return domain.SECRET_PREFIX + secrets.token_urlsafe(24)


def _description(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > 200:
        raise ValidationFailed("description: at most 200 characters")
    return text or None


def view(row: dict) -> dict:
    """An endpoint as every read shows it: the secret masked."""
    stored = domain.Secrets.of(row)
    return {"id": row["id"], "seller_id": row["seller_id"], "url": row["url"],
            "description": row["description"], "event_types": list(row["event_types"]),
            "enabled": bool(row["enabled"]), "secret_hint": stored.hint(),
            "previous_secret_expires_at": stored.previous_until,
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _endpoint_row(conn: Connection, endpoint_id: str, seller_id: str | None) -> dict:
    return get_scoped(conn, webhook_endpoints, endpoint_id, seller_id, "webhook endpoint")


def get_endpoint(conn: Connection, endpoint_id: str, seller_id: str | None) -> dict:
    return view(_endpoint_row(conn, endpoint_id, seller_id))


def list_endpoints(conn: Connection, *, seller_id: str | None, after: str | None = None,
                   limit: int = 100, enabled: bool | None = None) -> list[dict]:
    """Endpoints oldest first (cursor: ``after`` an endpoint id)."""
    q = select(webhook_endpoints).order_by(_E.id).limit(limit)
    if seller_id:
        q = q.where(_E.seller_id == seller_id)
    if after:
        q = q.where(_E.id > after)
    if enabled is not None:
        q = q.where(_E.enabled.is_(enabled))
    return [view(dict(r._mapping)) for r in conn.execute(q)]


def update_endpoint(conn: Connection, clock: Clock, endpoint_id: str, seller_id: str | None,
                    changes: dict[str, Any]) -> dict:
    """Change some of ``url``, ``event_types``, ``enabled``, ``description`` (a ``None``
    description clears it). Deliveries already queued keep going to the endpoint's URL as it
    is when they are attempted."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(unknown)}")
    if not changes:
        raise ValidationFailed(f"give at least one of {', '.join(UPDATABLE)}")
    row = _endpoint_row(conn, endpoint_id, seller_id)
    values = _clean_changes(changes)
    values["updated_at"] = clock.now()
    conn.execute(update(webhook_endpoints).where(_E.id == row["id"]).values(**values))
    return view({**row, **values})


def _clean_changes(changes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "url" in changes:
        if changes["url"] is None:
            raise ValidationFailed("url: an endpoint needs a URL")
        values["url"] = domain.validate_url(changes["url"])
    if "event_types" in changes:
        values["event_types"] = domain.validate_event_types(changes["event_types"] or [])
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ValidationFailed("enabled: true or false")
        values["enabled"] = changes["enabled"]
    if "description" in changes:
        values["description"] = _description(changes["description"])
    return values


def delete_endpoint(conn: Connection, clock: Clock, endpoint_id: str,
                    seller_id: str | None) -> dict:
    """Disable the endpoint: it receives nothing more (deliveries still queued for it end
    ``failed``), and it and its delivery log are kept. Disabling twice changes nothing."""
    row = _endpoint_row(conn, endpoint_id, seller_id)
    if not row["enabled"]:
        return view(row)
    return update_endpoint(conn, clock, endpoint_id, seller_id, {"enabled": False})


def rotate_secret(conn: Connection, clock: Clock, endpoint_id: str, seller_id: str | None, *,
                  overlap_hours: int = 24) -> dict:
    """A new signing secret, returned once (``secret``). For ``overlap_hours`` (0 to 168)
    deliveries are signed with the old and the new secret, so the receiver can switch over
    without refusing a delivery; with 0 the old secret stops at once."""
    row = _endpoint_row(conn, endpoint_id, seller_id)
    now = clock.now()
    secret = new_secret()
    stored = domain.Secrets.of(row).rotated(secret, now,
                                                          timedelta(hours=overlap_hours))
    values = {**stored.columns(), "updated_at": now}
    conn.execute(update(webhook_endpoints).where(_E.id == row["id"]).values(**values))
    return {**view({**row, **values}), "secret": secret}


def demo_receiver_secrets(conn: Connection, endpoint_id: str, now: datetime) -> tuple[str, ...]:
    """The secrets that verify a delivery to the demo receiver of this endpoint at ``now``.
    Only an endpoint registered with the receiver's own URL has one: the receiver is no
    signature oracle for endpoints that point elsewhere."""
    row = conn.execute(select(_E.url, _E.secret, _E.previous_secret, _E.previous_secret_until)
                       .where(_E.id == endpoint_id)).first()
    receiver = DEMO_RECEIVER_PATH.format(endpoint_id=endpoint_id)
    if row is None or not urlsplit(row.url).path.endswith(receiver):
        raise NotFound(f"no demo webhook endpoint {endpoint_id}")
    return domain.Secrets.of(row._mapping).active(now)


# ----------------------------------------------------------------------------- deliveries


def list_deliveries(conn: Connection, endpoint_id: str, seller_id: str | None, *,
                    after: str | None = None, limit: int = 100,
                    status: str | None = None) -> list[dict]:
    """The endpoint's delivery log, newest first (cursor: ``after`` a delivery id), each
    delivery with its attempts, oldest attempt first."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed(f"status: one of {', '.join(DELIVERY_STATUSES)}")
    _endpoint_row(conn, endpoint_id, seller_id)
    q = select(webhook_deliveries).where(_D.endpoint_id == endpoint_id) \
        .order_by(_D.id.desc()).limit(limit)
    if after:
        q = q.where(_D.id < after)
    if status:
        q = q.where(_D.status == status)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    attempts = _attempts_of(conn, [r["id"] for r in rows])
    return [delivery_view(r, attempts.get(r["id"], [])) for r in rows]


def _attempts_of(conn: Connection, delivery_ids: list[str]) -> dict[str, list[dict]]:
    if not delivery_ids:
        return {}
    out: dict[str, list[dict]] = {}
    q = select(webhook_attempts).where(_A.delivery_id.in_(delivery_ids)).order_by(_A.id)
    for r in conn.execute(q):
        out.setdefault(r.delivery_id, []).append(
            {k: v for k, v in r._mapping.items() if k != "delivery_id"})
    return out


def delivery_view(row: dict, attempts: list[dict]) -> dict:
    return {"id": row["id"], "endpoint_id": row["endpoint_id"], "event_id": row["event_id"],
            "event_type": row["event_type"], "status": row["status"],
            "attempt_count": row["attempts"], "next_attempt_at": row["next_attempt_at"],
            "last_status_code": row["last_status_code"], "created_at": row["created_at"],
            "delivered_at": row["delivered_at"], "data": row["payload"], "attempts": attempts}


def get_delivery(conn: Connection, endpoint_id: str, delivery_id: str,
                 seller_id: str | None) -> dict:
    _endpoint_row(conn, endpoint_id, seller_id)
    row = conn.execute(select(webhook_deliveries).where(
        _D.id == delivery_id, _D.endpoint_id == endpoint_id)).first()
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    return delivery_view(dict(row._mapping), _attempts_of(conn, [delivery_id]).get(
        delivery_id, []))


def retry_delivery(conn: Connection, clock: Clock, endpoint_id: str, delivery_id: str,
                   seller_id: str | None) -> dict:
    """Queue one more attempt of a ``failed`` delivery, now. It is one attempt: if it fails
    too and the retry window (3 days from the event) is over, the delivery is failed again."""
    endpoint = _endpoint_row(conn, endpoint_id, seller_id)
    delivery = get_delivery(conn, endpoint_id, delivery_id, seller_id)
    if delivery["status"] != "failed":
        raise Conflict(f"webhook delivery {delivery_id} is {delivery['status']}: only a failed "
                       "delivery can be retried", status_now=delivery["status"])
    if not endpoint["enabled"]:
        raise Conflict(f"webhook endpoint {endpoint_id} is disabled: enable it first")
    now = clock.now()
    conn.execute(update(webhook_deliveries).where(_D.id == delivery_id).values(
        status="pending", next_attempt_at=now))
    queue_attempt(conn, delivery_id, endpoint["seller_id"], delivery["attempt_count"], now, now)
    return {**delivery, "status": "pending", "next_attempt_at": now}


def queue_attempt(conn: Connection, delivery_id: str, seller_id: str, attempts_made: int,
                  now: datetime, due: datetime) -> None:
    """Write the outbox event of the next attempt, due at ``due``. It carries how many attempts
    had been made when it was queued: an event whose count is no longer the delivery's is stale
    (its attempt was made already) and does nothing."""
    row = outbox_row(DELIVER_TOPIC, delivery_id,
                     {"delivery_id": delivery_id, "attempts_made": attempts_made}, now, seller_id)
    row["available_at"] = due
    emit_many(conn, [row])
