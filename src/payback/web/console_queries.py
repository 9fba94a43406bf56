"""Read-only queries behind the console's pages: searchable, keyset-paginated lists, and the
bundles a detail page shows (an invoice with its payments, refunds and credit notes; a refund
with its timeline; a customer with store credit). Business reads go through the features'
service functions; only what those do not offer (search, the timeline's extra rows) is queried
here, and nothing here writes.

Lists are newest first and paginated by id like the API (ids are ULIDs, sortable by creation):
``starting_after`` is the last id of the previous page, and one extra row is fetched to know
whether another page follows. Every query is scoped to the user's seller.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, or_, select

from payback.access.tables import staff_users
from payback.credit_notes import service as credit_notes
from payback.customers import service as customers_service
from payback.customers.tables import customers
from payback.gateways import flow as gateway_flow
from payback.gateways.tables import gateway_intents
from payback.invoicing import service as invoicing
from payback.invoicing.tables import invoices
from payback.payments import service as payments_service
from payback.payments.tables import payments
from payback.refunds import service as refunds_service
from payback.refunds.tables import refunds
from payback.store_credit import service as store_credit

MAX_TERM = 200


def _term(q: str | None) -> str:
    return (q or "").strip()[:MAX_TERM]


def _contains(column, term: str):
    """Case-insensitive substring match; ``%`` and ``_`` in the term are literal."""
    return func.lower(column).contains(term.lower(), autoescape=True)


def _page(conn: Connection, q, id_column, *, after: str | None, limit: int) -> dict:
    q = q.order_by(id_column.desc()).limit(limit + 1)
    if after:
        q = q.where(id_column < after)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    return {"rows": rows, "has_more": more, "next": rows[-1]["id"] if more and rows else None}


def search_invoices(conn: Connection, *, seller_id: str, q: str | None, after: str | None,
                    limit: int) -> dict:
    query = (select(invoices.c.id, invoices.c.number, invoices.c.currency,
                    invoices.c.total_minor, invoices.c.issued_at, invoices.c.voided_at,
                    invoices.c.customer_id, customers.c.name.label("customer_name"))
             .join(customers, customers.c.id == invoices.c.customer_id)
             .where(invoices.c.seller_id == seller_id))
    term = _term(q)
    if term:
        query = query.where(or_(invoices.c.id == term, _contains(invoices.c.number, term),
                                _contains(customers.c.name, term),
                                _contains(customers.c.email, term)))
    return _page(conn, query, invoices.c.id, after=after, limit=limit)


def search_payments(conn: Connection, *, seller_id: str, q: str | None, after: str | None,
                    limit: int) -> dict:
    query = (select(payments.c.id, payments.c.method, payments.c.amount_minor,
                    payments.c.refunded_minor, payments.c.currency, payments.c.card_brand,
                    payments.c.card_last4, payments.c.reference, payments.c.captured_at,
                    payments.c.invoice_id, invoices.c.number.label("invoice_number"),
                    customers.c.name.label("customer_name"))
             .join(invoices, invoices.c.id == payments.c.invoice_id)
             .join(customers, customers.c.id == invoices.c.customer_id)
             .where(payments.c.seller_id == seller_id))
    term = _term(q)
    if term:
        query = query.where(or_(payments.c.id == term, payments.c.invoice_id == term,
                                payments.c.card_last4 == term,
                                _contains(invoices.c.number, term),
                                _contains(payments.c.reference, term),
                                _contains(customers.c.name, term),
                                _contains(customers.c.email, term)))
    return _page(conn, query, payments.c.id, after=after, limit=limit)


def search_refunds(conn: Connection, *, seller_id: str, q: str | None, status: str | None,
                   after: str | None, limit: int) -> dict:
    query = (select(refunds.c.id, refunds.c.status, refunds.c.kind, refunds.c.method,
                    refunds.c.reason, refunds.c.amount_minor, refunds.c.currency,
                    refunds.c.created_at, refunds.c.due_at, refunds.c.invoice_id,
                    refunds.c.customer_id, invoices.c.number.label("invoice_number"),
                    customers.c.name.label("customer_name"))
             .join(invoices, invoices.c.id == refunds.c.invoice_id)
             .join(customers, customers.c.id == refunds.c.customer_id)
             .where(refunds.c.seller_id == seller_id))
    term = _term(q)
    if term:
        query = query.where(or_(refunds.c.id == term, refunds.c.invoice_id == term,
                                _contains(invoices.c.number, term),
                                _contains(customers.c.name, term),
                                _contains(customers.c.email, term)))
    if status:
        query = query.where(refunds.c.status == status)
    return _page(conn, query, refunds.c.id, after=after, limit=limit)


def search_customers(conn: Connection, *, seller_id: str, q: str | None, after: str | None,
                     limit: int) -> dict:
    query = (select(customers.c.id, customers.c.name, customers.c.email, customers.c.country,
                    customers.c.created_at).where(customers.c.seller_id == seller_id))
    term = _term(q)
    if term:
        query = query.where(or_(customers.c.id == term, _contains(customers.c.name, term),
                                _contains(customers.c.email, term)))
    return _page(conn, query, customers.c.id, after=after, limit=limit)


# ---------------------------------------------------------------------------- detail pages


def invoice_bundle(conn: Connection, invoice_id: str, seller_id: str) -> dict:
    """An invoice (lines with what remains refundable), its customer, payments, refunds and
    credit notes. NotFound for another seller's invoice."""
    inv = invoicing.get_invoice(conn, invoice_id, seller_id)
    return {
        "invoice": inv,
        "customer": customers_service.get_customer(conn, inv["customer_id"], seller_id),
        "payments": payments_service.list_payments(conn, after=None, limit=500,
                                                   invoice_id=invoice_id, seller_id=seller_id),
        "refunds": refunds_service.list_refunds(conn, after=None, limit=500,
                                                invoice_id=invoice_id, seller_id=seller_id),
        "credit_notes": credit_notes.list_credit_notes(conn, after=None, limit=500,
                                                       invoice_id=invoice_id,
                                                       seller_id=seller_id),
    }


