"""Customer use cases: create (with address and a validated VAT number), get, list."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from payback.access.tables import DEFAULT_SELLER_ID
from payback.clock import Clock
from payback.customers.tables import customers
from payback.db import get_scoped
from payback.documents.vat import validate_vat_number
from payback.errors import ValidationFailed
from payback.ids import new_id
from payback.outbox.service import emit

_insert = insert(customers)


def create_customer(conn: Connection, clock: Clock, *, name: str, email: str | None = None,
                    locale: str = "en_US", country: str | None = None,
                    address: str | None = None, vat_number: str | None = None,
                    seller_id: str = DEFAULT_SELLER_ID) -> dict:
    """A customer; a VAT number is validated (python-stdnum) against the country and stored
    normalised (``DE136695976``), or refused with ``invalid_vat_number``."""
    if not name or not name.strip():
        raise ValidationFailed("name must not be empty")
    country = country.upper() if country else None
    row = {"id": new_id("customer"), "name": name.strip(), "email": email, "locale": locale,
           "country": country, "address": address.strip() if address else None,
           "vat_number": validate_vat_number(vat_number, country), "created_at": clock.now(),
           "seller_id": seller_id}
    conn.execute(_insert, row)
    emit(conn, "customer.created", row["id"], {"id": row["id"]}, row["created_at"], seller_id)
    return row


def get_customer(conn: Connection, customer_id: str, seller_id: str | None = None) -> dict:
    """The customer, if it exists and (when ``seller_id`` is given) belongs to that seller:
    another seller's customer is reported exactly like a missing one."""
    return get_scoped(conn, customers, customer_id, seller_id, "customer")


def list_customers(conn: Connection, *, after: str | None, limit: int,
                   seller_id: str | None = None) -> list[dict]:
    q = select(customers).order_by(customers.c.id).limit(limit)
    if seller_id:
        q = q.where(customers.c.seller_id == seller_id)
    if after:
        q = q.where(customers.c.id > after)
    return [dict(r._mapping) for r in conn.execute(q)]
