"""Write events to the outbox inside the caller's transaction (delivery comes with the worker)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from payback.access.tables import DEFAULT_SELLER_ID
from payback.ids import new_id
from payback.outbox.tables import outbox_events

_insert = insert(outbox_events)


def emit(conn: Connection, topic: str, object_id: str, payload: dict, at: datetime,
         seller_id: str = DEFAULT_SELLER_ID, *, available_at: datetime | None = None) -> str:
    """Write one event; ``available_at`` (default ``at``) delays when the worker may run it."""
    event_id = new_id("outbox")
    conn.execute(_insert, {"id": event_id, "topic": topic, "object_id": object_id,
                           "payload": payload, "seller_id": seller_id, "status": "pending",
                           "attempts": 0, "created_at": at, "available_at": available_at or at})
    return event_id


def outbox_row(topic: str, object_id: str, payload: dict, at: datetime,
               seller_id: str = DEFAULT_SELLER_ID) -> dict:
    """An event row to write later with ``emit_many`` (one statement for several events)."""
    return {"id": new_id("outbox"), "topic": topic, "object_id": object_id, "payload": payload,
            "seller_id": seller_id, "status": "pending", "attempts": 0, "created_at": at,
            "available_at": at}


def emit_many(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(_insert, rows)


def list_events(conn: Connection, *, object_id: str | None = None, limit: int = 100) -> list[dict]:
    q = select(outbox_events).order_by(outbox_events.c.id).limit(limit)
    if object_id:
        q = q.where(outbox_events.c.object_id == object_id)
    return [dict(r._mapping) for r in conn.execute(q)]