def staff_names(conn: Connection, ids: set[str]) -> dict[str, str]:
    """Display names of the staff users among ``ids`` ("Name (email)")."""
    wanted = [i for i in ids if i and i.startswith("usr_")]
    if not wanted:
        return {}
    rows = conn.execute(select(staff_users.c.id, staff_users.c.name, staff_users.c.email)
                        .where(staff_users.c.id.in_(wanted)))
    return {r.id: f"{r.name} ({r.email})" for r in rows}


def notifications_for(conn: Connection, refund_id: str) -> list[dict]:
    """Messages sent to the customer about this refund, when the notifications feature is
    installed (it is optional to the console)."""
    try:
        from payback.notifications import service as notifications
    except ImportError:
        return []
    list_for_refund = getattr(notifications, "list_for_refund", None)
    if list_for_refund is None:
        return []
    return [dict(r) for r in list_for_refund(conn, refund_id)]


def intents_for(conn: Connection, refund_id: str) -> list[dict]:
    q = (select(gateway_intents).where(gateway_intents.c.refund_id == refund_id)
         .order_by(gateway_intents.c.created_at, gateway_intents.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def actor_label(actor_id: str, names: dict[str, str]) -> str:
    """Who did a step, in words: a staff member's name, the customer, a gateway, or Payback
    itself for the automatic steps."""
    if actor_id in names:
        return names[actor_id]
    if actor_id == "system":
        return "Payback (automatic)"
    if actor_id.startswith("gateway:"):
        return f"Payment gateway ({actor_id.split(':', 1)[1]})"
    if actor_id.startswith("customer:"):
        return "The customer"
    return actor_id


def timeline(refund: dict, messages: list[dict], names: dict[str, str]) -> list[dict]:
    """Every status change (in the order the state machine took them) and every message to the
    customer, placed by time among them. A status change never sorts before the one it
    followed, even if its clock said so (events are ordered by their running latest time)."""
    items: list[dict[str, Any]] = []
    latest = None
    for i, e in enumerate(refund["events"]):
        latest = e["at"] if latest is None or e["at"] > latest else latest
        items.append({"kind": "event", "at": e["at"], "from_status": e["from_status"],
                      "to_status": e["to_status"], "actor_id": e["actor_id"],
                      "actor": actor_label(e["actor_id"], names),
                      "role": None if e["actor_id"] == "system" else e["actor_role"],
                      "comment": e["comment"], "key": (latest, 0, i)})
    for i, m in enumerate(messages):
        at = m.get("sent_at") or m.get("created_at")
        items.append({"kind": "message", "at": at, "subject": m.get("subject"),
                      "to": m.get("to_address"), "status": m.get("status"),
                      "message_kind": m.get("kind"), "error": m.get("error"),
                      "key": (at or latest, 1, i)})
    return sorted(items, key=lambda it: it["key"])


def refund_bundle(conn: Connection, refund_id: str, seller_id: str) -> dict:
    refund = refunds_service.get_refund(conn, refund_id, seller_id)
    inv = invoicing.get_invoice(conn, refund["invoice_id"], seller_id)
    names = staff_names(conn, {e["actor_id"] for e in refund["events"]}
                        | {refund["requested_by"] or "", refund["approved_by"] or ""})
    messages = notifications_for(conn, refund_id)
    lines = {ln["id"]: ln for ln in inv["lines"]}
    return {
        "refund": refund, "invoice": inv, "names": names,
        "customer": customers_service.get_customer(conn, refund["customer_id"], seller_id),
        "line_names": {lid: ln["description"] for lid, ln in lines.items()},
        "timeline": timeline(refund, messages, names),
        "intents": intents_for(conn, refund_id),
        **gateway_flow.fallback_state(conn, refund, inv),
    }


def customer_bundle(conn: Connection, customer_id: str, seller_id: str) -> dict:
    customer = customers_service.get_customer(conn, customer_id, seller_id)
    wallets = [store_credit.statement(conn, customer_id, w["currency"], seller_id=seller_id)
               for w in store_credit.get_wallets(conn, customer_id, seller_id)]
    return {
        "customer": customer, "wallets": wallets,
        "invoices": invoicing.list_invoices(conn, after=None, limit=100,
                                            customer_id=customer_id, seller_id=seller_id),
        "refunds": search_refunds_of(conn, customer_id, seller_id),
    }


def search_refunds_of(conn: Connection, customer_id: str, seller_id: str) -> list[dict]:
    q = (select(refunds).where(refunds.c.customer_id == customer_id,
                               refunds.c.seller_id == seller_id)
         .order_by(refunds.c.id.desc()).limit(100))
    return [dict(r._mapping) for r in conn.execute(q)]


def pending_approvals(conn: Connection, seller_id: str, limit: int = 200) -> list[dict]:
    """Refunds waiting for approval, oldest first (first come, first served)."""
    rows = refunds_service.list_refunds(conn, after=None, limit=limit,
                                        status="pending_approval", seller_id=seller_id)
    names = staff_names(conn, {r["requested_by"] or "" for r in rows})
    numbers = dict(conn.execute(select(invoices.c.id, invoices.c.number).where(
        invoices.c.id.in_([r["invoice_id"] for r in rows]))).all()) if rows else {}
    return [{**r, "requester": names.get(r["requested_by"], r["requested_by"]),
             "invoice_number": numbers.get(r["invoice_id"])} for r in rows]
