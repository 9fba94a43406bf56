"""The seller's own details as printed on its invoices and credit notes: name, address, country,
VAT number and e-mail. Read by every document; set by an admin (``POST /v1/seller``).

Invariants: a VAT number is validated with python-stdnum against the seller's country (the new
one when both change together) before it is stored; a change is one transaction with its outbox
event. Documents already issued keep the hash taken at issue (see docs/credit-notes.md).
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from payback.access.tables import sellers
from payback.actor import SYSTEM, Actor
from payback.clock import Clock
from payback.documents.vat import validate_vat_number
from payback.errors import NotFound, ValidationFailed
from payback.outbox.service import emit

FIELDS = ("name", "address", "country", "vat_number", "email")


def get_seller(conn: Connection, seller_id: str) -> dict:
    row = conn.execute(select(sellers).where(sellers.c.id == seller_id)).first()
    if row is None:
        raise NotFound(f"seller {seller_id} not found")
    return dict(row._mapping)


def update_seller(conn: Connection, clock: Clock, seller_id: str, changes: dict, *,
                  actor: Actor = SYSTEM) -> dict:
    """Set the given fields (absent ones are kept; ``None`` clears an optional one)."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown seller field(s): {', '.join(sorted(unknown))}")
    if not changes:
        raise ValidationFailed("give at least one of " + ", ".join(FIELDS))
    current = get_seller(conn, seller_id)
    values = dict(changes)
    if "name" in values:
        if not values["name"] or not values["name"].strip():
            raise ValidationFailed("name must not be empty")
        values["name"] = values["name"].strip()
    if values.get("country"):
        values["country"] = values["country"].upper()
    if "vat_number" in values or "country" in values:
        country = values.get("country", current["country"])
        values["vat_number"] = validate_vat_number(
            values.get("vat_number", current["vat_number"]), country)
    conn.execute(update(sellers).where(sellers.c.id == seller_id).values(**values))
    emit(conn, "seller.updated", seller_id,
         {"id": seller_id, "fields": sorted(values), "actor_id": actor.id}, clock.now(),
         seller_id)
    return get_seller(conn, seller_id)
