"""The demo's "today": what ``payback demo`` leaves for the running server to do, so that a
newcomer sees the gateway path work live after ``make run``.

- a webhook endpoint pointing at this server's own demo receiver, which verifies every
  delivery's signature (the delivery log shows them);
- today's order, paid by a card captured through the sandbox gateway, with a partial refund the
  policy approves at once: it is ``processing`` when the demo ends, and the worker beside the
  server pays it through the sandbox; the sandbox's signed webhook confirms it, the refund
  becomes ``succeeded``, and ``refund.succeeded`` is delivered, signed, to the endpoint.

Everything here is audited like the rest of the demo (actor ``demo``, origin ``cli``).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, select

from payback.access.tables import DEFAULT_SELLER_ID
from payback.audit import service as audit
from payback.clock import Clock
from payback.customers.tables import customers
from payback.db import write
from payback.invoicing import service as invoicing
from payback.invoicing.domain import LineInput
from payback.payments import service as payments
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.webhooks import service as webhooks

#: Today's order: one line, tax-exclusive, and the part refunded (below every approval
#: threshold, so the policy approves it at once).
ORDER_NET_MINOR, ORDER_TAX_RATE, REFUND_MINOR = 8900, Decimal("0.20"), 2500


def start_live(engine: Engine, clock: Clock, sandbox, public_url: str) -> dict:
    """Register the demo webhook endpoint and leave today's card refund processing."""
    endpoint = _write(engine, clock, "webhook_endpoint.create", "webhook_endpoint",
                      lambda conn: webhooks.create_demo_endpoint(conn, clock, DEFAULT_SELLER_ID,
                                                                 public_url))
    customer = _eur_customer(engine)
    inv = _write(engine, clock, "invoice.create", "invoice", lambda conn: invoicing.create_invoice(
        conn, clock, customer_id=customer, currency="EUR", tax_mode="exclusive",
        lines=[LineInput("Desk lamp (ordered today)", 1, ORDER_NET_MINOR, ORDER_TAX_RATE)]))
    total = inv["total_minor"]
    reference = sandbox.create_payment(total, "EUR", card="tok_visa")
    _write(engine, clock, "payment.record", "payment", lambda conn: payments.record_payment(
        conn, clock, inv["id"], method="card", amount_minor=total, currency="EUR",
        card={"token": "tok_visa", "brand": "visa", "last4": "4242"}, reference=reference,
        gateway="sandbox"))
    refund = _write(engine, clock, "refund.create", "refund", lambda conn: refunds.create_refund(
        conn, clock, inv["id"], RefundRequest(kind="amount", method="original_payment",
                                              reason="requested_by_customer",
                                              amount_minor=REFUND_MINOR,
                                              note="Lamp shade arrived scratched")))
    return {"refund_id": refund["id"], "refund_status": refund["status"],
            "invoice_id": inv["id"], "webhook_endpoint_id": endpoint["id"]}


def _eur_customer(engine: Engine) -> str:
    with write(engine) as conn:
        row = conn.execute(select(customers.c.id).where(
            customers.c.seller_id == DEFAULT_SELLER_ID, customers.c.email.is_not(None))
            .order_by(customers.c.created_at, customers.c.id)).first()
    if row is None:
        raise RuntimeError("the demo year has no customer to order today")
    return row.id


def _write(engine: Engine, clock: Clock, action: str, object_type: str, call) -> dict:
    with write(engine) as conn:
        row = call(conn)
        audit.record(conn, at=clock.now(), actor_id="demo", actor_kind="system",
                     actor_role="admin", seller_id=DEFAULT_SELLER_ID, action=action,
                     object_type=object_type, object_id=row["id"], outcome="allowed",
                     summary={"after": {k: row[k] for k in ("id", "status", "amount_minor")
                                        if k in row}}, origin="cli")
    return row
